"""How well a model predicts, reported the way the field reports it.

:func:`risk_metrics` gives AUROC, AUPRC, Brier, calibration slope and intercept,
observed/expected per risk decile, PPV, sensitivity and number to enrol per admission
captured at the top 0.5%, 1%, 2%, 5% and 10%, and AUROC and observed/expected by age band,
sex and deprivation quintile; with the synthetic truth it adds the oracle AUROC (the true
probabilities' AUROC on the same people) and the gap. :func:`cost_metrics` does the same
job for the next-year cost model (person- and practice-level R-squared, predicted/observed
totals by decile and subgroup). ``riskcap evaluate`` prints either as tables.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.metrics import average_precision_score, roc_auc_score

from riskcap.features import COST_LABEL, LABEL

#: Top fractions of the population reported for PPV and sensitivity.
TOP_FRACTIONS: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05, 0.1)
#: Subgroups reported: key in metrics.json -> feature column.
SUBGROUPS: dict[str, str] = {"age_band": "age_band", "sex": "sex", "imd_quintile": "imd_quintile"}
_EPS = 1e-12


def fraction_key(fraction: float) -> str:
    """The metrics.json key of a top fraction, e.g. 0.005 -> "0.005"."""
    return f"{fraction:g}"


def _logit(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(p, _EPS, 1 - _EPS))


def recalibration(lp: np.ndarray, y: np.ndarray, offset_only: bool = False) -> tuple[float, float]:
    """Unpenalised logistic regression of ``y`` on a linear predictor ``lp`` (log-odds).

    Returns (intercept, slope): the calibration intercept and slope. With ``offset_only``
    the slope is fixed at 1 and the intercept is calibration-in-the-large.
    """
    from riskcap.models.calibrate import logistic_fit

    lp = np.asarray(lp, dtype=np.float64)
    ones = np.ones((len(lp), 1))
    if offset_only:
        return float(logistic_fit(ones, y, offset=lp)[0]), 1.0
    a, b = logistic_fit(np.column_stack([ones, lp]), y, start=np.array([0.0, 1.0]))
    return float(a), float(b)


def top_order(p: np.ndarray) -> np.ndarray:
    """Rows from highest to lowest risk; ties keep row order (person_id order)."""
    return np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")


def _auroc(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None


def _ratio(observed: float, expected: float) -> float | None:
    return float(observed / expected) if expected > 0 else None


def risk_metrics(y, p, frame: pd.DataFrame | None = None, truth_p=None) -> dict:
    """Discrimination, calibration, top-N and subgroup metrics of probabilities ``p``.

    Parameters
    ----------
    y : array of 0/1
        Observed outcome (one or more emergency admissions in the 12 months).
    p : array of float
        Predicted probabilities, one per person, in the same order.
    frame : DataFrame, optional
        The features of the same people (for subgroups: ``age_band``, ``sex``, ``imd_quintile``).
    truth_p : array of float, optional
        The synthetic population's true probabilities (NaN where unknown) for the oracle AUROC.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    n, events = len(y), float(y.sum())
    lp = _logit(p)
    cal_intercept, _ = recalibration(lp, y, offset_only=True)
    _, cal_slope = recalibration(lp, y)
    out: dict = {
        "n": n,
        "events": int(events),
        "prevalence": events / n if n else None,
        "mean_predicted": float(p.mean()) if n else None,
        "observed_expected": _ratio(events, float(p.sum())),
        "auroc": _auroc(y, p),
        "auprc": float(average_precision_score(y, p)) if events else None,
        "brier": float(np.mean((p - y) ** 2)) if n else None,
        "calibration_slope": cal_slope,
        "calibration_intercept": cal_intercept,
    }
    order = top_order(p)
    ppv, sens, nne, sizes = {}, {}, {}, {}
    cum = np.cumsum(y[order])
    for f in TOP_FRACTIONS:
        k = max(1, int(round(f * n)))
        hits = float(cum[k - 1]) if n else 0.0
        key = fraction_key(f)
        sizes[key] = k
        ppv[key] = hits / k if n else None
        sens[key] = hits / events if events else None
        nne[key] = k / hits if hits else None
    out.update({"top_n": sizes, "ppv_at": ppv, "sensitivity_at": sens, "number_to_enrol_per_admission": nne})
    if events >= 1000:
        out["enrol_to_capture_1000"] = int(np.searchsorted(cum, 1000) + 1)

    deciles = []
    for d, rows in enumerate(np.array_split(order[::-1], 10), start=1):
        if not len(rows):
            continue
        obs, exp = float(y[rows].sum()), float(p[rows].sum())
        deciles.append({"decile": d, "n": len(rows), "mean_predicted": exp / len(rows),
                        "observed_rate": obs / len(rows), "observed": int(obs), "expected": exp,
                        "observed_expected": _ratio(obs, exp)})
    out["calibration_by_decile"] = deciles

    if frame is not None:
        out["subgroups"] = {}
        for key, col in SUBGROUPS.items():
            if col not in frame.columns:
                continue
            values = frame[col].to_numpy()
            groups = []
            for value in sorted(pd.unique(values)):
                m = values == value
                obs, exp = float(y[m].sum()), float(p[m].sum())
                groups.append({"group": value.item() if hasattr(value, "item") else value, "n": int(m.sum()),
                               "prevalence": obs / m.sum(), "auroc": _auroc(y[m], p[m]),
                               "observed": int(obs), "expected": exp, "observed_expected": _ratio(obs, exp)})
            out["subgroups"][key] = groups

    if truth_p is not None:
        truth_p = np.asarray(truth_p, dtype=np.float64)
        known = ~np.isnan(truth_p)
        out["oracle_n"] = int(known.sum())
        out["oracle_auroc"] = _auroc(y[known], truth_p[known]) if known.any() else None
        model_auroc = _auroc(y[known], p[known]) if known.any() else None
        out["oracle_gap"] = (out["oracle_auroc"] - model_auroc
                             if out["oracle_auroc"] is not None and model_auroc is not None else None)
        out["oracle_brier"] = float(np.mean((truth_p[known] - y[known]) ** 2)) if known.any() else None
    return out


