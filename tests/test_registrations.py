"""Registration periods (contract v2): the by-day practice look-up and its checks."""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import registrations as naive
from riskcap.data.check import PersonIndex, check_practice_changes, check_registrations
from riskcap.data.load import load_tables
from riskcap.features import build_features, eligible_mask, list_days
from riskcap.registrations import NOWHERE, OPEN, periods_of

pytestmark = pytest.mark.unit

EPOCH = dt.date(1970, 1, 1)
CORPUS = Path(__file__).resolve().parent / "malformed"


def _date(day: int | None):
    return None if day is None else pd.Timestamp(EPOCH + dt.timedelta(days=int(day)))


@st.composite
def histories(draw):
    """People with random periods (moves, gaps, an open last period), deaths and query days."""
    rows, persons = [], []
    for pid in draw(st.lists(st.integers(1, 40), min_size=1, max_size=8, unique=True)):
        day = draw(st.integers(18000, 18100))
        periods = draw(st.integers(1, 4))
        first = day
        for k in range(periods):
            length = draw(st.integers(0, 60))
            gap = draw(st.integers(0, 20))
            open_end = k == periods - 1 and draw(st.booleans())
            rows.append((pid, draw(st.sampled_from(["A1", "B2", "C3"])), day, None if open_end else day + length))
            day += length + gap
        died = draw(st.one_of(st.none(), st.integers(first, day + 30)))
        persons.append((pid, died))
    rows.sort(key=lambda r: (r[0], r[2]))
    regs = pd.DataFrame({"person_id": [r[0] for r in rows], "practice_code": [r[1] for r in rows],
                         "registered_from": [_date(r[2]) for r in rows], "registered_to": [_date(r[3]) for r in rows]})
    people = pd.DataFrame({"person_id": [p for p, _ in persons], "died_on": [_date(d) for _, d in persons],
                           "practice_code": "A1"})
    queries = draw(st.lists(st.tuples(st.integers(0, 45), st.integers(17990, 18450)), max_size=60))
    return people, regs, queries


@given(histories())
@settings(max_examples=150, deadline=None)
def test_period_on_matches_reference(case):
    """The binary search finds exactly the period a full scan finds, deaths and gaps included."""
    people, regs, queries = case
    periods = periods_of(people, regs)
    pid = np.array([q[0] for q in queries], dtype=np.int64)
    day = np.array([q[1] for q in queries], dtype=np.int32)
    np.testing.assert_array_equal(periods.on(pid, day), naive.period_on(periods, pid, day))
    # each day of a period is on at most one list, and a death ends it
    died = dict(zip(people["person_id"], people["died_on"]))
    for k in range(len(periods)):
        d = died[int(periods.person[k])]
        if d is not None and not pd.isna(d):
            assert periods.end[k] <= (d.date() - EPOCH).days


def test_movers_gaps_and_deaths_on_a_day():
    day = lambda s: (dt.date.fromisoformat(s) - EPOCH).days  # noqa: E731
    regs = pd.DataFrame({"person_id": [1, 1, 2, 2, 3],
                         "practice_code": ["A", "B", "A", "C", "B"],
                         "registered_from": pd.to_datetime(["2020-01-01", "2024-06-01", "2020-01-01", "2024-09-01",
                                                            "2020-01-01"]),
                         "registered_to": pd.to_datetime(["2024-06-01", None, "2024-05-01", None, None])})
    people = pd.DataFrame({"person_id": [1, 2, 3], "practice_code": ["B", "C", "B"],
                           "died_on": pd.to_datetime([None, None, "2024-08-01"])})
    periods = periods_of(people, regs)
    codes = list(periods.practice_codes)
    ask = lambda p, s: periods.practice_on(np.array([p]), np.array([day(s)]))[0]  # noqa: E731
    assert codes[ask(1, "2024-04-01")] == "A"  # a mover's practice on the day, not their last
    assert codes[ask(1, "2024-06-01")] == "B"  # the move day belongs to the new practice
    assert ask(2, "2024-06-15") == NOWHERE  # between lists
    assert codes[ask(2, "2024-09-01")] == "C"
    assert ask(3, "2024-08-01") == NOWHERE and codes[ask(3, "2024-07-31")] == "B"  # death ends the period
    assert periods.end[periods.person == 3][0] == day("2024-08-01") and OPEN > day("2100-01-01")
    ids = np.array([1, 2, 3])
    np.testing.assert_array_equal(list_days(periods, ids, day("2024-04-01"), day("2025-04-01")),
                                  [365, 30 + (day("2025-04-01") - day("2024-09-01")), day("2024-08-01") - day("2024-04-01")])


