"""Who of the scored people may be listed at the list date, and why the others may not.

Each scored person gets one exclusion reason (the first that applies, in
:data:`EXCLUSIONS` order) or none, so the summary's counts add up: scored = eligible +
excluded. Registration and age follow the feature builder's conventions, so a list and
the scores agree on who was registered on the day.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskcap.data.read import days
from riskcap.errors import DataError
from riskcap.features import age_on, to_day

#: Exclusion reasons, in the order they are judged: a person is counted once, under the
#: first reason that applies. Opted-out people are never listed, whatever the options.
EXCLUSIONS: tuple[str, ...] = (
    "not in persons table",
    "deceased",
    "deregistered",
    "not yet registered",
    "registered with another practice",
    "national data opt-out",
    "under 18",
    "palliative care register",
    "care home",
)
ADULT_AGE = 18


@dataclass
class Eligibility:
    """Who of the scored people may be listed, and why the others may not.

    Attributes
    ----------
    exclusion : numpy.ndarray of int8
        Per scored row: -1 when eligible, else the position of the reason in
        :data:`EXCLUSIONS`.
    age : numpy.ndarray of int64
        Age in whole years at the list date (-1 when the person is not in ``persons``).
    person_row : numpy.ndarray of int64
        Row of the person in the ``persons`` frame (-1 when absent).
    """

    exclusion: np.ndarray
    age: np.ndarray
    person_row: np.ndarray

    @property
    def eligible(self) -> np.ndarray:
        return self.exclusion < 0

    def counts(self, mask: np.ndarray | None = None) -> dict[str, int]:
        """Number excluded for each reason (every reason present, zeros included)."""
        codes = self.exclusion if mask is None else self.exclusion[mask]
        tally = np.bincount(codes[codes >= 0].astype(np.int64), minlength=len(EXCLUSIONS))
        return {reason: int(n) for reason, n in zip(EXCLUSIONS, tally)}


def palliative_ids(conditions: pd.DataFrame, list_date) -> np.ndarray:
    """Sorted ids of people on the palliative care register before ``list_date``.

    Uses the feature builder's convention: a condition counts when recorded strictly
    before the date.
    """
    day = to_day(list_date)
    on = (conditions["condition"].astype("str") == "palliative").to_numpy()
    diagnosed = days(conditions["diagnosed_on"]).astype(np.int64)
    on = on & (diagnosed != np.iinfo(np.int32).min) & (diagnosed < day)
    return np.unique(conditions["person_id"].to_numpy(dtype=np.int64)[on])


def eligibility(scores: pd.DataFrame, persons: pd.DataFrame, list_date, *, include_children: bool = False,
                exclude_palliative: bool = False, exclude_care_home: bool = False,
                palliative: np.ndarray | None = None) -> Eligibility:
    """Judge every scored person at the list date.

    Parameters
    ----------
    scores : DataFrame
        ``person_id`` and ``practice_code`` of every scored person.
    persons : DataFrame
        The contract's persons table (contract dtypes).
    list_date : date-like
        The date the list is for (the scores' index date).
    include_children : bool
        List people under 18 too (default: exclude them).
    exclude_palliative, exclude_care_home : bool
        Also exclude people on the palliative care register (``palliative`` ids) or
        living in a care home.
    palliative : array of int, optional
        Ids on the palliative register (see :func:`palliative_ids`); needed with
        ``exclude_palliative``.

    Returns
    -------
    Eligibility
        Registration follows the feature builder: registered on ``[registered_from,
        registered_to)``, alive before ``died_on``. A missing ``opted_out`` value counts
        as opted out.
    """
    if exclude_palliative and palliative is None:
        raise ValueError("exclude_palliative needs the palliative register ids")
    day = to_day(list_date)
    pid = persons["person_id"].to_numpy(dtype=np.int64)
    index = pd.Index(pid)
    if not index.is_unique:
        dup = index[index.duplicated()].unique()[:5]
        raise DataError(f"persons: column 'person_id': {int(index.duplicated().sum())} duplicate id(s), "
                        f"e.g. {', '.join(map(str, dup))}")
    scored_ids = scores["person_id"].to_numpy(dtype=np.int64)
    row = index.get_indexer(scored_ids).astype(np.int64)
    n = len(scored_ids)
    if len(pid) == 0:  # nobody can be found
        return Eligibility(np.zeros(n, dtype=np.int8), np.full(n, -1, dtype=np.int64), row)
    found = row >= 0
    take = np.where(found, row, 0)
    big = np.iinfo(np.int64).max
    died = _days_or(persons["died_on"], big)[take]
    reg_to = _days_or(persons["registered_to"], big)[take]
    reg_from = _days_or(persons["registered_from"], big)[take]
    other_practice = (persons["practice_code"].astype("str").to_numpy(dtype=object)[take]
                      != scores["practice_code"].astype("str").to_numpy(dtype=object))
    opted = persons["opted_out"].fillna(True).to_numpy(dtype=bool)[take]
    care_home = persons["care_home"].fillna(False).to_numpy(dtype=bool)[take]
    age = np.where(found, age_on(persons["birth_date"], day)[take], -1)
    under_age = (age < ADULT_AGE) & found & (not include_children)
    on_palliative = (np.isin(scored_ids, palliative) if exclude_palliative else np.zeros(n, dtype=bool))
    conditions = [
        ~found,
        died <= day,
        reg_to <= day,
        reg_from > day,
        other_practice,
        opted,
        under_age,
        on_palliative,
        care_home & exclude_care_home,
    ]
    exclusion = np.select(conditions, list(range(len(EXCLUSIONS))), default=-1).astype(np.int8)
    return Eligibility(exclusion, age.astype(np.int64), row)


def _days_or(dates: pd.Series, missing: int) -> np.ndarray:
    out = days(dates).astype(np.int64)
    out[out == np.iinfo(np.int32).min] = missing
    return out
