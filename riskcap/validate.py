"""Validating the contract's tables: every problem found, rejected or quarantined, reconciled.

:func:`load_tables` is the one way commands read a data folder. It reads the four tables
(parquet, parquet dataset or UTF-8 CSV; see :mod:`riskcap.io`), parses them to the
contract's types, runs every check and collects *all* problems (not just the first) as
:class:`Problem` records naming the file, column, rule, row count and up to five examples.

- ``on_invalid="reject"`` (default): any problem raises :class:`~riskcap.errors.LoadRejected`
  listing every problem, one per line.
- ``on_invalid="quarantine"``: rows with row-level problems are moved, with a ``reason``
  column, to ``rejects_dir/<table>_rejects.parquet`` (and ``.csv``); rows of quarantined
  practices and persons follow them ("practice quarantined", "person quarantined"). File-level
  problems (missing or unreadable file, missing column, empty table, a column where no value
  parses) always raise.

Nothing is dropped silently: :class:`LoadSummary` reconciles, per table,
``rows_in = rows_used + rows_quarantined``.

The row checks (:func:`check_practices`, :func:`check_persons`, :func:`check_conditions`,
:func:`check_activity`) are vectorised functions of one frame. :func:`check_tables` runs every
check on whatever rows it is given: the whole tables (:func:`validate_data`) or one
``person_id`` range of them (:func:`riskcap.partitions.load_partition`, with the rows' file
row numbers as index, so examples show the same row numbers). :meth:`LoadSummary.combine`
adds the partitions' summaries up into the whole-table one.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numba
import numpy as np
import pandas as pd
import pyarrow as pa

from riskcap.data.write import OWNER_ONLY, private_dir
from riskcap.errors import DataError, LoadRejected
from riskcap.io import Tables, arrow_to_pandas, parse_series, read_raw, table_path, write_csv, write_parquet
from riskcap.schema import (ALL_TABLES, CONDITION_CODES, MAX_COST_ENV, PRACTICE_CHANGE_KINDS, SETTING_CODES, SEXES,
                            TABLES, max_cost_gbp)

if TYPE_CHECKING:
    from riskcap.partitions import TableScan

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
    (:class:`~riskcap.partitions.TableScan`): those problems are the scan's to report, and
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
    """:func:`riskcap.io.parse_series` (its reference), with a fast path for float64 columns."""
    if kind == "float" and isinstance(s.dtype, np.dtype) and s.dtype == np.float64:
        bad = np.isinf(s.to_numpy())
        return (s.mask(bad) if bad.any() else s.copy(deep=False)), bad
    return parse_series(s, kind)


def _to_pandas(raw: pa.Table, text: list[str]) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """(``arrow_to_pandas(raw)``, parsed text columns): the columns named in ``text`` that are
    plain arrow text already parsed (no value to strip or blank: :func:`text_is_clean`) go
    straight from arrow to the ``string`` dtype :func:`riskcap.io.parse_series` gives, skipping
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
    stripping and blanking (:func:`riskcap.io.parse_series`) would change nothing."""
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


# --- Vectorised rules ----------------------------------------------------------------

_NHS_WEIGHTS = np.arange(10, 1, -1)


def nhs_number_checks(numbers: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised NHS number checks: (not ten digits, fails modulus 11); nulls pass both.

    Same rule as :func:`riskcap.schema.nhs_number_valid`, on whole columns.
    """
    text = numbers.astype("string")
    present = text.notna().to_numpy()
    ten_digits = text.str.fullmatch(r"[0-9]{10}").to_numpy(dtype=bool, na_value=False)
    bad_format = present & ~ten_digits
    bad_check = np.zeros(len(text), dtype=bool)
    if ten_digits.any():
        raw = text[ten_digits].to_numpy(dtype=object).astype("S10")
        digits = raw.view(np.uint8).reshape(-1, 10).astype(np.int64) - ord("0")
        check = 11 - (digits[:, :9] @ _NHS_WEIGHTS) % 11
        check[check == 11] = 0
        bad_check[ten_digits] = (check == 10) | (check != digits[:, 9])
    return bad_format, bad_check


def _as_of(as_of) -> pd.Timestamp:
    return pd.Timestamp(dt.date.today() if as_of is None else as_of).normalize()


def _future(df, cols, name, file, as_of: pd.Timestamp) -> list[Problem]:
    out = []
    for c in cols:
        out.append(row_problem(df, after(df[c], as_of), name, file, c, "future_date",
                               f"date after the as-of date {as_of.date().isoformat()}"))
    return out


def after(dates: pd.Series, as_of: pd.Timestamp) -> np.ndarray | pd.Series:
    """``dates > as_of`` (missing dates are not after it); a ``datetime64[s]`` column is compared
    as its integers (NaT is the smallest int64, so never after), without pandas' NaT masking."""
    if isinstance(dates.dtype, np.dtype) and dates.dtype == np.dtype("datetime64[s]") and as_of.tz is None:
        return dates.to_numpy().view(np.int64) > np.datetime64(as_of.to_datetime64(), "s").astype(np.int64)
    return dates > as_of


def _before(df, later: str, earlier: str, name, file, rule: str) -> Problem | None:
    return row_problem(df, df[later] < df[earlier], name, file, [later, earlier], rule,
                       f"{later} is before {earlier}")


