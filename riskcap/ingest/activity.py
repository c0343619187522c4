"""Contract activity rows made from extracts: built per extract, then sorted into one table.

Rows are columns of numpy arrays (dates as int32 days, money as int64 pence) until
:func:`activity_table` sorts them by (person_id, start_date, setting, then every other column,
so equal input gives equal output whatever the order of the extract rows) and makes the arrow
table of the contract, with costs in pounds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from riskcap.ingest.extracts import INT32_NULL
from riskcap.schema import SETTING_CODES

SETTING_INDEX = {s: k for k, s in enumerate(SETTING_CODES)}
#: Rank of each setting in alphabetical order (the contract's activity order after start_date).
_SETTING_RANK = np.argsort(np.argsort(np.array(SETTING_CODES))).astype(np.int64)
_SETTINGS = pa.array(list(SETTING_CODES), type=pa.string())

SCHEMA = pa.schema([("person_id", pa.int64()), ("setting", pa.dictionary(pa.int32(), pa.string())),
                    ("start_date", pa.date32()), ("end_date", pa.date32()), ("quantity", pa.int64()),
                    ("cost_gbp", pa.float64()), ("primary_diagnosis", pa.string())])


@dataclass
class ActivityRows:
    """Activity rows of one extract: ``setting`` indexes SETTING_CODES; ``end`` is INT32_NULL
    when there is no end date; ``diagnosis`` indexes ``codes`` (-1 = none)."""

    person: np.ndarray
    setting: np.ndarray
    start: np.ndarray
    end: np.ndarray
    quantity: np.ndarray
    pence: np.ndarray
    diagnosis: np.ndarray
    codes: list[str]

    @classmethod
    def point(cls, person, setting: str, start, quantity, pence) -> "ActivityRows":
        """Rows of one setting with no end date and no diagnosis."""
        n = len(person)
        return cls(np.asarray(person, np.int64), np.full(n, SETTING_INDEX[setting], np.int8),
                   np.asarray(start, np.int32), np.full(n, INT32_NULL, np.int32),
                   np.broadcast_to(np.asarray(quantity, np.int64), (n,)).copy(), np.asarray(pence, np.int64),
                   np.full(n, -1, np.int32), [])

    def __len__(self) -> int:
        return len(self.person)


def months(day: np.ndarray) -> np.ndarray:
    """Calendar month numbers (months since 1970-01) of int32 days, by a table over their range."""
    lo, hi = int(day.min()), int(day.max())
    table = np.arange(lo, hi + 1).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return table[day - lo]


def monthly(person: np.ndarray, day: np.ndarray, quantity: np.ndarray, pence: np.ndarray,
            period: np.ndarray | None = None):
    """Rows summed per (person, calendar month, registration period): (person, first day with a
    row in the group, quantity, pence), sorted by person and day. ``period`` numbers each row's
    registration period (:meth:`riskcap.ingest.gp.People.period_of`), so a month in which a person
    moves practice gives one row at each practice and every pound stays on the day's practice."""
    if len(person) == 0:
        return person, day, quantity, pence
    month = months(day)
    period = np.zeros(len(person), dtype=np.int64) if period is None else period
    in_order = bool(((person[1:] > person[:-1]) | ((person[1:] == person[:-1]) & (day[1:] >= day[:-1]))).all())
    order = np.arange(len(person)) if in_order else np.lexsort((day, person))  # extracts come sorted
    p, m, g = person[order], month[order], period[order]
    first = np.ones(len(p), dtype=bool)
    first[1:] = (p[1:] != p[:-1]) | (m[1:] != m[:-1]) | (g[1:] != g[:-1])
    starts = np.flatnonzero(first)
    return (p[starts], day[order][starts], np.add.reduceat(quantity[order], starts),
            np.add.reduceat(pence[order], starts))


def sort_order(person: np.ndarray, start: np.ndarray, rank: np.ndarray, ties: tuple) -> np.ndarray:
    """The order of rows by (person, start, rank), then by ``ties`` (last key first, as
    ``np.lexsort`` takes them): ``np.lexsort((*ties, rank, start, person))``, faster. The first
    three keys are packed into one int64 when they fit (a stable sort of it runs fast over rows
    that come in sorted runs, as each extract's do); only rows sharing it are sorted by ``ties``."""
    n = len(person)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    p_lo, d_lo = int(person.min()), int(start.min())
    p_span, d_span = int(person.max()) - p_lo + 1, int(start.max()) - d_lo + 1
    r_span = int(rank.max()) + 1
    if p_span * d_span * r_span >= 1 << 62:
        return np.lexsort((*ties, rank, start, person))
    key = ((person - p_lo) * d_span + (start.astype(np.int64) - d_lo)) * r_span + rank
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    tied = np.zeros(n, dtype=bool)
    tied[1:] = sorted_key[1:] == sorted_key[:-1]
    tied[:-1] |= tied[1:]
    where = np.flatnonzero(tied)
    if len(where):
        rows = order[where]
        order[where] = rows[np.lexsort((*(t[rows] for t in ties), key[rows]))]
    return order


def activity_table(parts: list[ActivityRows]) -> pa.Table:
    """The contract's activity table of these rows, sorted (see the module notes)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return SCHEMA.empty_table()
    codes = sorted({c for p in parts for c in p.codes})
    position = {c: k for k, c in enumerate(codes)}
    diagnosis = []
    for p in parts:
        remap = np.array([position[c] for c in p.codes] + [-1], dtype=np.int32)
        diagnosis.append(remap[p.diagnosis])  # -1 indexes the appended -1
    columns = {name: np.concatenate([getattr(p, name) for p in parts])
               for name in ("person", "setting", "start", "end", "quantity", "pence")}
    columns["diagnosis"] = np.concatenate(diagnosis)
    del parts, diagnosis
    order = sort_order(columns["person"], columns["start"], _SETTING_RANK[columns["setting"]],
                       tuple(columns[c] for c in ("diagnosis", "pence", "quantity", "end")))

    def take(name):  # each column sorted, then its unsorted copy dropped (memory: one column at a time)
        return np.take(columns.pop(name), order)

    person = pa.array(take("person"))
    setting = pa.DictionaryArray.from_arrays(pa.array(take("setting").astype(np.int32)), _SETTINGS)
    start, end = date_array(take("start")), date_array(take("end"))
    quantity, cost = pa.array(take("quantity")), pa.array(take("pence") / 100.0)
    diag = take("diagnosis")
    has_diag = diag >= 0
    diag_array = pa.DictionaryArray.from_arrays(pa.array(np.where(has_diag, diag, 0), mask=~has_diag),
                                                pa.array(codes, type=pa.string())).dictionary_decode() \
        if has_diag.any() else pa.nulls(len(diag), pa.string())
    return pa.table([person, setting, start, end, quantity, cost, diag_array], schema=SCHEMA)


def date_array(days: np.ndarray) -> pa.Array:
    """int32 day numbers as an arrow date32 array without copying them (INT32_NULL = null)."""
    days = np.ascontiguousarray(days, dtype=np.int32)
    missing = days == INT32_NULL
    validity = pa.array(~missing).buffers()[1] if missing.any() else None
    return pa.Array.from_buffers(pa.date32(), len(days), [validity, pa.py_buffer(days)])
