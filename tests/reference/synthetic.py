"""Twins of the generator's numba kernels (:mod:`riskcap.synthetic.kernels`,
:mod:`riskcap.synthetic.registration`): activity rows and registration histories, one at a time."""
from __future__ import annotations

import math

import numpy as np

from riskcap.synthetic.kernels import N_SETTINGS, NEVER_DAY
from riskcap.synthetic.registration import GAP, NEVER, TAIL, Destinations


def emit_activity(seg_offset, seg_registered, counts, win_a, win_b, last_day, pe_offset, pe_u, pe_los, pe_cost,
                  pe_diag, pe_via, via_cost, rx_meds, rx_interval, rx_offset, rx_acute, rx_unit, care_kind,
                  care_hours, month_u, month_starts, point_setting, setting_rank, rx_setting, care_setting,
                  ae_setting, home_hour_pence, residential_day_pence):
    """:func:`riskcap.synthetic.kernels.emit_activity` with plain Python loops and ``sorted``."""
    n = len(seg_offset) - 1
    _, T, S = counts.shape
    cursor = list(pe_offset)
    rows = []
    for i in range(n):
        mine = []  # (setting, start, end, qty, cost, diag, year)
        for s in range(int(seg_offset[i]), int(seg_offset[i + 1])):
            for t in range(T):
                a, b = int(win_a[s, t]), int(win_b[s, t])
                for k in range(S):
                    for _ in range(int(counts[s, t, k])):
                        j = cursor[k]
                        cursor[k] += 1
                        day = a + math.floor(float(pe_u[j]) * (b - a))
                        end = min(day + int(pe_los[j]), int(last_day[i])) if pe_los[j] >= 0 else NEVER_DAY
                        mine.append((int(point_setting[k]), day, end, 1, int(pe_cost[j]), int(pe_diag[j]), t))
                        if k == 0 and pe_via[j]:
                            mine.append((int(ae_setting), day, NEVER_DAY, 1, int(via_cost[j]), -1, t))
                if a >= b or not seg_registered[s]:
                    continue
                for m in range(12):
                    ms, me = int(month_starts[t, m]), int(month_starts[t, m + 1])
                    lo, hi = max(ms, a), min(me, b)
                    if lo >= hi:
                        continue
                    mu = float(rx_acute[s, t]) * (hi - lo) / 365.25
                    acute, p = 0, math.exp(-mu)
                    cdf = p
                    while float(month_u[s, t, m, 0]) > cdf and acute < 1000:
                        acute += 1
                        p *= mu / acute
                        cdf += p
                    interval = int(rx_interval[s, t])
                    dispensed = sum(1 for d in range(lo, hi) if d % interval == int(rx_offset[i]) % interval)
                    items = int(rx_meds[i, t]) * dispensed + acute
                    if items > 0:
                        mine.append((int(rx_setting), lo, NEVER_DAY, items, int(round(items * float(rx_unit[s]))), -1, t))
                    if care_kind[i, t] == 1:
                        part = (hi - lo) / (me - ms)
                        qty = max(math.floor(float(care_hours[i, t]) * part * (0.75 + 0.5 * float(month_u[s, t, m, 1]))), 1)
                        mine.append((int(care_setting), lo, NEVER_DAY, qty, qty * int(home_hour_pence), -1, t))
                    elif care_kind[i, t] == 2:
                        mine.append((int(care_setting), lo, NEVER_DAY, hi - lo, (hi - lo) * int(residential_day_pence), -1, t))
        mine.sort(key=lambda row: row[1] * 16 + int(setting_rank[row[0]]))  # sorted() is stable
        rows.extend((i,) + row for row in mine)
    last_cost = np.zeros(n, dtype=np.int64)
    last_qty = np.zeros((n, N_SETTINGS), dtype=np.int64)
    for row in rows:
        if row[7] == T - 1:
            last_cost[row[0]] += row[5]
            last_qty[row[0], row[1]] += row[4]
    cols = list(zip(*rows)) if rows else [[]] * 8
    return (np.array(cols[0], dtype=np.int32), np.array(cols[1], dtype=np.int8), np.array(cols[2], dtype=np.int32),
            np.array(cols[3], dtype=np.int32), np.array(cols[4], dtype=np.int64), np.array(cols[5], dtype=np.int64),
            np.array(cols[6], dtype=np.int16), last_cost, last_qty)