def _not_in(df, col: str, allowed, name, file, rule: str, message: str) -> Problem | None:
    values = df[col]
    return row_problem(df, values.notna() & ~values.isin(list(allowed)), name, file, col, rule, message)


def _duplicates(df, cols: list[str], name, file, rule: str, message: str) -> Problem | None:
    keyed = df[cols]
    return row_problem(df, keyed.notna().all(axis=1) & keyed.duplicated(keep=False), name, file, cols, rule, message)


def check_practices(df: pd.DataFrame, file: str, as_of=None) -> list[Problem]:
    """Row checks of a parsed practices frame; the optional contract-v2 columns ``opened_on``
    (parsed to dates in ``df``, none after the as-of date) and ``pcn_code`` (a safe code) too."""
    name = "practices"
    problems = [
        _duplicates(df, ["practice_code"], name, file, "duplicate_key", "duplicate practice_code"),
        row_problem(df, df["list_size"] < 0, name, file, "list_size", "negative", "negative list size"),
        row_problem(df, df["need_index"] <= 0, name, file, "need_index", "not_positive", "need index must be > 0"),
    ]
    if "opened_on" in df.columns:
        raw_values = df["opened_on"]
        df["opened_on"], bad = parse_column(raw_values, "date")
        problems.append(row_problem(df, bad, name, file, "opened_on", "wrong_type", f"not a valid {_KIND_TEXT['date']}",
                                    values=raw_values))
        problems += _future(df, ["opened_on"], name, file, _as_of(as_of))
    if "pcn_code" in df.columns:
        from riskcap.names import ALLOWED, is_safe_name  # noqa: PLC0415

        codes = df["pcn_code"]
        problems.append(row_problem(df, codes.notna().to_numpy() & ~codes.map(is_safe_name, na_action="ignore")
                                    .fillna(True).to_numpy(dtype=bool), name, file, "pcn_code", "unsafe_code",
                                    f"pcn_code must be {ALLOWED}"))
    return _ordered(problems, 1)


def check_persons(df: pd.DataFrame, file: str, as_of=None, practice_codes=None,
                  practices_file: str = "practices") -> list[Problem]:
    """Row checks of a parsed persons frame.

    ``practice_codes``: the codes in the practices table (None skips that check).
    """
    name = "persons"
    as_of = _as_of(as_of)
    bad_format, bad_check = nhs_number_checks(df["nhs_number"])
    problems = [
        _duplicates(df, ["person_id"], name, file, "duplicate_key", "duplicate person_id"),
        row_problem(df, bad_format, name, file, "nhs_number", "nhs_number_format",
                    "NHS number is not 10 digits (no spaces)"),
        row_problem(df, bad_check, name, file, "nhs_number", "nhs_number_mod11",
                    "NHS number fails the modulus-11 check"),
        _not_in(df, "sex", SEXES, name, file, "unknown_code", f"sex must be one of {', '.join(SEXES)}"),
        row_problem(df, (df["imd_decile"] < 1) | (df["imd_decile"] > 10), name, file, "imd_decile",
                    "out_of_range", "IMD decile must be 1 to 10"),
        *_future(df, ["birth_date", "registered_from", "died_on"], name, file, as_of),
        _before(df, "registered_from", "birth_date", name, file, "date_order"),
        _before(df, "registered_to", "registered_from", name, file, "date_order"),
        _before(df, "died_on", "birth_date", name, file, "date_order"),
    ]
    if practice_codes is not None:
        problems.append(_not_in(df, "practice_code", practice_codes, name, file, "unknown_key",
                                f"practice_code not in {practices_file}"))
    return _ordered(problems, 1)


