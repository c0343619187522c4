"""Twin of :func:`riskcap.models.score.score_population`: everyone scored and explained at
once from one features frame, ranked, then reasons kept for the top share only (no partitions,
no candidates, no second read)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from riskcap.data.write import write_parquet
from riskcap.models.score import COST_SCORE_COLUMNS, REASON_COLUMNS, SCORE_COLUMNS, reasons_share, score_frame
from riskcap.tiers import assign_tiers, risk_percentiles


def score_everyone(model, features, reasons_for: float | None = None):
    """The scores frame of the people in ``features`` (the whole population)."""
    share = reasons_share(model.kind, reasons_for)
    scores = score_frame(model, features, reasons=share > 0)
    value = scores["expected_cost_gbp" if model.kind == "cost" else "probability"].to_numpy()
    scores["percentile"] = risk_percentiles(value)
    scores["model"] = model.kind
    if model.kind != "cost":
        scores["tier"] = assign_tiers(scores["percentile"].to_numpy())
    keep = scores["percentile"].to_numpy() > 100 - share + 1e-9 if share < 100 else np.ones(len(scores), bool)
    for col in REASON_COLUMNS:
        scores[col] = np.where(keep, scores[col].astype(str).to_numpy(dtype=object), "").astype(object)
    return scores[COST_SCORE_COLUMNS if model.kind == "cost" else SCORE_COLUMNS]


def write_everyone(scores, path):
    """A scores frame written as ``riskcap score`` writes it, in one ``write_table`` call."""
    table = pa.Table.from_pandas(scores, preserve_index=False)
    for col in ("practice_code", "tier", "reason_1", "reason_2", "reason_3", "model"):
        if col in table.column_names:
            table = table.set_column(table.schema.get_field_index(col), col, table[col].cast(pa.string()))
    return write_parquet(table, path, row_group_size=1 << 20)
