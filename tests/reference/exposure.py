"""Twin of :func:`riskcap.capitation.exposure.exposure_of`: every activity row charged one by one."""
from __future__ import annotations

import datetime as dt

import pandas as pd

EPOCH = dt.date(1970, 1, 1)


def _day(value) -> int | None:
    return None if value is None or pd.isna(value) else (pd.Timestamp(value).date() - EPOCH).days


def _periods(persons: pd.DataFrame, registrations: pd.DataFrame) -> dict[int, list]:
    """Each person's (practice_code, first day, end day or None) periods, cut at their death."""
    died = {int(p): _day(d) for p, d in zip(persons["person_id"], persons["died_on"])}
    periods: dict[int, list] = {}
    for p, code, start, stop in registrations[["person_id", "practice_code", "registered_from",
                                               "registered_to"]].itertuples(index=False):
        end = _day(stop)
        if died.get(int(p)) is not None:
            end = died[int(p)] if end is None else min(end, died[int(p)])
        periods.setdefault(int(p), []).append((code, _day(start), end))
    return periods


def tariff_charges(persons: pd.DataFrame, registrations: pd.DataFrame, activity: pd.DataFrame, first_day: int,
                   index_day: int, tariff_ids) -> dict:
    """Tariff-year pence per (person, setting): rows starting in [first_day, index_day) of the
    people in ``tariff_ids``, on days one of their periods holds."""
    periods = _periods(persons, registrations)
    priced = {int(p) for p in tariff_ids}
    out: dict = {}
    for p, setting, start, cost in activity[["person_id", "setting", "start_date", "cost_gbp"]].itertuples(index=False):
        day = _day(start)
        if first_day <= day < index_day and int(p) in priced and any(
                a <= day and (b is None or day < b) for _, a, b in periods.get(int(p), [])):
            out[(int(p), setting)] = out.get((int(p), setting), 0) + int(round(cost * 100))
    return out


def charges(persons: pd.DataFrame, registrations: pd.DataFrame, activity: pd.DataFrame, index_day: int
            ) -> tuple[dict, int, int]:
    """Outcome-year pence per (person, practice) charged by each row's start day, the unregistered
    pence and all pence read, by reading the rows and the person's periods in plain Python."""
    periods = _periods(persons, registrations)
    charged: dict = {}
    unregistered = read = 0
    for p, start, cost in activity[["person_id", "start_date", "cost_gbp"]].itertuples(index=False):
        day, pence = _day(start), int(round(cost * 100))
        if not index_day <= day < index_day + 365:
            continue
        read += pence
        holders = [code for code, a, b in periods.get(int(p), []) if a <= day and (b is None or day < b)]
        assert len(holders) <= 1, "overlapping periods"
        if holders:
            charged[(int(p), holders[0])] = charged.get((int(p), holders[0]), 0) + pence
        else:
            unregistered += pence
    return charged, unregistered, read