@dataclass
class PersonIndex:
    """Sorted person ids with their birth dates, for vectorised look-ups from event tables."""

    ids: np.ndarray  # int64, sorted, unique
    birth: np.ndarray  # datetime64[s], aligned with ids

    @classmethod
    def from_persons(cls, persons: pd.DataFrame) -> "PersonIndex":
        keep = persons["person_id"].notna().to_numpy()
        ids = persons["person_id"].to_numpy()[keep].astype(np.int64)
        birth = persons["birth_date"].to_numpy(dtype="datetime64[s]")[keep]
        order = np.argsort(ids, kind="stable")
        ids, birth = ids[order], birth[order]
        first = np.ones(len(ids), dtype=bool)
        first[1:] = ids[1:] != ids[:-1]
        return cls(ids[first], birth[first])

    def lookup(self, person_id: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(found, birth_date) for each person_id; birth is NaT where not found.

        One pass of :func:`_lookup_kernel` (numba; near-linear when the ids come sorted, as
        event tables usually do); ``tests/reference/validate.py`` has the plain numpy twin.
        """
        values, present = _int_ids(person_id)
        found = np.zeros(len(values), dtype=bool)
        birth = np.empty(len(values), dtype="datetime64[s]")
        _lookup_kernel(*self._arrays(), values, present, found, birth.view(np.int64), _NO_DATES, _NO_FLAGS)
        return found, birth

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.ascontiguousarray(self.ids, dtype=np.int64),
                np.ascontiguousarray(self.birth, dtype="datetime64[s]").view(np.int64))

    def lookup_before(self, person_id: pd.Series, dates: list[pd.Series]) -> tuple[np.ndarray, list[np.ndarray]]:
        """(found, [dates < birth_date for each of ``dates``]) for each person_id: :meth:`lookup`
        and the comparisons in one pass per date column, without the birth dates array."""
        values, present = _int_ids(person_id)
        found = None
        out = []
        for column in dates:
            d = column.to_numpy() if isinstance(column.dtype, np.dtype) else None
            if d is None or d.dtype != np.dtype("datetime64[s]"):  # not the parsed dtype: compare as datetimes
                found, birth = self.lookup(person_id)
                out.append(_true(column.to_numpy() < birth))
                continue
            before = np.zeros(len(values), dtype=bool)
            found = np.zeros(len(values), dtype=bool)
            _lookup_kernel(*self._arrays(), values, present, found, _NO_DATES,
                           np.ascontiguousarray(d).view(np.int64), before)
            out.append(before)
        if found is None:
            found, _ = self.lookup(person_id)
        return found, out


def _int_ids(person_id: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ids with nulls as 0, present) without copying a plain int64 column."""
    if isinstance(person_id.dtype, np.dtype) and person_id.dtype == np.int64:
        return person_id.to_numpy(), np.ones(len(person_id), dtype=bool)
    present = person_id.notna().to_numpy()
    values = person_id.to_numpy(dtype=np.int64, na_value=0) if present.any() else np.zeros(len(person_id), np.int64)
    return np.ascontiguousarray(values, dtype=np.int64), present


_NAT = np.iinfo(np.int64).min  # NaT as int64
_NO_DATES = np.zeros(0, dtype=np.int64)
_NO_FLAGS = np.zeros(0, dtype=bool)


@numba.njit(cache=True)
def _lookup_kernel(ids, birth, values, present, found, out, dates, before):  # pragma: no cover - compiled
    """``found[i]``: values[i] is in ``ids`` (sorted, unique); ``out[i]`` (when ``out`` is not
    empty): its birth (int64), else NaT; ``before[i]`` (when ``dates`` is not empty): ``dates[i]``
    is before that birth (both not NaT), i.e. ``dates < out`` as datetimes.

    Keeps the lower bound of the previous id, so a row whose id is not smaller than the
    previous row's moves forward a few steps (then gallops) instead of searching all ids.
    """
    m = ids.shape[0]
    with_birth = out.shape[0] > 0
    with_dates = dates.shape[0] > 0
    pos = 0  # lower bound of prev in ids
    prev = ids[0] if m else 0
    for i in range(values.shape[0]):
        if with_birth:
            out[i] = _NAT
        if not present[i] or m == 0:
            continue
        v = values[i]
        if v >= prev:  # lower bound of v >= pos
            lo = pos
            if lo >= m or ids[lo] >= v:
                hi = lo
            else:
                step = 1
                while lo + step < m and ids[lo + step] < v:  # gallop, keeping ids[lo] < v
                    lo += step
                    step *= 2
                hi = min(lo + step, m)
                while lo + 1 < hi:  # invariant: ids[lo] < v, lower bound in (lo, hi]
                    mid = (lo + hi) // 2
                    if ids[mid] < v:
                        lo = mid
                    else:
                        hi = mid
        else:
            lo, hi = 0, m  # lower bound in [lo, hi]
            while lo < hi:
                mid = (lo + hi) // 2
                if ids[mid] < v:
                    lo = mid + 1
                else:
                    hi = mid
        pos, prev = hi, v
        if hi < m and ids[hi] == v:
            found[i] = True
            if with_birth:
                out[i] = birth[hi]
            if with_dates:
                d, b = dates[i], birth[hi]
                before[i] = d != _NAT and b != _NAT and d < b


def _person_checks(df, name, file, persons: PersonIndex | None, date_cols: list[str],
                   persons_file: str) -> list[Problem]:
    if persons is None:
        return []
    found, befores = persons.lookup_before(df["person_id"], [df[col] for col in date_cols])
    problems = [row_problem(df, df["person_id"].notna().to_numpy() & ~found, name, file, "person_id",
                            "unknown_key", f"person_id not in {persons_file}")]
    for col, before in zip(date_cols, befores):
        problems.append(row_problem(df, before, name, file, col, "before_birth",
                                    f"{col} is before the person's birth_date"))
    return problems


def check_conditions(df: pd.DataFrame, file: str, as_of=None, persons: PersonIndex | None = None,
                     persons_file: str = "persons") -> list[Problem]:
    """Row checks of a parsed conditions frame (``persons`` None skips person look-ups)."""
    name = "conditions"
    problems = [
        _not_in(df, "condition", CONDITION_CODES, name, file, "unknown_code",
                f"unknown condition code (allowed: {', '.join(CONDITION_CODES)})"),
        *_future(df, ["diagnosed_on"], name, file, _as_of(as_of)),
        _duplicates(df, ["person_id", "condition"], name, file, "duplicate_key",
                    "duplicate (person_id, condition)"),
        *_person_checks(df, name, file, persons, ["diagnosed_on"], persons_file),
    ]
    return _ordered(problems, 1)


def check_activity(df: pd.DataFrame, file: str, as_of=None, persons: PersonIndex | None = None,
                   persons_file: str = "persons") -> list[Problem]:
    """Row checks of a parsed activity frame (``persons`` None skips person look-ups)."""
    name = "activity"
    problems = [
        _not_in(df, "setting", SETTING_CODES, name, file, "unknown_code",
                f"unknown setting code (allowed: {', '.join(SETTING_CODES)})"),
        *_future(df, ["start_date", "end_date"], name, file, _as_of(as_of)),
        row_problem(df, df["end_date"] < df["start_date"], name, file, ["end_date", "start_date"],
                    "date_order", "end_date is before start_date (negative length of stay)"),
        row_problem(df, df["cost_gbp"] < 0, name, file, "cost_gbp", "negative", "negative cost"),
        _implausible_cost(df, name, file),
        row_problem(df, df["quantity"] < 0, name, file, "quantity", "negative", "negative quantity"),
        *_person_checks(df, name, file, persons, ["start_date"], persons_file),
    ]
    return _ordered(problems, 1)


def _implausible_cost(df, name, file) -> Problem | None:
    """Rows costing more than the contract's plausible maximum (riskcap.schema.max_cost_gbp)."""
    limit = max_cost_gbp()
    return row_problem(df, df["cost_gbp"] > limit, name, file, "cost_gbp", "implausible",
                       f"cost above the plausible maximum of £{limit:,.0f} a row (pence in the pounds column? "
                       f"if such costs are real, set ${MAX_COST_ENV} to the largest)")


def codes_of(practices: pd.DataFrame | None):
    """The practice codes of a parsed practices frame (None when it could not be parsed)."""
    return None if practices is None else practices["practice_code"].dropna().unique()


def check_practice_changes(df: pd.DataFrame, file: str, practice_codes=None,
                           practices_file: str = "practices") -> list[Problem]:
    """Row checks of a parsed practice_changes frame (``practice_codes`` None skips look-ups)."""
    name = "practice_changes"
    merge = (df["change"] == "merge").to_numpy(dtype=bool, na_value=False)
    into = df["into_practice_code"]
    problems = [
        _duplicates(df, ["practice_code"], name, file, "duplicate_key", "duplicate practice_code: a practice ends once"),
        _not_in(df, "change", PRACTICE_CHANGE_KINDS, name, file, "unknown_code",
                f"change must be one of {', '.join(PRACTICE_CHANGE_KINDS)}"),
        row_problem(df, merge & into.isna().to_numpy(), name, file, ["into_practice_code", "change"], "missing_value",
                    "a merge needs into_practice_code (where the list goes)"),
        row_problem(df, ~merge & into.notna().to_numpy(), name, file, ["into_practice_code", "change"],
                    "not_null", "into_practice_code must be empty unless change is merge"),
        row_problem(df, into.notna() & (into == df["practice_code"]), name, file, ["into_practice_code", "practice_code"],
                    "self_reference", "into_practice_code is the practice itself"),
    ]
    if practice_codes is not None:
        for col in ("practice_code", "into_practice_code"):
            problems.append(_not_in(df, col, practice_codes, name, file, "unknown_key", f"{col} not in {practices_file}"))
    return _ordered(problems, 1)


def check_registrations(df: pd.DataFrame, file: str, as_of=None, persons: PersonIndex | None = None,
                        persons_frame: pd.DataFrame | None = None, practice_codes=None,
                        practice_changes: pd.DataFrame | None = None, persons_file: str = "persons",
                        practices_file: str = "practices") -> list[Problem]:
    """Row checks of a parsed registrations frame (contract v2).

    Each row: its person and practice exist, the period starts on or after birth and not after
    the as-of date, and ends on or after it starts. Each person's periods (in file order):
    sorted by registered_from, not overlapping, only the last open, and agreeing with the
    persons row (first registered_from, last registered_to and last practice_code). A period
    at a practice that merged or closed does not run past its effective_on.
    """
    name = "registrations"
    pid = df["person_id"].to_numpy(dtype=np.float64, na_value=np.nan)
    start = df["registered_from"].to_numpy(dtype="datetime64[s]")
    stop = df["registered_to"].to_numpy(dtype="datetime64[s]")
    same = np.zeros(len(df), dtype=bool)
    same[1:] = pid[1:] == pid[:-1]
    prev_stop = np.concatenate([np.array(["NaT"], dtype="datetime64[s]"), stop[:-1]])
    prev_start = np.concatenate([np.array(["NaT"], dtype="datetime64[s]"), start[:-1]])
    unsorted = np.zeros(len(df), dtype=bool)
    unsorted[1:] = (pid[1:] < pid[:-1]) | (same[1:] & (start[1:] < prev_start[1:]))
    after_open = same & np.isnat(prev_stop)
    overlap = same & ~np.isnat(prev_stop) & ~np.isnat(start) & (start < prev_stop)
    problems = [
        row_problem(df, unsorted, name, file, ["person_id", "registered_from"], "not_sorted",
                    "rows not sorted by person_id, then registered_from"),
        *_future(df, ["registered_from"], name, file, _as_of(as_of)),
        _before(df, "registered_to", "registered_from", name, file, "date_order"),
        row_problem(df, after_open & ~unsorted, name, file, ["registered_from", "person_id"], "after_open_period",
                    "the person's previous period is still open (only the last period may have no registered_to)"),
        row_problem(df, overlap & ~unsorted, name, file, ["registered_from", "person_id"], "overlap",
                    "period starts before the person's previous period ends"),
    ]
    if practice_codes is not None:
        problems.append(_not_in(df, "practice_code", practice_codes, name, file, "unknown_key",
                                f"practice_code not in {practices_file}"))
    problems += _person_checks(df, name, file, persons, ["registered_from"], persons_file)
    if persons_frame is not None and len(df):
        problems += _agrees_with_persons(df, persons_frame, name, file, persons_file)
    if practice_changes is not None and len(practice_changes):
        ends = pd.Series(practice_changes["effective_on"].to_numpy(dtype="datetime64[s]"),
                         index=practice_changes["practice_code"].astype(object)).groupby(level=0).min()
        limit = df["practice_code"].astype(object).map(ends).to_numpy(dtype="datetime64[s]")
        past = ~np.isnat(limit) & (np.isnat(stop) | (stop > limit))
        problems.append(row_problem(df, past, name, file, ["registered_to", "practice_code"], "after_practice_change",
                                    "period runs past the day its practice merged or closed (practice_changes)"))
    return _ordered(problems, 1)


def _agrees_with_persons(df: pd.DataFrame, persons: pd.DataFrame, name: str, file: str,
                         persons_file: str) -> list[Problem]:
    """Each person's first and last period against their persons row."""
    pid = df["person_id"]
    first = (pid != pid.shift()).to_numpy() & pid.notna().to_numpy()
    last = (pid != pid.shift(-1)).to_numpy() & pid.notna().to_numpy()
    keyed = persons.dropna(subset=["person_id"]).drop_duplicates("person_id").set_index("person_id")

    def person(column: str) -> np.ndarray:
        return pid.map(keyed[column]).to_numpy()

    def differs(mine: pd.Series, theirs: np.ndarray) -> np.ndarray:
        a, b = pd.Series(mine.to_numpy(), dtype=object), pd.Series(theirs, dtype=object)
        return (a.isna() != b.isna()).to_numpy() | (a.notna() & b.notna() & (a != b)).to_numpy()

    known = pid.isin(keyed.index).to_numpy()
    return [
        row_problem(df, known & first & differs(df["registered_from"], person("registered_from")), name, file,
                    ["registered_from", "person_id"], "persons_mismatch",
                    f"the person's first registered_from differs from {persons_file}"),
        row_problem(df, known & last & differs(df["registered_to"], person("registered_to")), name, file,
                    ["registered_to", "person_id"], "persons_mismatch",
                    f"the person's last registered_to differs from {persons_file}"),
        row_problem(df, known & last & differs(df["practice_code"].astype(object), person("practice_code")), name, file,
                    ["practice_code", "person_id"], "persons_mismatch",
                    f"the person's last practice_code differs from {persons_file}"),
    ]


# --- Summary -----------------------------------------------------------------------

@dataclass
class LoadSummary:
    """What was read, what was wrong, what was used and what was quarantined, per table.

    ``status`` is "clean", "quarantined" (ran, with rows moved to rejects) or "rejected"
    (nothing used). When the data were used, ``rows_in = rows_used + rows_quarantined`` for
    every table (:meth:`reconciles`).
    """

    data_dir: str
    as_of: str
    on_invalid: str
    files: dict[str, str] = field(default_factory=dict)
    rows_in: dict[str, int] = field(default_factory=dict)
    rows_failing: dict[str, int] = field(default_factory=dict)
    rows_used: dict[str, int] = field(default_factory=dict)
    rows_quarantined: dict[str, int] = field(default_factory=dict)
    rejects: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    status: str = "clean"
    #: Quarantined rows per table (input columns plus ``row`` and ``reason``), until written.
    rejected_rows: dict[str, pa.Table] = field(default_factory=dict, repr=False)

    @classmethod
    def combine(cls, parts: list["LoadSummary"]) -> "LoadSummary":
        """One summary of a table read in partitions (each partition's rows counted once).

        Row counts add up; the same problem found in several partitions becomes one, with its
        rows counted together and the first examples in file order; quarantined rows are
        put back in file order. Whole-table facts (practices, file-level problems) must be
        in one part only (:func:`riskcap.partitions.load_partition` reports them in the first).
        """
        first = parts[0]
        out = cls(first.data_dir, first.as_of, first.on_invalid)
        merged: dict[tuple, Problem] = {}
        for part in parts:
            out.files.update(part.files)
            for counts in ("rows_in", "rows_failing", "rows_used", "rows_quarantined"):
                total = getattr(out, counts)
                for name, n in getattr(part, counts).items():
                    total[name] = total.get(name, 0) + n
            for p in part.problems:
                if p.key not in merged:
                    merged[p.key] = Problem(p.table, p.file, p.column, p.rule, p.message, level=p.level,
                                            order=p.order)
                m = merged[p.key]
                m.count += p.count
                m.examples += p.examples
                m.example_rows += p.example_rows
        table_order = {name: i for i, name in enumerate(ALL_TABLES)}
        out.problems = sorted(merged.values(), key=lambda p: (table_order[p.table], p.order))
        for p in out.problems:
            keep = np.argsort(np.asarray(p.example_rows), kind="stable")[:MAX_EXAMPLES] if p.example_rows else []
            p.examples = [p.examples[i] for i in keep]
            p.example_rows = [p.example_rows[i] for i in keep]
        if out.file_problems or (out.on_invalid == "reject" and out.problems) or \
                any(part.status == "rejected" for part in parts):
            out.status, out.rows_used, out.rows_quarantined = "rejected", {}, {}
            return out
        for name in ALL_TABLES:
            tables = [part.rejected_rows[name] for part in parts if name in part.rejected_rows]
            if tables:
                rows = pa.concat_tables(tables)
                order = np.argsort(rows["row"].to_numpy(), kind="stable")
                out.rejected_rows[name] = rows.take(pa.array(order, type=pa.int64())).combine_chunks()
        out.status = "quarantined" if any(out.rows_quarantined.values()) else "clean"
        return out

    @property
    def table_names(self) -> list[str]:
        """The contract's tables, and the optional ones this data folder has."""
        return [name for name in ALL_TABLES if name in TABLES or name in self.files]

    @property
    def file_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "file"]

    def reconciles(self) -> bool:
        """rows_in == rows_used + rows_quarantined for every table (when data were used)."""
        return all(self.rows_in[t] == self.rows_used.get(t, 0) + self.rows_quarantined.get(t, 0)
                   for t in self.rows_in)

    def as_dict(self) -> dict:
        """JSON-ready summary for run manifests."""
        tables = {}
        for name in self.table_names:
            tables[name] = {
                "file": self.files.get(name), "rows_in": self.rows_in.get(name),
                "rows_with_problems": self.rows_failing.get(name, 0),
                "rows_used": self.rows_used.get(name, 0), "rows_quarantined": self.rows_quarantined.get(name, 0),
                "rejects": self.rejects.get(name),
            }
        return {"data_dir": self.data_dir, "as_of": self.as_of, "on_invalid": self.on_invalid,
                "status": self.status, "tables": tables, "problems": [p.as_dict() for p in self.problems]}

    def error_message(self) -> str:
        """Every problem, one per line, under a header naming the folder and what to do."""
        n = len(self.problems)
        head = f"{self.data_dir}: {n} problem(s) found (as of {self.as_of}); no data were used"
        if self.file_problems:
            head += " (fix the file-level problems: they cannot be quarantined)"
        elif self.on_invalid == "reject":
            head += " (fix them, or run with --on-invalid quarantine to set bad rows aside)"
        return head + ":\n" + "\n".join(f"  - {p}" for p in self.problems)

    def rows_table(self):
        """A rich table of rows per table: in / with problems / used / quarantined."""
        from rich.table import Table as RichTable

        table = RichTable(title=f"{self.data_dir} (as of {self.as_of}, {self.status})")
        for header in ("table", "file", "rows in", "with problems", "used", "quarantined"):
            table.add_column(header, justify="left" if header in ("table", "file") else "right")
        for name in self.table_names:
            rows_in = self.rows_in.get(name)
            table.add_row(name, Path(self.files[name]).name if self.files.get(name) else "-",
                          "-" if rows_in is None else f"{rows_in:,}", f"{self.rows_failing.get(name, 0):,}",
                          f"{self.rows_used.get(name, 0):,}", f"{self.rows_quarantined.get(name, 0):,}")
        return table


