"""One extract's rows of one partition: parsed columns, problems, rows not mapped, and the tally.

Every row read ends in exactly one of three states, so nothing is dropped silently:

* **rejected**: it breaks a rule (a :class:`riskcap.data.parse.Problem`, named by file, column,
  rows and examples, exactly as ``riskcap validate`` names problems); in quarantine mode it
  goes to the rejects file with its reasons;
* **unmapped**: it is valid but the contract has no place for it (a maternity admission, a
  SNOMED CT code in no codelist, a person not in the GP registrations), counted by reason;
* **mapped**: it becomes (part of) a row of the contract.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from riskcap.data.parse import MAX_EXAMPLES, Problem, row_problem
from riskcap.ingest.extracts import INT32_NULL, Parsed, Source, parse

_KIND_TEXT = {"int": "whole number", "float": "number", "date": "date (YYYY-MM-DD or DD/MM/YYYY)",
              "month": "date or month (YYYY-MM-DD, YYYY-MM, DD/MM/YYYY or MM/YYYY)", "bool": "true/false",
              "code": "code", "key": "key", "text": "text"}


class Rows:
    """The rows of ``source`` in one partition (``raw`` as read, ``labels`` their 0-based file rows)."""

    def __init__(self, source: Source, raw: pa.Table, labels: np.ndarray):
        self.source, self.raw, self.labels = source, raw, labels
        self.n = raw.num_rows
        self.problems: list[Problem] = []
        self.rejected = np.zeros(self.n, dtype=bool)
        self._reason = np.full(self.n, -1, dtype=np.int16)
        self._reasons: list[str] = []
        self._reason_column: dict[str, str] = {}
        self._parsed: dict[str, Parsed] = {}

    @property
    def key(self) -> str:
        return self.source.extract.key

    def col(self, name: str) -> Parsed:
        """A column parsed to its kind; values that do not parse, and missing values of a
        non-nullable column, are reported (once) as problems."""
        if name not in self._parsed:
            spec = self.source.extract.field(name)
            column = self.raw.column(name) if name in self.raw.column_names else None
            parsed = parse(column, spec.kind, self.n)
            if column is not None:
                self.problem(parsed.bad, name, "wrong_type", f"not a valid {_KIND_TEXT[spec.kind]}")
                if not spec.nullable:
                    self.problem(parsed.null & ~parsed.bad, name, "missing_value", "missing value")
            self._parsed[name] = parsed
        return self._parsed[name]

    def has(self, name: str) -> bool:
        return name in self.raw.column_names

    def problem(self, mask, columns: str | list[str], rule: str, message: str, column: str | None = None) -> None:
        """Reject the rows in ``mask`` for breaking a rule (examples show the values of
        ``columns`` as read; the problem is named by ``column``, default the first of them)."""
        mask = np.asarray(mask, dtype=bool)
        positions = np.flatnonzero(mask)
        if len(positions) == 0:
            return
        columns = [columns] if isinstance(columns, str) else list(columns)
        shown = [c for c in columns if c in self.raw.column_names]
        first = positions[:MAX_EXAMPLES]
        sample = self.raw.select(shown).take(pa.array(first)).to_pandas() if shown else pd.DataFrame(index=range(len(first)))
        sample.index = pd.Index(self.labels[first])
        p = row_problem(sample, np.ones(len(first), dtype=bool), self.key, str(self.source.path),
                        shown or columns, rule, message, column=column if shown else "")
        p.count, p.row_indices = len(positions), positions
        self.problems.append(p)
        self.rejected |= mask

    def unmapped(self, mask, reason: str, column: str | None = None) -> None:
        """Count the rows in ``mask`` (not already rejected or unmapped) as not mapped, for
        ``reason``; ``column``: the code column whose values the report lists for it."""
        mask = np.asarray(mask, dtype=bool) & (self._reason < 0)
        if mask.any():
            if reason not in self._reasons:
                self._reasons.append(reason)
                if column is not None:
                    self._reason_column[reason] = column
            self._reason[mask] = self._reasons.index(reason)

    @property
    def keep(self) -> np.ndarray:
        """Rows that map to the contract: neither rejected nor unmapped."""
        return ~self.rejected & (self._reason < 0)

    def tally(self) -> "Tally":
        """Rows read, mapped, unmapped (by reason, and by code where the reason has a code
        column) and rejected; they add up."""
        unmapped, codes = Counter(), Counter()
        counted = np.where(self.rejected, -1, self._reason)
        for k, reason in enumerate(self._reasons):
            rows = counted == k
            n = int(rows.sum())
            if not n:
                continue
            unmapped[reason] = n
            column = self._reason_column.get(reason)
            if column is not None:
                parsed = self.col(column)
                for index, count in zip(*np.unique(parsed.values[rows], return_counts=True)):
                    code = parsed.categories[index] if index >= 0 else "(empty)"
                    codes[(column, code, reason)] += int(count)
        rejected = int(self.rejected.sum())
        return Tally(self.n, self.n - rejected - sum(unmapped.values()), unmapped, rejected, codes)

    def rejects(self) -> pa.Table | None:
        """The rejected rows as read, with ``row`` (1-based file row) and ``reason`` (every
        problem of the row, joined with "; ")."""
        positions = np.flatnonzero(self.rejected)
        if len(positions) == 0:
            return None
        reasons = [[] for _ in positions]
        index = {int(p): k for k, p in enumerate(positions)}
        for p in self.problems:
            for row in p.row_indices:
                reasons[index[int(row)]].append(p.reason)
        out = self.raw.take(pa.array(positions))
        for i, fld in enumerate(out.schema):
            if pa.types.is_dictionary(fld.type):
                out = out.set_column(i, fld.name, out.column(i).cast(fld.type.value_type))
        out = out.append_column("row", pa.array(self.labels[positions] + 1, type=pa.int64()))
        return out.append_column("reason", pa.array(["; ".join(r) for r in reasons], type=pa.string()))

    # --- checks shared by the extracts ---------------------------------------------------------

    def dates_in_window(self, name: str, birth: np.ndarray | None, last_day: int) -> Parsed:
        """A date column, with problems for dates after ``last_day`` (the day before the extract
        date) and before birth."""
        d = self.col(name)
        present = ~d.null & ~d.bad
        self.problem(present & (d.values > last_day), name, "future_date",
                     f"date on or after the extract date {_iso(last_day + 1)}")
        if birth is not None:
            known = birth != INT32_NULL
            self.problem(present & known & (d.values < birth), name, "before_birth",
                         f"{name} is before the person's birth date")
        return d

    def not_negative(self, name: str) -> Parsed:
        v = self.col(name)
        what = {"cost_gbp": "cost"}.get(name, f"number of {name.replace('_', ' ')}")
        self.problem(~v.null & ~v.bad & (v.values < 0), name, "negative", f"negative {what}")
        return v

    def duplicate(self, columns: list[str], keys: list[np.ndarray], present: np.ndarray, message: str) -> None:
        """Reject every row (where ``present``) sharing its ``keys`` with another: there is no
        telling which is right. The last key is the identifier (an index of its distinct values),
        which names the problem."""
        rows = np.flatnonzero(present)
        if len(rows) < 2:
            return
        last = keys[-1][rows]  # the identifier: only rows whose identifier repeats can be duplicates
        lo, hi = int(last.min()), int(last.max())
        counts = np.bincount(last - lo) if hi - lo <= 4 * len(last) else None
        if counts is not None:
            rows = rows[counts[last - lo] > 1]
            if len(rows) < 2:
                return
        order = rows[np.lexsort([k[rows] for k in reversed(keys)])]
        same = np.ones(len(order) - 1, dtype=bool)
        for k in keys:
            same &= k[order][1:] == k[order][:-1]
        dup = np.zeros(self.n, dtype=bool)
        dup[order[1:][same]] = True
        dup[order[:-1][same]] = True
        self.problem(dup, columns, "duplicate_key", message, column=columns[-1])


@dataclass
class Tally:
    """Rows of one extract file: read = mapped + sum(unmapped) + rejected."""

    read: int = 0
    mapped: int = 0
    unmapped: Counter = field(default_factory=Counter)
    rejected: int = 0
    #: unmapped rows by (code column, code, reason)
    codes: Counter = field(default_factory=Counter)

    def add(self, other: "Tally") -> None:
        self.read += other.read
        self.mapped += other.mapped
        self.unmapped.update(other.unmapped)
        self.rejected += other.rejected
        self.codes.update(other.codes)

    def reconciles(self) -> bool:
        return self.read == self.mapped + sum(self.unmapped.values()) + self.rejected


def merge_problems(merged: dict[tuple, Problem], problems: list[Problem]) -> None:
    """Add one partition's problems to ``merged``: the same problem (file, column, rule,
    message) counts its rows together and keeps the first examples in file order."""
    for p in problems:
        m = merged.get(p.key)
        if m is None:
            merged[p.key] = m = Problem(p.table, p.file, p.column, p.rule, p.message, level=p.level)
        m.count += p.count
        pairs = sorted(zip(m.example_rows + p.example_rows, m.examples + p.examples), key=lambda t: t[0])
        m.example_rows = [r for r, _ in pairs[:MAX_EXAMPLES]]
        m.examples = [e for _, e in pairs[:MAX_EXAMPLES]]


def _iso(day: int) -> str:
    return str(np.datetime64(int(day), "D"))
