"""Outturn charged by the day: every penny once, to the practice on the row's day or the unregistered line."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import exposure as naive
from riskcap.capitation.exposure import N_SETTINGS, exposure_of, tariff_start
from riskcap.capitation.money import PenceOverflow
from riskcap.data.read import Tables
from riskcap.features import build_features
from riskcap.schema import SETTING_CODES

pytestmark = pytest.mark.unit

EPOCH = dt.date(1970, 1, 1)
T = (dt.date(2024, 4, 1) - EPOCH).days


def _ts(day):
    return pd.NaT if day is None else pd.Timestamp(EPOCH + dt.timedelta(days=int(day)))


@st.composite
def populations(draw):
    """People with random registrations (moves, gaps, leaving, late joining), deaths and activity
    dates around the tariff and outcome years."""
    persons, regs, rows = [], [], []
    for pid in range(1, draw(st.integers(1, 7)) + 1):
        day = draw(st.integers(T - 800, T + 300))
        first = day
        n = draw(st.integers(1, 3))
        last_code = None
        for k in range(n):
            length = draw(st.integers(1, 400))
            open_end = k == n - 1 and draw(st.booleans())
            last_code = draw(st.sampled_from(["P1", "P2", "P3"]))
            regs.append((pid, last_code, day, None if open_end else day + length))
            day += length + draw(st.integers(0, 60))
        died = draw(st.one_of(st.none(), st.integers(first + 1, T + 400)))
        stop = regs[-1][3]
        if died is not None and (stop is None or died < stop):
            stop = died  # a death ends the open (or a later) period, as persons records it
        persons.append((pid, last_code, first, stop, died))
        for _ in range(draw(st.integers(0, 12))):
            rows.append((pid, draw(st.sampled_from(SETTING_CODES)), draw(st.integers(T - 400, T + 400)),
                         draw(st.integers(0, 500_000)) / 100))
    person = pd.DataFrame({
        "person_id": [p[0] for p in persons], "practice_code": [p[1] for p in persons], "sex": "F",
        "birth_date": pd.Timestamp("1950-01-01"), "imd_decile": 5,
        "registered_from": [_ts(p[2]) for p in persons], "registered_to": [_ts(p[3]) for p in persons],
        "died_on": [_ts(p[4]) for p in persons], "care_home": False, "opted_out": False})
    registrations = pd.DataFrame({"person_id": [r[0] for r in regs], "practice_code": [r[1] for r in regs],
                                  "registered_from": [_ts(r[2]) for r in regs],
                                  "registered_to": [_ts(r[3]) for r in regs]})
    rows.sort()
    activity = pd.DataFrame({"person_id": pd.array([r[0] for r in rows], dtype="int64"),
                             "setting": pd.array([r[1] for r in rows], dtype="str"),
                             "start_date": pd.to_datetime([_ts(r[2]) for r in rows]),
                             "end_date": pd.to_datetime([_ts(r[2]) for r in rows]),
                             "quantity": 1, "cost_gbp": [r[3] for r in rows], "primary_diagnosis": None})
    conditions = pd.DataFrame({"person_id": pd.array([], dtype="int64"), "condition": pd.array([], dtype="str"),
                               "diagnosed_on": pd.to_datetime([])})
    practices = pd.DataFrame({"practice_code": ["P1", "P2", "P3"], "icb_code": "Q", "list_size": 1})
    return Tables(practices, person, conditions, activity, registrations=registrations)


@given(populations())
@settings(max_examples=120, deadline=None)
def test_every_penny_of_outturn_is_charged_once_to_the_right_place(tables):
    features = build_features(tables, T, joining_days=365)
    tariff = build_features(tables, tariff_start(T))
    ex = exposure_of(tables, T, features["person_id"].to_numpy(), tariff["person_id"].to_numpy())
    charged, unregistered, read = naive.charges(tables.persons, tables.registrations, tables.activity, T)
    assert int(ex.read_pence.sum()) == read
    assert int(ex.stay_pence.sum()) + int(ex.unregistered_pence.sum()) == read  # exactly once
    assert int(ex.unregistered_pence.sum()) == unregistered
    got: dict = {}
    person = features["person_id"].to_numpy()[ex.stay_row]
    for p, code, pence in zip(person.tolist(), ex.stay_practice.tolist(), ex.stay_pence.sum(axis=1).tolist()):
        if pence:
            got[(p, code)] = got.get((p, code), 0) + pence
    assert got == {k: v for k, v in charged.items() if v}
    tariff_ids = tariff["person_id"].to_numpy()
    priced = {(int(tariff_ids[r]), SETTING_CODES[s]): int(ex.tariff_pence[r, s])
              for r, s in zip(*np.nonzero(ex.tariff_pence))}
    want_priced = naive.tariff_charges(tables.persons, tables.registrations, tables.activity, tariff_start(T), T,
                                       tariff_ids)
    assert priced == {k: v for k, v in want_priced.items() if v}
    assert ex.stay_pence.shape == (len(ex.stay_row), N_SETTINGS) and (ex.stay_days > 0).all()
    # list days: every registered day of the outcome year, once, at its practice
    days = {}
    for p, code, d in zip(person.tolist(), ex.stay_practice.tolist(), ex.stay_days.tolist()):
        days[(p, code)] = days.get((p, code), 0) + d
    want = {}
    for p, code, start, stop in tables.registrations.itertuples(index=False):
        died = tables.persons.set_index("person_id").loc[p, "died_on"]
        a, b = naive._day(start), naive._day(stop)
        b = T + 365 if b is None else b
        if not pd.isna(died):
            b = min(b, naive._day(died))
        n = max(0, min(b, T + 365) - max(a, T))
        if n:
            want[(p, code)] = want.get((p, code), 0) + n
    assert days == want


def _three_people(costs=(10.0, 20.0, 300.0, 5.0)) -> Tables:
    persons = pd.DataFrame({"person_id": [1, 2, 3], "practice_code": ["P2", "P1", "P1"], "sex": "F",
                            "birth_date": pd.Timestamp("1950-01-01"), "imd_decile": 5,
                            "registered_from": pd.to_datetime(["2020-01-01", "2020-01-01", "2023-10-01"]),
                            "registered_to": pd.to_datetime([None, "2023-10-01", None]),
                            "died_on": pd.to_datetime([None, "2023-10-01", None]), "care_home": False,
                            "opted_out": False})
    regs = pd.DataFrame({"person_id": [1, 1, 2, 3], "practice_code": ["P1", "P2", "P1", "P1"],
                         "registered_from": pd.to_datetime(["2020-01-01", "2023-08-01", "2020-01-01", "2023-10-01"]),
                         "registered_to": pd.to_datetime(["2023-06-01", None, "2023-10-01", None])})
    activity = pd.DataFrame({"person_id": [1, 1, 2, 3], "setting": ["gp", "gp", "ae", "gp"],
                             "start_date": pd.to_datetime(["2023-05-01", "2023-07-01", "2023-09-01", "2023-11-01"]),
                             "end_date": pd.NaT, "quantity": 1, "cost_gbp": list(costs),
                             "primary_diagnosis": None})
    conditions = pd.DataFrame({"person_id": pd.array([], dtype="int64"), "condition": pd.array([], dtype="str"),
                               "diagnosed_on": pd.to_datetime([])})
    return Tables(pd.DataFrame({"practice_code": ["P1", "P2"], "icb_code": "Q", "list_size": 1}), persons,
                  conditions, activity, registrations=regs)


def test_tariff_year_counts_registered_days_and_costs_of_the_people_registered_then():
    day = lambda s: (dt.date.fromisoformat(s) - EPOCH).days  # noqa: E731
    tables = _three_people()
    tariff = build_features(tables, day("2023-04-01"))  # persons 1 and 2 (3 joins later: not priced)
    assert tariff["person_id"].tolist() == [1, 2]
    ex = exposure_of(tables, T, build_features(tables, T, joining_days=365)["person_id"].to_numpy(),
                     tariff["person_id"].to_numpy())
    gp, ae = SETTING_CODES.index("gp"), SETTING_CODES.index("ae")
    # person 1: the gap (June and July) is not registered, its 20.00 is not priced; days either side count
    start = day("2023-04-01")  # a calendar year before T (366 days: it holds 29 February 2024)
    assert ex.tariff_days.tolist() == [(day("2023-06-01") - start) + (T - day("2023-08-01")),
                                       day("2023-10-01") - start]  # person 2 dies: days to death
    assert ex.tariff_pence[:, gp].tolist() == [1000, 0] and ex.tariff_pence[:, ae].tolist() == [0, 30000]


def test_costs_beyond_exact_pence_arithmetic_are_refused_not_wrapped():
    """Each row below 2**53 pence but their sum beyond it: the by-day sums (float64 bincounts)
    would no longer be exact, so the exposure refuses; a row beyond int64 would wrap on the cast."""
    ids = np.array([1, 2, 3], dtype=np.int64)
    fine = exposure_of(_three_people((4e13, 4e13, 1.0, 1.0)), T, ids, ids[:2])
    assert fine.tariff_pence.sum() == 4 * 10**15 + 100  # the row in the gap is not priced
    for costs in ((5e13, 5e13, 1.0, 1.0), (1e30, 1.0, 1.0, 1.0)):
        with pytest.raises(PenceOverflow, match="activity costs in the tariff and outcome years"):
            exposure_of(_three_people(costs), T, ids, ids[:2])


@given(st.integers(1, 6), st.lists(st.tuples(st.integers(0, 5), st.integers(0, 20_000_000), st.integers(0, 366)),
                                   max_size=80))
@settings(max_examples=100, deadline=None)
def test_spread_sums_match_reference(n_groups, people):
    """The noise statistics' one-pass kernel against numpy's add.at (exact integers)."""
    from reference.capitation import spread_sums as slow
    from riskcap.capitation.accuracy import spread_sums

    group = np.array([min(g, n_groups - 1) for g, _, _ in people], dtype=np.int16)
    pounds = np.array([x for _, x, _ in people], dtype=np.int64)
    days = np.array([d for _, _, d in people], dtype=np.int64)
    np.testing.assert_array_equal(spread_sums(group, pounds, days, n_groups), slow(group, pounds, days, n_groups))