# --- Loading -----------------------------------------------------------------------

_CHECKS = {"practices": check_practices, "persons": check_persons,
           "conditions": check_conditions, "activity": check_activity}
#: Person tables checked against persons, in check order (registrations is optional).
_EVENT_TABLES = ("conditions", "activity", "registrations")


def validate_data(data_dir: str | Path, as_of=None, on_invalid: str = "reject",
                  rejects_dir: str | Path | None = None) -> tuple[Tables | None, LoadSummary]:
    """Read and check every table of ``data_dir``; never raises for bad data.

    Returns (tables, summary); tables is None when the data cannot be used (any file-level
    problem, or any problem in reject mode). In quarantine mode the rejects files are written
    to ``rejects_dir`` (required) for every table, empty ones included, so no stale file stays.
    See :func:`load_tables` for the rules.
    """
    check_mode(on_invalid)
    if on_invalid == "quarantine" and rejects_dir is None:
        raise ValueError("on_invalid='quarantine' needs a rejects_dir")
    tables, summary = check_tables(data_dir, as_of, on_invalid, lambda name, path: (read_raw(path), None))
    if tables is not None and on_invalid == "quarantine":
        write_rejects(summary, rejects_dir)
    return tables, summary


def check_mode(on_invalid: str) -> None:
    """ValueError unless ``on_invalid`` is one of :data:`ON_INVALID`."""
    if on_invalid not in ON_INVALID:
        raise ValueError(f"on_invalid must be one of {ON_INVALID}, not {on_invalid!r}")