def test_features_use_the_practice_on_the_index_date(tmp_path):
    """A mover is grouped at the practice they were with on the index date, a person in a gap
    is out, and list days count every list in the outcome year (the data folder validates)."""
    folder = tmp_path / "data"
    shutil.copytree(CORPUS / "valid", folder)
    persons = pd.read_csv(folder / "persons.csv", dtype=str)
    rows = [(r.person_id, r.practice_code, r.registered_from, r.registered_to) for r in persons.itertuples()]
    rows[0] = ("1", "A81002", "1990-01-15", "2023-01-01")  # person 1 moves to A81001 (their last practice)
    rows.insert(1, ("1", "A81001", "2023-01-01", None))
    five = next(i for i, r in enumerate(rows) if r[0] == "5")  # person 5 leaves the ICB for a while
    rows[five:five + 1] = [("5", "A81002", "2001-04-02", "2022-01-01"), ("5", "A81002", "2022-09-01", None)]
    pd.DataFrame(rows, columns=["person_id", "practice_code", "registered_from", "registered_to"]).to_csv(
        folder / "registrations.csv", index=False)
    tables, summary = load_tables(folder, as_of="2025-03-31")
    assert summary.status == "clean" and summary.rows_used["registrations"] == len(rows)
    at = build_features(tables, "2022-06-01").set_index("person_id")
    assert at.loc[1, "practice_code"] == "A81002"  # not their last practice
    assert 5 not in at.index  # in a gap: registered nowhere
    assert at.loc[1, "list_days_next_12"] == 365
    assert eligible_mask(tables.persons, "2022-06-01", tables.registrations).sum() == len(at)
    later = build_features(tables, "2022-01-01").set_index("person_id")
    assert later.loc[1, "practice_code"] == "A81002"
    assert 5 not in later.index


def test_registration_checks_name_each_rule():
    persons = pd.DataFrame({"person_id": [1, 2], "practice_code": ["A", "B"],
                            "birth_date": pd.to_datetime(["1950-01-01", "1960-01-01"]),
                            "registered_from": pd.to_datetime(["2000-01-01", "2001-01-01"]),
                            "registered_to": pd.to_datetime([None, None])})
    regs = pd.DataFrame({"person_id": [1, 1, 2, 2, 3],
                         "practice_code": ["A", "A", "B", "Z", "A"],
                         "registered_from": pd.to_datetime(["2000-01-01", "2005-01-01", "2001-01-01", "2002-01-01",
                                                            "2030-01-01"]),
                         "registered_to": pd.to_datetime(["2006-01-01", None, None, "2001-06-01", None])})
    changes = pd.DataFrame({"practice_code": ["A"], "change": ["close"], "effective_on": pd.to_datetime(["2010-01-01"]),
                            "into_practice_code": [None]})
    problems = check_registrations(regs, "registrations.csv", "2025-01-01", PersonIndex.from_persons(persons),
                                   persons, ["A", "B"], changes)
    text = "\n".join(str(p) for p in problems)
    for fragment in ("starts before the person's previous period ends", "previous period is still open",
                     "registered_to is before registered_from", "practice_code not in practices",
                     "person_id not in persons", "date after the as-of date",
                     "last practice_code differs from persons", "last registered_to differs from persons",
                     "runs past the day its practice merged or closed"):
        assert fragment in text, fragment
    bad = pd.DataFrame({"practice_code": ["A", "A", "B"], "change": ["merge", "close", "split"],
                        "effective_on": pd.to_datetime(["2024-01-01"] * 3), "into_practice_code": [None, "B", "B"]})
    text = "\n".join(str(p) for p in check_practice_changes(bad, "practice_changes.csv", ["A", "B"]))
    for fragment in ("duplicate practice_code", "change must be one of merge, close", "a merge needs into_practice_code",
                     "must be empty unless change is merge", "into_practice_code is the practice itself"):
        assert fragment in text, fragment
