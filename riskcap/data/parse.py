"""Problems and parsing: the records every check produces, and a table parsed to contract types.

A :class:`Problem` names the file, column, rule, row count and up to five examples with
their file row numbers. :func:`parse_table` parses a raw arrow table to the contract's
types, counting every value that does not parse instead of stopping at the first; the
file-level verdicts (missing column, empty table, a column where no value parses) are
:func:`_schema_problem` and :func:`column_verdict`, shared with the streamed scan
(:func:`riskcap.data.load.scan_table`).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pyarrow as pa

from riskcap.data.read import arrow_to_pandas, parse_series
from riskcap.schema import ALL_TABLES

ON_INVALID = ("reject", "quarantine")
MAX_EXAMPLES = 5

#: Defaults for optional columns absent from a file, so every stage sees every column.
OPTIONAL_DEFAULTS = {"quantity": 1}


# --- Problems ------------------------------------------------------------------------

@dataclass
class Problem:
    """One rule broken in one table: where, what, how many rows and a few examples.

    ``level`` is "file" (the table cannot be used at all; always raises) or "row" (the
    rows in ``row_indices``, positions in the parsed frame, can be quarantined).
    """

    table: str
    file: str
    column: str
    rule: str
    message: str
    count: int = 0
    examples: list[str] = field(default_factory=list)
    row_indices: np.ndarray | None = None
    level: str = "row"
    #: Row labels (0-based) of the examples, so partitions' problems merge in file order.
    example_rows: list = field(default_factory=list)
    #: Position among the checks of its table: problems of a table are listed in this order.
    order: tuple = ()

    @property
    def key(self) -> tuple:
        """What makes two partitions' problems the same problem."""
        return (self.table, self.file, self.column, self.rule, self.message, self.level)

    @property
    def reason(self) -> str:
        """Short reason written beside each rejected row."""
        return f"{self.column}: {self.message}" if self.column else self.message

    def __str__(self) -> str:
        where = f"{self.file}: column '{self.column}'" if self.column else f"{self.file}"
        if self.level == "file":
            text = f"{where}: {self.message}"
            return f"{text}; e.g. {'; '.join(self.examples)}" if self.examples else text
        return f"{where}: {self.message} - {self.count} row(s), e.g. {'; '.join(self.examples)}"

    def as_dict(self) -> dict:
        return {"table": self.table, "file": self.file, "column": self.column, "rule": self.rule,
                "level": self.level, "message": self.message, "count": int(self.count),
                "examples": list(self.examples)}


def _fmt(value) -> str:
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return "null"
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, str)):
        return repr(value)
    return str(value)


def _examples(df: pd.DataFrame, positions: np.ndarray, columns: list[str], values: pd.Series | None,
              named: bool = False) -> list[str]:
    out = []
    index = df.index
    for pos in positions[:MAX_EXAMPLES]:
        label = index[pos]
        row = f"row {label + 1}" if isinstance(label, (int, np.integer)) else f"row {label}"
        if values is not None:
            out.append(f"{row}: {_fmt(values.iloc[pos])}")
        elif len(columns) == 1 and not named:
            out.append(f"{row}: {_fmt(df[columns[0]].iloc[pos])}")
        else:
            out.append(f"{row}: " + ", ".join(f"{c}={_fmt(df[c].iloc[pos])}" for c in columns))
    return out


def row_problem(df: pd.DataFrame, mask, table: str, file: str, columns: str | list[str], rule: str,
                message: str, values: pd.Series | None = None, column: str | None = None) -> Problem | None:
    """A row-level Problem for the rows where ``mask`` is true, or None when there are none.

    ``columns`` are shown in the examples; the first names the problem unless ``column`` is
    given ("" for a problem of the whole row, whose examples then show ``name=value``).
    ``values`` overrides the example values (e.g. the raw text that failed to parse).
    """
    mask = _true(mask)
    positions = np.flatnonzero(mask)
    if len(positions) == 0:
        return None
    columns = [columns] if isinstance(columns, str) else list(columns)
    return Problem(table, file, columns[0] if column is None else column, rule, message,
                   count=len(positions), examples=_examples(df, positions, columns, values, named=column == ""),
                   row_indices=positions, example_rows=list(df.index[positions[:MAX_EXAMPLES]]))


def _true(mask) -> np.ndarray:
    """A boolean numpy array from a mask that may hold NA (NA counts as false)."""
    if isinstance(mask, pd.Series):
        return mask.to_numpy(dtype=bool, na_value=False)
    return np.asarray(mask, dtype=bool)


def _file_problem(table: str, file, message: str, column: str = "", rule: str = "file",
                  examples: list[str] | None = None, order: tuple = (0, -1), example_rows=None) -> Problem:
    return Problem(table, str(file), column, rule, message, examples=examples or [], level="file", order=order,
                   example_rows=list(example_rows or []))


