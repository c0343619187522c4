"""Reading the contract's tables: whole, or the rows of one ``person_id`` range.

A table named ``persons`` is read from ``DIR/persons.parquet``, a partitioned parquet
dataset directory ``DIR/persons/``, or ``DIR/persons.csv`` (UTF-8), in that order.
Readers return arrow tables (:func:`read_raw`, :func:`read_range`) or pandas frames with the
contract's dtypes (:func:`read_table`); they do not check values (:mod:`riskcap.data.load`
does). A file that cannot be read is a DataError from :func:`cannot_read`, the one message.

:class:`PersonRange` is one partition: the rows with ``first <= person_id < stop``; the
ranges of a plan (:func:`riskcap.stream.plan.plan_partitions`) are disjoint and cover every
int64 (the first also takes rows with no ``person_id``), so every row of every table is read
by exactly one partition. :func:`read_range` skips the row groups whose statistics rule the
range out and keeps each row's file row number, so a partition's problems name the same rows
as a whole-table read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskcap.errors import DataError
from riskcap.schema import ALL_TABLES, OPTIONAL_TABLES, TABLES

@dataclass
class Tables:
    """The contract tables of one population (or one partition of it).

    ``registrations`` and ``practice_changes`` are the optional tables (None when the data
    folder has none): :func:`riskcap.registrations.registrations_of` gives the registrations
    either way.
    """

    practices: pd.DataFrame
    persons: pd.DataFrame
    conditions: pd.DataFrame
    activity: pd.DataFrame
    registrations: pd.DataFrame | None = None
    practice_changes: pd.DataFrame | None = None


def table_path(data_dir: str | Path, name: str) -> Path:
    """Where table ``name`` lives in ``data_dir``; raises DataError if it is absent."""
    data_dir = Path(data_dir)
    for candidate in (data_dir / f"{name}.parquet", data_dir / name, data_dir / f"{name}.csv"):
        if candidate.exists():
            return candidate
    raise DataError(
        f"{data_dir}: table '{name}' not found: expected {name}.parquet, a {name}/ parquet "
        f"dataset directory, or {name}.csv"
    )


def table_names() -> list[str]:
    """Names of the contract's tables, in pipeline order."""
    return list(TABLES)


# --- Whole tables ---------------------------------------------------------------------


def read_raw(path: Path, columns: list[str] | None = None, filters=None, text: list[str] | None = None,
             codes: bool = False) -> pa.Table:
    """Read a parquet file/dataset or UTF-8 CSV into an arrow table, without coercion.

    CSV columns of the contract (or ``text``) are read as text (so :func:`coerce` can count and
    show every bad value instead of failing on the first). ``codes``: parquet text columns are
    read dictionary-encoded (each distinct value decoded once, not once a row). Raises
    DataError naming the file when it is unreadable, truncated or not UTF-8 (with the line of
    the first invalid byte).
    """
    path = Path(path)
    try:
        if path.suffix == ".csv":
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path, convert_options=_csv_options(path, columns, text))
            return _utf8(table, path)
        coded = [f.name for f in parquet_schema(path) if _is_text(f.type)] if codes else None
        return pq.read_table(path, columns=columns, filters=filters, read_dictionary=coded)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, UnicodeDecodeError) as exc:
        raise cannot_read(path, exc) from exc


def _csv_options(path: Path, columns: list[str] | None = None, text: list[str] | None = None):
    """How :func:`read_raw` and :func:`csv_batches` convert a CSV: contract columns (or ``text``) as text."""
    import pyarrow.csv as pacsv

    spec = ALL_TABLES.get(path.stem)
    text = text if text is not None else spec.names if spec else []
    return pacsv.ConvertOptions(strings_can_be_null=True, include_columns=columns,
                                column_types={c: pa.string() for c in text})


def _utf8(table, path: Path):
    """``table`` (or batch) of a CSV, DataError when pyarrow had to read a column as binary (not UTF-8)."""
    if any(pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type) for f in table.schema):
        raise DataError(_not_utf8_message(path))
    return table


def csv_batches(path: Path, columns: list[str] | None = None):
    """(first row number, record batch) of a CSV table, one block at a time, converted as
    :func:`read_raw` converts the whole file (the same blocks decide the inferred types)."""
    import pyarrow.csv as pacsv

    path = Path(path)
    start = 0
    try:
        for batch in pacsv.open_csv(path, convert_options=_csv_options(path, columns)):
            yield start, _utf8(batch, path)
            start += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, UnicodeDecodeError) as exc:
        raise cannot_read(path, exc) from exc


