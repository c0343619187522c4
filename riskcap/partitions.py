"""Reading and validating a population one ``person_id`` range at a time, with bounded memory.

:func:`plan_partitions` cuts the persons' ids (only that column is read) into ranges of
about ``people`` persons; :func:`load_partition` reads the rows of one range from each
table (practices whole) and runs the same checks as :func:`riskcap.validate.validate_data`
(they share :func:`riskcap.validate.check_tables`). Because the ranges are disjoint and
cover every int64 (the first also takes rows with no ``person_id``), every row of every table
is read by exactly one partition, and every rule that spans rows stays inside one range:
duplicate ``person_id`` or ``(person_id, condition)`` rows, and look-ups of a row's person.
No person rule needs the whole table (NHS numbers are checked row by row, not for
uniqueness); the rules that do are the file-level ones (missing column, empty table, a column
where no value parses or that is empty throughout), which :func:`scan_tables` decides once
from the parquet metadata, reading a column only when its type does not settle it.

Problems name the file, column, row count and examples with their exact file row numbers
(row groups are read with their offsets), so a streamed run lists the same problems as a
whole-table one. Whole-table facts (the practices table, file-level problems) are reported by
the first partition only, so :meth:`LoadSummary.combine` of every partition's summary equals
the whole-table summary, rejects included.

Streaming needs parquet (a file or a dataset directory of files with one schema) with an
integer ``person_id`` in persons, conditions and activity. Otherwise (CSV, text ids, a table
that is missing or unreadable) :func:`plan_partitions` warns
(:class:`StreamingFallbackWarning`) and returns one range covering everyone, which
:func:`load_partition` reads whole, exactly like :func:`~riskcap.validate.load_tables`
(so memory is not bounded). Data not sorted by ``person_id`` still streams correctly, but
every partition may decode most of each file: the plan warns with the re-read factor.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskcap.errors import DataError
from riskcap.features import PARTITION_PEOPLE
from riskcap.io import Tables, arrow_to_pandas, parse_series, read_raw, table_path
from riskcap.schema import ALL_TABLES, OPTIONAL_TABLES
from riskcap.validate import (
    MAX_EXAMPLES,
    LoadSummary,
    _examples,
    _schema_problem,
    check_mode,
    check_tables,
    column_verdict,
)

INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)
#: Tables read by person_id range (practices and practice_changes are small and read whole by
#: every partition); registrations is optional (:func:`person_tables`).
PERSON_TABLES = ("persons", "conditions", "activity", "registrations")
#: Tables every partition reads whole; their facts are the first partition's to report.
WHOLE_TABLES = ("practices", "practice_changes")


def person_tables(data_dir: str | Path) -> list[str]:
    """The person tables ``data_dir`` has (the optional registrations only when present)."""
    out = []
    for name in PERSON_TABLES:
        try:
            table_path(data_dir, name)
        except DataError:
            if name in OPTIONAL_TABLES:
                continue
        out.append(name)
    return out
_BATCH_ROWS = 1 << 20
_REREAD_WARN = 2.0


class StreamingFallbackWarning(UserWarning):
    """The data cannot be read by person_id range: it is loaded whole instead (or re-read)."""


@dataclass(frozen=True)
class PersonRange:
    """Partition ``index``: the rows with ``first <= person_id < stop``.

    The first range starts at the minimum int64 and also holds rows with no person_id; the
    last ends at the maximum int64 and includes it, so every row falls in exactly one range.
    ``persons_rows``: how many persons rows (with a person_id) it holds, when planned from them.
    """

    index: int
    first: int
    stop: int
    persons_rows: int | None = field(default=None, compare=False)

    @property
    def is_first(self) -> bool:
        return self.first == INT64_MIN

    @property
    def is_whole(self) -> bool:
        """True for the one range of a single-partition plan (everyone)."""
        return self.first == INT64_MIN and self.stop == INT64_MAX

    def mask(self, person_id: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Which of these ids fall in the range (nulls in the first range only)."""
        inside = pc.greater_equal(person_id, pa.scalar(self.first, pa.int64()))
        if self.stop != INT64_MAX:
            inside = pc.and_(inside, pc.less(person_id, pa.scalar(self.stop, pa.int64())))
        return pc.fill_null(inside, self.is_first).to_numpy(zero_copy_only=False)


# --- The plan --------------------------------------------------------------------------

def parquet_files(path: Path) -> list[str]:
    """The parquet files of a table in the order :func:`riskcap.io.read_raw` concatenates them."""
    if path.is_file():
        return [str(path)]
    return list(pq.ParquetDataset(path).files)


