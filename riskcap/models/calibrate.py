"""Recalibrating log-odds: a monotone linear spline fitted by logistic regression.

A model's raw log-odds ``lp`` become ``a + b * lp + sum_k c_k * max(lp - knot_k, 0)``, with
knots at quantiles of ``lp`` on the calibration rows. It is Platt scaling with bends: it
can correct a model that over-predicts its lowest-risk people while staying right at the
top, which one slope and intercept cannot. The fit is an unpenalised logistic regression
(Newton-Raphson); if the fitted curve is not increasing everywhere, knots are dropped until
it is (down to plain Platt scaling), so ranking, and hence AUROC, never changes. The map
is a handful of numbers stored as JSON.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

METHOD = "logit_spline"
#: Quantiles of the calibration rows' log-odds used as knots. Five: enough to straighten the
#: curves seen (see docs/models.md), few enough not to chase the noise of the lowest decile,
#: which at 500,000 people holds only a few hundred admissions.
KNOT_QUANTILES: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)


def _design(lp: np.ndarray, knots) -> np.ndarray:
    cols = [np.ones_like(lp), lp] + [np.maximum(lp - k, 0.0) for k in knots]
    return np.column_stack(cols)


def _loglik(Z: np.ndarray, y: np.ndarray, beta: np.ndarray, offset) -> float:
    eta = Z @ beta + offset
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def logistic_fit(Z: np.ndarray, y: np.ndarray, start: np.ndarray | None = None, offset=0.0,
                 max_iter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Unpenalised logistic regression coefficients of ``y`` on the columns of ``Z`` (plus ``offset``).

    Newton-Raphson with step halving (the log-likelihood never decreases), from ``start``
    (default zeros). A 1e-9 ridge on the Hessian keeps near-collinear columns solvable.
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    beta = np.zeros(Z.shape[1]) if start is None else np.asarray(start, dtype=np.float64).copy()
    ll = _loglik(Z, y, beta, offset)
    for _ in range(max_iter):
        p = expit(Z @ beta + offset)
        w = p * (1 - p)
        grad = Z.T @ (y - p)
        hess = (Z * w[:, None]).T @ Z + 1e-9 * np.eye(Z.shape[1])
        step = np.linalg.solve(hess, grad)
        for _ in range(30):
            trial = beta + step
            trial_ll = _loglik(Z, y, trial, offset)
            if trial_ll >= ll - 1e-12 * abs(ll):
                break
            step = step / 2
        beta, ll = trial, trial_ll
        if np.max(np.abs(step)) < tol:
            break
    return beta


def _increasing(coef: np.ndarray) -> bool:
    slopes = coef[1] + np.concatenate(([0.0], np.cumsum(coef[2:])))
    return bool((slopes > 0).all())


#: Fewest outcomes (events) a segment between knots may hold; knots are merged until each has.
MIN_SEGMENT_EVENTS = 100


def _enough_events(lp: np.ndarray, y: np.ndarray, knots: list[float], min_events: int) -> list[float]:
    """Drop knots until every segment of ``lp`` between them holds ``min_events`` outcomes."""
    knots = list(knots)
    while knots:
        edges = np.searchsorted(np.sort(knots), lp, side="right")
        events = np.bincount(edges, weights=y, minlength=len(knots) + 1)
        worst = int(np.argmin(events))
        if events[worst] >= min_events:
            break
        # merge the thinnest segment with a neighbour by removing the knot between them
        del knots[min(worst, len(knots) - 1) if worst == len(knots) else worst]
    return knots


def fit_recalibration(lp, y, knot_quantiles=KNOT_QUANTILES, fitted_on: str = "",
                      min_events: int = MIN_SEGMENT_EVENTS) -> dict:
    """Fit the recalibration map of log-odds ``lp`` to outcomes ``y``; returns its JSON form.

    Knots sit at ``knot_quantiles`` of ``lp``; a knot is dropped while a segment holds fewer
    than ``min_events`` outcomes, so small data get a plainer map instead of a noisy one.
    """
    lp = np.asarray(lp, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    knots = sorted(set(float(k) for k in np.quantile(lp, list(knot_quantiles)))) if len(lp) else []
    knots = _enough_events(lp, y, knots, min_events)
    while True:
        start = np.zeros(2 + len(knots))
        start[1] = 1.0  # the identity map
        coef = logistic_fit(_design(lp, knots), y, start)
        if _increasing(coef) or not knots:
            break
        knots = knots[1::2]  # 5 knots -> 2 -> 1 -> none (Platt scaling)
    if not _increasing(coef):  # degenerate (e.g. no signal): leave the log-odds as they are
        knots, coef = [], np.array([0.0, 1.0])
    return {"method": METHOD, "knots": knots, "intercept": float(coef[0]), "slope": float(coef[1]),
            "hinges": [float(c) for c in coef[2:]], "fitted_on": fitted_on, "rows": int(len(lp))}


def check_recalibration(calibration: dict, where: str) -> None:
    """DataError unless ``calibration`` is a recalibration map of finite numbers (as read from a file)."""
    from riskcap.errors import DataError

    def numbers(key: str) -> list:
        value = calibration.get(key)
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values):
            raise DataError(f"{where}: calibration key '{key}' must hold finite numbers, not {value!r}")
        return values

    if calibration.get("method") != METHOD:
        raise DataError(f"{where}: unknown calibration method {calibration.get('method')!r} (expected {METHOD})")
    numbers("intercept"), numbers("slope")
    if len(numbers("knots")) != len(numbers("hinges")):
        raise DataError(f"{where}: the calibration has {len(calibration['knots'])} knots but "
                        f"{len(calibration['hinges'])} hinges")


def apply_recalibration(lp, calibration: dict) -> np.ndarray:
    """Recalibrated log-odds."""
    if calibration.get("method") != METHOD:
        raise ValueError(f"unknown calibration method {calibration.get('method')!r} (expected {METHOD})")
    lp = np.asarray(lp, dtype=np.float64)
    out = calibration["intercept"] + calibration["slope"] * lp
    for k, c in zip(calibration["knots"], calibration["hinges"]):
        out = out + c * np.maximum(lp - k, 0.0)
    return out