def _r2(y: np.ndarray, pred: np.ndarray) -> float | None:
    ss = float(((y - y.mean()) ** 2).sum())
    return 1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else None


def cost_metrics(y, pred, frame: pd.DataFrame | None = None) -> dict:
    """Person- and practice-level accuracy of predicted next-year costs (pounds)."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    out: dict = {
        "n": len(y),
        "total_observed": float(y.sum()),
        "total_predicted": float(pred.sum()),
        "predicted_observed": _ratio(float(pred.sum()), float(y.sum())),
        "mean_observed": float(y.mean()) if len(y) else None,
        "mean_predicted": float(pred.mean()) if len(y) else None,
        "r2": _r2(y, pred),
        "mae": float(np.abs(y - pred).mean()) if len(y) else None,
    }
    order = top_order(pred)
    deciles = []
    for d, rows in enumerate(np.array_split(order[::-1], 10), start=1):
        if len(rows):
            deciles.append({"decile": d, "n": len(rows), "mean_predicted": float(pred[rows].mean()),
                            "mean_observed": float(y[rows].mean()),
                            "predicted_observed": _ratio(float(pred[rows].sum()), float(y[rows].sum()))})
    out["calibration_by_decile"] = deciles
    if frame is not None:
        if "practice_code" in frame.columns:
            by = pd.DataFrame({"practice": frame["practice_code"].to_numpy(), "y": y, "pred": pred})
            sums = by.groupby("practice", sort=True)[["y", "pred"]].sum()
            out["practices"] = len(sums)
            out["practice_r2"] = _r2(sums["y"].to_numpy(), sums["pred"].to_numpy())
            ratio = sums["y"] / sums["pred"].where(sums["pred"] > 0)
            out["practices_10pct_off"] = int((np.abs(ratio - 1) > 0.1).sum())
        out["subgroups"] = {}
        for key, col in SUBGROUPS.items():
            if col in frame.columns:
                values = frame[col].to_numpy()
                out["subgroups"][key] = [
                    {"group": v.item() if hasattr(v, "item") else v, "n": int((values == v).sum()),
                     "mean_observed": float(y[values == v].mean()), "mean_predicted": float(pred[values == v].mean()),
                     "predicted_observed": _ratio(float(pred[values == v].sum()), float(y[values == v].sum()))}
                    for v in sorted(pd.unique(values))]
    return out


def evaluate_frame(model, frame: pd.DataFrame, truth_p=None) -> dict:
    """Score ``frame`` with ``model`` and compute its metrics (risk or cost by the model's kind)."""
    pred = model.predict(frame)
    if model.kind == "cost":
        return cost_metrics(frame[COST_LABEL].to_numpy(), pred, frame)
    return risk_metrics(frame[LABEL].to_numpy(), pred, frame, truth_p)
