"""Numba kernels of the generator.

Each has a slow, obviously-correct twin in ``tests/reference/synthetic.py``;
``tests/test_synthetic_kernels.py`` checks every kernel against it.
"""
from __future__ import annotations

import numpy as np
from numba import njit


def nhs_numbers(person_id: np.ndarray) -> np.ndarray:
    """Unique, valid (modulus 11) 10-digit NHS numbers for person ids, as int64 (all 10 digits).

    Numbers start with 9 (a range not issued to patients). Person id ``p`` maps to block
    ``b`` (scrambled by an affine permutation) and position ``p % 9`` among the at least nine
    valid numbers in the block of ten sharing the first nine digits but the last, so distinct
    ids give distinct numbers for ids below 90,000,000.
    """
    p = np.asarray(person_id, dtype=np.int64)
    if len(p) and (p.min() < 0 or p.max() >= 90_000_000):
        raise ValueError("person ids for NHS numbers must be in [0, 90,000,000)")
    block = (p // 9 * 7_654_321 + 1_234_567) % 10_000_000  # 7_654_321 is coprime with 10**7
    pos = p % 9
    first8 = 90_000_000 + block  # digits 1-8
    digits = np.empty((len(p), 8), dtype=np.int64)
    rest = first8.copy()
    for j in range(7, -1, -1):
        digits[:, j] = rest % 10
        rest //= 10
    partial = (digits * np.arange(10, 2, -1)).sum(axis=1)  # weights 10..3 for digits 1-8
    # digit 9 has weight 2; it is invalid when (partial + 2*d9) % 11 == 1
    d9_all = np.arange(10)
    invalid = (partial[:, None] + 2 * d9_all[None, :]) % 11 == 1
    # rank of valid digit-9 choices: the pos-th valid d9
    valid_rank = np.cumsum(~invalid, axis=1) - 1
    d9 = np.argmax((valid_rank == pos[:, None]) & ~invalid, axis=1)
    total = partial + 2 * d9
    check = (11 - total % 11) % 11
    return (first8 * 10 + d9) * 10 + check


# --- activity rows --------------------------------------------------------------------------

#: Kinds of social care in ``emit_activity``'s ``care_kind``.
CARE_NONE, CARE_HOME, CARE_RESIDENTIAL = 0, 1, 2


def emit_activity(counts, win_a, win_b, last_day, pe_offset, pe_u, pe_los, pe_cost, pe_diag, pe_via, via_cost,
                  rx_q, rx_mu, rx_unit, care_kind, care_hours, month_u, month_starts, point_setting, setting_rank,
                  rx_setting, care_setting, ae_setting, home_hour_pence, residential_day_pence):
    """Activity rows of a practice, sorted by (person, start day, setting rank).

    Point events (spells, attendances, contacts) are laid out by the caller in traversal
    order: person, year, setting, event; per-setting arrays (``pe_*``, starting at
    ``pe_offset[k]``) give each event's date uniform, length of stay (-1: no end date),
    cost (pence) and diagnosis (-1: none). Emergency events flagged in ``pe_via`` also get
    an A&E row the same day costing ``via_cost``. Monthly rows: a prescribing row in each
    month of the registration window where ``month_u[..., 0] < rx_q`` with
    ``Poisson(rx_mu)`` items (at least 1) by inversion of ``month_u[..., 1]``, and social
    care rows in every month of the window for people with ``care_kind`` home (hours
    ``care_hours * (0.75 + 0.5 u)``) or residential (days in the month).

    Returns
    -------
    tuple of arrays
        person (local index), setting (index in schema.SETTING_CODES), start, end (int32 days;
        ``NEVER`` = null), quantity, cost_pence, diagnosis (-1 = null), and each person's
        cost in pence in the last year.
    """
    return _emit_activity(counts, win_a, win_b, last_day, pe_offset, pe_u, pe_los, pe_cost, pe_diag, pe_via, via_cost,
                          rx_q, rx_mu, rx_unit, care_kind, care_hours, month_u, month_starts, point_setting,
                          setting_rank, rx_setting, care_setting, ae_setting, home_hour_pence, residential_day_pence)


NEVER_DAY = np.iinfo(np.int32).max


@njit(cache=True)
def _poisson_inverse(mu, u):
    k = 0
    p = np.exp(-mu)
    cdf = p
    while u > cdf and k < 1000:
        k += 1
        p *= mu / k
        cdf += p
    return k


@njit(cache=True)
def _person_rows(i, counts, win_a, win_b, last_day, cursor, pe_u, pe_los, pe_cost, pe_diag, pe_via, via_cost,
                 rx_q, rx_mu, rx_unit, care_kind, care_hours, month_u, month_starts, point_setting,
                 rx_setting, care_setting, ae_setting, home_hour_pence, residential_day_pence,
                 b_set, b_start, b_end, b_qty, b_cost, b_diag, b_year, write):
    """Rows of person ``i`` into the buffers (or only count them when ``write`` is False)."""
    T = counts.shape[1]
    S = counts.shape[2]
    r = 0
    for t in range(T):
        a = win_a[i, t]
        b = win_b[i, t]
        for k in range(S):
            for _ in range(counts[i, t, k]):
                j = cursor[k]
                cursor[k] += 1
                if write:
                    day = a + np.int64(np.floor(pe_u[j] * (b - a)))
                    b_set[r] = point_setting[k]
                    b_start[r] = day
                    if pe_los[j] >= 0:
                        b_end[r] = min(day + pe_los[j], last_day[i])
                    else:
                        b_end[r] = NEVER_DAY
                    b_qty[r] = 1
                    b_cost[r] = pe_cost[j]
                    b_diag[r] = pe_diag[j]
                    b_year[r] = t
                r += 1
                if k == 0 and pe_via[j]:
                    if write:
                        b_set[r] = ae_setting
                        b_start[r] = b_start[r - 1]
                        b_end[r] = NEVER_DAY
                        b_qty[r] = 1
                        b_cost[r] = via_cost[j]
                        b_diag[r] = -1
                        b_year[r] = t
                    r += 1
        if a >= b:
            continue
        for m in range(12):
            ms = month_starts[t, m]
            me = month_starts[t, m + 1]
            if ms >= b or me <= a:
                continue
            day = max(ms, a)
            if month_u[i, t, m, 0] < rx_q[i, t]:
                if write:
                    items = max(_poisson_inverse(rx_mu[i, t], month_u[i, t, m, 1]), 1)
                    b_set[r] = rx_setting
                    b_start[r] = day
                    b_end[r] = NEVER_DAY
                    b_qty[r] = items
                    b_cost[r] = np.int64(np.round(items * rx_unit[i]))
                    b_diag[r] = -1
                    b_year[r] = t
                r += 1
            kind = care_kind[i, t]
            if kind != 0:
                if write:
                    if kind == 1:
                        qty = max(np.int64(np.floor(care_hours[i, t] * (0.75 + 0.5 * month_u[i, t, m, 2]))), 1)
                        cost = qty * home_hour_pence
                    else:
                        qty = min(me, b) - day
                        cost = qty * residential_day_pence
                    b_set[r] = care_setting
                    b_start[r] = day
                    b_end[r] = NEVER_DAY
                    b_qty[r] = qty
                    b_cost[r] = cost
                    b_diag[r] = -1
                    b_year[r] = t
                r += 1
    return r


@njit(cache=True, nogil=True)
def _emit_activity(counts, win_a, win_b, last_day, pe_offset, pe_u, pe_los, pe_cost, pe_diag, pe_via, via_cost,
                   rx_q, rx_mu, rx_unit, care_kind, care_hours, month_u, month_starts, point_setting, setting_rank,
                   rx_setting, care_setting, ae_setting, home_hour_pence, residential_day_pence):
    n = counts.shape[0]
    T = counts.shape[1]
    dummy_i = np.zeros(1, dtype=np.int64)
    dummy_f = np.zeros(1, dtype=np.int64)
    # pass 1: rows per person
    cursor = pe_offset.copy()
    per_person = np.zeros(n, dtype=np.int64)
    for i in range(n):
        per_person[i] = _person_rows(i, counts, win_a, win_b, last_day, cursor, pe_u, pe_los, pe_cost, pe_diag, pe_via,
                                     via_cost, rx_q, rx_mu, rx_unit, care_kind, care_hours, month_u, month_starts,
                                     point_setting, rx_setting, care_setting, ae_setting, home_hour_pence,
                                     residential_day_pence, dummy_i, dummy_i, dummy_i, dummy_i, dummy_f, dummy_i,
                                     dummy_i, False)
    total = per_person.sum()
    width = max(per_person.max(), 1) if n > 0 else 1
    out_person = np.empty(total, dtype=np.int32)
    out_set = np.empty(total, dtype=np.int8)
    out_start = np.empty(total, dtype=np.int32)
    out_end = np.empty(total, dtype=np.int32)
    out_qty = np.empty(total, dtype=np.int64)
    out_cost = np.empty(total, dtype=np.int64)
    out_diag = np.empty(total, dtype=np.int16)
    last_cost = np.zeros(n, dtype=np.int64)
    b_set = np.empty(width, dtype=np.int64)
    b_start = np.empty(width, dtype=np.int64)
    b_end = np.empty(width, dtype=np.int64)
    b_qty = np.empty(width, dtype=np.int64)
    b_cost = np.empty(width, dtype=np.int64)
    b_diag = np.empty(width, dtype=np.int64)
    b_year = np.empty(width, dtype=np.int64)
    keys = np.empty(width, dtype=np.int64)
    idx = np.empty(width, dtype=np.int64)
    cursor = pe_offset.copy()
    pos = 0
    for i in range(n):
        r = _person_rows(i, counts, win_a, win_b, last_day, cursor, pe_u, pe_los, pe_cost, pe_diag, pe_via, via_cost,
                         rx_q, rx_mu, rx_unit, care_kind, care_hours, month_u, month_starts, point_setting,
                         rx_setting, care_setting, ae_setting, home_hour_pence, residential_day_pence,
                         b_set, b_start, b_end, b_qty, b_cost, b_diag, b_year, True)
        for j in range(r):  # stable insertion sort of the person's rows by (start, setting rank)
            keys[j] = b_start[j] * 16 + setting_rank[b_set[j]]
            cur = j
            m = j - 1
            while m >= 0 and keys[idx[m]] > keys[cur]:
                idx[m + 1] = idx[m]
                m -= 1
            idx[m + 1] = cur
        for j in range(r):
            s = idx[j]
            out_person[pos] = i
            out_set[pos] = b_set[s]
            out_start[pos] = b_start[s]
            out_end[pos] = b_end[s]
            out_qty[pos] = b_qty[s]
            out_cost[pos] = b_cost[s]
            out_diag[pos] = b_diag[s]
            if b_year[s] == T - 1:
                last_cost[i] += b_cost[s]
            pos += 1
    return out_person, out_set, out_start, out_end, out_qty, out_cost, out_diag, last_cost