def _ordered(problems: list[Problem | None], stage: int) -> list[Problem]:
    """The problems that occurred, each stamped with its position in the fixed check sequence."""
    out = []
    for i, p in enumerate(problems):
        if p is not None:
            if not p.order:
                p.order = (stage, i)
            out.append(p)
    return out


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


# --- Parsing -----------------------------------------------------------------------

def parse_table(raw: pa.Table, name: str, file: str | Path, index: np.ndarray | None = None,
                scan: TableScan | None = None) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Parse an arrow table to the contract's types, collecting problems instead of raising.

    Returns (frame, problems); frame is None when a file-level problem makes the table
    unusable (missing required column, no rows, a column where no value parses, a required
    column that is entirely null). Absent optional columns are added (``quantity`` = 1,
    others null). Values that fail to parse become null and are reported as row problems.

    ``index``: the rows' labels (0-based file row numbers; default 0..n-1). ``scan``: for one
    partition of a table, the whole table's file-level facts
    (:class:`TableScan`): those problems are the scan's to report, and
    every problem found here is a row problem.
    """
    spec = ALL_TABLES[name]
    file = str(file)
    if scan is None:
        schema_problem = _schema_problem(raw.column_names, raw.num_rows, name, file)
        if schema_problem is not None:
            return None, [schema_problem]
    elif scan.schema_failed:
        return None, []
    skip = scan.failed_columns if scan is not None else frozenset()
    df, parsed = _to_pandas(raw, [c.name for c in spec.columns if c.kind == "str" and c.name not in skip])
    if index is not None:
        df.index = pd.Index(index, copy=False)  # no copy: callers hand the labels over (read_range makes them)
        for values in parsed.values():
            values.index = df.index
    problems: list[Problem] = []
    unusable = scan is not None and scan.unusable
    for j, col in enumerate(spec.columns):
        if col.name not in df.columns:
            df[col.name] = _default_column(col, df.index)
            continue
        if col.name in skip:
            continue
        raw_values = df[col.name]
        values, bad = (parsed[col.name], np.zeros(len(df), dtype=bool)) if col.name in parsed else \
            parse_column(raw_values, col.kind)
        verdict = None
        if scan is None:
            present, null = raw_values.notna().to_numpy(), values.isna().to_numpy() & ~bad
            verdict = column_verdict(name, file, j, len(df), int(present.sum()), int(bad.sum()), int(null.sum()),
                                     lambda: _column_examples(df, bad, col.name, raw_values))
            if verdict is not None:
                problems.append(verdict)
                unusable = True
        if verdict is None or verdict.rule != "wrong_type":
            if bad.any():
                problems.append(row_problem(df, bad, name, file, col.name, "wrong_type",
                                            f"not a valid {_KIND_TEXT[col.kind]}", values=raw_values))
                problems[-1].order = (0, j, 0)
            if not col.nullable and verdict is None:
                p = row_problem(df, values.isna().to_numpy() & ~bad, name, file, col.name, "missing_value",
                                "missing value")
                if p is not None:
                    p.order = (0, j, 1)
                    problems.append(p)
        if verdict is None:
            df[col.name] = values
    return (None if unusable else df), problems


def parse_column(s: pd.Series, kind: str) -> tuple[pd.Series, np.ndarray]:
    """:func:`riskcap.data.read.parse_series` (its reference), with a fast path for float64 columns."""
    if kind == "float" and isinstance(s.dtype, np.dtype) and s.dtype == np.float64:
        bad = np.isinf(s.to_numpy())
        return (s.mask(bad) if bad.any() else s.copy(deep=False)), bad
    return parse_series(s, kind)


def _to_pandas(raw: pa.Table, text: list[str]) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """(``arrow_to_pandas(raw)``, parsed text columns): the columns named in ``text`` that are
    plain arrow text already parsed (no value to strip or blank: :func:`text_is_clean`) go
    straight from arrow to the ``string`` dtype :func:`riskcap.data.read.parse_series` gives, skipping
    its pass over every value, and dictionary-encoded ones whose dictionaries are clean become
    categoricals (:func:`_sorted_categorical`; each distinct value judged once); they are also
    the frame's columns, as parse_table replaces them. Other dictionary columns are decoded and
    parsed as text."""
    names = raw.column_names
    fast = {}
    if len(set(names)) == len(names):
        for name in text:
            if name in names:
                column = raw.column(name)
                if pa.types.is_dictionary(column.type):
                    if all(text_is_clean(chunk.dictionary) for chunk in column.chunks):
                        fast[name] = pd.Series(_sorted_categorical(column), name=name, copy=False)
                elif (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) \
                        and text_is_clean(column):
                    fast[name] = pd.Series(pd.arrays.ArrowStringArray(column), name=name, copy=False)
    if not fast:
        return arrow_to_pandas(raw), {}
    rest = raw.drop_columns(list(fast))
    df = arrow_to_pandas(rest) if rest.num_columns else pd.DataFrame(index=pd.RangeIndex(raw.num_rows))
    for position, name in enumerate(names):
        if name in fast:
            df.insert(position, name, fast[name])
    return df, {name: df[name] for name in fast}


def _sorted_categorical(column: pa.ChunkedArray) -> pd.Categorical:
    """A dictionary-encoded text column as a categorical with its categories in text order, so
    that sorting and comparing it behave as they do on the text."""
    values = column.to_pandas().array
    return values.reorder_categories(sorted(values.categories))


def text_is_clean(column: pa.Array | pa.ChunkedArray) -> bool:
    """True when no non-null value of an arrow text column is empty or starts or ends with a
    byte that may be whitespace (ASCII control or space, DEL, any non-ASCII byte), so
    stripping and blanking (:func:`riskcap.data.read.parse_series`) would change nothing."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    for chunk in chunks:
        n = len(chunk)
        if n == chunk.null_count:
            continue
        validity, offsets, data = chunk.buffers()[:3]
        wide = pa.types.is_large_string(chunk.type)
        offsets = np.frombuffer(offsets, dtype=np.int64 if wide else np.int32, count=chunk.offset + n + 1)
        offsets = offsets[chunk.offset:]
        data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
        valid = np.frombuffer(validity, dtype=np.uint8) if chunk.null_count else np.zeros(0, dtype=np.uint8)
        if not _text_clean_kernel(offsets, data, valid, chunk.offset):
            return False
    return True


