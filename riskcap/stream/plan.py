"""Planning a streamed run: the population's ``person_id`` ranges, each of about ``people`` persons.

:func:`plan_partitions` cuts the persons' ids (only that column is read) into
:class:`~riskcap.data.read.PersonRange` ranges; :func:`riskcap.data.load.load_partition`
reads and checks one. Parquet streams when it is a file or a dataset directory of files with
one schema, with an integer ``person_id`` in persons, conditions and activity; otherwise (text
ids, a table that is missing or unreadable) the plan warns (:class:`StreamingFallbackWarning`)
and returns one range covering everyone, which is read whole (so memory is not bounded).
CSV streams too, but every partition parses each whole file (block by block): the plan warns
when there are several partitions. Data not sorted by ``person_id`` still streams correctly, but
every partition may decode most of each file: the plan warns with the re-read factor.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from riskcap.data.read import (_BATCH_ROWS, INT64_MAX, INT64_MIN, PersonRange, _overlaps, _row_groups, csv_batches,
                               csv_person_ids, parquet_files, person_tables, table_path)
from riskcap.errors import DataError

#: Default number of people per partition (a streamed range).
PARTITION_PEOPLE = 250_000
_REREAD_WARN = 2.0


class StreamingFallbackWarning(UserWarning):
    """The data cannot be read by person_id range: it is loaded whole instead (or re-read)."""


def _stream_blocker(data_dir: Path) -> str | None:
    """Why the tables cannot be read by person_id range, or None when they can."""
    for name in person_tables(data_dir):
        try:
            path = table_path(data_dir, name)
        except DataError:
            return f"table '{name}' not found"
        if path.suffix == ".csv":
            try:
                first = next(csv_batches(path), None)
            except DataError as exc:
                return str(exc).removeprefix(f"{path}: ")
            if first is not None and "person_id" not in first[1].schema.names:
                return f"{path} has no person_id column"
            continue
        try:
            files = parquet_files(path)
            schemas = [pq.read_schema(f).remove_metadata() for f in files]
        except (OSError, pa.ArrowException) as exc:
            return f"{path} cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        if not files or any(s != schemas[0] for s in schemas[1:]):
            return f"{path} is a dataset whose files do not share one schema"
        if path.is_dir() and pq.ParquetDataset(path).schema.names != schemas[0].names:
            return f"{path} is a partitioned dataset (columns in directory names)"
        if "person_id" not in schemas[0].names:
            return f"{path} has no person_id column"
        if not pa.types.is_integer(schemas[0].field("person_id").type):
            return f"{path}: person_id is {schemas[0].field('person_id').type}, not an integer type"
    return None


def plan_partitions(data_dir: str | Path, people: int = PARTITION_PEOPLE) -> list[PersonRange]:
    """Ranges of about ``people`` persons each, from the persons' person_id column only.

    Falls back to one range of everyone, with a :class:`StreamingFallbackWarning` saying
    why, when the data cannot be read by range (see the module notes).
    """
    data_dir = Path(data_dir)
    people = max(int(people), 1)
    blocker = _stream_blocker(data_dir)
    if blocker is not None:
        warnings.warn(f"{data_dir}: {blocker}, so the tables are loaded whole (memory is not bounded by "
                      f"partitions); convert them to parquet with an integer person_id to stream",
                      StreamingFallbackWarning, stacklevel=2)
        return [PersonRange(0, INT64_MIN, INT64_MAX)]
    parts = person_ranges(sorted_person_ids(table_path(data_dir, "persons")), people)
    if len(parts) > 1:
        paths = [table_path(data_dir, name) for name in person_tables(data_dir)]
        csv = [path.name for path in paths if path.suffix == ".csv"]
        if csv:
            warnings.warn(f"{data_dir}: {', '.join(csv)} {'is' if len(csv) == 1 else 'are'} CSV, which each of the "
                          f"{len(parts)} partitions parses whole; convert to parquet sorted by person_id to stream "
                          f"fast", StreamingFallbackWarning, stacklevel=2)
        for path in paths:
            factor = 1.0 if path.suffix == ".csv" else _reread_factor(path, parts)
            if factor > _REREAD_WARN:
                warnings.warn(f"{path}: its row groups each span several person_id ranges "
                              f"(not sorted by person_id, or row groups larger than a partition), so the "
                              f"{len(parts)} partitions decode it {factor:.1f} times over; sort it by person_id, "
                              f"with row groups of fewer people than a partition, to stream it fast",
                              StreamingFallbackWarning, stacklevel=2)
    return parts


def person_ranges(ids: np.ndarray, people: int) -> list[PersonRange]:
    """Ranges of about ``people`` of the sorted ``ids`` each (an id never split between two)."""
    cuts = np.unique(ids[people::people]) if len(ids) > people else np.array([], dtype=np.int64)
    bounds = [INT64_MIN, *(int(c) for c in cuts if c > ids[0]), INT64_MAX]
    starts = [*np.searchsorted(ids, bounds[:-1]), len(ids)]
    return [PersonRange(i, lo, hi, int(starts[i + 1] - starts[i]))
            for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))]


def sorted_person_ids(path: Path) -> np.ndarray:
    """The persons' non-null person_ids, sorted: read in batches into one int64 array (8 bytes a
    row, the planning's only population-sized memory), sorted in place unless already in order.
    In a CSV, ids that are not integers are left out (they belong to the first range)."""
    path = Path(path)
    if path.suffix == ".csv":
        chunks = [csv_person_ids(batch).drop_null().to_numpy() for _, batch in csv_batches(path, ["person_id"])]
        return np.sort(np.concatenate(chunks)) if chunks else np.zeros(0, dtype=np.int64)
    files = parquet_files(path)
    ids = np.empty(sum(pq.ParquetFile(f).metadata.num_rows for f in files), dtype=np.int64)
    n, in_order = 0, True
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=_BATCH_ROWS, columns=["person_id"]):
            values = batch.column(0).drop_null().to_numpy()
            ids[n:n + len(values)] = values
            if len(values) and in_order:
                in_order = bool((n == 0 or ids[n - 1] <= values[0]) and (values[1:] >= values[:-1]).all())
            n += len(values)
    ids = ids[:n]
    if not in_order:
        ids.sort()
    return ids


def _reread_factor(path: Path, parts: list[PersonRange]) -> float:
    """Rows decoded by all the partitions over the rows in the table (1 when sorted)."""
    total = read = 0
    for _, pf, _, column in _row_groups(path):
        for g in range(pf.metadata.num_row_groups):
            rg = pf.metadata.row_group(g)
            total += rg.num_rows
            read += rg.num_rows * sum(_overlaps(rg, column, part) for part in parts)
    return read / total if total else 1.0
