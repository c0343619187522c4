"""Who is registered where, day by day: the one answer every consumer uses.

A person's registrations are periods ``[registered_from, registered_to)`` at a practice
(contract v2: the optional ``registrations`` table; without it, one period per person from
``persons``). A death ends the period it falls in. :func:`periods_of` turns a partition's
persons and registrations into :class:`Periods` (arrays, sorted by person then start), and :meth:`Periods.on`
answers "which period holds this person on this day" for many (person, day) pairs at once:
the practice at an index date, the practice an activity row is charged to, or none (between
lists, after leaving the ICB, before registering, after death).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from riskcap.data.read import day_numbers
from riskcap.stream.threads import kernel_threads

#: End day of an open period (still registered): after every real day.
OPEN = np.iinfo(np.int32).max
#: Period index for "registered nowhere on that day".
NOWHERE = -1


def registrations_of(persons: pd.DataFrame, registrations: pd.DataFrame | None = None) -> pd.DataFrame:
    """The registrations table, or (when the data have none) one period per person from persons."""
    if registrations is not None:
        return registrations
    keep = persons["practice_code"].notna().to_numpy()
    return persons.loc[keep, ["person_id", "practice_code", "registered_from", "registered_to"]]


@dataclass(frozen=True)
class Periods:
    """Registration periods sorted by (person, start): int64 person, int32 start and end days
    (end exclusive, :data:`OPEN` when open, cut at death), and each period's practice as an
    index into ``practice_codes`` (sorted)."""

    person: np.ndarray
    start: np.ndarray
    end: np.ndarray
    practice: np.ndarray
    practice_codes: np.ndarray

    def __len__(self) -> int:
        return int(self.person.size)

    def on(self, person_id: np.ndarray, day: np.ndarray) -> np.ndarray:
        """For each (person, day): the index of the period holding that day, or :data:`NOWHERE`."""
        person_id = np.ascontiguousarray(person_id, dtype=np.int64)
        day = np.ascontiguousarray(day, dtype=np.int32)
        out = np.empty(person_id.size, dtype=np.int64)
        with kernel_threads(person_id.size):
            _period_on(self.person, self.start, self.end, person_id, day, out)
        return out

    def practice_on(self, person_id: np.ndarray, day: np.ndarray) -> np.ndarray:
        """For each (person, day): the practice index (into ``practice_codes``) or :data:`NOWHERE`."""
        period = self.on(person_id, day)
        return np.where(period >= 0, self.practice[np.maximum(period, 0)], NOWHERE)

    def days_in(self, lo: int, hi: int) -> np.ndarray:
        """Days of each period inside ``[lo, hi)``."""
        return np.maximum(np.minimum(self.end, hi).astype(np.int64) - np.maximum(self.start, lo), 0)


def periods_of(persons: pd.DataFrame, registrations: pd.DataFrame | None = None) -> Periods:
    """The registration periods of ``persons`` (see :func:`registrations_of`), cut at their deaths."""
    regs = registrations_of(persons, registrations)
    person = regs["person_id"].to_numpy(dtype=np.int64)
    start = day_numbers(regs["registered_from"], OPEN, np.int32)
    end = day_numbers(regs["registered_to"], OPEN, np.int32)
    died_ids = persons["person_id"].to_numpy(dtype=np.int64)
    died = day_numbers(persons["died_on"], OPEN, np.int32)
    if (died != OPEN).any():  # a death ends the period it falls in
        order = np.argsort(died_ids, kind="stable")
        at = np.minimum(np.searchsorted(died_ids[order], person), max(len(order) - 1, 0))
        death = np.where(died_ids[order][at] == person, died[order][at], OPEN) if len(order) else OPEN
        end = np.minimum(end, death).astype(np.int32)
    codes = regs["practice_code"]
    if isinstance(codes.dtype, pd.CategoricalDtype):
        codes = codes.astype(str)
    practice, practice_codes = pd.factorize(codes, sort=True)
    order = np.lexsort((start, person))
    if not np.array_equal(order, np.arange(len(order))):
        person, start, end, practice = person[order], start[order], end[order], practice[order]
    return Periods(np.ascontiguousarray(person), np.ascontiguousarray(start), np.ascontiguousarray(end),
                   practice.astype(np.int32), np.asarray(practice_codes, dtype=object))


@numba.njit(parallel=True, cache=True)
def _period_on(p_person, p_start, p_end, person, day, out):  # pragma: no cover - compiled
    """out[i] = the last period with (p_person, p_start) <= (person[i], day[i]) if it is that
    person's and ends after day[i], else -1 (binary search on the sorted periods)."""
    n = p_person.shape[0]
    for i in numba.prange(person.shape[0]):
        q, d = person[i], day[i]
        lo, hi = 0, n  # first period with key > (q, d) is in [lo, hi]
        while lo < hi:
            mid = (lo + hi) // 2
            if p_person[mid] < q or (p_person[mid] == q and p_start[mid] <= d):
                lo = mid + 1
            else:
                hi = mid
        k = lo - 1
        out[i] = k if k >= 0 and p_person[k] == q and d < p_end[k] else -1