def _stream_blocker(data_dir: Path) -> str | None:
    """Why the tables cannot be read by person_id range, or None when they can."""
    for name in person_tables(data_dir):
        try:
            path = table_path(data_dir, name)
        except DataError:
            return f"table '{name}' not found"
        if path.suffix == ".csv":
            return f"{path.name} is CSV"
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
        for name in person_tables(data_dir):
            factor = _reread_factor(table_path(data_dir, name), parts)
            if factor > _REREAD_WARN:
                warnings.warn(f"{table_path(data_dir, name)}: its row groups each span several person_id ranges "
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
    row, the planning's only population-sized memory), sorted in place unless already in order."""
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


def _row_groups(path: Path):
    """(file, ParquetFile, first row of the file in the table, person_id column index) per file."""
    offset = 0
    for file in parquet_files(path):
        pf = pq.ParquetFile(file)
        names = [pf.metadata.schema.column(i).path for i in range(pf.metadata.num_columns)]
        yield file, pf, offset, names.index("person_id")
        offset += pf.metadata.num_rows


def _overlaps(rg_meta, column: int, part: PersonRange) -> bool:
    """Whether a row group may hold rows of ``part`` (True when its statistics cannot say)."""
    stats = rg_meta.column(column).statistics
    if stats is None or not stats.has_min_max:
        return True
    nulls = not stats.has_null_count or stats.null_count > 0
    if nulls and part.is_first:
        return True
    return stats.max >= part.first and (part.stop == INT64_MAX or stats.min < part.stop)


def _reread_factor(path: Path, parts: list[PersonRange]) -> float:
    """Rows decoded by all the partitions over the rows in the table (1 when sorted)."""
    total = read = 0
    for _, pf, _, column in _row_groups(path):
        for g in range(pf.metadata.num_row_groups):
            rg = pf.metadata.row_group(g)
            total += rg.num_rows
            read += rg.num_rows * sum(_overlaps(rg, column, part) for part in parts)
    return read / total if total else 1.0


# --- Whole-table facts ---------------------------------------------------------------------

@dataclass
class TableScan:
    """A table's file-level facts, found without loading it, for its partitions' checks.

    ``problems``: the whole table's file-level problems; ``failed_columns``: columns those
    problems cover (not parsed per partition); ``schema_failed``: a missing required column
    or no rows (partitions parse nothing); ``unusable``: any file-level problem.
    """

    file: str
    problems: list = field(default_factory=list)
    failed_columns: frozenset = frozenset()
    schema_failed: bool = False

    @property
    def unusable(self) -> bool:
        return bool(self.problems)


def scan_tables(data_dir: str | Path) -> dict[str, TableScan]:
    """:class:`TableScan` of each person table (parquet that :func:`plan_partitions` streams)."""
    return {name: scan_table(table_path(data_dir, name), name) for name in person_tables(data_dir)}


def scans_for(data_dir: str | Path, parts: list[PersonRange]) -> dict[str, TableScan] | None:
    """The table scans a streamed run over ``parts`` needs: none when one part loads everything whole."""
    return None if len(parts) == 1 and parts[0].is_whole else scan_tables(data_dir)


def scan_table(path: Path, name: str) -> TableScan:
    """The file-level checks of :func:`riskcap.validate.parse_table` for a whole parquet table:
    from its schema and statistics, reading (in batches) only the columns they do not settle."""
    spec = ALL_TABLES[name]
    file = str(path)
    groups = list(_row_groups(path))
    schema = groups[0][1].schema_arrow
    rows = sum(pf.metadata.num_rows for _, pf, _, _ in groups)
    problem = _schema_problem(schema.names, rows, name, file)
    if problem is not None:
        return TableScan(file, [problem], schema_failed=True)
    problems, failed = [], set()
    for j, col in enumerate(spec.columns):
        if col.name not in schema.names:
            continue
        counts = _settled_counts(groups, col, schema.field(col.name).type, rows)
        if counts is None:
            counts = _column_counts(groups, col)
        present, bad, null, examples = counts
        verdict = column_verdict(name, file, j, rows, present, bad, null, lambda: examples)
        if verdict is not None:
            problems.append(verdict)
            failed.add(col.name)
    return TableScan(file, problems, frozenset(failed))


def _stats(groups, column: str):
    """Each row group's statistics of ``column`` (None where absent)."""
    for _, pf, _, _ in groups:
        names = [pf.metadata.schema.column(i).path for i in range(pf.metadata.num_columns)]
        k = names.index(column)
        for g in range(pf.metadata.num_row_groups):
            yield pf.metadata.row_group(g).column(k).statistics


def _settled_counts(groups, col, arrow_type, rows: int):
    """(present, bad, null, examples) from the type and statistics alone, or None if they do not settle it."""
    kind = col.kind
    typed = {"str": True, "int": pa.types.is_integer(arrow_type), "bool": pa.types.is_boolean(arrow_type),
             "date": pa.types.is_date(arrow_type) or pa.types.is_timestamp(arrow_type),
             "float": pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)}[kind]
    if not typed:
        return None
    stats = list(_stats(groups, col.name))
    if any(s is None or not s.has_null_count for s in stats):
        return None
    nulls = sum(s.null_count for s in stats)
    if kind == "float" and pa.types.is_floating(arrow_type):
        # infinities do not parse; only statistics with finite bounds rule them out
        if any(s.num_values and not (s.has_min_max and np.isfinite(s.min) and np.isfinite(s.max)) for s in stats):
            return None
    if kind == "str" and not col.nullable and nulls < rows:
        # blank text parses to null: a non-blank bound proves a non-blank value
        if not any(s.has_min_max and (_text(s.max).strip() or _text(s.min).strip()) for s in stats):
            return None
    return rows - nulls, 0, nulls, ([], [])


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _column_counts(groups, col):
    """(present, bad, null, examples) of one column, parsed batch by batch."""
    present = bad = null = 0
    texts: list[str] = []
    labels: list = []
    for _, pf, offset, _ in groups:
        start = offset
        for batch in pf.iter_batches(batch_size=_BATCH_ROWS, columns=[col.name]):
            frame = arrow_to_pandas(pa.Table.from_batches([batch]).replace_schema_metadata(None))
            frame.index = np.arange(start, start + batch.num_rows)
            start += batch.num_rows
            raw_values = frame[col.name]
            values, is_bad = parse_series(raw_values, col.kind)
            present += int(raw_values.notna().sum())
            bad += int(is_bad.sum())
            null += int((values.isna().to_numpy() & ~is_bad).sum())
            if len(texts) < MAX_EXAMPLES and is_bad.any():
                positions = np.flatnonzero(is_bad)[:MAX_EXAMPLES - len(texts)]
                texts += _examples(frame, positions, [col.name], raw_values)
                labels += list(frame.index[positions])
    return present, bad, null, (texts, labels)


