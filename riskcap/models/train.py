"""Training, evaluating and the data around them: fingerprints, the synthetic truth, dates.

Temporal validation is the default: the commands train two years before the data's end and
evaluate one year before it (:mod:`riskcap.data.dates`), so a model is judged on a year it
never saw.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from riskcap.data.read import table_names, table_path
from riskcap.errors import DataError
from riskcap.features import COST_LABEL, LABEL, OUTCOME_DAYS, to_date, to_day
from riskcap.models.base import KINDS

TRUTH_FILE = "truth.parquet"
DEFAULT_SEED = 0


def data_fingerprint(data_dir: str | Path) -> dict:
    """SHA-256 of each contract table's file(s) in ``data_dir`` and one digest over them all."""
    from riskcap.manifest import fingerprint

    tables = {}
    for name in table_names():
        tables[name] = fingerprint(table_path(data_dir, name))
    combined = hashlib.sha256()
    for name in sorted(tables):
        for file, meta in sorted(tables[name].items()):
            combined.update(f"{name}/{file}:{meta['sha256']}\n".encode())
    return {"sha256": combined.hexdigest(), "tables": tables}


def train_model(kind: str, frame: pd.DataFrame, index_date, seed: int = DEFAULT_SEED,
                data: dict | None = None):
    """Fit a model of ``kind`` on a feature frame built at ``index_date``.

    Parameters
    ----------
    kind : "logistic", "gbm" or "cost"
    frame : the training people's features (from :func:`riskcap.features.build_features`).
    index_date : the index date the features were built at (recorded in the metadata).
    seed : seeds the validation split and LightGBM.
    data : provenance to record (e.g. ``{"dir": ..., "fingerprint": ...}``).

    Returns
    -------
    The fitted model, with ``metadata`` holding the training date, sizes, fit details and
    the metrics on the training people (in-sample for logistic; the held-out validation
    split for gbm and cost).
    """
    from riskcap.manifest import versions
    from riskcap.models.evaluate import cost_metrics, risk_metrics

    if kind not in KINDS:
        raise DataError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not len(frame):
        raise DataError(f"no one is registered and alive at the index date {to_date(to_day(index_date))}; "
                        "nothing to train on")
    metadata = {
        "description": KINDS[kind],
        "training_index_date": to_date(to_day(index_date)).isoformat(),
        "label": COST_LABEL if kind == "cost" else LABEL,
        "training_rows": len(frame),
        "seed": seed,
        "data": data or {},
        "versions": versions(),
    }
    if kind == "logistic":
        from riskcap.models.logistic import fit_logistic

        model = fit_logistic(frame)
        metadata["fit"] = {"C": model.params["C"], "terms": len(model.params["terms"])}
        metrics = risk_metrics(frame[LABEL].to_numpy(), model.predict(frame))
        metadata["metrics"] = {"on": "training people (in-sample)", **headline_metrics(metrics)}
    elif kind == "gbm":
        from riskcap.models.gbm import fit_gbm, validation_split

        model, details = fit_gbm(frame, seed=seed)
        metadata["fit"] = details
        valid = validation_split(len(frame), seed)
        part = frame.loc[valid]
        metrics = risk_metrics(part[LABEL].to_numpy(), model.predict(part))
        metadata["metrics"] = {"on": "validation split of the training people", **headline_metrics(metrics)}
    else:
        from riskcap.models.cost import fit_cost
        from riskcap.models.gbm import validation_split

        model, details = fit_cost(frame, seed=seed)
        metadata["fit"] = details
        valid = validation_split(len(frame), seed)
        part = frame.loc[valid]
        metrics = cost_metrics(part[COST_LABEL].to_numpy(), model.predict(part), part)
        metadata["metrics"] = {"on": "validation split of the training people",
                               **{k: metrics[k] for k in ("n", "r2", "practice_r2", "predicted_observed", "mae")
                                  if k in metrics}}
    if kind != "cost":
        metadata["prevalence"] = float(frame[LABEL].mean())
    model.metadata = {**metadata, **{k: v for k, v in model.metadata.items() if k not in metadata}}
    return model


def headline_metrics(metrics: dict) -> dict:
    """The metrics a model's metadata records: counts, discrimination and calibration."""
    keys = ("n", "prevalence", "auroc", "auprc", "brier", "calibration_slope", "calibration_intercept",
            "observed_expected")
    return {k: metrics[k] for k in keys}


def truth_probabilities(data_dir: str | Path, person_id: np.ndarray, index_date) -> np.ndarray | None:
    """The synthetic truth's p_emergency for each person at ``index_date`` (NaN where absent).

    Returns None when ``data_dir`` has no ``truth.parquet`` (real data) or it has no year
    starting on the index date.
    """
    import pyarrow.parquet as pq

    path = Path(data_dir) / TRUTH_FILE
    if not path.exists():
        return None
    try:
        table = pq.read_table(path, columns=["person_id", "year_start", "p_emergency"],
                              filters=[("year_start", "=", to_date(to_day(index_date)))])
    except Exception as exc:  # arrow raises several types for bad files
        raise DataError(f"{path}: cannot read the synthetic truth ({exc})") from exc
    if table.num_rows == 0:
        return None
    truth = table.to_pandas()
    ids = truth["person_id"].to_numpy(dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    ids, p = ids[order], truth["p_emergency"].to_numpy(dtype=np.float64)[order]
    pos = np.clip(np.searchsorted(ids, person_id), 0, max(len(ids) - 1, 0))
    found = ids[pos] == person_id if len(ids) else np.zeros(len(person_id), bool)
    return np.where(found, p[pos], np.nan)


def evaluate_model(model, frame: pd.DataFrame, index_date, truth_p=None) -> dict:
    """Metrics of ``model`` on a feature frame built at ``index_date``, with the evaluation context."""
    from riskcap.models.evaluate import evaluate_frame

    metrics = evaluate_frame(model, frame, truth_p if model.kind != "cost" else None)
    trained = model.metadata.get("training_index_date")
    evaluated = to_date(to_day(index_date)).isoformat()
    metrics["model"] = model.kind
    metrics["training_index_date"] = trained
    metrics["evaluation_index_date"] = evaluated
    # temporal validation: the evaluation's outcome year starts after the training's has ended
    temporal = bool(trained) and to_day(evaluated) >= to_day(trained) + OUTCOME_DAYS
    metrics["temporal_validation"] = temporal
    if trained and not temporal:
        metrics["warning"] = (f"evaluated at {evaluated}, less than a year after the training index date {trained}: "
                              "the outcome years overlap, so this is not temporal validation")
    return metrics

