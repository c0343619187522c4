"""The one reader of a scores file (``riskcap score``'s output, parquet or CSV).

Case-finding reads it whole and checks every row (:func:`read_scores`); capitation reads the
rows of one ``person_id`` range (:func:`read_scores_range`) and asks whether it is a cost
model's (:func:`scores_are_cost`); the report aggregates it a batch at a time
(:func:`score_batches`). Each names a missing file the same way, and the whole-file and
batched readers a missing column.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from riskcap.data.read import cannot_read, parquet_schema, read_raw
from riskcap.errors import DataError
from riskcap.names import ALLOWED as SAFE_NAME
from riskcap.names import is_safe_name

SCORE_REQUIRED: tuple[str, ...] = ("person_id", "practice_code", "probability")
_INT64_MAX = int(np.iinfo(np.int64).max)  # a last PersonRange's stop: that range includes it


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: scores file not found")
    return path


def _require(path: Path, names: list[str], required) -> None:
    missing = [c for c in required if c not in names]
    if missing:
        raise DataError(f"{path}: column(s) {', '.join(missing)} missing; expected a `riskcap score` output "
                        f"with {', '.join(SCORE_REQUIRED)}, score, tier, percentile, reason_1..3")


def read_scores(path: str | Path) -> tuple[pd.DataFrame, pa.Table]:
    """Read and check a scores file whole (case-finding).

    Returns
    -------
    (DataFrame, pyarrow.Table)
        The frame has ``person_id``, ``practice_code``, ``probability``, ``score`` (computed
        as ``round(100 x probability)`` when absent) and ``tier`` / ``percentile`` /
        ``model`` / ``index_date`` when present, plus ``_row`` (row number in the file);
        the arrow table is the file as read (reason columns are taken from it for the
        listed rows only).

    Raises
    ------
    DataError
        A required column is missing, ids are missing or repeated, a probability is not in
        [0, 1], a score is not a whole number 0-100, or a practice code is unusable as a
        file name.
    """
    path = _existing(path)
    table = read_raw(path, codes=True)  # each distinct reason decoded once, not once a row
    _require(path, table.column_names, SCORE_REQUIRED)
    keep = [c for c in ("person_id", "practice_code", "probability", "score", "tier", "percentile", "model",
                        "index_date") if c in table.column_names]
    frame = table.select(keep).to_pandas()

    def bad(column: str, mask: np.ndarray, what: str) -> None:
        if mask.any():
            examples = ", ".join(repr(v) for v in frame.loc[mask, column].head(5).tolist())
            raise DataError(f"{path}: column '{column}': {int(mask.sum())} row(s) {what}; examples: {examples}")

    ids = pd.to_numeric(frame["person_id"], errors="coerce")
    bad("person_id", (ids.isna() | (ids != np.floor(ids))).to_numpy(), "are not whole numbers")
    frame["person_id"] = ids.astype(np.int64)
    bad("person_id", frame["person_id"].duplicated().to_numpy(), "repeat a person_id")
    prob = pd.to_numeric(frame["probability"], errors="coerce").astype(np.float64)
    bad("probability", (prob.isna() | (prob < 0) | (prob > 1)).to_numpy(), "are not probabilities in [0, 1]")
    frame["probability"] = prob
    if "score" in frame.columns:
        score = pd.to_numeric(frame["score"], errors="coerce")
        bad("score", (score.isna() | (score != np.floor(score)) | (score < 0) | (score > 100)).to_numpy(),
            "are not whole numbers from 0 to 100")
        frame["score"] = score.astype(np.int64)
    else:
        frame["score"] = np.round(100 * prob.to_numpy()).astype(np.int64)
    code = frame["practice_code"].astype("string").str.strip()
    bad("practice_code", code.isna().to_numpy(), "are empty")
    frame["practice_code"] = code.astype(str)
    unsafe = ~frame["practice_code"].map(is_safe_name).to_numpy(dtype=bool)
    bad("practice_code", unsafe, f"cannot name a practice's list files (allowed: {SAFE_NAME})")
    if "percentile" in frame.columns:
        pct = pd.to_numeric(frame["percentile"], errors="coerce")
        bad("percentile", (pct.isna() | (pct < 0) | (pct > 100)).to_numpy(), "are not percentiles in [0, 100]")
    frame["_row"] = np.arange(len(frame), dtype=np.int64)
    return frame, table


def score_batches(path: str | Path, required, optional=(), batch_rows: int = 1 << 20) -> Iterator[pd.DataFrame]:
    """The ``required`` columns of a parquet scores file, and those of ``optional`` it has, one
    batch of rows at a time (memory bounded by the batch, not the population; the report)."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    path = _existing(path)
    try:
        file = pq.ParquetFile(path)
        names = file.schema_arrow.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise cannot_read(path, exc) from exc
    _require(path, names, required)
    columns = list(required) + [c for c in optional if c in names]
    for batch in file.iter_batches(batch_size=batch_rows, columns=columns):
        yield batch.to_pandas()


def read_scores_range(path: str | Path, first: int, stop: int) -> pd.DataFrame:
    """Rows of a scores file (parquet or CSV) with ``first <= person_id < stop`` (capitation).

    Parquet files with an integer person_id are read with a filter (only the matching row
    groups); otherwise the whole file is read and filtered. A ``stop`` of the largest int64
    (a last :class:`~riskcap.data.read.PersonRange`) has no upper bound.
    """
    path = _existing(path)
    if path.suffix != ".csv":
        schema = parquet_schema(path)
        if "person_id" in schema.names and pa.types.is_integer(schema.field("person_id").type):
            filters = [("person_id", ">=", int(first))] + ([("person_id", "<", int(stop))] if stop < _INT64_MAX else [])
            return read_raw(path, filters=filters).to_pandas()
    frame = read_raw(path).to_pandas()
    if "person_id" not in frame.columns:
        return frame  # attach_scores names the missing column
    ids = pd.to_numeric(frame["person_id"], errors="coerce")
    return frame[(ids >= first) & ((ids < stop) | (stop >= _INT64_MAX))]


def scores_are_cost(path: str | Path) -> bool:
    """Whether every row of a scores file has ``model == "cost"`` (one column, read in batches)."""
    import pyarrow.compute as pc  # noqa: PLC0415
    import pyarrow.dataset as ds  # noqa: PLC0415

    def all_cost(column) -> bool:
        return bool(pc.all(pc.fill_null(pc.equal(column.cast(pa.string()), "cost"), False)).as_py())

    path = _existing(path)
    try:
        dataset = ds.dataset(path, format="csv" if path.suffix == ".csv" else "parquet")
        if "model" not in dataset.schema.names:
            return False
        return all(all_cost(batch.column(0)) for batch in dataset.to_batches(columns=["model"]))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
        table = read_raw(path)  # names the problem, or reads what pyarrow.dataset would not
        return "model" in table.column_names and all_cost(table["model"])
