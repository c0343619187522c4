"""Reasons: each person's top three contributing factors, in plain English.

A model gives per-feature contributions to a person's log-odds (logistic: coefficient x
centred value; gbm: TreeSHAP contributions, as LightGBM's ``pred_contrib``). Features are gathered into
*reasons* (an LTC flag and its years since diagnosis are one reason, "heart failure"), only
reasons that are present for the person (a count above zero, a flag that is set, a recent
event) and push the risk *up* are kept, and the three largest become ``reason_1`` to
``reason_3``, phrased with the person's own values ("3 emergency admissions in the last 12
months", "aged 87"). Ties are broken by the reason's position in the feature list, so the
result is deterministic. Unused slots are empty strings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from numba import njit, prange

from riskcap.capitation.money import gbp
from riskcap.features import CONDITIONS, MEASURES, NO_EVENT_DAYS, WINDOWS

N_REASONS = 3

_COUNT_NOUNS = {
    "emergency_admissions": ("emergency admission", "emergency admissions"),
    "elective_admissions": ("planned hospital admission", "planned hospital admissions"),
    "day_cases": ("day case", "day cases"),
    "bed_days": ("night in hospital", "nights in hospital"),
    "outpatient": ("outpatient attendance", "outpatient attendances"),
    "ae": ("A&E attendance", "A&E attendances"),
    "gp": ("GP consultation", "GP consultations"),
    "community": ("community nursing contact", "community nursing contacts"),
    "mental_health": ("mental health contact", "mental health contacts"),
    "social_care": ("unit of social care", "units of social care"),
    "prescribing_items": ("prescription item", "prescription items"),
    "acs_admissions": ("emergency admission for a condition often manageable out of hospital",
                       "emergency admissions for conditions often manageable out of hospital"),
}
_WINDOW_TEXT = {"0_12": "in the last 12 months", "12_24": "12 to 24 months ago", "24_36": "24 to 36 months ago"}
_COST_TEXT = {
    "emergency_inpatient": "emergency hospital care", "elective_inpatient": "planned hospital care",
    "day_case": "day-case care", "outpatient": "outpatient care", "ae": "A&E care", "gp": "GP care",
    "community": "community care", "mental_health": "mental health care", "social_care": "social care",
    "prescribing": "prescriptions", "total": "care",
}
_LAST_TEXT = {"days_since_emergency": "last emergency admission", "days_since_ae": "last A&E attendance"}


@dataclass(frozen=True)
class Reason:
    """One reason: the features whose contributions it sums, when it applies, how it reads."""

    name: str
    features: tuple[str, ...]
    shown: str  # feature whose value is shown and tested for presence
    present: Callable[[np.ndarray], np.ndarray]
    phrase: Callable[[float], str]
    bucket: Callable[[np.ndarray], np.ndarray] | None = None  # rounds values before phrasing


def _plural(value: float, nouns: tuple[str, str]) -> str:
    n = int(round(value))
    return f"{n} {nouns[0] if n == 1 else nouns[1]}"


def _ago(days: float) -> str:
    d = int(round(days))
    if d < 60:
        return f"{d} day{'s' if d != 1 else ''} ago"
    months = int(round(d / 30.4375))
    return f"{months} months ago"


def _money_bucket(values: np.ndarray) -> np.ndarray:
    """Pounds rounded to the nearest 10 (under 1,000) or 100."""
    step = np.where(values >= 995, 100.0, 10.0)
    return np.round(values / step) * step


def _positive(v: np.ndarray) -> np.ndarray:
    return v > 0


def _reason_for(feature: str) -> Reason | None:
    """The reason a single feature belongs to (LTC flags take their years-since with them)."""
    if feature == "age":
        return Reason("age", (feature,), feature, lambda v: np.ones(len(v), bool), lambda v: f"aged {int(v)}")
    if feature == "male":
        return Reason("male", (feature,), feature, _positive, lambda v: "male")
    if feature == "care_home":
        return Reason("care_home", (feature,), feature, _positive, lambda v: "lives in a care home")
    if feature == "imd_decile":
        return Reason("imd_decile", (feature,), feature, lambda v: (v >= 1) & (v <= 5),
                      lambda v: f"lives in a more deprived area (deprivation decile {int(v)} of 10)")
    if feature == "ltc_count":
        return Reason("ltc_count", (feature,), feature, _positive,
                      lambda v: _plural(v, ("long-term condition", "long-term conditions")))
    if feature.startswith("ltc_"):
        code = feature[4:]
        name = CONDITIONS[code][0]
        return Reason(feature, (feature, f"years_since_{code}"), feature, _positive, lambda v, name=name: name)
    if feature.startswith("years_since_"):
        return None  # part of its LTC's reason
    if feature in _LAST_TEXT:
        text = _LAST_TEXT[feature]
        return Reason(feature, (feature,), feature, lambda v: v < NO_EVENT_DAYS, lambda v, t=text: f"{t} {_ago(v)}")
    if feature.startswith("cost_") and feature.endswith("_0_12"):
        setting = feature[len("cost_"):-len("_0_12")]
        text = _COST_TEXT[setting]
        return Reason(feature, (feature,), feature, _positive,
                      lambda v, t=text: f"{gbp(v)} of {t} in the last 12 months", _money_bucket)
    for measure in list(MEASURES) + ["acs_admissions"]:
        for window in WINDOWS:
            if feature == f"{measure}_{window}":
                nouns, when = _COUNT_NOUNS[measure], _WINDOW_TEXT[window]
                return Reason(feature, (feature,), feature, _positive,
                              lambda v, n=nouns, w=when: f"{_plural(v, n)} {w}")
    return Reason(feature, (feature,), feature, _positive, lambda v, f=feature: f"{f.replace('_', ' ')} {v:g}")


def reasons_for(features: list[str]) -> list[Reason]:
    """The reasons of a model's feature list, in feature order."""
    out = []
    for f in features:
        r = _reason_for(f)
        if r is not None:
            out.append(r)
    covered = {f for r in out for f in r.features}
    # a years_since_ feature without its flag still needs a home
    for f in features:
        if f not in covered:
            out.append(Reason(f, (f,), f, lambda v: ~np.isnan(v),
                              lambda v, f=f: f"{f.replace('_', ' ')} {v:.0f}"))
    return out


