"""Days on the lists and costs charged by the day, for one partition.

The tariff year ``[T0, T)`` prices groups from the people registered at ``T0``; the outcome
year ``[T, T + 365)`` charges each activity row to the practice the person was on the list of
that day, or to the ICB's unregistered line (``docs/capitation.md``, "Timing").
:func:`exposure_of` finds all of it with :meth:`riskcap.registrations.Periods.on`; it does not
depend on the need-group scheme or the in-scope settings (costs are kept per setting), so one
exposure serves every (scheme, settings) of a run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskcap.capitation.money import check_pence
from riskcap.data.read import Tables, day_numbers
from riskcap.errors import DataError
from riskcap.features import OUTCOME_DAYS, _coded, _numbers, _rows_of, months_before
from riskcap.registrations import NOWHERE, Periods, periods_of
from riskcap.schema import SETTING_CODES

N_SETTINGS = len(SETTING_CODES)


def tariff_start(index_day: int) -> int:
    """The tariff year's first day: the index date less one calendar year (as the features'
    12-month look-backs count), so grouping happens on the same calendar day as at T."""
    return months_before(index_day, 12)


@dataclass
class Exposure:
    """One partition's list days and by-day costs (pence, per setting in :data:`SETTING_CODES` order).

    Outcome year, per *stay* (a registration period's part inside the year): ``stay_row`` (row
    of the features at T), ``stay_practice`` (code), ``stay_days`` and ``stay_pence`` (stays x
    settings: costs charged to that stay's practice). ``unregistered_pence`` (settings): costs on
    days on no list; ``read_pence`` (settings): every outcome-year activity row of the
    partition's people, summed straight from the rows (so the reconciliation
    ``read = stays + unregistered`` is a check, not an identity).

    Tariff year, per row of the features at :func:`tariff_start`: ``tariff_days`` registered and
    ``tariff_pence`` (people x settings) on those days.
    """

    stay_row: np.ndarray
    stay_practice: np.ndarray
    stay_days: np.ndarray
    stay_pence: np.ndarray
    unregistered_pence: np.ndarray
    read_pence: np.ndarray
    tariff_days: np.ndarray
    tariff_pence: np.ndarray


def _activity_arrays(activity, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """person_id, start day, setting index and pence (``rint(cost_gbp x 100)``) of the activity
    rows starting in ``[lo, hi)`` (a frame, or an iterable of frames: batches of rows)."""
    frames = [activity] if isinstance(activity, pd.DataFrame) else activity
    parts = []
    for frame in frames:
        start = day_numbers(frame["start_date"], np.iinfo(np.int32).min, np.int32)
        rows = np.flatnonzero((start >= lo) & (start < hi))
        setting, lookup = _coded(frame["setting"], SETTING_CODES, "activity", "setting")
        cost = _numbers(frame["cost_gbp"], np.nan)[rows]
        bad = ~(cost >= 0)
        if bad.any():
            raise DataError(f"activity: {int(bad.sum())} cost_gbp value(s) are missing or negative")
        pence = np.rint(cost * 100)
        check_pence(pence, "activity costs in the tariff and outcome years")  # before the cast could wrap
        parts.append((frame["person_id"].to_numpy(dtype=np.int64)[rows], start[rows],
                      np.asarray(lookup)[setting[rows]].astype(np.int64), pence.astype(np.int64)))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.astype(np.int32), empty, empty
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(4))


def exposure_of(tables: Tables, index_day: int, outcome_ids: np.ndarray, tariff_ids: np.ndarray,
                periods: Periods | None = None) -> Exposure:
    """The :class:`Exposure` of a partition at index day T.

    ``outcome_ids``: person_ids (sorted) of the features at T built with joiners
    (``build_features(tables, T, joining_days=365)``); ``tariff_ids``: those of the features at
    :func:`tariff_start`. Raises DataError if a person is on a list in the outcome year but not in
    ``outcome_ids`` (the features and tables disagree).
    """
    periods = periods_of(tables.persons, tables.registrations) if periods is None else periods
    lo, hi, base = index_day, index_day + OUTCOME_DAYS, tariff_start(index_day)
    person, start, setting, pence = _activity_arrays(tables.activity, base, hi)
    # every sum below (float64 bincounts of whole pence) is at most this total: exact below 2**53
    check_pence(pence, "activity costs in the tariff and outcome years")

    # outcome year: stays and charges
    days = periods.days_in(lo, hi)
    stays = np.flatnonzero(days > 0)
    stay_row = _rows_of(outcome_ids, periods.person[stays])
    if (stay_row < 0).any():
        missing = np.unique(periods.person[stays][stay_row < 0])[:5]
        raise DataError(f"people on a list in the outcome year are missing from the features: "
                        f"{', '.join(map(str, missing))}")
    stay_of_period = np.full(len(periods), -1, dtype=np.int64)
    stay_of_period[stays] = np.arange(len(stays))

    # tariff year: days registered of the people registered at its start
    tariff_period = _rows_of(tariff_ids, periods.person)
    mine = tariff_period >= 0
    tariff_days = np.bincount(tariff_period[mine], weights=periods.days_in(base, lo)[mine],
                              minlength=len(tariff_ids)).astype(np.int64)

    # each row's pence into one array of sums, cells (owner x settings) laid out as
    # [stays | the unregistered line | tariff people | rows no one is charged]: an outcome-year
    # row goes to the stay holding its day, else the unregistered line; a tariff-year row to
    # the person registered at the tariff start, if on a list that day. A row's period is its
    # person's, so the period also names its stay and its tariff row.
    period = periods.on(person, start)
    outcome = start >= lo  # the rows start in [base, hi): the outcome year's, and before it the tariff year's
    at = np.where(period != NOWHERE, period, len(periods))  # NOWHERE: the appended -1 (no owner)
    owner = np.where(outcome, np.append(stay_of_period, -1)[at], np.append(tariff_period, -1)[at])
    n_stays, n_tariff = len(stays), len(tariff_ids)
    first_tariff = (n_stays + 1) * N_SETTINGS
    nobody = first_tariff + n_tariff * N_SETTINGS
    cell = np.where(owner >= 0, owner * N_SETTINGS + setting + np.where(outcome, 0, first_tariff),
                    np.where(outcome, n_stays * N_SETTINGS + setting, nobody))
    # float64 sums of whole pence are exact below 2**53 (checked above), in any order
    sums = np.rint(np.bincount(cell, weights=pence, minlength=nobody + 1)).astype(np.int64)
    read = np.rint(np.bincount(np.where(outcome, setting, N_SETTINGS), weights=pence,
                               minlength=N_SETTINGS + 1)[:N_SETTINGS]).astype(np.int64)

    return Exposure(stay_row=stay_row, stay_practice=periods.practice_codes[periods.practice[stays]],
                    stay_days=days[stays].astype(np.int64),
                    stay_pence=sums[:n_stays * N_SETTINGS].reshape(n_stays, N_SETTINGS),
                    unregistered_pence=sums[n_stays * N_SETTINGS:first_tariff], read_pence=read, tariff_days=tariff_days,
                    tariff_pence=sums[first_tariff:nobody].reshape(n_tariff, N_SETTINGS))
