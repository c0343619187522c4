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
NEVER_DAY = np.iinfo(np.int32).max
N_SETTINGS = 10


def emit_activity(seg_offset, seg_registered, counts, win_a, win_b, last_day, pe_offset, pe_u, pe_los, pe_cost, pe_diag,
                  pe_via, via_cost, rx_meds, rx_interval, rx_offset, rx_acute, rx_unit, care_kind, care_hours, month_u,
                  month_starts, point_setting, setting_rank, rx_setting, care_setting, ae_setting, home_hour_pence,
                  residential_day_pence):
    """Activity rows of a practice's people, sorted by (person, start day, setting rank).

    A person's history is a run of segments (``seg_offset[i]`` to ``seg_offset[i + 1]``, in time
    order, not overlapping): periods at a practice (``seg_registered``), gaps between lists and
    the time after leaving. ``win_a``/``win_b`` is each segment's window in each year.

    Point events (spells, attendances, contacts) are laid out by the caller in traversal order:
    segment, year, setting, event; per-setting arrays (``pe_*``, starting at ``pe_offset[k]``)
    give each event's date uniform, length of stay (-1: no end date), cost (pence) and diagnosis
    (-1: none). Emergency events flagged in ``pe_via`` also get an A&E row the same day costing
    ``via_cost``.

    Monthly rows, in registered segments only, one per month (or part of a month) of the window:
    prescribing with ``rx_meds`` regular medicines dispensed every ``rx_interval`` days (on days
    congruent to ``rx_offset``) plus acute items ~ Poisson(``rx_acute`` a year x the part of the
    year) by inversion of ``month_u[..., 0]``, when there is at least one item, costing
    ``rx_unit`` pence an item; social care for people with ``care_kind`` home (hours
    ``care_hours`` x the part of the month x ``(0.75 + 0.5 u)``, at least 1) or residential
    (days in the window).

    Returns
    -------
    tuple of arrays
        person (local index), setting (index in schema.SETTING_CODES), start, end (int32 days;
        ``NEVER`` = null), quantity, cost_pence, diagnosis (-1 = null); and each person's cost in
        pence and quantity per setting (n, 10) in the last year.
    """
    return _emit_activity(seg_offset, seg_registered, counts, win_a, win_b, last_day, pe_offset, pe_u, pe_los, pe_cost,
                          pe_diag, pe_via, via_cost, rx_meds, rx_interval, rx_offset, rx_acute, rx_unit, care_kind,
                          care_hours, month_u, month_starts, point_setting, setting_rank, rx_setting, care_setting,
                          ae_setting, home_hour_pence, residential_day_pence)


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
def poisson_quantiles(mu, u):
    """The Poisson(mu) quantile of each u (element-wise, by inversion; at most 1000)."""
    out = np.empty(mu.size, dtype=np.int64)
    flat_mu = mu.ravel()
    flat_u = u.ravel()
    for j in range(mu.size):
        out[j] = _poisson_inverse(flat_mu[j], flat_u[j])
    return out.reshape(mu.shape)


@njit(cache=True)
def _dispensings(lo, hi, interval, offset):
    """Days d in [lo, hi) with d = offset (mod interval)."""
    o = offset % interval
    return (hi - 1 - o) // interval - (lo - 1 - o) // interval


