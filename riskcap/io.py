"""Reading the contract's tables and writing outputs atomically.

A table named ``persons`` is read from ``DIR/persons.parquet``, a partitioned parquet
dataset directory ``DIR/persons/``, or ``DIR/persons.csv`` (UTF-8), in that order.
Readers return pandas frames with the contract's dtypes; they do not validate values
(see :mod:`riskcap.validate`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskcap.errors import DataError
from riskcap.schema import ALL_TABLES, TABLES


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


@contextlib.contextmanager
def atomic_path(path: str | Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    The file gets ``mode`` if given, else the usual permissions under the process umask
    (temporary files start owner-only, which would otherwise carry over to outputs).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp_path, mode)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


#: Rows per parquet row group: pyarrow's default, which :func:`write_parquet` uses.
ROW_GROUP_ROWS = 1024 * 1024


class ParquetRowsWriter:
    """Write arrow tables to one parquet file as they come, with the bytes
    :func:`write_parquet` gives their concatenation (rows are buffered into whole
    row groups). The file appears, atomically, only when the ``with`` block exits cleanly,
    with file ``mode`` if given (as :func:`atomic_path`).
    """

    def __init__(self, path: str | Path, row_group_size: int = ROW_GROUP_ROWS, mode: int | None = None):
        self.path, self.row_group_size, self.mode = Path(path), int(row_group_size), mode
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "ParquetRowsWriter":
        new = [d for d in self.path.parents if not d.exists()]  # removed again if the run fails
        self._tmp = self._stack.enter_context(atomic_path(self.path, self.mode))
        self._new_dirs = new
        return self

    def write(self, table: pa.Table) -> None:
        """Append rows (every table must have the same schema)."""
        self._buffer.append(table.replace_schema_metadata(None))
        self._buffered += table.num_rows
        while self._buffered >= self.row_group_size:
            self._flush(self.row_group_size)

    def _flush(self, rows: int) -> None:
        table = pa.concat_tables(self._buffer).combine_chunks()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema, compression="zstd")
        self._writer.write_table(table.slice(0, rows))
        self._buffer, self._buffered = [table.slice(rows)], table.num_rows - rows

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None and (self._buffered or self._writer is None):
                if not self._buffer:
                    raise ValueError(f"{self.path}: no rows and no schema to write")
                self._flush(self._buffered)
        finally:
            if self._writer is not None:
                self._writer.close()
            self._stack.__exit__(*exc)
            if exc[0] is not None:
                for folder in self._new_dirs:
                    with contextlib.suppress(OSError):  # not empty: someone else's files
                        folder.rmdir()


def write_parquet(df: pd.DataFrame | pa.Table, path: str | Path, row_group_size: int | None = None,
                  mode: int | None = None) -> Path:
    """Write a frame to parquet atomically and deterministically (no pandas index)."""
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(None)
    with atomic_path(path, mode) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)
    return Path(path)


def write_csv(df: pd.DataFrame, path: str | Path, mode: int | None = None) -> Path:
    """Write a frame to CSV atomically (UTF-8, no index), no text a spreadsheet would run as
    a formula (:func:`riskcap.data.write.csv_frame`)."""
    from riskcap.data.write import csv_frame

    with atomic_path(path, mode) as tmp:
        csv_frame(df).to_csv(tmp, index=False, lineterminator="\n")
    return Path(path)


def write_json(obj, path: str | Path, mode: int | None = None) -> Path:
    """Write JSON atomically with sorted keys, so equal content gives equal bytes."""
    with atomic_path(path, mode) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
    return Path(path)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.date().isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def table_names() -> list[str]:
    """Names of the contract's tables, in pipeline order."""
    return list(TABLES)


# --- Reading ---------------------------------------------------------------------

_ARROW_KIND = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.date32(), "bool": pa.bool_()}


def read_raw(path: Path, columns: list[str] | None = None, filters=None, text: list[str] | None = None) -> pa.Table:
    """Read a parquet file/dataset or UTF-8 CSV into an arrow table, without coercion.

    CSV columns of the contract (or ``text``) are read as text (so :func:`coerce` can count and
    show every bad value instead of failing on the first). Raises DataError naming the file when
    it is unreadable, truncated or not UTF-8 (with the line of the first invalid byte).
    """
    path = Path(path)
    try:
        if path.suffix == ".csv":
            import pyarrow.csv as pacsv

            spec = ALL_TABLES.get(path.stem)
            text = text if text is not None else spec.names if spec else []
            convert = pacsv.ConvertOptions(strings_can_be_null=True, include_columns=columns,
                                           column_types={c: pa.string() for c in text})
            table = pacsv.read_csv(path, convert_options=convert)
            if any(pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type) for f in table.schema):
                raise DataError(_not_utf8_message(path))
            return table
        return pq.read_table(path, columns=columns, filters=filters)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, UnicodeDecodeError) as exc:
        raise cannot_read(path, exc) from exc


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

    Datetime columns (as the readers return them) are converted in one integer pass, arrow
    ``date32`` columns (``riskcap.features.read_feature_tables``) by a copy of their integers; anything
    else goes through :func:`days`.
    """
    kind = getattr(series, "dtype", None)
    if isinstance(kind, pd.ArrowDtype) and pa.types.is_date32(kind.pyarrow_dtype):
        return _date32_days(pa.chunked_array(series.array._pa_array), missing, dtype)
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


def _date32_days(arr: pa.ChunkedArray, missing: int, dtype=np.int64) -> np.ndarray:
    """An arrow date32 column as days (its stored integers, as ``dtype``), nulls as ``missing``."""
    out = np.empty(len(arr), dtype=dtype)
    fill = np.array(missing, dtype=dtype)
    pos = 0
    for chunk in arr.chunks:
        n = len(chunk)
        part = out[pos:pos + n]
        part[:] = np.frombuffer(chunk.buffers()[1], dtype=np.int32, count=n, offset=chunk.offset * 4)
        if chunk.null_count:
            bits = np.frombuffer(chunk.buffers()[0], dtype=np.uint8)
            valid = np.unpackbits(bits, count=chunk.offset + n, bitorder="little")[chunk.offset:]
            np.copyto(part, fill, where=valid == 0)
        pos += n
    return out
