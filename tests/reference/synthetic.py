"""Twin of :mod:`riskcap.synthetic.kernels`: the generator's activity rows, one at a time."""
from __future__ import annotations

import math

import numpy as np

from riskcap.synthetic.kernels import NEVER_DAY


def emit_activity(counts, win_a, win_b, last_day, pe_offset, pe_u, pe_los, pe_cost, pe_diag, pe_via, via_cost,
                  rx_q, rx_mu, rx_unit, care_kind, care_hours, month_u, month_starts, point_setting,
                  setting_rank, rx_setting, care_setting, ae_setting, home_hour_pence, residential_day_pence):
    """:func:`riskcap.synthetic.kernels.emit_activity` with plain Python loops and ``sorted``."""
    n, T, S = counts.shape
    cursor = list(pe_offset)
    rows = []  # (person, setting, start, end, qty, cost, diag, year)
    for i in range(n):
        mine = []
        for t in range(T):
            a, b = int(win_a[i, t]), int(win_b[i, t])
            for k in range(S):
                for _ in range(int(counts[i, t, k])):
                    j = cursor[k]
                    cursor[k] += 1
                    day = a + math.floor(float(pe_u[j]) * (b - a))
                    end = min(day + int(pe_los[j]), int(last_day[i])) if pe_los[j] >= 0 else NEVER_DAY
                    mine.append((int(point_setting[k]), day, end, 1, int(pe_cost[j]), int(pe_diag[j]), t))
                    if k == 0 and pe_via[j]:
                        mine.append((int(ae_setting), day, NEVER_DAY, 1, int(via_cost[j]), -1, t))
            if a >= b:
                continue
            for m in range(12):
                ms, me = int(month_starts[t, m]), int(month_starts[t, m + 1])
                if ms >= b or me <= a:
                    continue
                day = max(ms, a)
                if month_u[i, t, m, 0] < rx_q[i, t]:
                    mu, u = float(rx_mu[i, t]), float(month_u[i, t, m, 1])
                    items, p = 0, math.exp(-mu)
                    cdf = p
                    while u > cdf and items < 1000:
                        items += 1
                        p *= mu / items
                        cdf += p
                    items = max(items, 1)
                    mine.append((int(rx_setting), day, NEVER_DAY, items, int(round(items * float(rx_unit[i]))), -1, t))
                if care_kind[i, t] == 1:
                    qty = max(math.floor(float(care_hours[i, t]) * (0.75 + 0.5 * float(month_u[i, t, m, 2]))), 1)
                    mine.append((int(care_setting), day, NEVER_DAY, qty, qty * int(home_hour_pence), -1, t))
                elif care_kind[i, t] == 2:
                    qty = min(me, b) - day
                    mine.append((int(care_setting), day, NEVER_DAY, qty, qty * int(residential_day_pence), -1, t))
        mine.sort(key=lambda row: row[1] * 16 + int(setting_rank[row[0]]))  # sorted() is stable
        rows.extend((i,) + row for row in mine)
    last_cost = np.zeros(n, dtype=np.int64)
    for row in rows:
        if row[7] == T - 1:
            last_cost[row[0]] += row[5]
    cols = list(zip(*rows)) if rows else [[]] * 8
    return (np.array(cols[0], dtype=np.int32), np.array(cols[1], dtype=np.int8), np.array(cols[2], dtype=np.int32),
            np.array(cols[3], dtype=np.int32), np.array(cols[4], dtype=np.int64), np.array(cols[5], dtype=np.int64),
            np.array(cols[6], dtype=np.int16), last_cost)
