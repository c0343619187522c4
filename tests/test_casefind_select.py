"""Eligibility and selection against slow, obviously correct references."""
from __future__ import annotations

import datetime as dt
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcap.casefinding.eligibility import EXCLUSIONS, eligibility, palliative_ids
from riskcap.casefinding.selection import SelectionRule, risk_order, select
from riskcap.errors import ConfigError, DataError

pytestmark = pytest.mark.unit
DAY = dt.date(2024, 4, 1)


def _persons(rows):
    base = {"practice_code": "A1", "sex": "F", "birth_date": "1950-01-01", "imd_decile": 5,
            "registered_from": "2000-01-01", "registered_to": None, "died_on": None, "care_home": False,
            "opted_out": False}
    p = pd.DataFrame([{**base, **r} for r in rows])
    for col in ("birth_date", "registered_from", "registered_to", "died_on"):
        p[col] = pd.to_datetime(p[col]).astype("datetime64[s]")
    return p


def test_each_exclusion_reason_and_its_precedence():
    persons = _persons([
        {"person_id": 1},  # eligible
        {"person_id": 2, "died_on": "2024-04-01"},  # died on the list date
        {"person_id": 3, "registered_to": "2024-03-01", "opted_out": True},  # deregistered beats opt-out
        {"person_id": 4, "registered_from": "2024-04-02"},
        {"person_id": 5, "practice_code": "B2"},
        {"person_id": 6, "opted_out": True, "birth_date": "2010-01-01"},  # opt-out beats under 18
        {"person_id": 7, "birth_date": "2006-04-02"},  # 17 on the list date
        {"person_id": 8, "birth_date": "2006-04-01"},  # 18 on the list date: eligible
        {"person_id": 9, "care_home": True},
        {"person_id": 10, "died_on": "2024-04-02"},  # dies the day after: eligible
        {"person_id": 11, "registered_to": "2024-04-02"},  # leaves the day after: eligible
    ])
    scores = pd.DataFrame({"person_id": [*range(1, 12), 99, 12], "practice_code": ["A1"] * 13})
    persons = pd.concat([persons, _persons([{"person_id": 12}])], ignore_index=True)
    got = eligibility(scores, persons, DAY, exclude_care_home=True, exclude_palliative=True,
                      palliative=np.array([12]))
    names = ["" if c < 0 else EXCLUSIONS[c] for c in got.exclusion]
    assert names == ["", "deceased", "deregistered", "not yet registered", "registered with another practice",
                     "national data opt-out", "under 18", "", "care home", "", "", "not in persons table",
                     "palliative care register"]
    assert got.age.tolist()[:8] == [74, 74, 74, 74, 74, 14, 17, 18]
    assert got.age[11] == -1 and got.person_row[11] == -1
    assert sum(got.counts().values()) == int((~got.eligible).sum())
    # without the options, children / care home / palliative are listed... except children by default
    default = eligibility(scores, persons, DAY)
    assert default.exclusion[8] == -1 and default.exclusion[12] == -1 and EXCLUSIONS[default.exclusion[6]] == "under 18"
    children = eligibility(scores, persons, DAY, include_children=True)
    assert children.exclusion[6] == -1
    assert EXCLUSIONS[children.exclusion[5]] == "national data opt-out"  # never listed, whatever the options


def test_missing_opt_out_value_counts_as_opted_out():
    persons = _persons([{"person_id": 1}, {"person_id": 2}])
    persons["opted_out"] = pd.array([False, None], dtype="boolean")
    got = eligibility(pd.DataFrame({"person_id": [1, 2], "practice_code": "A1"}), persons, DAY)
    assert got.exclusion[0] == -1 and EXCLUSIONS[got.exclusion[1]] == "national data opt-out"


def test_duplicate_persons_are_an_error():
    persons = _persons([{"person_id": 1}, {"person_id": 1}])
    with pytest.raises(DataError, match="duplicate"):
        eligibility(pd.DataFrame({"person_id": [1], "practice_code": "A1"}), persons, DAY)


def test_empty_persons_table_excludes_everyone():
    got = eligibility(pd.DataFrame({"person_id": [1, 2], "practice_code": "A1"}), _persons([{"person_id": 1}]).iloc[:0], DAY)
    assert got.counts()["not in persons table"] == 2


def test_palliative_register_uses_dates_before_the_list_date():
    conditions = pd.DataFrame({"person_id": [1, 2, 3, 3], "condition": ["palliative", "palliative", "copd", "palliative"],
                               "diagnosed_on": pd.to_datetime(["2024-03-31", "2024-04-01", "2020-01-01", "2019-01-01"])
                               .astype("datetime64[s]")})
    assert palliative_ids(conditions, DAY).tolist() == [1, 3]


@pytest.mark.parametrize("kwargs,text", [
    ({}, "top 2% of each practice"),
    ({"top": "0.5%"}, "top 0.5% of each practice"),
    ({"top_n": 50}, "top 50 of each practice"),
    ({"min_score": 40}, "score of 40 or more"),
    ({"top": "2", "within": "population"}, "top 2% of the whole eligible population"),
])
def test_rule_parsing_and_description(kwargs, text):
    assert text in SelectionRule.parse(**kwargs).describe()


@pytest.mark.parametrize("kwargs", [{"top": "0%"}, {"top": "abc"}, {"top": "150%"}, {"top_n": 0}, {"min_score": 101},
                                    {"top": "2%", "min_score": 3}, {"within": "icb"}])
