"""Cutting tables already in memory into person_id ranges, for tests that feed a stage's
partition function :class:`~riskcap.data.read.Tables` instead of ranges of a data folder
(the product reads every partition from disk: :mod:`riskcap.stream.plan`)."""
from __future__ import annotations

import numpy as np

from riskcap.data.read import Tables


def slice_tables(tables: Tables, people: int):
    """Contiguous ``person_id`` ranges of ``people`` persons each, as views of ``tables``
    (sorted by person_id, as :func:`riskcap.data.load.load_tables` returns them); the first
    range also takes earlier ids and the last every later one, so no row is lost."""
    ids = tables.persons["person_id"].to_numpy(dtype=np.int64)
    names = ["conditions", "activity"] + (["registrations"] if tables.registrations is not None else [])
    others = {name: getattr(tables, name)["person_id"].to_numpy(dtype=np.int64) for name in names}
    for pid in [ids, *others.values()]:
        assert (np.diff(pid) >= 0).all(), "tables must be sorted by person_id"
    for lo in range(0, max(len(ids), 1), people):
        hi = min(lo + people, len(ids))
        first = ids[lo] if lo > 0 else np.iinfo(np.int64).min
        stop = ids[hi] if hi < len(ids) else np.iinfo(np.int64).max
        cut = {name: np.searchsorted(pid, [first, stop]) for name, pid in others.items()}
        if hi == len(ids):
            cut = {name: (c[0], len(others[name])) for name, c in cut.items()}
        rows = {name: getattr(tables, name).iloc[c[0]:c[1]] for name, c in cut.items()}
        yield Tables(practices=tables.practices, persons=tables.persons.iloc[lo:hi],
                     practice_changes=tables.practice_changes, **rows)
