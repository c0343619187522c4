"""Numba kernel scoring the logistic model row by row, without building the term matrix.

For each person it transforms every input (identity, capped ``log1p``, linear-spline hat
functions), standardises each term, multiplies by its coefficient and accumulates both the
log-odds and the per-input contributions. The numpy path through the term matrix
(``apply_transforms`` then standardise then a row sum, ``tests/reference/logistic.py``) is
the slow, obviously-correct twin it is tested against, and both are tested against
scikit-learn's ``predict_proba``.
Rows are independent, so a person's result never depends on the batch they are in.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

OMIT, IDENTITY, LOG1P, SPLINE = 0, 1, 2, 3
KIND_CODES = {"omit": OMIT, "identity": IDENTITY, "log1p": LOG1P, "spline": SPLINE}


@njit(parallel=True, cache=True, nogil=True)
def score_rows(X, kind, cap, first_term, knot_start, knot_count, ref_knot, knots, mean, scale, coef, intercept,
               lp, contrib):  # pragma: no cover - compiled
    """Fill ``lp`` (n,) with log-odds and ``contrib`` (n, F) with per-input contributions.

    ``X`` is (F, n): one row per input feature.
    """
    F, n = X.shape
    for i in prange(n):
        total = 0.0
        for j in range(F):
            k = kind[j]
            if k == OMIT:
                contrib[i, j] = 0.0
                continue
            x = X[j, i]
            if x != x:  # NaN -> 0
                x = 0.0
            t = first_term[j]
            acc = 0.0
            if k == IDENTITY:
                acc = coef[t] * ((x - mean[t]) / scale[t])
            elif k == LOG1P:
                v = x
                if v < 0.0:
                    v = 0.0
                if v > cap[j]:
                    v = cap[j]
                acc = coef[t] * ((math.log1p(v) - mean[t]) / scale[t])
            else:  # SPLINE: hat functions at each knot except the reference
                s = knot_start[j]
                m_count = knot_count[j]
                lo_end = knots[s]
                hi_end = knots[s + m_count - 1]
                v = x
                if v < lo_end:
                    v = lo_end
                if v > hi_end:
                    v = hi_end
                for m in range(m_count):
                    if m == ref_knot[j]:
                        continue
                    kn = knots[s + m]
                    b = 0.0
                    if m > 0:
                        lo = knots[s + m - 1]
                        if v >= lo and v <= kn:
                            b = (v - lo) / (kn - lo)
                    if m < m_count - 1:
                        hi = knots[s + m + 1]
                        if v >= kn and v <= hi:
                            b = (hi - v) / (hi - kn)
                    acc += coef[t] * ((b - mean[t]) / scale[t])
                    t += 1
            contrib[i, j] = acc
            total += acc
        lp[i] = total + intercept


def compile_spec(spec: list[dict], mean, scale, coef) -> dict:
    """The kernel's arrays for a transform spec (one entry per input feature)."""
    F = len(spec)
    kind = np.zeros(F, dtype=np.int64)
    cap = np.zeros(F)
    first_term = np.zeros(F, dtype=np.int64)
    knot_start = np.zeros(F, dtype=np.int64)
    knot_count = np.zeros(F, dtype=np.int64)
    ref_knot = np.full(F, -1, dtype=np.int64)
    knots: list[float] = []
    t = 0
    for j, tr in enumerate(spec):
        kind[j] = KIND_CODES[tr["kind"]]
        first_term[j] = t
        if tr["kind"] == "log1p":
            cap[j] = tr["cap"]
            t += 1
        elif tr["kind"] == "identity":
            t += 1
        elif tr["kind"] == "spline":
            knot_start[j] = len(knots)
            knot_count[j] = len(tr["knots"])
            ref_knot[j] = list(tr["knots"]).index(tr["reference"])
            knots += [float(k) for k in tr["knots"]]
            t += len(tr["knots"]) - 1
    return {"kind": kind, "cap": cap, "first_term": first_term, "knot_start": knot_start,
            "knot_count": knot_count, "ref_knot": ref_knot, "knots": np.asarray(knots + [0.0]),
            "mean": np.asarray(mean, dtype=np.float64), "scale": np.asarray(scale, dtype=np.float64),
            "coef": np.asarray(coef, dtype=np.float64)}


def score(X: np.ndarray, compiled: dict, intercept: float) -> tuple[np.ndarray, np.ndarray]:
    """(log-odds, contributions (n, F)) of every person; ``X`` is (F, n), rows in spec order."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    lp = np.empty(X.shape[1])
    contrib = np.empty((X.shape[1], X.shape[0]))
    c = compiled
    score_rows(X, c["kind"], c["cap"], c["first_term"], c["knot_start"], c["knot_count"], c["ref_knot"],
               c["knots"], c["mean"], c["scale"], c["coef"], float(intercept), lp, contrib)
    return lp, contrib
