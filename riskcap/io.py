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

from riskcap.schema import TABLES


class DataError(Exception):
    """Bad input data: the message names the file, column, row count and examples."""


@dataclass
class Tables:
    """The four contract tables of one population (or one partition of it)."""

    practices: pd.DataFrame
    persons: pd.DataFrame
    conditions: pd.DataFrame
    activity: pd.DataFrame


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
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_parquet(df: pd.DataFrame | pa.Table, path: str | Path, row_group_size: int | None = None) -> Path:
    """Write a frame to parquet atomically and deterministically (no pandas index)."""
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(None)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)
    return Path(path)


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a frame to CSV atomically (UTF-8, no index)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    return Path(path)


def write_json(obj, path: str | Path) -> Path:
    """Write JSON atomically with sorted keys, so equal content gives equal bytes."""
    with atomic_path(path) as tmp:
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


def read_raw(path: Path, columns: list[str] | None = None, filters=None) -> pa.Table:
    """Read a parquet file/dataset or UTF-8 CSV into an arrow table, without coercion.

    Raises DataError naming the file when it is unreadable, truncated or not UTF-8.
    """
    try:
        if path.suffix == ".csv":
            import pyarrow.csv as pacsv

            convert = pacsv.ConvertOptions(strings_can_be_null=True, include_columns=columns)
            return pacsv.read_csv(path, convert_options=convert)
        return pq.read_table(path, columns=columns, filters=filters)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = "is it UTF-8 CSV?" if path.suffix == ".csv" else "is the file truncated or not parquet?"
        raise DataError(f"{path}: cannot read ({msg}); {hint}") from exc


def coerce(table: pa.Table, name: str, path: Path | str = "") -> pd.DataFrame:
    """Cast an arrow table's contract columns to contract types and return a pandas frame.

    Dates become ``datetime64[s]``; bools accept true/false/1/0/yes/no. Extra columns pass
    through unchanged. Raises DataError naming column, count and examples of bad values.
    """
    spec = TABLES[name]
    df = table.to_pandas()
    for col in spec.columns:
        if col.name not in df.columns:
            continue
        df[col.name] = _coerce_series(df[col.name], col.kind, col.name, path)
    return df


def _coerce_series(s: pd.Series, kind: str, col: str, path) -> pd.Series:
    original = s
    if kind == "str":
        out = s.astype("string").str.strip()
        bad = pd.Series(False, index=s.index)
    elif kind == "int":
        num = pd.to_numeric(s, errors="coerce")
        bad = (num.isna() & s.notna()) | (num.notna() & (num != np.floor(num)))
        out = num.astype("Int64") if num.isna().any() else num.astype("int64")
    elif kind == "float":
        out = pd.to_numeric(s, errors="coerce").astype("float64")
        bad = out.isna() & s.notna()
    elif kind == "date":
        out = pd.to_datetime(s, errors="coerce", format="ISO8601" if s.dtype == object or str(s.dtype).startswith("str") else None)
        out = out.astype("datetime64[s]")
        bad = out.isna() & s.notna()
    elif kind == "bool":
        if s.dtype == bool:
            return s
        text = s.astype("string").str.strip().str.lower()
        mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False,
                   "t": True, "f": False, "y": True, "n": False}
        out = text.map(mapping)
        bad = out.isna() & s.notna()
        out = out.astype("boolean") if out.isna().any() else out.astype(bool)
    else:  # pragma: no cover - schema error
        raise ValueError(kind)
    if bad.any():
        examples = ", ".join(repr(v) for v in original[bad].head(5).tolist())
        raise DataError(
            f"{path}: column '{col}': {int(bad.sum())} row(s) are not a valid {kind}; examples: {examples}"
        )
    return out


def read_table(data_dir: str | Path, name: str, columns: list[str] | None = None, filters=None) -> pd.DataFrame:
    """Read contract table ``name`` from ``data_dir`` with contract dtypes (no value checks)."""
    path = table_path(data_dir, name)
    return coerce(read_raw(path, columns=columns, filters=filters), name, path)


def days(dates: pd.Series) -> np.ndarray:
    """Dates as int32 days since 1970-01-01 (NaT becomes INT32_MIN)."""
    values = dates.to_numpy(dtype="datetime64[D]")
    out = values.astype(np.int64)
    out[np.isnat(values)] = np.iinfo(np.int32).min
    return out.astype(np.int32)