# --- Loading one partition ------------------------------------------------------------------

def read_range(path: str | Path, part: PersonRange, columns: list[str] | None = None,
               codes: bool = False) -> tuple[pa.Table, np.ndarray]:
    """The rows of a parquet table in ``part``, with their 0-based row numbers in the table.

    Row groups whose statistics rule the range out are skipped; the rest are decoded in
    batches and filtered, so memory holds the partition's rows plus one batch. ``codes``:
    text columns with a small dictionary (:func:`_coded_text` of the first file) stay
    dictionary-encoded, as parquet stores them, instead of being decoded to text.
    """
    path = Path(path)
    batches, labels, schema, plain = [], [], None, None
    try:
        for file, pf, offset, column in _row_groups(path):
            first = schema is None
            if first:
                plain = pf.schema_arrow.remove_metadata()
                plain = schema = plain if columns is None else pa.schema([plain.field(c) for c in columns])
            coded = _coded_text(pf, plain)
            if first and codes:
                schema = pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), f.type), f.nullable)
                                    if f.name in coded else f for f in plain])
            if coded:  # decoded to dictionaries (cheap) and filtered, then text again unless codes
                pf = pq.ParquetFile(file, metadata=pf.metadata, read_dictionary=coded)
            group_start = offset
            for g in range(pf.metadata.num_row_groups):
                meta = pf.metadata.row_group(g)
                if not _overlaps(meta, column, part):
                    group_start += meta.num_rows
                    continue
                needed = _rows_before_stop(pf, g, meta, column, part)
                start = group_start
                for batch in pf.iter_batches(batch_size=_BATCH_ROWS, row_groups=[g], columns=columns):
                    mask = part.mask(batch.column(batch.schema.get_field_index("person_id")))
                    if mask.all():
                        batches.append(_as_schema(batch, schema))
                    elif mask.any():
                        batches.append(_as_schema(batch.filter(pa.array(mask)), schema))
                    labels.append(start + np.flatnonzero(mask))
                    start += batch.num_rows
                    if start - group_start >= needed:  # the rest of the group is past the range: not decoded
                        break
                group_start += meta.num_rows
    except (OSError, pa.ArrowException) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read ({msg}); is the file truncated or not parquet?") from exc
    table = pa.Table.from_batches([b.replace_schema_metadata(None) for b in batches], schema=schema)
    return table, (np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64))