def registration_segments(entry, home, leave_rate, u, u_tail, year_starts, dest: Destinations,
                          internal_share, return_share, gap_mean, same_pcn_share, dispersal_gap_share,
                          dispersal_gap_mean, tail_mean):
    """:func:`riskcap.synthetic.registration.registration_segments` one person at a time, events taken
    in date order."""
    ys = [int(x) for x in year_starts]
    T, end = len(ys) - 1, ys[-1]
    m = len(dest.open_day)
    weight = np.diff(np.concatenate([[0.0], dest.cum_all]))
    pcn_members = {q: [int(x) for x in dest.by_pcn[dest.pcn_lo[q]:dest.pcn_hi[q]]] for q in range(m)}

    def is_open(q, day):
        return dest.open_day[q] <= day < dest.close_day[q]

    def first_open(candidates, start, src, day):
        """The first candidate from position ``start`` on (cyclically) that can take people on ``day``."""
        for step in range(len(candidates)):
            q = candidates[(start + step) % len(candidates)]
            if q != src and weight[q] > 0 and is_open(q, day):
                return q
        return None

    def draw(candidates, x):
        """Position of the candidate whose cumulative-weight interval holds x * total."""
        cum = np.cumsum([weight[q] for q in candidates])
        return min(int(np.searchsorted(cum, x * cum[-1], side="right")), len(candidates) - 1), cum[-1]

    def pick(src, day, ua, ub):
        if ua < same_pcn_share and src >= 0:
            members = pcn_members[src]
            k, total = draw(members, ub)
            if total > 0:
                q = first_open(members, k, src, day)
                if q is not None:
                    return q
        everyone = list(range(m))
        k, total = draw(everyone, ub)
        if total <= 0:
            return -1
        q = first_open(everyone, k, src, day)
        return -1 if q is None else q

    def resolve(q, day, ua, ub):
        for _ in range(m + 1):
            if q < 0 or is_open(q, day):
                return q
            if dest.close_day[q] <= day and dest.successor[q] >= 0:
                q = int(dest.successor[q])
            else:
                return pick(q, day, ua, ub)
        return q

    rows = []
    for i in range(len(entry)):
        segs = []
        d = int(entry[i])
        t = next((k for k in range(T) if ys[k + 1] > d), T)
        tt = min(t, T - 1)
        p = resolve(int(home[i]), d, u[i, tt, 5], u[i, tt, 6])
        p = int(home[i]) if p < 0 else p
        state, seg_start, ret = "registered", d, None  # ret: (day, same practice?, ua, ub)
        while t < T and state != "gone":
            s0, s1 = ys[t], ys[t + 1]
            cur = max(d, s0)
            own = None
            if state == "registered" and s1 - cur > 1 and u[i, t, 0] < 1 - math.exp(-leave_rate[i, t] * (s1 - cur) / 365.25):
                own = cur + 1 + math.floor(u[i, t, 1] * (s1 - cur - 1))
            forced = 0
            while True:
                events = []
                if state == "gap":
                    events.append((ret[0], 0, "back"))
                if state == "registered":
                    if dest.close_day[p] > seg_start:
                        events.append((int(dest.close_day[p]), 1, "closes"))
                    if own is not None and own > seg_start:
                        events.append((own, 2, "leaves"))
                events = [e for e in events if e[0] < s1]
                if not events:
                    break
                day, _, what = min(events)
                if what == "back":
                    _, same, ua, ub = ret
                    q = resolve(p, day, ua, ub) if same else pick(p, day, ua, ub)
                    segs.append((GAP, seg_start, day))
                    seg_start = d = day
                    ret = None
                    state = "gone" if q < 0 else "registered"
                    p = p if q < 0 else q
                    continue
                segs.append((p, seg_start, day))
                seg_start = d = day
                if what == "closes":
                    forced += 1
                    if dest.successor[p] >= 0:
                        p = int(dest.successor[p])
                        continue
                    ua = u[i, t, 7] if forced == 1 else (u[i, t, 7] + 0.5) % 1.0
                    ub = u[i, t, 8] if forced == 1 else (u[i, t, 8] + 0.5) % 1.0
                    q = pick(p, day, ua, ub)
                    if q < 0:
                        state = "gone"
                    elif forced == 1 and u[i, t, 9] < dispersal_gap_share:
                        ret = (day + 1 + math.floor(-dispersal_gap_mean * math.log(1 - u[i, t, 10])), False, ua, ub)
                        state = "gap"
                    else:
                        p = q
                    continue
                own = None
                if u[i, t, 2] < internal_share:
                    q = pick(p, day, u[i, t, 5], u[i, t, 6])
                    state, p = ("gone", p) if q < 0 else ("registered", q)
                elif u[i, t, 2] < internal_share + return_share:
                    ret = (day + 1 + math.floor(-gap_mean * math.log(1 - u[i, t, 3])), u[i, t, 4] < 0.5,
                           u[i, t, 5], u[i, t, 6])
                    state = "gap"
                else:
                    state = "gone"
            t += 1
            d = max(d, s1)
        if state == "registered":
            segs.append((p, seg_start, NEVER))
        elif state == "gap":
            segs.append((GAP, seg_start, NEVER))
        else:
            segs.append((TAIL, seg_start, min(seg_start + 1 + math.floor(-tail_mean * math.log(1 - u_tail[i])), end)))
        rows.extend((i,) + s for s in segs)
    cols = list(zip(*rows)) if rows else [[], [], [], []]
    return tuple(np.array(c, dtype=np.int64) for c in cols)
