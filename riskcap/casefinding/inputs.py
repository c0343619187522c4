"""What case-finding reads: the scores file, and the data rows of the listed people only.

A list holds a few percent of the population, so the listed people's conditions and
activity are read with the person filter pushed down to parquet (text read
dictionary-encoded) and checked with :mod:`riskcap.data.check`'s row checks, rather than
loading whole tables. With an engine, blocks of listed people are read and turned into
features as separate tasks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from riskcap.data.read import Tables, parquet_schema, read_raw, read_rows_of, read_table, table_path
from riskcap.errors import DataError
from riskcap.names import is_safe_name
from riskcap.names import ALLOWED as SAFE_NAME
from riskcap.schema import TABLES

SCORE_REQUIRED: tuple[str, ...] = ("person_id", "practice_code", "probability")


def read_scores(path: str | Path) -> tuple[pd.DataFrame, pa.Table]:
    """Read and check a scores file (``riskcap score`` output, parquet or CSV).

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
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: scores file not found")
    table = read_raw(path, codes=True)  # each distinct reason decoded once, not once a row
    missing = [c for c in SCORE_REQUIRED if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: column(s) {', '.join(missing)} missing; expected a `riskcap score` output "
                        f"with {', '.join(SCORE_REQUIRED)}, score, tier, percentile, reason_1..3")
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



def read_persons(data_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(persons, practices) of a data folder, persons checked against the data contract
    (DataError listing every problem)."""
    persons = _required(read_table(data_dir, "persons", columns=_present(data_dir, "persons", TABLES["persons"].names)),
                        data_dir, "persons")  # e.g. without opted_out nobody could be listed safely
    practices = _required(read_table(data_dir, "practices"), data_dir, "practices")
    _check("persons", persons, table_path(data_dir, "persons"),
           practice_codes=practices["practice_code"].astype("str").tolist())
    return persons, practices


def _required(frame: pd.DataFrame, data_dir, name: str) -> pd.DataFrame:
    """``frame`` when it has every required column of table ``name``; DataError naming them otherwise."""
    missing = [c for c in TABLES[name].required if c not in frame.columns]
    if missing:
        raise DataError(f"{table_path(data_dir, name)}: missing required column(s) {', '.join(missing)}; the file "
                        f"has: {', '.join(frame.columns) or 'no columns'} (run `riskcap validate` for the full report)")
    return frame


def _present(data_dir, name: str, wanted: list[str]) -> list[str] | None:
    """``wanted`` columns that exist in a parquet table (CSV: None = all)."""
    path = table_path(data_dir, name)
    if path.suffix == ".csv":
        return None
    return [c for c in wanted if c in parquet_schema(path).names]

def _check(name: str, frame: pd.DataFrame, path: Path, **kwargs) -> None:
    """Run :mod:`riskcap.data.check`'s row checks of table ``name`` on ``frame``; DataError
    listing every problem (``riskcap validate`` gives the full report)."""
    from riskcap.data.check import check_activity, check_conditions, check_persons

    check = {"persons": check_persons, "conditions": check_conditions, "activity": check_activity}[name]
    frame = frame.copy(deep=False)
    for col in TABLES[name].columns:  # optional columns the checks look at
        if col.name not in frame.columns:
            frame[col.name] = 1 if col.name == "quantity" else pd.Series(None, index=frame.index, dtype="object")
    problems = check(frame, str(path), **kwargs)
    if problems:
        raise DataError("\n".join([f"{path}: {len(problems)} problem(s); run `riskcap validate` for the full report:"]
                                   + [str(p) for p in problems]))


def listed_features(data_dir, persons: pd.DataFrame, person_ids: np.ndarray, list_date,
                    features_fn=None, practices: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features at the list date for the listed people only (reads and checks only their rows)."""
    from riskcap.data.check import PersonIndex

    if features_fn is None:
        from riskcap.features import build_features as features_fn
    ids = np.unique(person_ids)
    subset = persons.loc[persons["person_id"].isin(ids)].reset_index(drop=True)
    conditions = read_rows_of(data_dir, "conditions", ids)
    activity = read_rows_of(data_dir, "activity", ids)
    people = PersonIndex.from_persons(subset)
    _check("conditions", conditions, table_path(data_dir, "conditions"), persons=people)
    _check("activity", activity, table_path(data_dir, "activity"), persons=people)
    if practices is None:
        practices = read_table(data_dir, "practices")
    return features_fn(Tables(practices, subset, conditions, activity), list_date)


#: Listed people per task when an engine builds their features.
LISTED_BLOCK = 20_000


def _listed_block_features(block: pd.DataFrame, *, data_dir: str, list_date, practices: pd.DataFrame) -> pd.DataFrame:
    """Partition function: :func:`listed_features` of one block of listed persons' rows."""
    return listed_features(data_dir, block, block["person_id"].to_numpy(dtype=np.int64), list_date,
                           practices=practices)


def listed_features_mapped(engine, data_dir, persons: pd.DataFrame, person_ids: np.ndarray, list_date,
                           practices: pd.DataFrame) -> pd.DataFrame:
    """:func:`listed_features` with the reads and features done on ``engine``, in blocks of
    :data:`LISTED_BLOCK` listed people (in persons-file order), concatenated in order: a
    person's features depend only on their own rows, so the frame equals the one-go result.
    This is casefind's heavy step (scanning conditions and activity for the listed people)."""
    subset = persons.loc[persons["person_id"].isin(np.unique(person_ids))].reset_index(drop=True)
    blocks = [subset.iloc[lo:lo + LISTED_BLOCK] for lo in range(0, max(len(subset), 1), LISTED_BLOCK)]
    parts = list(engine.map(_listed_block_features, blocks, data_dir=str(Path(data_dir).resolve()),
                            list_date=list_date, practices=practices))
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
