"""The extracts riskcap imports: their files and columns, and reading them one person range at a time.

Every extract is a table in one of three folders (``--gp``, ``--hospital``, ``--community``),
read from ``<name>.parquet``, a ``<name>/`` parquet dataset or ``<name>.csv`` (UTF-8), like the
contract's tables. :data:`EXTRACTS` lists them with their columns; ``docs/import.md`` explains
each for the analyst who makes them.

Parquet extracts with an integer ``person_id`` are read by ``person_id`` range
(:func:`riskcap.data.read.read_range`: sorted files stream in bounded memory); CSV extracts
are read once, whole, as text, and sliced per range (with a warning, as the contract's
readers do).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskcap.data.parse import text_is_clean
from riskcap.data.read import PersonRange, cannot_read, parquet_files, parse_series, read_range, read_raw
from riskcap.errors import DataError

INT32_NULL = np.iinfo(np.int32).min  # a missing date, as int32 days since 1970-01-01


@dataclass(frozen=True)
class Field:
    """One column of an extract. ``kind``: int, float, date, month (YYYY-MM or a date), bool,
    code (short text: codes, ODS codes; compared after trimming spaces), key (an identifier,
    only compared for equality) or text."""

    name: str
    kind: str
    required: bool = True
    nullable: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Extract:
    """One extract: its folder (``source``), file stem, columns and whether it must exist."""

    source: str
    name: str
    fields: tuple[Field, ...]
    doc: str
    required: bool = False
    person_level: bool = True  # keyed by person_id (read by person range)

    @property
    def key(self) -> str:
        return f"{self.source}/{self.name}"

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


def _cost(doc="cost in pounds; empty = priced from the unit-cost table"):
    return Field("cost_gbp", "float", required=False, nullable=True, doc=doc)


PERSON = Field("person_id", "int", doc="pseudonymised person key (a whole number), the same in every extract")

EXTRACTS: dict[str, Extract] = {e.key: e for e in (
    Extract("gp", "practices", (
        Field("practice_code", "code", doc="ODS code of the practice"),
        Field("icb_code", "code", doc="ODS code of the ICB"),
        Field("practice_name", "text", required=False, nullable=True),
        Field("list_size", "int", required=False, nullable=True,
              doc="registered list size; absent = counted from the registrations on the day before the extract date"),
        Field("need_index", "float", required=False, nullable=True, doc="weighted / registered population"),
        Field("pcn_code", "code", required=False, nullable=True, doc="Primary Care Network code"),
        Field("opened_on", "date", required=False, nullable=True, doc="the day the practice opened"),
    ), "One row per practice.", required=True, person_level=False),
    Extract("gp", "registrations", (
        PERSON,
        Field("practice_code", "code", doc="practice of this registration period"),
        Field("registered_from", "date", doc="first day of the period"),
        Field("registered_to", "date", required=False, nullable=True,
              doc="the day the period ended (deregistration); empty = still registered"),
        Field("sex", "code", doc="F or M (female, male, 2, 1); other values are not imported"),
        Field("birth_date", "month", doc="date of birth, or birth month as YYYY-MM (the first of the month)"),
        Field("imd_decile", "int", doc="IMD decile of the home address, 1 = most deprived"),
        Field("died_on", "date", required=False, nullable=True, doc="date of death; empty = alive"),
        Field("care_home", "bool", doc="lives in a care home"),
        Field("opted_out", "bool", doc="national data opt-out"),
        Field("nhs_number", "code", required=False, nullable=True, doc="10-digit NHS number (spaces are fine)"),
    ), "One row per registration period (a move between practices is two rows).", required=True),
    Extract("gp", "events", (
        PERSON,
        Field("snomed_code", "code", doc="SNOMED CT concept id of the coded entry"),
        Field("event_date", "date", doc="date of the entry"),
    ), "The coded journal: one row per coded entry (diagnoses, resolutions, anything else)."),
    Extract("gp", "appointments", (
        PERSON,
        Field("appointment_date", "date"),
        Field("attended", "bool", required=False, nullable=True, doc="false = did not attend; absent = attended"),
        _cost(),
    ), "GP consultations: one row per appointment."),
    Extract("gp", "prescriptions", (
        PERSON,
        Field("issue_date", "date"),
        Field("items", "int", doc="prescription items issued"),
        _cost(),
    ), "Prescribing: one row per issue (or per month); imported as monthly totals."),
    Extract("gp", "practice_changes", (
        Field("practice_code", "code"),
        Field("change", "code", doc="merge or close"),
        Field("effective_on", "date"),
        Field("into_practice_code", "code", required=False, nullable=True),
    ), "Practices that merged or closed (optional).", person_level=False),
    Extract("hospital", "apc", (
        Field("spell_id", "key", doc="hospital provider spell number (unique per person)"),
        PERSON,
        Field("admission_method", "code",
              doc="NHS Data Dictionary admission method (11-13, 21-28, 2A-2D, 31-32, 81-83)"),
        Field("patient_classification", "code",
              doc="1 ordinary, 2 day case, 3/4 regular day/night attender, 5 mother and baby"),
        Field("admission_date", "date"),
        Field("discharge_date", "date", required=False, nullable=True, doc="empty = not yet discharged"),
        Field("primary_diagnosis", "code", required=False, nullable=True, doc="ICD-10, with or without the dot"),
        _cost(),
    ), "Admitted patient care (SUS APC): one row per hospital provider spell."),
    Extract("hospital", "outpatients", (
        PERSON,
        Field("appointment_date", "date"),
        Field("attended", "code", doc="NHS Data Dictionary attended or did not attend: 5, 6 attended; 2, 3, 4, 7 not"),
        Field("first_attendance", "code", required=False, nullable=True,
              doc="1, 3 first; 2, 4 follow-up; 5 administrative event"),
        Field("attendance_id", "key", required=False, nullable=True, doc="unique per person, when given"),
        _cost(),
    ), "Outpatient appointments (SUS OPA): one row per appointment."),
    Extract("hospital", "ae", (
        PERSON,
        Field("arrival_date", "date"),
        Field("attendance_id", "key", required=False, nullable=True, doc="unique per person, when given"),
        _cost(),
    ), "A&E attendances (ECDS): one row per attendance."),
    Extract("community", "community", (
        PERSON,
        Field("contact_date", "date"),
        Field("contacts", "int", required=False, nullable=True, doc="contacts in the row; absent = 1"),
        _cost(),
    ), "Community services contacts (CSDS)."),
    Extract("community", "mental_health", (
        PERSON,
        Field("contact_date", "date"),
        Field("contacts", "int", required=False, nullable=True, doc="contacts in the row; absent = 1"),
        _cost(),
    ), "Mental health contacts (MHSDS)."),
    Extract("community", "social_care", (
        PERSON,
        Field("period_start", "date", doc="first day of the period the hours and cost cover"),
        Field("hours", "int", doc="hours of care (or units)"),
        _cost(),
    ), "Adult social care (client level data): imported as monthly totals."),
)}

SOURCES = ("gp", "hospital", "community")


def extracts_of(source: str) -> list[Extract]:
    return [e for e in EXTRACTS.values() if e.source == source]


def locate(directory: Path, name: str) -> Path | None:
    """Where extract ``name`` is in ``directory`` (parquet file, dataset directory or CSV), or None."""
    for candidate in (directory / f"{name}.parquet", directory / name, directory / f"{name}.csv"):
        if candidate.exists():
            return candidate
    return None


def column_name(header: str) -> str:
    """A header as the extract's column it names: a byte-order mark (Excel's "CSV UTF-8"),
    surrounding spaces and case ignored, inner spaces and hyphens as underscores
    (``Person ID`` -> ``person_id``)."""
    return re.sub(r"[\s\-]+", "_", header.lstrip("\ufeff").strip()).lower()


@dataclass
class Source:
    """One extract file found in its folder: its columns, rows, and how it is read by range.

    ``by_range``: a parquet file with an integer ``person_id``, read one range at a time;
    otherwise the file is read once, whole, and sliced per range. ``headers``: the file's own
    names of ``columns`` (:func:`column_name`); tables read come back under ``columns``.
    """

    extract: Extract
    path: Path
    columns: list[str]  # the extract's columns the file has
    rows: int
    by_range: bool
    headers: list[str] | None = None
    _whole: pa.Table | None = None
    _ids: pa.Array | None = None

    def read(self, part: PersonRange) -> tuple[pa.Table, np.ndarray]:
        """The rows of ``part`` (all rows for a table not keyed by person) with 0-based row numbers."""
        if self.by_range and not part.is_whole:
            table, labels = read_range(self.path, part, columns=self.columns, codes=True)
            return table.combine_chunks(), labels
        table = self.whole()
        if not self.extract.person_level or part.is_whole:
            return table, np.arange(table.num_rows, dtype=np.int64)
        if self._ids is None:
            self._ids = _int_ids(table.column("person_id"))
        mask = part.mask(self._ids)
        return table.filter(pa.array(mask)), np.flatnonzero(mask)

    def whole(self) -> pa.Table:
        if self._whole is None:
            headers = self.headers or self.columns
            self._whole = read_raw(self.path, headers, text=headers).rename_columns(self.columns).combine_chunks()
        return self._whole


def _int_ids(ids: pa.ChunkedArray) -> pa.Array:
    """Person ids as int64 for range masks; values that are not whole numbers become null, so
    they fall in the first range, where they are reported."""
    if pa.types.is_integer(ids.type):
        return ids.cast(pa.int64())
    values, _ = parse_series(pd.Series(ids.to_pandas(), dtype=object), "int")
    return pa.array(values.astype("Int64"), type=pa.int64(), from_pandas=True)


def open_source(extract: Extract, path: Path) -> tuple[Source | None, str | None]:
    """(Source, None) for a readable extract file with its required columns, else (None, problem)."""
    try:
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as fh:  # arrow's reader skips the mark too
                header = next(csv.reader(fh), [])
            schema = None
        else:
            files = parquet_files(path)
            schema = pq.read_schema(files[0]) if files else pa.schema([])
            header = schema.names
    except (OSError, pa.ArrowException, UnicodeDecodeError, csv.Error) as exc:
        return None, str(cannot_read(path, exc)).removeprefix(f"{path}: ")
    named: dict[str, str] = {}
    for h in header:
        if column_name(h) in named:
            return None, f"columns {named[column_name(h)]!r} and {h!r} both name {column_name(h)!r}; keep one"
        named[column_name(h)] = h
    missing = [f.name for f in extract.fields if f.required and f.name not in named]
    if missing:
        return None, (f"missing required column(s) {', '.join(missing)}; the file has: "
                      f"{', '.join(header) or 'no columns'}")
    columns = [f.name for f in extract.fields if f.name in named]
    headers = [named[c] for c in columns]
    # read by person range: parquet whose columns are named as the extract's, with an integer person_id
    by_range = schema is not None and extract.person_level and headers == columns and \
        pa.types.is_integer(schema.field("person_id").type)
    source = Source(extract, path, columns, 0, by_range, None if headers == columns else headers)
    try:
        source.rows = source.whole().num_rows if not by_range else \
            sum(pq.ParquetFile(f).metadata.num_rows for f in parquet_files(path))
    except (DataError, OSError, pa.ArrowException) as exc:
        return None, str(exc).removeprefix(f"{path}: ")
    return source, None


# --- parsing columns -----------------------------------------------------------------------

@dataclass
class Parsed:
    """A parsed column: ``values`` (numpy), ``null`` (no value given) and ``bad`` (a value that is
    not of the column's kind). Codes are ``values`` (int32 index into ``categories``; -1 = null)."""

    values: np.ndarray
    null: np.ndarray
    bad: np.ndarray
    categories: list[str] | None = None


def parse(column: pa.ChunkedArray | None, kind: str, rows: int) -> Parsed:
    """Parse an arrow column to numpy by ``kind``: fast paths for columns already of the right
    arrow type, :func:`riskcap.data.read.parse_series` (the contract's parser) for text."""
    if column is None:  # an optional column the file does not have
        empty = np.ones(rows, dtype=bool)
        return Parsed(_empty(kind, rows), empty, np.zeros(rows, dtype=bool), [] if kind == "code" else None)
    if isinstance(column, pa.ChunkedArray) and column.num_chunks != 1:
        column = column.combine_chunks() if column.num_chunks else pa.array([], type=column.type)
    elif isinstance(column, pa.ChunkedArray):
        column = column.chunk(0)
    nulls = column.null_count
    null = column.is_null().to_numpy(zero_copy_only=False) if nulls else np.zeros(len(column), dtype=bool)
    no_bad = np.zeros(len(column), dtype=bool)
    t = column.type
    if kind == "code":
        return _parse_code(column, null)
    if kind == "key":
        text = (column.dictionary_decode() if pa.types.is_dictionary(t) else column).cast(pa.string())
        if not text_is_clean(text):  # spaces to trim or empty values (rare): the slower path
            text = pc.utf8_trim_whitespace(text)
            text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        encoded = text.dictionary_encode()
        values = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        return Parsed(values, values < 0, no_bad)
    if kind in ("date", "month") and (pa.types.is_date(t) or pa.types.is_timestamp(t)):
        days = (column.cast(pa.date32()) if not pa.types.is_date32(t) else column).cast(pa.int32())
        values = (days.fill_null(INT32_NULL) if nulls else days).to_numpy(zero_copy_only=False)
        return Parsed(values, null, no_bad)
    if kind == "int" and pa.types.is_integer(t):
        values = column.cast(pa.int64())
        return Parsed((values.fill_null(0) if nulls else values).to_numpy(zero_copy_only=False), null, no_bad)
    if kind == "float" and (pa.types.is_floating(t) or pa.types.is_integer(t)):
        values = column.cast(pa.float64())
        values = (values.fill_null(np.nan) if nulls else values).to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(values)
        if nulls:
            bad &= ~null
        if bad.any():
            values = np.where(bad, np.nan, values)
        return Parsed(values, null, bad)
    if kind == "bool" and pa.types.is_boolean(t):
        return Parsed((column.fill_null(False) if nulls else column).to_numpy(zero_copy_only=False), null, no_bad)
    if kind == "text":
        text = column.cast(pa.string()) if not pa.types.is_dictionary(t) else column.dictionary_decode()
        values = np.asarray(text.to_pandas().str.strip().replace("", None).to_numpy(dtype=object))
        return Parsed(values, pd.isna(values), no_bad)
    if kind in ("date", "month") and pa.types.is_string(t) and pc.any(pc.match_substring(column, "/")).as_py():
        column = _day_first_as_iso(column)
    # text (CSV) or another arrow type: the contract's parser
    series = column.to_pandas() if not pa.types.is_dictionary(t) else column.dictionary_decode().to_pandas()
    series = pd.Series(series, dtype=object)
    if kind == "month":
        text = series.astype("string").str.strip()
        month_only = text.str.fullmatch(r"[0-9]{4}-[0-9]{2}").fillna(False).to_numpy(dtype=bool)
        series = series.where(~month_only, text + "-01")
        kind = "date"
    values, bad = parse_series(series, kind)
    null = values.isna().to_numpy() & ~bad
    if kind == "date":
        out = values.to_numpy(dtype="datetime64[D]").astype(np.int64)
        out[np.isnat(values.to_numpy(dtype="datetime64[D]"))] = INT32_NULL
        return Parsed(out.astype(np.int32), null, bad)
    if kind == "int":
        return Parsed(values.astype("Int64").fillna(0).to_numpy(dtype=np.int64), null, bad)
    if kind == "float":
        return Parsed(values.to_numpy(dtype=np.float64, na_value=np.nan), null, bad)
    if kind == "bool":
        return Parsed(values.astype("boolean").fillna(False).to_numpy(dtype=bool), null, bad)
    raise ValueError(kind)  # pragma: no cover


#: UK dates as GP and hospital systems export them, day first: 31/03/2025 (a time may follow), 03/1938.
_DAY_FIRST = (r"^\s*(\d{2})/(\d{2})/(\d{4})(?:[ T][0-9:.]*)?\s*$", r"\3-\2-\1")
_MONTH_FIRST = (r"^\s*(\d{2})/(\d{4})\s*$", r"\2-\1")


def _day_first_as_iso(text: pa.Array) -> pa.Array:
    """Day-first dates (``DD/MM/YYYY``, ``MM/YYYY``) as ISO text; other text as it is."""
    for pattern, replacement in (_DAY_FIRST, _MONTH_FIRST):
        text = pc.replace_substring_regex(text, pattern, replacement)
    return text


def _empty(kind: str, rows: int) -> np.ndarray:
    if kind in ("date", "month"):
        return np.full(rows, INT32_NULL, dtype=np.int32)
    if kind == "key":
        return np.full(rows, -1, dtype=np.int64)
    if kind == "code":
        return np.full(rows, -1, dtype=np.int32)
    if kind == "float":
        return np.full(rows, np.nan)
    if kind == "bool":
        return np.zeros(rows, dtype=bool)
    if kind == "text":
        return np.full(rows, None, dtype=object)
    return np.zeros(rows, dtype=np.int64)


def _parse_code(column: pa.Array, null: np.ndarray) -> Parsed:
    """Short text as (index into categories, the distinct values): trimmed, empty = null. Numbers
    (a code column stored as integers) become their decimal text."""
    if pa.types.is_dictionary(column.type):
        indices = column.indices.to_numpy(zero_copy_only=False) if column.null_count == 0 else \
            column.indices.fill_null(0).to_numpy(zero_copy_only=False)
        dictionary = column.dictionary
    else:
        text = column if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) \
            else column.cast(pa.string())
        encoded = text.dictionary_encode()
        indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
        dictionary = encoded.dictionary
    if not (pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)):
        dictionary = dictionary.cast(pa.string())
    if dictionary.null_count == 0 and text_is_clean(dictionary):  # distinct and trimmed already: as they are
        values = indices.astype(np.int32)
        values[null] = -1
        return Parsed(values, null.copy(), np.zeros(len(values), dtype=bool), dictionary.to_pylist())
    raw = [None if v is None else v.strip() for v in dictionary.to_pylist()]
    categories = sorted({v for v in raw if v})
    position = {v: k for k, v in enumerate(categories)}
    remap = np.array([position.get(v, -1) if v else -1 for v in raw] or [-1], dtype=np.int32)
    values = remap[indices].astype(np.int32) if len(indices) else np.zeros(0, dtype=np.int32)
    values[null] = -1
    return Parsed(values, values < 0, np.zeros(len(values), dtype=bool), categories)