def check_tables(data_dir: str | Path, as_of, on_invalid: str, read, scans: dict | None = None
                 ) -> tuple[Tables | None, LoadSummary]:
    """The checks of :func:`validate_data`, on whatever rows ``read`` gives: the one core that
    whole-table and partition loading share.

    ``read(name, path) -> (arrow table, row labels or None)`` reads a table's rows (raising
    DataError when it cannot). ``scans``: for a partition, the whole tables' file-level facts
    (:class:`~riskcap.partitions.TableScan` per event table; practices are always read whole). Quarantined rows
    are returned in ``summary.rejected_rows`` (see :func:`write_rejects`), not written.
    """
    data_dir = Path(data_dir)
    as_of_ts = _as_of(as_of)
    summary = LoadSummary(str(data_dir), as_of_ts.date().isoformat(), on_invalid)
    raws: dict[str, pa.Table] = {}
    frames: dict[str, pd.DataFrame] = {}
    problems: dict[str, list[Problem]] = {name: [] for name in ALL_TABLES}

    for name in ALL_TABLES:
        scan = scans.get(name) if scans else None
        if scan is not None:  # a partition: the whole file's facts come from the scan
            problems[name] += scan.problems
            path = Path(scan.file)
            summary.files[name] = scan.file
        else:
            try:
                path = table_path(data_dir, name)
            except DataError:
                if ALL_TABLES[name].optional:
                    continue  # absent: what schema.ABSENT_MEANS says
                problems[name].append(_file_problem(
                    name, data_dir, f"table '{name}' not found: expected {name}.parquet, {name}.csv or a parquet "
                    f"dataset directory {name}/", rule="missing_file"))
                continue
            summary.files[name] = str(path)
        try:
            raw, index = read(name, path)
        except DataError as exc:
            problems[name].append(_file_problem(name, path, str(exc).removeprefix(f"{path}: "), rule="unreadable"))
            continue
        summary.rows_in[name] = raw.num_rows
        df, found = parse_table(raw, name, path, index=index, scan=scan)
        problems[name] += found
        if df is not None:
            frames[name] = df
            if on_invalid == "quarantine":
                raws[name] = raw
        del raw

    files = {name: summary.files.get(name, name) for name in ALL_TABLES}
    if "practices" in frames:
        problems["practices"] += check_practices(frames["practices"], files["practices"], as_of_ts)
    if "persons" in frames:
        codes = frames["practices"]["practice_code"].dropna().unique() if "practices" in frames else None
        problems["persons"] += check_persons(frames["persons"], files["persons"], as_of_ts, codes,
                                             practices_file=Path(files["practices"]).name)
    index = PersonIndex.from_persons(frames["persons"]) if "persons" in frames else None
    for name in ("conditions", "activity"):
        if name in frames:
            problems[name] += _CHECKS[name](frames[name], files[name], as_of_ts, index,
                                            persons_file=Path(files["persons"]).name)
    if "practice_changes" in frames:
        problems["practice_changes"] += check_practice_changes(
            frames["practice_changes"], files["practice_changes"], codes_of(frames.get("practices")),
            Path(files["practices"]).name)
    if "registrations" in frames:
        problems["registrations"] += check_registrations(
            frames["registrations"], files["registrations"], as_of_ts, index, frames.get("persons"),
            codes_of(frames.get("practices")), frames.get("practice_changes"),
            persons_file=Path(files["persons"]).name, practices_file=Path(files["practices"]).name)
        if "persons" in frames:  # everyone on persons has a registration history
            persons = frames["persons"]
            p = row_problem(persons, persons["person_id"].notna().to_numpy() & ~persons["person_id"].isin(
                frames["registrations"]["person_id"].dropna().unique()).to_numpy(), "persons", files["persons"],
                "person_id", "no_registrations", f"no registration period in {Path(files['registrations']).name}")
            if p is not None:
                p.order = (1, 50)  # after the persons' own row checks
                problems["persons"].append(p)

    summary.problems = [p for name in ALL_TABLES for p in problems[name]]
    failing = {name: _failing_mask(frames[name], problems[name]) for name in frames}
    summary.rows_failing = {name: int(mask.sum()) for name, mask in failing.items()}

    if summary.file_problems or (on_invalid == "reject" and summary.problems):
        summary.status = "rejected"
        return None, summary

    if on_invalid == "quarantine":
        _cascade(frames, problems, failing, files)
        summary.problems = [p for name in ALL_TABLES for p in problems[name]]
        for name in frames:
            mask = failing[name]
            summary.rows_quarantined[name] = int(mask.sum())
            summary.rejected_rows[name] = _rejects_table(raws.pop(name), frames[name], mask, problems[name])
            frames[name] = frames[name][~mask]
        summary.status = "quarantined" if any(summary.rows_quarantined.values()) else "clean"
    else:
        summary.rows_quarantined = {name: 0 for name in frames}

    for name in frames:
        frames[name] = _finalise(frames[name], name)
        summary.rows_used[name] = len(frames[name])
    if not summary.reconciles():  # pragma: no cover - guards the invariant
        raise AssertionError(f"row counts do not reconcile: {summary.as_dict()['tables']}")
    return Tables(**frames), summary