def csv_person_ids(batch: pa.RecordBatch) -> pa.Array:
    """A CSV batch's person_id parsed as the contract parses it (:func:`parse_series`), as int64;
    null where absent or not an integer (such rows belong to the first range, where their
    problems are reported)."""
    values, bad = parse_series(arrow_to_pandas(pa.table({"person_id": batch.column("person_id")}))["person_id"], "int")
    return pa.array(values.mask(bad), type=pa.int64(), from_pandas=True)


def parquet_schema(path: Path) -> pa.Schema:
    """The arrow schema of a parquet file or dataset directory (only its metadata is read);
    DataError (:func:`cannot_read`) when it cannot be read."""
    path = Path(path)
    try:
        return pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise cannot_read(path, exc) from exc


def _is_text(arrow_type: pa.DataType) -> bool:
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def cannot_read(path: Path, exc: Exception) -> DataError:
    """The error for a file that cannot be read: not UTF-8 (where), truncated, or not the format."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if path.suffix == ".csv" and ("UTF8" in msg or "UTF-8" in msg or isinstance(exc, UnicodeDecodeError)):
        return DataError(_not_utf8_message(path))
    hint = "is it a CSV file?" if path.suffix == ".csv" else "is the file truncated or not parquet?"
    return DataError(f"{path}: cannot read ({msg}); {hint}")


def _not_utf8_message(path: Path) -> str:
    """Message for a CSV that is not UTF-8, naming the line and byte of the first bad byte."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return (f"{path}: not UTF-8 text: invalid byte 0x{data[exc.start]:02x} on line {line}; "
                f"save the CSV as UTF-8 (e.g. Excel: 'CSV UTF-8')")
    return f"{path}: not UTF-8 text; save the CSV as UTF-8 (e.g. Excel: 'CSV UTF-8')"


def coerce(table: pa.Table, name: str, path: Path | str = "") -> pd.DataFrame:
    """Cast an arrow table's contract columns to contract types and return a pandas frame.

    Dates become ``datetime64[s]``; bools accept true/false/1/0/yes/no; text is stripped and
    empty text is null. Extra columns pass through unchanged. Raises DataError naming column,
    count and examples of bad values.
    """
    spec = ALL_TABLES[name]
    df = arrow_to_pandas(table)
    for col in spec.columns:
        if col.name not in df.columns:
            continue
        df[col.name] = _coerce_series(df[col.name], col.kind, col.name, path)
    return df


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """``table.to_pandas`` with dates as datetime64 (not objects) and integer columns that
    hold nulls as nullable Int64 (not float, which would turn ids into ``1.0`` and lose digits).
    Dictionary-encoded text is decoded in arrow (far faster than pandas categorical -> string);
    ``date32`` columns become ``datetime64[s]`` in one numpy pass (:func:`date32_seconds`)."""
    dates = {}
    for i, fld in enumerate(table.schema):
        if pa.types.is_dictionary(fld.type):
            col = table.column(i)
            decoded = pa.chunked_array([c.dictionary_decode() for c in col.chunks], type=fld.type.value_type)
            table = table.set_column(i, fld.name, decoded)
        elif pa.types.is_date32(fld.type) and table.schema.names.count(fld.name) == 1:
            dates[i] = (fld.name, date32_seconds(table.column(i)))
        elif pa.types.is_date(fld.type):  # straight to the contract's datetime64[s]
            table = table.set_column(i, fld.name, table.column(i).cast(pa.timestamp("s")))
    rest = table.drop_columns([name for name, _ in dates.values()]) if dates else table
    df = rest.to_pandas(date_as_object=False) if rest.num_columns else pd.DataFrame(index=pd.RangeIndex(len(table)))
    for i, (name, values) in sorted(dates.items()):  # as a Series: pandas copies a bare ndarray
        df.insert(i, name, pd.Series(values, index=df.index, name=name, copy=False))
    for i, fld in enumerate(table.schema):
        if pa.types.is_integer(fld.type) and table.column(i).null_count:
            df[fld.name] = table.column(i).to_pandas(types_mapper=lambda t: pd.Int64Dtype())
    return df


def date32_seconds(column: pa.ChunkedArray) -> np.ndarray:
    """An arrow ``date32`` column as numpy ``datetime64[s]`` (nulls NaT), read from its buffers."""
    out = np.empty(len(column), dtype=np.int64)
    start = 0
    for chunk in column.chunks:
        n = len(chunk)
        days = np.frombuffer(chunk.buffers()[1], dtype=np.int32, count=chunk.offset + n)[chunk.offset:] \
            if n else np.zeros(0, dtype=np.int32)
        np.multiply(days, 86_400, out=out[start:start + n], dtype=np.int64)
        if chunk.null_count:
            out[start:start + n][chunk.is_null().to_numpy(zero_copy_only=False)] = np.iinfo(np.int64).min
        start += n
    return out.view("datetime64[s]")