def test_bad_rules(kwargs):
    with pytest.raises(ConfigError):
        SelectionRule.parse(**kwargs)


def test_top_percent_count_is_exact():
    rule = SelectionRule.parse(top="0.7%")
    assert rule.top_percent == Fraction(7, 10)
    # 0.7% of 1000 is exactly 7: no float error pushing it to 8
    assert rule.count(1000) == 7
    assert rule.count(1001) == 8 and rule.count(1) == 1 and rule.count(0) == 0


def _reference(frame, rule):
    """Plain Python: sort each practice, cut by the rule, ranks from 1."""
    out = []
    people = list(frame.itertuples(index=False))
    key = lambda r: (-r.score, -r.probability, r.person_id)  # noqa: E731
    chosen = None
    if rule.within == "population":
        everyone = sorted(people, key=key)
        k = rule.count(len(everyone), np.array([r.score for r in everyone]))
        chosen = {r.person_id for r in everyone[:k]}
    for code in sorted({r.practice_code for r in people}):
        mine = sorted((r for r in people if r.practice_code == code), key=key)
        k = (sum(r.person_id in chosen for r in mine) if chosen is not None
             else rule.count(len(mine), np.array([r.score for r in mine])))
        out += [(rank, code, r.person_id) for rank, r in enumerate(mine[:k], start=1)]
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A1", "B2", "C3"]), st.integers(0, 10), st.integers(0, 4)),
                min_size=0, max_size=60),
       st.sampled_from([{"top": "10%"}, {"top": "33%"}, {"top_n": 3}, {"min_score": 5},
                        {"top": "20%", "within": "population"}, {"top_n": 4, "within": "population"}]))
def test_select_matches_reference(rows, rule_kwargs):
    frame = pd.DataFrame({"practice_code": [r[0] for r in rows], "person_id": np.arange(len(rows), dtype=np.int64)[::-1],
                          "score": [r[1] for r in rows], "probability": [r[1] / 10 + r[2] / 1000 for r in rows]})
    frame = frame.astype({"score": np.int64, "probability": np.float64, "person_id": np.int64})
    rule = SelectionRule.parse(**rule_kwargs)
    got = select(frame, rule)
    assert list(zip(got["rank"], got["practice_code"], got["person_id"])) == _reference(frame, rule)


def test_risk_order_ties():
    order = risk_order(["B", "A", "A", "A"], [5, 5, 5, 9], [0.5, 0.5, 0.5, 0.1], [1, 7, 3, 9])
    assert order.tolist() == [3, 2, 1, 0]


def _reference_reason(p, day, *, children, palliative, care_home, on_palliative, scored_practice):
    """One person at a time, in the documented order."""
    d = pd.Timestamp(day)
    if pd.notna(p["died_on"]) and p["died_on"] <= d:
        return "deceased"
    if pd.notna(p["registered_to"]) and p["registered_to"] <= d:
        return "deregistered"
    if p["registered_from"] > d:
        return "not yet registered"
    if p["practice_code"] != scored_practice:
        return "registered with another practice"
    if p["opted_out"]:
        return "national data opt-out"
    b = p["birth_date"]
    if day.year - b.year - ((day.month, day.day) < (b.month, b.day)) < 18 and not children:
        return "under 18"
    if palliative and on_palliative:
        return "palliative care register"
    if care_home and p["care_home"]:
        return "care home"
    return ""


_DATES = st.one_of(st.none(), st.dates(dt.date(2023, 1, 1), dt.date(2025, 12, 31)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.dates(dt.date(1920, 1, 1), dt.date(2024, 12, 31)), _DATES, _DATES,
                          st.booleans(), st.booleans(), st.booleans(), st.sampled_from(["A1", "B2"]),
                          st.dates(dt.date(2000, 1, 1), dt.date(2024, 12, 31))),
                min_size=1, max_size=25),
       st.booleans(), st.booleans(), st.booleans())
def test_eligibility_matches_reference_and_selection_never_lists_the_excluded(rows, children, palliative, care_home):
    persons = _persons([{"person_id": i, "birth_date": str(r[0]), "died_on": r[1] and str(r[1]),
                         "registered_to": r[2] and str(r[2]), "opted_out": r[3], "care_home": r[4],
                         "practice_code": r[6], "registered_from": str(r[7])} for i, r in enumerate(rows)])
    pall = np.array([i for i, r in enumerate(rows) if r[5]], dtype=np.int64)
    scores = pd.DataFrame({"person_id": np.arange(len(rows), dtype=np.int64), "practice_code": "A1",
                           "score": np.arange(len(rows), dtype=np.int64) % 7,
                           "probability": np.linspace(0.9, 0.1, len(rows))})
    got = eligibility(scores, persons, DAY, include_children=children, exclude_palliative=palliative,
                      exclude_care_home=care_home, palliative=pall)
    expected = [_reference_reason(persons.iloc[i], DAY, children=children, palliative=palliative,
                                  care_home=care_home, on_palliative=rows[i][5], scored_practice="A1")
                for i in range(len(rows))]
    assert ["" if c < 0 else EXCLUSIONS[c] for c in got.exclusion] == expected
    listed = select(scores.loc[got.eligible], SelectionRule.parse(top="100%"))
    for pid in listed["person_id"]:
        assert expected[pid] == ""
        assert not persons.iloc[pid]["opted_out"]