def write_rejects(summary: "LoadSummary", rejects_dir: str | Path) -> None:
    """Write every table's quarantined rows (``summary.rejected_rows``) to ``rejects_dir``,
    as ``<table>_rejects.parquet`` and ``.csv``, and record the paths in ``summary.rejects``.
    The rows hold identifiers, so the files are owner-only, in a folder made owner-only."""
    from riskcap.manifest import claim_file, table_with_columns

    paths = {name: Path(rejects_dir) / f"{name}_rejects.parquet" for name in summary.table_names}
    for path in paths.values():  # only earlier rejects files are replaced (riskcap.manifest)
        for p in (path, path.with_suffix(".csv")):
            claim_file(p, table_with_columns("row", "reason"), "rejects file")
    private_dir(rejects_dir)
    for name in summary.table_names:
        table = summary.rejected_rows[name]
        path = paths[name]
        write_parquet(table, path, mode=OWNER_ONLY)
        write_csv(table.to_pandas(), path.with_suffix(".csv"), mode=OWNER_ONLY)
        summary.rejects[name] = str(path)


def load_tables(data_dir: str | Path, as_of=None, on_invalid: str = "reject",
                rejects_dir: str | Path | None = None) -> tuple[Tables, LoadSummary]:
    """Read, type and validate the contract's four tables from ``data_dir``.

    Parameters
    ----------
    data_dir : folder holding practices, persons, conditions and activity as
        ``<table>.parquet``, a ``<table>/`` parquet dataset, or ``<table>.csv`` (UTF-8).
    as_of : date (or ISO string); any birth_date, registered_from, died_on, diagnosed_on,
        start_date or end_date after it is an error. Default: today. Training passes
        ``index_date + 365 days``.
    on_invalid : "reject" (default) raises DataError listing every problem; "quarantine"
        moves rows with problems to ``rejects_dir/<table>_rejects.parquet`` and ``.csv``
        (with a ``reason`` column) and carries on.
    rejects_dir : where quarantined rows go (required for "quarantine").

    Returns
    -------
    (Tables, LoadSummary) : frames with contract dtypes (optional columns added, sorted by
        person_id, index reset) and the reconciled row counts.

    Raises
    ------
    LoadRejected
        On any file-level problem, or any problem at all in reject mode (a DataError
        carrying the LoadSummary).
    """
    tables, summary = validate_data(data_dir, as_of, on_invalid, rejects_dir)
    if tables is None:
        raise LoadRejected(summary)
    return tables, summary