@numba.njit(cache=True)
def _text_clean_kernel(offsets, data, valid, bit):  # pragma: no cover - compiled
    """:func:`text_is_clean` of one chunk: ``valid`` is its validity bitmap from bit ``bit``
    (arrow's, least significant bit first), or empty when it has no nulls."""
    check_valid = valid.shape[0] > 0
    for i in range(offsets.shape[0] - 1):
        if check_valid and not (valid[(bit + i) >> 3] >> ((bit + i) & 7)) & 1:
            continue
        a, b = offsets[i], offsets[i + 1]
        if b <= a:
            return False
        first, last = data[a], data[b - 1]
        if first <= 0x20 or first >= 0x7F or last <= 0x20 or last >= 0x7F:
            return False
    return True


def _schema_problem(names: list[str], rows: int, name: str, file: str) -> Problem | None:
    """The file-level problem of a table's columns and size (missing required columns, no rows)."""
    missing = [c for c in ALL_TABLES[name].required if c not in names]
    if missing:
        return _file_problem(
            name, file, f"missing required column(s) {', '.join(missing)}; the file has: "
            f"{', '.join(names) or 'no columns'}", column=", ".join(missing), rule="missing_column")
    if rows == 0 and not ALL_TABLES[name].optional:  # an optional table may list nothing (no changes)
        return _file_problem(name, file, "empty table: no rows", rule="empty_table")
    return None


def column_verdict(name: str, file: str, position: int, rows: int, present: int, bad: int, null: int,
                   examples) -> Problem | None:
    """The file-level problem of one whole column, from its counts, or None.

    ``present``: non-null raw values; ``bad``: those that do not parse; ``null``: rows null
    after parsing that were not bad; ``examples()`` gives (texts, rows) of the first bad values.
    """
    col = ALL_TABLES[name].columns[position]
    if bad and bad == present:
        texts, rows_ = examples()
        return _file_problem(name, file, f"wrong type: no value is a valid {_KIND_TEXT[col.kind]}", column=col.name,
                             rule="wrong_type", examples=texts, order=(0, position, 0), example_rows=rows_)
    if not col.nullable and rows and null == rows:
        return _file_problem(name, file, "every value is empty but the column is required",
                             column=col.name, rule="all_null", order=(0, position, 1))
    return None


def _column_examples(df: pd.DataFrame, bad: np.ndarray, column: str, raw_values: pd.Series) -> tuple[list, list]:
    positions = np.flatnonzero(bad)
    return _examples(df, positions, [column], raw_values), list(df.index[positions[:MAX_EXAMPLES]])


_KIND_TEXT = {"int": "whole number", "float": "number", "date": "date (YYYY-MM-DD)",
              "bool": "true/false", "str": "text"}


def _default_column(col, index: pd.Index) -> pd.Series:
    if col.name in OPTIONAL_DEFAULTS:
        return pd.Series(OPTIONAL_DEFAULTS[col.name], index=index, dtype="int64")
    dtype = {"str": "string", "int": "Int64", "float": "float64", "date": "datetime64[s]", "bool": "boolean"}[col.kind]
    return pd.Series(None, index=index, dtype=dtype)
