"""What case-finding reads besides the scores file (:mod:`riskcap.data.scores`): the data rows
of the listed people only.

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

from riskcap.data.read import Tables, parquet_schema, read_rows_of, read_table, table_path
from riskcap.errors import DataError
from riskcap.schema import TABLES


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