def _failing_mask(df: pd.DataFrame, problems: list[Problem]) -> np.ndarray:
    mask = np.zeros(len(df), dtype=bool)
    for p in problems:
        if p.row_indices is not None:
            mask[p.row_indices] = True
    return mask


def _cascade(frames, problems, failing, files) -> None:
    """Quarantine persons of quarantined practices, and events of quarantined persons."""
    def dropped_keys(table, key):
        values = frames[table][key]
        dropped = pd.Index(values[failing[table]].dropna().unique())
        return dropped.difference(pd.Index(values[~failing[table]].dropna().unique()))

    practice_codes = dropped_keys("practices", "practice_code")
    if len(practice_codes):
        p = row_problem(frames["persons"], frames["persons"]["practice_code"].isin(practice_codes), "persons",
                        files["persons"], "practice_code", "practice_quarantined",
                        f"practice quarantined (see {Path(files['practices']).name})")
        if p is not None:
            p.order = (2, 0)
            problems["persons"].append(p)
            failing["persons"][p.row_indices] = True
    if len(practice_codes) and "registrations" in frames:
        p = row_problem(frames["registrations"], frames["registrations"]["practice_code"].isin(practice_codes),
                        "registrations", files["registrations"], "practice_code", "practice_quarantined",
                        f"practice quarantined (see {Path(files['practices']).name})")
        if p is not None:
            p.order = (2, 0)
            problems["registrations"].append(p)
            failing["registrations"][p.row_indices] = True
    if "registrations" in frames:  # a person's history with a period missing is not their history
        regs = frames["registrations"]
        broken = pd.Index(regs["person_id"][failing["registrations"]].dropna().unique())
        p = row_problem(frames["persons"], frames["persons"]["person_id"].isin(broken).to_numpy()
                        & ~failing["persons"], "persons", files["persons"], "person_id", "registration_quarantined",
                        f"registration period quarantined (see {Path(files['registrations']).name})")
        if p is not None:
            p.order = (2, 0)
            problems["persons"].append(p)
            failing["persons"][p.row_indices] = True
    person_ids = dropped_keys("persons", "person_id")
    if len(person_ids):
        for name in (n for n in _EVENT_TABLES if n in frames):
            p = row_problem(frames[name], frames[name]["person_id"].isin(person_ids), name, files[name],
                            "person_id", "person_quarantined", "person quarantined", column="")
            if p is not None:
                p.order = (2, 1)
                problems[name].append(p)
                failing[name][p.row_indices] = True