@njit(cache=True)
def _person_rows(i, seg_offset, seg_registered, counts, win_a, win_b, last_day, cursor, pe_u, pe_los, pe_cost, pe_diag,
                 pe_via, via_cost, rx_meds, rx_interval, rx_offset, rx_acute, rx_unit, care_kind, care_hours, month_u,
                 month_starts, point_setting, rx_setting, care_setting, ae_setting, home_hour_pence,
                 residential_day_pence, b_set, b_start, b_end, b_qty, b_cost, b_diag, b_year, write):
    """Rows of person ``i`` into the buffers (or only count them when ``write`` is False)."""
    T = counts.shape[1]
    S = counts.shape[2]
    r = 0
    for s in range(seg_offset[i], seg_offset[i + 1]):
        for t in range(T):
            a = win_a[s, t]
            b = win_b[s, t]
            for k in range(S):
                for _ in range(counts[s, t, k]):
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
            if a >= b or not seg_registered[s]:
                continue
            for m in range(12):
                ms = month_starts[t, m]
                me = month_starts[t, m + 1]
                lo = max(ms, a)
                hi = min(me, b)
                if lo >= hi:
                    continue
                acute = _poisson_inverse(rx_acute[s, t] * (hi - lo) / 365.25, month_u[s, t, m, 0])
                items = rx_meds[i, t] * _dispensings(lo, hi, rx_interval[s, t], rx_offset[i]) + acute
                if items > 0:
                    if write:
                        b_set[r] = rx_setting
                        b_start[r] = lo
                        b_end[r] = NEVER_DAY
                        b_qty[r] = items
                        b_cost[r] = np.int64(np.round(items * rx_unit[s]))
                        b_diag[r] = -1
                        b_year[r] = t
                    r += 1
                kind = care_kind[i, t]
                if kind != 0:
                    if write:
                        if kind == 1:
                            part = (hi - lo) / (me - ms)
                            qty = max(np.int64(np.floor(care_hours[i, t] * part * (0.75 + 0.5 * month_u[s, t, m, 1]))), 1)
                            cost = qty * home_hour_pence
                        else:
                            qty = hi - lo
                            cost = qty * residential_day_pence
                        b_set[r] = care_setting
                        b_start[r] = lo
                        b_end[r] = NEVER_DAY
                        b_qty[r] = qty
                        b_cost[r] = cost
                        b_diag[r] = -1
                        b_year[r] = t
                    r += 1
    return r


@njit(cache=True, nogil=True)
def _emit_activity(seg_offset, seg_registered, counts, win_a, win_b, last_day, pe_offset, pe_u, pe_los, pe_cost,
                   pe_diag, pe_via, via_cost, rx_meds, rx_interval, rx_offset, rx_acute, rx_unit, care_kind,
                   care_hours, month_u, month_starts, point_setting, setting_rank, rx_setting, care_setting, ae_setting,
                   home_hour_pence, residential_day_pence):
    n = len(seg_offset) - 1
    T = counts.shape[1]
    dummy = np.zeros(1, dtype=np.int64)
    cursor = pe_offset.copy()
    per_person = np.zeros(n, dtype=np.int64)
    for i in range(n):  # pass 1: rows per person
        per_person[i] = _person_rows(i, seg_offset, seg_registered, counts, win_a, win_b, last_day, cursor, pe_u,
                                     pe_los, pe_cost, pe_diag, pe_via, via_cost, rx_meds, rx_interval, rx_offset,
                                     rx_acute, rx_unit, care_kind, care_hours, month_u, month_starts, point_setting,
                                     rx_setting, care_setting, ae_setting, home_hour_pence, residential_day_pence,
                                     dummy, dummy, dummy, dummy, dummy, dummy, dummy, False)
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
    last_qty = np.zeros((n, N_SETTINGS), dtype=np.int64)
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
        r = _person_rows(i, seg_offset, seg_registered, counts, win_a, win_b, last_day, cursor, pe_u, pe_los, pe_cost,
                         pe_diag, pe_via, via_cost, rx_meds, rx_interval, rx_offset, rx_acute, rx_unit, care_kind,
                         care_hours, month_u, month_starts, point_setting, rx_setting, care_setting, ae_setting,
                         home_hour_pence, residential_day_pence, b_set, b_start, b_end, b_qty, b_cost, b_diag, b_year,
                         True)
        for j in range(r):  # the person's rows in (start, setting rank) order, stably
            keys[j] = b_start[j] * 16 + setting_rank[b_set[j]]
        if r > 128:  # insertion sort is quicker for the few rows most people have
            idx[:r] = np.argsort(keys[:r], kind="mergesort")
        else:
            for j in range(r):  # insertion sort
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
                last_qty[i, b_set[s]] += b_qty[s]
            pos += 1
    return out_person, out_set, out_start, out_end, out_qty, out_cost, out_diag, last_cost, last_qty
