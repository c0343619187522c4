"""Scoring a population: probability, 0-100 score, tier, percentile and three reasons per person.

:func:`score_frame` scores one partition's features; :func:`score_tables` streams a
population through the feature builder and the model one ``person_id`` range at a time,
then ranks everyone (percentiles and tiers need the whole population's probabilities,
which are 8 bytes a person). The output columns are shared interface 5 (``scores.parquet``):
``person_id, practice_code, probability, score, tier, percentile, reason_1..3, model``.
For the cost model ``probability``, ``score`` and ``tier`` are replaced by
``expected_cost_gbp`` (the percentile ranks expected cost).

Reasons for whom (``reasons_for``, a percent of the population from the top): the logistic
model's contributions are nearly free, so everyone gets reasons (100); LightGBM's TreeSHAP
contributions cost about 0.25 ms a person on 2 threads (measured: 26 s per 100,000 people
for a 230-tree model), so by default only the top 20% get them (the "rising" tier and
above: everyone a case-finding list can show); the rest have empty reasons. Those
partitions are scored twice: once for everyone's probability, once for the reasons of the
people above the threshold.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from riskcap.features import PARTITION_PEOPLE, build_features, iter_partitions
from riskcap.io import Tables, write_parquet
from riskcap.models.explain import top_reasons

SCORE_COLUMNS = ["person_id", "practice_code", "probability", "score", "tier", "percentile",
                 "reason_1", "reason_2", "reason_3", "model"]
COST_SCORE_COLUMNS = ["person_id", "practice_code", "expected_cost_gbp", "percentile",
                      "reason_1", "reason_2", "reason_3", "model"]


def score_frame(model, frame: pd.DataFrame, reasons: bool = True) -> pd.DataFrame:
    """Score one partition's features: predictions and reasons (no population ranks yet)."""
    if reasons:
        pred, contributions = model.predict_with_contributions(frame)
    else:
        pred = model.predict(frame)
    out = {"person_id": frame["person_id"].to_numpy(dtype=np.int64),
           "practice_code": frame["practice_code"].to_numpy()}
    if model.kind == "cost":
        out["expected_cost_gbp"] = pred
    else:
        out["probability"] = pred
        out["score"] = np.rint(100 * pred).astype(np.int64)
    if reasons:
        texts = top_reasons(frame, contributions, model.features)
    else:
        texts = [pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), categories=[""])] * 3
    for k, text in enumerate(texts, start=1):
        out[f"reason_{k}"] = text
    return pd.DataFrame(out)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate partition scores, merging the reason categoricals' phrase lists."""
    if len(parts) == 1:
        return parts[0]
    from pandas.api.types import union_categoricals

    merged = {}
    for col in ("reason_1", "reason_2", "reason_3"):
        merged[col] = union_categoricals([p[col] for p in parts])
    out = pd.concat([p.drop(columns=list(merged)) for p in parts], ignore_index=True)
    for col, values in merged.items():
        out[col] = values
    return out


def rank(scores: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Add population percentiles (and tiers for risk models) and order the columns.

    Reasons stay pandas Categoricals (a few thousand distinct phrases among millions of
    people) with their phrases sorted, so the frame does not depend on how it was partitioned.
    """
    from riskcap.stratify import assign_tiers, risk_percentiles

    for col in ("reason_1", "reason_2", "reason_3"):  # phrase lists in a canonical (sorted) order
        if isinstance(scores[col].dtype, pd.CategoricalDtype):
            scores[col] = scores[col].cat.reorder_categories(sorted(scores[col].cat.categories))
    value = scores["expected_cost_gbp" if kind == "cost" else "probability"].to_numpy()
    scores["percentile"] = risk_percentiles(value)
    scores["model"] = kind
    if kind == "cost":
        return scores[COST_SCORE_COLUMNS]
    scores["tier"] = assign_tiers(scores["percentile"].to_numpy())
    return scores[SCORE_COLUMNS]


#: Default percent of the population (from the top) given reasons, per model kind.
DEFAULT_REASONS_FOR = {"logistic": 100.0, "gbm": 20.0, "cost": 0.0}
_PERCENT_EPS = 1e-9


def reasons_share(kind: str, reasons_for: float | None) -> float:
    """The percent of people to explain: ``reasons_for`` or the kind's default, checked."""
    share = DEFAULT_REASONS_FOR.get(kind, 100.0) if reasons_for is None else float(reasons_for)
    if not 0 <= share <= 100:
        raise ValueError(f"reasons_for must be a percent between 0 and 100, got {reasons_for!r}")
    return share


def score_partitions(model, partitions, reasons_for: float | None = None) -> pd.DataFrame:
    """Score and rank people given as an iterable of zero-argument callables returning features.

    Each callable builds one partition's features (so a second pass for reasons can rebuild
    them instead of keeping every partition in memory).
    """
    share = reasons_share(model.kind, reasons_for)
    partitions = list(partitions)
    everyone = share >= 100
    parts = [score_frame(model, build(), reasons=everyone) for build in partitions]
    scores = rank(_concat(parts), model.kind)
    if 0 < share < 100:
        chosen = scores["percentile"].to_numpy() > 100 - share + _PERCENT_EPS
        texts = {col: np.array(scores[col].astype(object), dtype=object) for col in ("reason_1", "reason_2", "reason_3")}
        start = 0
        for build, part in zip(partitions, parts):
            stop = start + len(part)
            local = chosen[start:stop]
            if local.any():
                frame = build()
                explained = score_frame(model, frame.iloc[np.flatnonzero(local)], reasons=True)
                for col, values in texts.items():
                    values[start:stop][local] = explained[col].astype(object).to_numpy()
            start = stop
        for col, values in texts.items():
            scores[col] = pd.Categorical(values, categories=sorted(set(values)))
    return scores


def score_tables(model, tables: Tables, index_date, people: int = PARTITION_PEOPLE,
                 reasons_for: float | None = None) -> pd.DataFrame:
    """Score everyone registered and alive at ``index_date``, ``people`` persons at a time.

    ``reasons_for``: percent of people, from the top, given reasons (default per model
    kind, :data:`DEFAULT_REASONS_FOR`).
    """
    builders = [lambda part=part: build_features(part, index_date) for part in iter_partitions(tables, people)]
    return score_partitions(model, builders, reasons_for)


def score_features(model, frame: pd.DataFrame, people: int = PARTITION_PEOPLE,
                   reasons_for: float | None = None) -> pd.DataFrame:
    """Score an already-built features frame, ``people`` rows at a time, then rank everyone."""
    builders = [lambda lo=lo: frame.iloc[lo:lo + people] for lo in range(0, max(len(frame), 1), people)]
    return score_partitions(model, builders, reasons_for)


def write_scores(scores: pd.DataFrame, path: str | Path) -> Path:
    """Write a scores frame to parquet atomically (text columns, reasons included, as plain strings)."""
    import pyarrow as pa

    table = pa.Table.from_pandas(scores, preserve_index=False)
    for col in ("practice_code", "tier", "reason_1", "reason_2", "reason_3", "model"):
        if col in table.column_names:
            table = table.set_column(table.schema.get_field_index(col), col, table[col].cast(pa.string()))
    return write_parquet(table, path, row_group_size=1 << 20)