def top_reasons(frame: pd.DataFrame, contributions: np.ndarray, features: list[str],
                n_reasons: int = N_REASONS) -> list[np.ndarray]:
    """The ``n_reasons`` largest positive, present reasons per person, as plain-English strings.

    Parameters
    ----------
    frame : DataFrame
        The people's features (values shown in the phrases).
    contributions : ndarray, shape (n, len(features))
        Per-feature contributions to each person's log-odds.
    features : list of str
        Feature names of the contribution columns.

    Returns
    -------
    list of ``n_reasons`` pandas Categoricals of str ("" when fewer reasons apply).
    """
    n = len(frame)
    reasons = reasons_for(features)
    pos = {f: j for j, f in enumerate(features)}
    reason_of = np.full(len(features), -1, dtype=np.int64)
    for g, r in enumerate(reasons):
        reason_of[[pos[f] for f in r.features]] = g
    present = np.zeros((len(reasons), n), dtype=np.bool_)
    shown = []
    for g, r in enumerate(reasons):
        value = frame[r.shown].to_numpy(dtype=np.float64, na_value=np.nan)
        shown.append(r.bucket(value) if r.bucket else value)
        present[g] = r.present(value)
    picks = reason_picks(contributions, reason_of, present, n_reasons)
    out = []
    for k in range(n_reasons):
        # phrases as a categorical: codes into the distinct phrases ("" first)
        phrases: dict[str, int] = {"": 0}
        codes = np.zeros(n, dtype=np.int32)
        picked = np.flatnonzero(picks[k] >= 0)
        order = picked[np.argsort(picks[k][picked], kind="stable")]
        groups, starts = np.unique(picks[k][order], return_index=True)
        for g, sel in zip(groups, np.split(order, starts[1:])):
            uniq, inv = np.unique(shown[g][sel], return_inverse=True)
            local = np.array([phrases.setdefault(reasons[g].phrase(v), len(phrases)) for v in uniq], dtype=np.int32)
            codes[sel] = local[inv]
        out.append(pd.Categorical.from_codes(codes, categories=list(phrases)))
    return out


def reason_picks(contributions: np.ndarray, reason_of: np.ndarray, present: np.ndarray, k: int) -> np.ndarray:
    """Each person's ``k`` largest positive reason totals, among the reasons present for them.

    Parameters
    ----------
    contributions : float array (n, F): per-feature contributions.
    reason_of : int array (F,): the reason each feature belongs to.
    present : bool array (R, n): whether each reason applies to each person.
    k : how many to pick.

    Returns
    -------
    int64 array (k, n): the reasons picked, best first; -1 when fewer than ``k`` qualify.
    A reason's total adds its features' contributions in feature order; equal totals go
    to the reason listed first.
    """
    contributions = np.ascontiguousarray(contributions, dtype=np.float64)
    present = np.ascontiguousarray(present, dtype=np.bool_)
    out = np.full((k, contributions.shape[0]), -1, dtype=np.int64)
    if present.shape[0] and contributions.shape[0]:
        _reason_picks(contributions, np.asarray(reason_of, dtype=np.int64), present, out)
    return out


@njit(parallel=True, cache=True)
def _reason_picks(contributions, reason_of, present, out):  # pragma: no cover - compiled
    k = out.shape[0]
    R = present.shape[0]
    n, F = contributions.shape
    for i in prange(n):
        totals = np.zeros(R)
        for j in range(F):
            g = reason_of[j]
            if g >= 0:
                totals[g] += contributions[i, j]
        for r in range(R):
            if not (present[r, i] and totals[r] > 0):
                totals[r] = -np.inf
        for rank in range(k):
            best = -1
            best_value = -np.inf
            for r in range(R):
                if totals[r] > best_value:
                    best = r
                    best_value = totals[r]
            if best < 0:
                break
            out[rank, i] = best
            totals[best] = -np.inf