def _integral_text(s: pd.Series) -> pd.Series:
    """Floats that are whole numbers as text without '.0' (codes stored as float by pandas)."""
    whole = s.isna() | (s == np.floor(s))
    return s.astype("Int64").astype("string") if whole.all() else s.astype("string")


_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False,
              "t": True, "f": False, "y": True, "n": False, "1.0": True, "0.0": False}


def parse_series(s: pd.Series, kind: str) -> tuple[pd.Series, np.ndarray]:
    """Parse a column to contract ``kind``; return (values, bad) without raising.

    ``bad`` is a boolean array marking non-null inputs that are not a valid ``kind``; they
    are null in ``values``. Ints come back as int64 (Int64 when nulls remain), bools as
    bool (boolean when nulls remain), dates as ``datetime64[s]``, text as ``string``.
    """
    no_bad = np.zeros(len(s), dtype=bool)
    if kind == "str":
        out = _integral_text(s) if pd.api.types.is_float_dtype(s.dtype) else s.astype("string")
        out = out.str.strip()
        return out.mask(out == ""), no_bad
    if kind == "int":
        unsigned = s.dtype.kind == "u"  # values past int64 would wrap: parsed below, and refused
        if pd.api.types.is_integer_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype) and not unsigned:
            return (s.astype("int64") if not s.isna().any() else s.astype("Int64")), no_bad
        num = pd.to_numeric(s, errors="coerce")
        if pd.api.types.is_bool_dtype(num.dtype):
            num = num.astype("float64")
        if num.dtype.kind == "u":  # some value passes int64: refused below, the rest kept exact
            num = num.astype("UInt64").mask(num > np.iinfo(np.int64).max).astype("Int64")
        bad = ((num.isna() & s.notna()) | (num.notna() & (num != np.floor(num)))
               | (num.notna() & (num.abs() >= 2**63))).to_numpy(dtype=bool)  # beyond int64: not wrapped
        num = num.mask(bad)
        return (num.astype("Int64") if num.isna().any() else num.astype("int64")), bad
    if kind == "float":
        out = pd.to_numeric(s, errors="coerce")
        out = (out.astype("float64") if not pd.api.types.is_bool_dtype(out.dtype)
               else pd.Series(np.nan, index=s.index))
        bad = ((out.isna() & s.notna()) | np.isinf(out)).to_numpy(dtype=bool)
        return out.mask(bad), bad
    if kind == "date":
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            out = s.dt.tz_localize(None) if getattr(s.dt, "tz", None) is not None else s
            return out.astype("datetime64[s]"), no_bad
        if pd.api.types.is_numeric_dtype(s.dtype):  # numbers are not dates (not epoch offsets)
            return pd.Series(np.full(len(s), np.datetime64("NaT", "s")), index=s.index), s.notna().to_numpy()
        text = pd.api.types.is_string_dtype(s.dtype) or s.dtype == object
        try:
            out = pd.to_datetime(s, errors="coerce", format="ISO8601" if text else None)
        except (TypeError, ValueError):  # times with different UTC offsets: each one's own date
            out = pd.to_datetime(s.astype("string").str.slice(0, 10), errors="coerce", format="ISO8601")
        if getattr(out.dt, "tz", None) is not None:  # a time with a UTC offset: the date where it was written
            out = out.dt.tz_localize(None)
        out = out.astype("datetime64[s]")
        return out, (out.isna() & s.notna()).to_numpy(dtype=bool)
    if kind == "bool":
        if s.dtype == bool:
            return s, no_bad
        out = s.astype("string").str.strip().str.lower().map(_BOOL_TEXT)
        bad = (out.isna() & s.notna()).to_numpy(dtype=bool)
        return (out.astype("boolean") if out.isna().any() else out.astype(bool)), bad
    raise ValueError(kind)  # pragma: no cover - schema error


def _coerce_series(s: pd.Series, kind: str, col: str, path) -> pd.Series:
    out, bad = parse_series(s, kind)
    if bad.any():
        examples = ", ".join(repr(v) for v in s[bad].head(5).tolist())
        raise DataError(
            f"{path}: column '{col}': {int(bad.sum())} row(s) are not a valid {kind}; examples: {examples}"
        )
    return out


def read_table(data_dir: str | Path, name: str, columns: list[str] | None = None, filters=None) -> pd.DataFrame:
    """Read contract table ``name`` from ``data_dir`` with contract dtypes (no value checks)."""
    path = table_path(data_dir, name)
    return coerce(read_raw(path, columns=columns, filters=filters), name, path)


def read_optional_table(data_dir: str | Path, name: str, columns: list[str] | None = None,
                        filters=None) -> pd.DataFrame | None:
    """:func:`read_table` of an optional table (``schema.OPTIONAL_TABLES``), or None when the folder has none."""
    try:
        table_path(data_dir, name)
    except DataError:
        return None
    return read_table(data_dir, name, columns=columns, filters=filters)


