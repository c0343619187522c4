"""Registration histories: periods with practices, gaps between lists, and leaving the ICB.

Each person walks through the simulated years from their first registration: in each year
they may deregister once (age-specific hazard), which is a move to another practice of the
ICB the same day, a gap (registered nowhere) before coming back, or leaving the ICB for good;
and wherever they are registered, the practice may close (list dispersed to other practices)
or merge (list moved to one practice) on a date. The walk writes *segments*, in time order
per person: a period at a practice (``kind`` = the practice's index in the ICB, >= 0), a gap
(``GAP``) or the time after leaving, when the old local hospitals still see them for a
while (``TAIL``). Deaths are decided later and cut the segments short.

:func:`registration_segments` is a numba kernel; its slow, obviously-correct twin is in
``tests/reference/synthetic.py`` (``tests/test_synthetic_kernels.py`` compares them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

NEVER = np.iinfo(np.int32).max
GAP = -1
TAIL = -2
#: Uniforms per person and year: leave?, leave day, kind of leave, gap length, return to the
#: same practice?, destination (2), forced destination (2), forced gap?, forced gap length.
U_PER_YEAR = 11


@dataclass(frozen=True)
class Destinations:
    """Where people of one ICB can register: its practices (local indices 0..m-1).

    ``open_day`` / ``close_day``: the practice holds patients on days ``open_day <= d < close_day``;
    ``successor``: where a merged practice's list goes (-1: closed, list dispersed);
    ``cum_all``: cumulative weights (list sizes) over all practices; ``by_pcn``: practices
    ordered by PCN, ``pcn_lo``/``pcn_hi``: each practice's PCN as a range of ``by_pcn``;
    ``cum_pcn``: cumulative weights along ``by_pcn``, restarting at each PCN.
    """

    open_day: np.ndarray
    close_day: np.ndarray
    successor: np.ndarray
    cum_all: np.ndarray
    by_pcn: np.ndarray
    pcn_lo: np.ndarray
    pcn_hi: np.ndarray
    cum_pcn: np.ndarray

    @classmethod
    def build(cls, open_day, close_day, successor, weight, pcn) -> "Destinations":
        weight = np.asarray(weight, dtype=np.float64)
        pcn = np.asarray(pcn, dtype=np.int64)
        order = np.argsort(pcn, kind="stable")
        lo = np.searchsorted(pcn[order], pcn, side="left")
        hi = np.searchsorted(pcn[order], pcn, side="right")
        cum_pcn = np.empty(len(pcn))
        for p in np.unique(pcn):
            sel = np.flatnonzero(pcn[order] == p)
            cum_pcn[sel] = np.cumsum(weight[order][sel])
        return cls(np.asarray(open_day, np.int64), np.asarray(close_day, np.int64), np.asarray(successor, np.int64),
                   np.cumsum(weight), order.astype(np.int64), lo.astype(np.int64), hi.astype(np.int64), cum_pcn)

    def arrays(self) -> tuple:
        return (self.open_day, self.close_day, self.successor, self.cum_all, self.by_pcn, self.pcn_lo, self.pcn_hi,
                self.cum_pcn)


def registration_segments(entry, home, leave_rate, u, u_tail, year_starts, dest: Destinations, internal_share: float,
                          return_share: float, gap_mean: float, same_pcn_share: float, dispersal_gap_share: float,
                          dispersal_gap_mean: float, tail_mean: float):
    """Segments of every person's registration history.

    Parameters
    ----------
    entry, home : int64 arrays (n,)
        Day of first registration and the practice (ICB index) joined; a practice closed by
        then passes the person on as it would its list.
    leave_rate : float array (n, years)
        Yearly deregistration hazard at the person's age in each year.
    u : float array (n, years, U_PER_YEAR); u_tail : float array (n,)
        Uniform random numbers (see ``U_PER_YEAR``) and the length of the tail after leaving.
    year_starts : int64 array (years + 1,)
        First days of the years and the (exclusive) end.
    dest : Destinations
        The ICB's practices.

    Returns
    -------
    tuple of arrays
        ``person`` (int64), ``kind`` (practice index, ``GAP`` or ``TAIL``), ``start``, ``stop``
        (int64 days, ``NEVER`` = open), in person then time order.
    """
    args = (np.asarray(entry, np.int64), np.asarray(home, np.int64), np.asarray(leave_rate, np.float64),
            np.asarray(u, np.float64), np.asarray(u_tail, np.float64), np.asarray(year_starts, np.int64),
            *dest.arrays(), float(internal_share), float(return_share), float(gap_mean), float(same_pcn_share),
            float(dispersal_gap_share), float(dispersal_gap_mean), float(tail_mean))
    return _segments(*args)


@njit(cache=True)
def _is_open(q, day, open_day, close_day):
    return open_day[q] <= day < close_day[q]


@njit(cache=True)
def _search(cum, lo, hi, x):
    """First index k in [lo, hi) with cum[k] > x (hi - 1 if none)."""
    a, b = lo, hi - 1
    while a < b:
        m = (a + b) // 2
        if cum[m] > x:
            b = m
        else:
            a = m + 1
    return a


@njit(cache=True)
def _weight(cum, lo, k):
    return cum[k] - (cum[k - 1] if k > lo else 0.0)


@njit(cache=True)
def _pick(src, day, ua, ub, same_pcn_share, open_day, close_day, cum_all, by_pcn, pcn_lo, pcn_hi, cum_pcn):
    """A practice other than ``src`` open on ``day``: in src's PCN with chance same_pcn_share,
    else anywhere in the ICB, in proportion to list size; when the one drawn is not open, the
    next open one (cyclically); -1 when none is open."""
    m = len(open_day)
    if ua < same_pcn_share and src >= 0:
        lo, hi = pcn_lo[src], pcn_hi[src]
        total = cum_pcn[hi - 1]
        if total > 0:
            k = _search(cum_pcn, lo, hi, ub * total)
            for step in range(hi - lo):
                idx = lo + (k - lo + step) % (hi - lo)
                q = by_pcn[idx]
                if q != src and _weight(cum_pcn, lo, idx) > 0 and _is_open(q, day, open_day, close_day):
                    return q
    total = cum_all[m - 1] if m > 0 else 0.0
    if total <= 0:
        return -1
    k = _search(cum_all, 0, m, ub * total)
    for step in range(m):
        q = (k + step) % m
        if q != src and _weight(cum_all, 0, q) > 0 and _is_open(q, day, open_day, close_day):
            return q
    return -1


@njit(cache=True)
def _resolve(q, day, ua, ub, same_pcn_share, open_day, close_day, successor, cum_all, by_pcn, pcn_lo, pcn_hi, cum_pcn):
    """Where someone joining practice ``q`` on ``day`` ends up: q if open, else the practice its
    list went to (following mergers), else a practice chosen as for a move (-1: none)."""
    for _ in range(len(open_day) + 1):
        if q < 0 or _is_open(q, day, open_day, close_day):
            return q
        if close_day[q] <= day and successor[q] >= 0:
            q = successor[q]
        else:
            return _pick(q, day, ua, ub, same_pcn_share, open_day, close_day, cum_all, by_pcn, pcn_lo, pcn_hi, cum_pcn)
    return q


@njit(cache=True)
def _walk(i, entry, home, leave_rate, u, u_tail, ys, open_day, close_day, successor, cum_all, by_pcn, pcn_lo, pcn_hi,
          cum_pcn, internal_share, return_share, gap_mean, same_pcn_share, dispersal_gap_share, dispersal_gap_mean,
          tail_mean, out_kind, out_start, out_stop, write):
    """Segments of person ``i`` (written from position 0 of the out arrays when ``write``); their count."""
    T = len(ys) - 1
    end = ys[T]
    NEV = 2147483647
    r = 0
    d = entry[i]
    t = 0
    while t < T and ys[t + 1] <= d:
        t += 1
    tt = min(t, T - 1)
    p = _resolve(home[i], d, u[i, tt, 5], u[i, tt, 6], same_pcn_share, open_day, close_day, successor, cum_all,
                 by_pcn, pcn_lo, pcn_hi, cum_pcn)
    if p < 0:
        p = home[i]
    state = 1  # 1: registered at p since seg_start; 2: in a gap since seg_start; 3: gone
    seg_start = d
    ret_day = NEV
    ret_same = False
    ret_ua = 0.0
    ret_ub = 0.0
    while t < T and state != 3:
        s0 = ys[t]
        s1 = ys[t + 1]
        cur = max(d, s0)
        v = NEV  # the person's own deregistration this year
        if state == 1 and s1 - cur > 1:
            if u[i, t, 0] < 1.0 - math.exp(-leave_rate[i, t] * (s1 - cur) / 365.25):
                v = cur + 1 + np.int64(math.floor(u[i, t, 1] * (s1 - cur - 1)))
        forced = 0
        while True:
            c = close_day[p] if state == 1 and close_day[p] > seg_start else NEV
            back = ret_day if state == 2 else NEV
            if state != 1 or v <= seg_start:
                v = NEV
            nxt = min(v, min(c, back))
            if nxt >= s1:
                break
            if nxt == back:  # registers again after a gap
                if ret_same:
                    q = _resolve(p, back, ret_ua, ret_ub, same_pcn_share, open_day, close_day, successor, cum_all,
                                 by_pcn, pcn_lo, pcn_hi, cum_pcn)
                else:
                    q = _pick(p, back, ret_ua, ret_ub, same_pcn_share, open_day, close_day, cum_all, by_pcn, pcn_lo,
                              pcn_hi, cum_pcn)
                if write:
                    out_kind[r] = -1
                    out_start[r] = seg_start
                    out_stop[r] = back
                r += 1
                seg_start = back
                d = back
                ret_day = NEV
                if q < 0:
                    state = 3
                else:
                    p = q
                    state = 1
                continue
            if write:  # the period at p ends today
                out_kind[r] = p
                out_start[r] = seg_start
                out_stop[r] = nxt
            r += 1
            seg_start = nxt
            d = nxt
            if nxt == c:  # the practice closes or merges today
                forced += 1
                if successor[p] >= 0:
                    p = successor[p]
                    continue
                ua = u[i, t, 7] if forced == 1 else (u[i, t, 7] + 0.5) % 1.0
                ub = u[i, t, 8] if forced == 1 else (u[i, t, 8] + 0.5) % 1.0
                q = _pick(p, c, ua, ub, same_pcn_share, open_day, close_day, cum_all, by_pcn, pcn_lo, pcn_hi, cum_pcn)
                if q < 0:
                    state = 3
                elif forced == 1 and u[i, t, 9] < dispersal_gap_share:
                    ret_day = c + 1 + np.int64(math.floor(-dispersal_gap_mean * math.log(1.0 - u[i, t, 10])))
                    ret_same = False
                    ret_ua = ua
                    ret_ub = ub
                    state = 2
                else:
                    p = q
                continue
            v = NEV
            kind = u[i, t, 2]
            if kind < internal_share:  # moves to another practice of the ICB today
                q = _pick(p, d, u[i, t, 5], u[i, t, 6], same_pcn_share, open_day, close_day, cum_all, by_pcn, pcn_lo,
                          pcn_hi, cum_pcn)
                if q < 0:
                    state = 3
                else:
                    p = q
            elif kind < internal_share + return_share:  # registered nowhere for a while
                ret_day = d + 1 + np.int64(math.floor(-gap_mean * math.log(1.0 - u[i, t, 3])))
                ret_same = u[i, t, 4] < 0.5
                ret_ua = u[i, t, 5]
                ret_ub = u[i, t, 6]
                state = 2
            else:  # leaves the ICB
                state = 3
        t += 1
        d = max(d, s1)
    if write:
        if state == 1:
            out_kind[r] = p
            out_start[r] = seg_start
            out_stop[r] = NEV
        elif state == 2:
            out_kind[r] = -1
            out_start[r] = seg_start
            out_stop[r] = NEV
        else:
            out_kind[r] = -2
            out_start[r] = seg_start
            out_stop[r] = min(seg_start + 1 + np.int64(math.floor(-tail_mean * math.log(1.0 - u_tail[i]))), end)
    return r + 1


@njit(cache=True, nogil=True)
def _segments(entry, home, leave_rate, u, u_tail, ys, open_day, close_day, successor, cum_all, by_pcn, pcn_lo, pcn_hi,
              cum_pcn, internal_share, return_share, gap_mean, same_pcn_share, dispersal_gap_share, dispersal_gap_mean,
              tail_mean):
    n = len(entry)
    dummy = np.zeros(1, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    for i in range(n):
        counts[i] = _walk(i, entry, home, leave_rate, u, u_tail, ys, open_day, close_day, successor, cum_all, by_pcn,
                          pcn_lo, pcn_hi, cum_pcn, internal_share, return_share, gap_mean, same_pcn_share,
                          dispersal_gap_share, dispersal_gap_mean, tail_mean, dummy, dummy, dummy, False)
    total = counts.sum()
    person = np.empty(total, dtype=np.int64)
    kind = np.empty(total, dtype=np.int64)
    start = np.empty(total, dtype=np.int64)
    stop = np.empty(total, dtype=np.int64)
    pos = 0
    for i in range(n):
        k = counts[i]
        _walk(i, entry, home, leave_rate, u, u_tail, ys, open_day, close_day, successor, cum_all, by_pcn, pcn_lo,
              pcn_hi, cum_pcn, internal_share, return_share, gap_mean, same_pcn_share, dispersal_gap_share,
              dispersal_gap_mean, tail_mean, kind[pos:pos + k], start[pos:pos + k], stop[pos:pos + k], True)
        person[pos:pos + k] = i
        pos += k
    return person, kind, start, stop