def _rows_before_stop(pf: pq.ParquetFile, g: int, meta, column: int, part: PersonRange) -> int:
    """How many leading rows of row group ``g`` can hold rows of ``part``: all of them, unless the
    group runs past the range's stop with its person_ids sorted and not null (the usual layout of
    a table sorted by person_id), when the rows from the first id >= stop on need not be decoded.
    Only the person_id column is read to tell."""
    stats = meta.column(column).statistics
    if part.stop == INT64_MAX or stats is None or not stats.has_min_max or stats.max < part.stop:
        return meta.num_rows
    ids = pf.read_row_group(g, columns=["person_id"]).column(0)
    if ids.null_count:
        return meta.num_rows
    ids = ids.to_numpy()
    if not (ids[1:] >= ids[:-1]).all():
        return meta.num_rows
    return int(np.searchsorted(ids, part.stop, side="left"))


#: A text column whose dictionary page is at most this many bytes in every row group (a few
#: codes, e.g. setting or sex) is read as a dictionary; others (e.g. NHS numbers) as text.
_SMALL_DICTIONARY = 16384


def _coded_text(pf: pq.ParquetFile, schema: pa.Schema) -> list[str]:
    """The text columns of ``schema`` that are dictionary-encoded with a small dictionary in every
    row group of ``pf``: read as dictionaries, they decode without building every string."""
    meta = pf.metadata
    paths = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    out = []
    for fld in schema:
        if not (pa.types.is_string(fld.type) or pa.types.is_large_string(fld.type)) or fld.name not in paths:
            continue
        k = paths[fld.name]
        small = True
        for g in range(meta.num_row_groups):
            chunk = meta.row_group(g).column(k)
            page = chunk.dictionary_page_offset
            size = None if page is None else chunk.data_page_offset - page
            if not chunk.has_dictionary_page or size is None or not 0 <= size <= _SMALL_DICTIONARY:
                small = False
                break
        if small:
            out.append(fld.name)
    return out


def _as_schema(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with each column of the type in ``schema``: dictionaries decoded, or text
    encoded, where the two differ (files of a dataset may be encoded differently)."""
    arrays = []
    for name, array in zip(batch.schema.names, batch.columns):
        expected = schema.field(name).type
        if array.type != expected:
            if pa.types.is_dictionary(array.type):
                array = array.dictionary_decode()
            if pa.types.is_dictionary(expected):
                array = array.cast(expected.value_type).dictionary_encode()
            elif array.type != expected:
                array = array.cast(expected)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema([schema.field(n) for n in batch.schema.names]))


def load_partition(data_dir: str | Path, part: PersonRange, as_of=None, on_invalid: str = "reject",
                   scans: dict[str, TableScan] | None = None) -> tuple[Tables | None, LoadSummary]:
    """Read and check the rows of one person_id range of each table (practices whole).

    The same checks, problems and quarantine rules as :func:`riskcap.validate.validate_data`;
    tables is None when the data cannot be used. Quarantined rows are returned in
    ``summary.rejected_rows`` (the driver writes them once, after the last partition, with
    :func:`riskcap.validate.write_rejects` on the :meth:`LoadSummary.combine` of every
    partition). Whole-table facts (practices, file-level problems) are counted only by the
    first partition. ``scans``: :func:`scan_tables` (computed here when not given).
    """
    check_mode(on_invalid)
    if part.is_whole:
        read, scans = (lambda name, path: (read_raw(path), None)), None
    else:
        scans = scan_tables(data_dir) if scans is None else scans

        def read(name, path):
            return (read_raw(path), None) if name in WHOLE_TABLES else read_range(path, part, codes=True)

    tables, summary = check_tables(data_dir, as_of, on_invalid, read, scans)
    for p in summary.problems:  # positions in this partition's frames: of no use to the caller
        p.row_indices = None
    if not part.is_first:  # whole-table facts are the first partition's to report
        summary.problems = [p for p in summary.problems if p.table not in WHOLE_TABLES and p.level != "file"]
        for counts in (summary.rows_in, summary.rows_failing, summary.rows_used, summary.rows_quarantined,
                       summary.rejected_rows):
            for name in WHOLE_TABLES:
                counts.pop(name, None)
    return tables, summary
