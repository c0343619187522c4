"""What a load read, found wrong, used and quarantined, per table (:class:`LoadSummary`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from riskcap.data.parse import MAX_EXAMPLES, Problem
from riskcap.schema import ALL_TABLES, TABLES


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
        in one part only (:func:`riskcap.data.load.load_partition` reports them in the first).
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