def read_rows_of(data_dir, name: str, person_ids, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows of contract table ``name`` belonging to ``person_ids``, with contract dtypes.

    For parquet the person filter is pushed down and text columns are read
    dictionary-encoded (decoded after filtering, so only the listed people's strings are
    decoded) and kept as categories. CSV tables are read whole.
    """
    ids = np.unique(np.asarray(person_ids, dtype=np.int64))
    path = table_path(data_dir, name)
    if path.suffix == ".csv":
        frame = read_table(data_dir, name, columns=columns)
        return frame.loc[frame["person_id"].isin(ids)].reset_index(drop=True)
    wanted = ids.tolist() if len(ids) else [int(np.iinfo(np.int64).min)]
    table = read_raw(path, columns=columns, filters=[("person_id", "in", wanted)], codes=True).unify_dictionaries()
    coded = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
    frame = coerce(table.drop_columns(coded), name, path)
    for col in coded:  # keep codes as categories (fast downstream); clean like the contract's text
        frame[col] = _clean_text_categories(table.column(col).to_pandas())
    return frame[table.column_names]


def _clean_text_categories(values: pd.Series) -> pd.Series:
    """Categorical text with stripped categories and empty text as null (as :func:`coerce`)."""
    cats = pd.Series(values.cat.categories).astype("string").str.strip()
    if cats.duplicated().any() or (cats == "").any() or cats.isna().any():
        out = values.astype("string").str.strip()
        return out.mask(out == "")
    return values.cat.rename_categories(cats.tolist())


def days(dates: pd.Series) -> np.ndarray:
    """Dates as int32 days since 1970-01-01 (NaT becomes INT32_MIN)."""
    values = dates.to_numpy(dtype="datetime64[D]")
    out = values.astype(np.int64)
    out[np.isnat(values)] = np.iinfo(np.int32).min
    return out.astype(np.int32)


_UNIT_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000, "D": 1}


def day_numbers(series: pd.Series, missing: int, dtype=np.int64) -> np.ndarray:
    """Dates as days since 1970-01-01 (``dtype``: int64, or int32 with an int32 ``missing``),
    nulls replaced by ``missing``.

    Datetime columns (as the readers return them) are converted in one integer pass; anything
    else goes through :func:`days`.
    """
    values = series.to_numpy() if hasattr(series, "to_numpy") else np.asarray(series)
    if values.dtype.kind == "M":
        unit = np.datetime_data(values.dtype)[0]
        if unit in _UNIT_PER_DAY:
            raw = values.view(np.int64)
            out = np.floor_divide(raw, _UNIT_PER_DAY[unit])
            out[raw == np.iinfo(np.int64).min] = missing  # NaT
            return out.astype(dtype, copy=False)
    out = days(series).astype(dtype)
    out[out == np.iinfo(np.int32).min] = missing
    return out


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


# --- One person_id range ----------------------------------------------------------

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


def parquet_files(path: Path) -> list[str]:
    """The parquet files of a table in the order :func:`riskcap.data.read.read_raw` concatenates them."""
    if path.is_file():
        return [str(path)]
    return list(pq.ParquetDataset(path).files)


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


def read_range(path: str | Path, part: PersonRange, columns: list[str] | None = None,
               codes: bool = False) -> tuple[pa.Table, np.ndarray]:
    """The rows of a table in ``part``, with their 0-based row numbers in the table.

    Parquet row groups whose statistics rule the range out are skipped; the rest are decoded
    in batches and filtered, so memory holds the partition's rows plus one batch. ``codes``:
    text columns with a small dictionary (:func:`_coded_text` of the first file) stay
    dictionary-encoded, as parquet stores them, instead of being decoded to text. A CSV table
    is parsed whole, block by block (:func:`csv_batches`), keeping the range's rows.
    """
    path = Path(path)
    if path.suffix == ".csv":
        return _csv_range(path, part, columns)
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
        raise cannot_read(path, exc) from exc
    table = pa.Table.from_batches([b.replace_schema_metadata(None) for b in batches], schema=schema)
    return table, (np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64))


def _csv_range(path: Path, part: PersonRange, columns: list[str] | None) -> tuple[pa.Table, np.ndarray]:
    """:func:`read_range` of a CSV table."""
    batches, labels, schema = [], [], None
    for start, batch in csv_batches(path, columns):
        schema = batch.schema if schema is None else schema
        mask = part.mask(csv_person_ids(batch))
        batches.append(batch.filter(pa.array(mask)))
        labels.append(start + np.flatnonzero(mask))
    if schema is None:  # no rows: the header's columns, as read_raw gives them
        return read_raw(path, columns), np.zeros(0, dtype=np.int64)
    return pa.Table.from_batches(batches, schema=schema), np.concatenate(labels)


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
