"""Twins of :mod:`riskcap.features`' kernels: finding each row's person, and the activity columns."""
from __future__ import annotations

import numpy as np
import pandas as pd

from riskcap.features import (COST_LABEL, LABEL, MEASURES, NO_EVENT_DAYS, OUTCOME_DAYS, SPELL_SETTINGS, WINDOWS,
                              _codes, _date_days, months_before)
from riskcap.schema import SETTING_CODES, is_acs


def rows_of(ids: np.ndarray, person_id: np.ndarray) -> np.ndarray:
    """Row of each ``person_id`` in ``ids``, or -1 when absent: a dictionary look-up per row."""
    position = {int(v): i for i, v in enumerate(ids)}
    return np.array([position.get(int(p), -1) for p in person_id], dtype=np.int64)


def activity_features(activity: pd.DataFrame, ids: np.ndarray, idx: int) -> dict[str, np.ndarray]:
    """The activity feature columns with numpy (masks and ``bincount``), for the kernels
    behind :func:`riskcap.features.build_features`."""
    n = len(ids)
    s_count = len(SETTING_CODES)
    far = months_before(idx, 36)
    # bounds ascending: [24_36 start, 12_24 start, 0_12 start, index, outcome end)
    bounds = np.array([far, months_before(idx, 24), months_before(idx, 12), idx, idx + OUTCOME_DAYS])

    person = activity["person_id"].to_numpy(dtype=np.int64)
    start = _date_days(activity["start_date"], np.iinfo(np.int64).min)
    rows = rows_of(ids, person)
    # Spells that began before the look-back can still add bed days inside it; keep them.
    has_end = "end_date" in activity.columns
    end = _date_days(activity["end_date"], np.iinfo(np.int64).min) if has_end else start
    end = np.maximum(end, start)
    keep = (rows >= 0) & (((start >= far) & (start < bounds[-1])) | ((start < far) & (end > far)))
    sel = np.flatnonzero(keep)
    rows, start, end = rows[sel], start[sel], end[sel]
    setting = _codes(activity["setting"], SETTING_CODES, "activity", "setting")[sel]
    if "quantity" in activity.columns:
        quantity = activity["quantity"].to_numpy(dtype=np.float64, na_value=1.0)[sel]
    else:
        quantity = np.ones(len(sel))
    pence = np.round(activity["cost_gbp"].to_numpy(dtype=np.float64)[sel] * 100.0)
    # window: 0 = 0_12, 1 = 12_24, 2 = 24_36, 3 = outcome year, -1 = before the look-back
    pos = np.searchsorted(bounds, start, side="right")
    window = np.array([-1, 2, 1, 0, 3, -1], dtype=np.int64)[pos]
    spell_codes = np.array([SETTING_CODES.index(s) for s in SPELL_SETTINGS])
    is_spell = np.isin(setting, spell_codes)
    units = np.where(is_spell, 1.0, quantity)

    out: dict[str, np.ndarray] = {}
    past = (window >= 0) & (window <= 2)
    key = (setting[past].astype(np.int64) * 3 + window[past]) * n + rows[past]
    counts = np.bincount(key, weights=units[past], minlength=s_count * 3 * n).reshape(s_count, 3, n)
    names = list(WINDOWS)
    for measure, code in MEASURES.items():
        if not code:
            continue
        s = SETTING_CODES.index(code)
        for w, wname in enumerate(names):
            out[f"{measure}_{wname}"] = counts[s, w].astype(np.int32)
    # Bed days: nights of emergency and elective spells inside each window, never after the index.
    night = np.isin(setting, [SETTING_CODES.index("emergency_inpatient"), SETTING_CODES.index("elective_inpatient")])
    night &= start < idx
    for w, wname in enumerate(names):
        lo, hi = bounds[2 - w], bounds[3 - w]
        nights = np.clip(np.minimum(end[night], hi) - np.maximum(start[night], lo), 0, None)
        out[f"bed_days_{wname}"] = np.bincount(rows[night], weights=nights, minlength=n).astype(np.int32)
    ordered = {f"{m}_{w}": out[f"{m}_{w}"] for m in MEASURES for w in names}

    emergency = setting == SETTING_CODES.index("emergency_inpatient")
    for col, code in (("days_since_emergency", "emergency_inpatient"), ("days_since_ae", "ae")):
        m = (setting == SETTING_CODES.index(code)) & past
        last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last, rows[m], start[m])
        ordered[col] = np.where(last == np.iinfo(np.int64).min, NO_EVENT_DAYS, idx - last).astype(np.int32)

    for period, w in (("0_12", 0), ("next_12m", 3)):
        m = window == w
        cost = np.bincount(setting[m].astype(np.int64) * n + rows[m], weights=pence[m], minlength=s_count * n)
        cost = cost.reshape(s_count, n)
        for s, code in enumerate(SETTING_CODES):
            name = f"cost_{code}_0_12" if period == "0_12" else f"cost_next_12m_{code}"
            ordered[name] = cost[s] / 100.0
        ordered["cost_total_0_12" if period == "0_12" else COST_LABEL] = cost.sum(axis=0) / 100.0

    m = emergency & (window == 0)
    if "primary_diagnosis" in activity.columns and m.any():
        diag = activity["primary_diagnosis"].iloc[sel[m]]
        uniq, inv = np.unique(diag.astype("string").fillna("").to_numpy(dtype=object), return_inverse=True)
        acs = np.array([is_acs(u) for u in uniq], dtype=bool)[inv]
        ordered["acs_admissions_0_12"] = np.bincount(rows[m][acs], minlength=n).astype(np.int32)
    else:
        ordered["acs_admissions_0_12"] = np.zeros(n, dtype=np.int32)
    ordered[LABEL] = (np.bincount(rows[emergency & (window == 3)], minlength=n) > 0).astype(np.int8)
    return ordered
