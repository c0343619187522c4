"""What every file riskcap writes for people to open must respect (``docs/security.md``).

**Owner-only.** A file holding person-level rows is created readable by its owner only
(:data:`OWNER_ONLY`, from a new ``0600`` file: :func:`atomic_path`), and the folders made for
such files :data:`OWNER_ONLY_DIR` (:func:`private_dir`).

**No formulas.** Text a spreadsheet would run as a formula gets a ``'`` in front, in CSV files
and workbooks alike (:func:`to_cell`; :func:`from_cell` reads riskcap's own CSVs back
exactly); a carriage return inside CSV text is written as a line feed, which is quoted.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

#: Mode of every file holding person-level rows: readable and writable by its owner only.
OWNER_ONLY = 0o600
#: Mode of the folders riskcap creates for such files.
OWNER_ONLY_DIR = 0o700

#: Characters that make a spreadsheet read a cell as a formula: = + - @ and their full-width
#: (U+FF1D, U+FF0B, U+FF0D, U+FF20) and small (U+FE66, U+FE62, U+FE63, U+FE6B) forms, and
#: the minus sign U+2212.
FORMULA_STARTS = "=+-@\uff1d\uff0b\uff0d\uff20\ufe66\ufe62\ufe63\ufe6b\u2212"
#: Text that starts a formula: a tab or carriage return first, or a formula character after
#: any blanks, line breaks, control or invisible (zero-width, byte-order mark) characters.
_FORMULA = re.compile("[\t\r]|[\\s\x00-\x1f\x7f\u200b-\u200f\u2060\ufeff]*[" + re.escape(FORMULA_STARTS) + "]")
#: A plain decimal number, as a spreadsheet reads one (ASCII digits only).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: What marks a cell as text to a spreadsheet.
TEXT_MARK = "'"


def is_formula(text: str) -> bool:
    """Whether a spreadsheet would run ``text`` as a formula."""
    return bool(_FORMULA.match(text)) and not _NUMBER.fullmatch(text)


def to_cell(text: str) -> str:
    """``text`` as a spreadsheet cell no spreadsheet runs: ``'`` in front of a formula, also
    of one behind ``'`` already (so :func:`from_cell` gives ``text`` back)."""
    return TEXT_MARK + text if is_formula(text.lstrip(TEXT_MARK)) else text


def from_cell(text: str) -> str:
    """The text :func:`to_cell` was given (for reading riskcap's own CSVs back)."""
    return text[len(TEXT_MARK):] if text.startswith(TEXT_MARK) and is_formula(text.lstrip(TEXT_MARK)) else text


def _csv_text(text: str) -> str:
    return to_cell(text).replace("\r\n", "\n").replace("\r", "\n")


def _is_text_column(values: pd.Series) -> bool:
    return (pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype)
            or isinstance(values.dtype, pd.CategoricalDtype))


def _rewrite(values: pd.Series, needs, rewrite) -> pd.Series | None:
    """``values`` with ``rewrite`` applied to the text values ``needs`` picks (vectorised over
    str methods), or None when there are none."""
    values = values.astype(object) if isinstance(values.dtype, pd.CategoricalDtype) else values
    is_text = values.map(lambda v: isinstance(v, str), na_action="ignore").fillna(False).astype(bool)
    if not is_text.any():
        return None
    text = values[is_text]
    picked = needs(text)
    if not picked.any():
        return None
    return values.where(~is_text.index.isin(text.index[picked]), text[picked].map(rewrite))


def _formulas(text: pd.Series) -> pd.Series:
    """:func:`is_formula` of the text behind any ``'`` marks, over a series."""
    core = text.str.lstrip(TEXT_MARK)
    return core.str.match(_FORMULA) & ~core.str.fullmatch(_NUMBER)


def _csv_needs(text: pd.Series) -> pd.Series:
    return _formulas(text) | text.str.contains("\r", regex=False)


def _own_needs(text: pd.Series) -> pd.Series:
    return text.str.startswith(TEXT_MARK) & _formulas(text)


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text value and column name as a CSV cell no spreadsheet runs
    (numbers, dates and missing values untouched; the caller's frame is not changed)."""
    renamed = {c: _csv_text(c) for c in frame.columns if isinstance(c, str) and _csv_text(c) != c}
    changed = {}
    for name in frame.columns:
        if _is_text_column(frame[name]):
            rewritten = _rewrite(frame[name], _csv_needs, _csv_text)
            if rewritten is not None:
                changed[name] = rewritten
    out = frame.assign(**changed) if changed else frame
    return out.rename(columns=renamed) if renamed else out


def frame_from_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame read from a CSV riskcap wrote, with its text as it was before :func:`csv_frame`."""
    out = frame.rename(columns={c: from_cell(c) for c in frame.columns if isinstance(c, str)})
    for name in out.columns:
        if _is_text_column(out[name]):
            rewritten = _rewrite(out[name], _own_needs, from_cell)
            if rewritten is not None:
                out[name] = rewritten
    return out


def private_dir(path: str | Path) -> Path:
    """Create folder ``path`` (and parents) owner-only (:data:`OWNER_ONLY_DIR`); a folder that
    already exists is used as it is (never re-permissioned); a symbolic link or a file in the
    way is refused (:class:`~riskcap.errors.UnusablePath`)."""
    from riskcap.errors import UnusablePath

    path = Path(path)
    if path.is_symlink():
        raise UnusablePath(f"{path}: is a symbolic link; riskcap does not write patient-level files through links "
                           "(remove it, or choose another --out)")
    if path.exists():
        if not path.is_dir():
            raise UnusablePath(f"{path}: exists and is not a folder; choose another --out")
        return path
    path.mkdir(parents=True, mode=OWNER_ONLY_DIR)
    os.chmod(path, OWNER_ONLY_DIR)  # a umask could only have removed the owner's bits: restore exactly 0700
    return path


# --- Writing files atomically -------------------------------------------------------

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
    a formula (:func:`csv_frame`)."""
    with atomic_path(path, mode) as tmp:
        csv_frame(df).to_csv(tmp, index=False, lineterminator="\n")
    return Path(path)


def write_json(obj, path: str | Path, mode: int | None = None) -> Path:
    """Write JSON atomically with sorted keys, so equal content gives equal bytes."""
    return write_file(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n", path, mode)


def write_file(data: bytes | str, path: str | Path, mode: int | None = None) -> Path:
    """Write bytes (text as UTF-8) atomically, with file ``mode`` if given (:func:`atomic_path`)."""
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
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


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    with open(path, "rb") as fh:
        return sha256_of(fh)


def sha256_of(fh, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of what is left in an open binary file, read a chunk at a time."""
    digest = hashlib.sha256()
    while block := fh.read(chunk):
        digest.update(block)
    return digest.hexdigest()