def _rejects_table(raw: pa.Table, df: pd.DataFrame, mask: np.ndarray, problems: list[Problem]) -> pa.Table:
    """The rows of ``raw`` flagged in ``mask``, with their input row number and reasons."""
    positions = np.flatnonzero(mask)
    reasons = np.full(len(df), "", dtype=object)
    if len(positions):
        rows = np.concatenate([p.row_indices for p in problems if p.row_indices is not None])
        texts = np.concatenate([np.full(len(p.row_indices), p.reason, dtype=object)
                                for p in problems if p.row_indices is not None])
        joined = pd.Series(texts).groupby(rows, sort=True).agg("; ".join)
        reasons[joined.index.to_numpy()] = joined.to_numpy()
    labels = df.index.to_numpy()[positions] + 1
    out = raw.take(pa.array(positions, type=pa.int64()))
    for i, fld in enumerate(out.schema):  # text read as codes (riskcap.partitions.read_range) is written as text
        if pa.types.is_dictionary(fld.type):
            out = out.set_column(i, fld.name, out.column(i).cast(fld.type.value_type))
    out = out.append_column("row", pa.array(labels, type=pa.int64()))
    return out.append_column("reason", pa.array(reasons[positions].tolist(), type=pa.string()))


def _finalise(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Contract dtypes once bad rows are gone (non-nullable ints/bools lose their NA type),
    sorted by person_id (stable) with a fresh index."""
    for col in ALL_TABLES[name].columns:
        if col.nullable or col.name not in df.columns:
            continue
        if col.kind == "int" and df[col.name].dtype != np.int64:
            df[col.name] = df[col.name].astype("int64")
        elif col.kind == "bool" and df[col.name].dtype != bool:
            df[col.name] = df[col.name].astype(bool)
    if "person_id" in df.columns and not df["person_id"].is_monotonic_increasing:
        df = df.sort_values("person_id", kind="stable")
    return df.reset_index(drop=True)
