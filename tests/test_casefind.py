"""Case-finding lists end to end on a small fabricated population.

The data folder and scores are made here (not by ``riskcap synth`` / ``riskcap score``) so
every expected value is known independently: who may be listed, their conditions and
activity counts, and the reasons written into the scores.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from riskcap.casefinding.eligibility import EXCLUSIONS
from riskcap.casefinding.lists import list_columns
from riskcap.casefinding.run import casefind
from riskcap.casefinding.selection import SelectionRule
from riskcap.cli import main
from riskcap.data.write import write_csv, write_parquet
from riskcap.errors import ConfigError, DataError
from riskcap.manifest import verify_run
from riskcap.pseudonymise import KEY_ENV, PseudonymKey
from riskcap.schema import CONDITIONS, is_acs
from riskcap.tiers import load_pyramid

LIST_DATE = dt.date(2024, 4, 1)
PRACTICES = ("A81001", "A81002", "B82003")
KEY = PseudonymKey(b"k" * 32, "environment")
OTHER_KEY = PseudonymKey(b"z" * 32, "environment")
ACS_CODES = ("I50.0", "J44.1", "E11.6")
OTHER_CODES = ("S72.0", "R07.4", "K35.8")
LTC_POOL = ("heart_failure", "copd", "diabetes", "hypertension", "dementia", "asthma", "palliative", "frailty")


def _nhs_number(rng) -> str:
    while True:
        digits = rng.integers(0, 10, 9)
        check = 11 - int(sum(d * w for d, w in zip(digits, range(10, 1, -1)))) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def fabricate(folder: Path, seed: int = 7, n_per_practice=(260, 140, 200)) -> dict:
    """Write practices/persons/conditions/activity parquet files and a scores file.

    Returns the frames (``persons``, ``conditions``, ``activity``, ``scores``) for checks.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    idx = pd.Timestamp(LIST_DATE)
    rows, pid = [], 0
    for code, n in zip(PRACTICES, n_per_practice):
        for _ in range(n):
            pid += 1
            birth = pd.Timestamp("1925-01-01") + pd.Timedelta(days=int(rng.integers(0, 365 * 95)))
            kind = rng.random()
            rows.append({
                "person_id": pid,
                "nhs_number": _nhs_number(rng),
                "practice_code": code,
                "sex": "F" if rng.random() < 0.5 else "M",
                "birth_date": birth,
                "imd_decile": int(rng.integers(1, 11)),
                "registered_from": max(birth, pd.Timestamp("2005-01-01")) if kind > 0.02 else idx + pd.Timedelta(days=30),
                "registered_to": idx - pd.Timedelta(days=40) if 0.02 <= kind < 0.06 else
                (idx if 0.06 <= kind < 0.07 else pd.NaT),  # ending on the list date: deregistered
                "died_on": idx - pd.Timedelta(days=10) if 0.07 <= kind < 0.11 else
                (idx + pd.Timedelta(days=60) if 0.11 <= kind < 0.13 else pd.NaT),  # dies later: still eligible
                "care_home": bool(rng.random() < 0.06),
                "opted_out": bool(rng.random() < 0.08),
            })
    persons = pd.DataFrame(rows)
    for col in ("birth_date", "registered_from", "registered_to", "died_on"):
        persons[col] = persons[col].astype("datetime64[s]")

    cond_rows, act_rows = [], []
    for p in persons.itertuples():
        for c in LTC_POOL:
            if rng.random() < 0.12:
                before = rng.random() < 0.85
                when = idx - pd.Timedelta(days=int(rng.integers(1, 3000))) if before else idx + pd.Timedelta(days=5)
                if when >= p.birth_date:
                    cond_rows.append({"person_id": p.person_id, "condition": c, "diagnosed_on": when})
        for _ in range(int(rng.poisson(0.7))):  # emergency spells within the last 12 months and older
            start = idx - pd.Timedelta(days=int(rng.integers(1, 700)))
            diag = (ACS_CODES if rng.random() < 0.4 else OTHER_CODES)[int(rng.integers(0, 3))]
            if start >= p.birth_date:
                act_rows.append({"person_id": p.person_id, "setting": "emergency_inpatient", "start_date": start,
                                 "end_date": start + pd.Timedelta(days=int(rng.integers(0, 9))), "quantity": 1,
                                 "cost_gbp": 1800.0, "primary_diagnosis": diag})
        for setting, lam, cost in (("ae", 1.0, 160.0), ("gp", 5.0, 40.0), ("outpatient", 1.5, 130.0)):
            for _ in range(int(rng.poisson(lam))):
                start = idx - pd.Timedelta(days=int(rng.integers(1, 500)))
                if start >= p.birth_date:
                    act_rows.append({"person_id": p.person_id, "setting": setting, "start_date": start,
                                     "end_date": pd.NaT, "quantity": 1, "cost_gbp": cost, "primary_diagnosis": None})
    conditions = pd.DataFrame(cond_rows).sort_values(["person_id", "condition"], kind="stable").reset_index(drop=True)
    conditions["diagnosed_on"] = conditions["diagnosed_on"].astype("datetime64[s]")
    activity = pd.DataFrame(act_rows).sort_values(["person_id", "start_date"], kind="stable").reset_index(drop=True)
    for col in ("start_date", "end_date"):
        activity[col] = activity[col].astype("datetime64[s]")
    practices = pd.DataFrame({"practice_code": list(PRACTICES), "icb_code": "QHM", "list_size": list(n_per_practice),
                              "practice_name": ["Riverside Surgery", "Hill Top Practice", "Elm Medical Centre"]})

    # scores: a probability driven by the person's own data; coarse (ties) on purpose
    truth = _truth(persons, conditions, activity)
    logit = -3.2 + 0.9 * truth["emergency_12m"] + 0.5 * truth["n_ltc"] + 0.02 * (truth["age"] - 50)
    prob = np.round(1 / (1 + np.exp(-logit + rng.normal(0, 0.3, len(persons)))), 2)
    scores = pd.DataFrame({"person_id": persons["person_id"], "practice_code": persons["practice_code"],
                           "probability": prob, "score": np.round(prob * 100).astype(np.int64)})
    scores["reason_1"] = [f"{n} emergency admission{'s' if n != 1 else ''} in the last 12 months" if n else
                          "no emergency admissions in the last 12 months" for n in truth["emergency_12m"]]
    scores["reason_2"] = [" and ".join(CONDITIONS[c][0] for c in ltcs[:2]) if ltcs else "no long-term conditions"
                          for ltcs in truth["ltcs"]]
    scores["reason_3"] = [f"aged {a}" for a in truth["age"]]
    scores["model"] = "fabricated"
    # one scored person missing from persons
    ghost = pd.DataFrame({"person_id": [10_000], "practice_code": ["A81001"], "probability": [0.99], "score": [99],
                          "reason_1": ["x"], "reason_2": ["y"], "reason_3": ["z"], "model": ["fabricated"]})
    scores = pd.concat([scores, ghost], ignore_index=True)

    write_parquet(practices, folder / "practices.parquet")
    write_parquet(persons, folder / "persons.parquet")
    write_parquet(conditions, folder / "conditions.parquet")
    write_parquet(activity, folder / "activity.parquet")
    write_parquet(scores, folder / "scores.parquet")
    return {"persons": persons, "conditions": conditions, "activity": activity, "scores": scores, "truth": truth}


def _truth(persons, conditions, activity) -> pd.DataFrame:
    """Facts per person at LIST_DATE, computed the slow obvious way (plain Python)."""
    idx = pd.Timestamp(LIST_DATE)
    year_ago = idx - pd.DateOffset(months=12)
    ltcs = {p: [] for p in persons["person_id"]}
    for r in conditions.itertuples():
        if r.diagnosed_on < idx and r.condition not in ltcs[r.person_id]:
            ltcs[r.person_id].append(r.condition)
    order = list(CONDITIONS)
    counts = {p: {"emergency": 0, "acs": 0, "ae": 0, "gp": 0, "outpatient": 0} for p in persons["person_id"]}
    for r in activity.itertuples():
        if year_ago <= r.start_date < idx:
            if r.setting == "emergency_inpatient":
                counts[r.person_id]["emergency"] += 1
                counts[r.person_id]["acs"] += int(is_acs(r.primary_diagnosis))
            elif r.setting in ("ae", "gp", "outpatient"):
                counts[r.person_id][r.setting] += 1
    out = []
    for p in persons.itertuples():
        b = p.birth_date
        age = LIST_DATE.year - b.year - ((LIST_DATE.month, LIST_DATE.day) < (b.month, b.day))
        mine = sorted(ltcs[p.person_id], key=order.index)
        disease = [c for c in mine if c not in ("frailty", "palliative")]
        out.append({"person_id": p.person_id, "age": age, "ltcs": mine, "n_ltc": len(disease),
                    "emergency_12m": counts[p.person_id]["emergency"], "acs_12m": counts[p.person_id]["acs"],
                    "ae_12m": counts[p.person_id]["ae"], "gp_12m": counts[p.person_id]["gp"],
                    "outpatient_12m": counts[p.person_id]["outpatient"]})
    return pd.DataFrame(out)


def _expected_exclusion(p, list_date=LIST_DATE, *, children=False, palliative=False, care_home=False,
                        on_palliative=False) -> str:
    """Reference eligibility, one person at a time, in the documented order."""
    d = pd.Timestamp(list_date)
    b = p.birth_date
    age = list_date.year - b.year - ((list_date.month, list_date.day) < (b.month, b.day))
    if pd.notna(p.died_on) and p.died_on <= d:
        return "deceased"
    if pd.notna(p.registered_to) and p.registered_to <= d:
        return "deregistered"
    if p.registered_from > d:
        return "not yet registered"
    if p.opted_out:
        return "national data opt-out"
    if age < 18 and not children:
        return "under 18"
    if palliative and on_palliative:
        return "palliative care register"
    if care_home and p.care_home:
        return "care home"
    return ""


def _pseudo(code: str, pid: int, key: PseudonymKey = KEY) -> str:
    return hmac.new(key.secret, f"{code}:{pid}".encode(), hashlib.sha256).hexdigest()[:16]


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    folder = tmp_path_factory.mktemp("casefind-data")
    frames = fabricate(folder)
    frames["dir"] = folder
    return frames


@pytest.fixture(scope="module")
def default_run(population, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "lists"
    result = casefind(population["dir"] / "scores.parquet", population["dir"], out, key=KEY)
    return result


def _read_lists(out: Path) -> dict[str, pd.DataFrame]:
    summary = json.loads((out / "summary.json").read_text())
    return {code: pd.read_csv(out / "practices" / f"{code}.csv", dtype={"pseudo_id": str, "nhs_number": str},
                              keep_default_na=False)
            for code in summary["practices"]}


# --- The checks the issue asks for -----------------------------------------------------

def test_never_lists_opted_out_dead_or_ineligible(population, default_run):
    persons = population["persons"]
    by_pseudo = {_pseudo(p.practice_code, p.person_id): p for p in persons.itertuples()}
    lists = _read_lists(default_run.out_dir)
    listed = [by_pseudo[pid] for frame in lists.values() for pid in frame["pseudo_id"]]
    assert len(listed) == default_run.summary["listed"] > 0
    for p in listed:
        assert _expected_exclusion(p) == "", f"person {p.person_id} should not be listed"
        assert not p.opted_out
        assert pd.isna(p.died_on) or p.died_on > pd.Timestamp(LIST_DATE)


def test_opted_out_never_listed_whatever_the_options(population, tmp_path):
    result = casefind(population["dir"] / "scores.parquet", population["dir"], tmp_path / "all",
                      SelectionRule.parse(top="100%"), key=KEY, include_children=True)
    opted = {_pseudo(p.practice_code, p.person_id) for p in population["persons"].itertuples() if p.opted_out}
    assert opted
    assert not opted & set(result.lists["pseudo_id"])
    # top 100% lists every eligible person
    assert result.summary["listed"] == result.summary["eligible"]


def test_eligibility_counts_match_reference(population, default_run):
    persons = population["persons"].set_index("person_id")
    scores = population["scores"]
    expected = {reason: 0 for reason in EXCLUSIONS}
    per_practice = {c: 0 for c in PRACTICES}
    for s in scores.itertuples():
        if s.person_id not in persons.index:
            expected["not in persons table"] += 1
            continue
        reason = _expected_exclusion(persons.loc[s.person_id])
        if reason:
            expected[reason] += 1
        else:
            per_practice[s.practice_code] += 1
    summary = default_run.summary
    assert summary["excluded"] == expected
    assert summary["excluded"]["national data opt-out"] > 0 and summary["excluded"]["deceased"] > 0
    assert {c: p["eligible"] for c, p in summary["practices"].items()} == per_practice


def test_summary_reconciles(default_run):
    s = default_run.summary
    assert s["scored"] == s["eligible"] + sum(s["excluded"].values())
    assert s["listed"] <= s["eligible"]
    for p in s["practices"].values():
        assert p["scored"] == p["eligible"] + sum(p["excluded"].values())
        assert p["listed"] <= p["eligible"]
        assert sum(p["listed_by_tier"].values()) == p["listed"]
    assert sum(p["scored"] for p in s["practices"].values()) == s["scored"]
    assert sum(p["listed"] for p in s["practices"].values()) == s["listed"]
    on_disk = json.loads((default_run.out_dir / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(s))


def test_counts_follow_the_selection_rule(default_run):
    lists = _read_lists(default_run.out_dir)
    for code, p in default_run.summary["practices"].items():
        assert p["listed"] == math.ceil(2 * p["eligible"] / 100)  # default: top 2%, rounded up
        assert len(lists[code]) == p["listed"]
        assert lists[code]["rank"].tolist() == list(range(1, p["listed"] + 1))


@pytest.mark.parametrize("rule", [SelectionRule.parse(top="10%"), SelectionRule.parse(top_n=7),
                                  SelectionRule.parse(min_score=30), SelectionRule.parse(top="5", within="population")])
def test_lists_are_the_top_of_each_practice_in_order(population, tmp_path, rule):
    result = casefind(population["dir"] / "scores.parquet", population["dir"], tmp_path / "out", rule, key=KEY)
    persons = population["persons"].set_index("person_id")
    scores = population["scores"]
    eligible = scores[[s.person_id in persons.index and _expected_exclusion(persons.loc[s.person_id]) == ""
                       for s in scores.itertuples()]]
    # reference order: score desc, probability desc, person_id asc; plain sorted()
    ranked = {c: sorted(g.itertuples(), key=lambda r: (-r.score, -r.probability, r.person_id))
              for c, g in eligible.groupby("practice_code")}
    total = sum(len(v) for v in ranked.values())
    population_cut = None
    if rule.within == "population":
        everyone = sorted(eligible.itertuples(), key=lambda r: (-r.score, -r.probability, r.person_id))
        population_cut = {r.person_id for r in everyone[:math.ceil(5 * total / 100)]}
    for code, people in ranked.items():
        if rule.top_percent is not None and rule.within == "practice":
            k = math.ceil(rule.top_percent * len(people) / 100)
        elif rule.top_n is not None:
            k = min(rule.top_n, len(people))
        elif rule.min_score is not None:
            k = sum(r.score >= rule.min_score for r in people)
        else:
            k = sum(r.person_id in population_cut for r in people)
        expected = [_pseudo(code, r.person_id) for r in people[:k]]
        got = result.lists.loc[result.lists["practice_code"] == code, "pseudo_id"].tolist()
        assert got == expected, code
        assert result.summary["practices"][code]["listed"] == k


def test_rows_match_the_persons_data(population, default_run):
    truth = population["truth"].set_index("person_id")
    persons = population["persons"]
    back = {_pseudo(p.practice_code, p.person_id): p.person_id for p in persons.itertuples()}
    lists = default_run.lists
    assert len(lists) > 0
    for row in lists.itertuples():
        t = truth.loc[back[row.pseudo_id]]
        assert row.age == t.age
        assert row.emergency_admissions_12m == t.emergency_12m
        assert row.acs_admissions_12m == t.acs_12m
        assert row.ae_attendances_12m == t.ae_12m
        assert row.gp_consultations_12m == t.gp_12m
        assert row.outpatient_attendances_12m == t.outpatient_12m
        assert row.impactable == ("yes" if t.acs_12m > 0 else "no")
        assert row.long_term_conditions == "; ".join(CONDITIONS[c][0] for c in t.ltcs)
        assert row.ltc_count == t.n_ltc


_NUMBER_REASON = re.compile(r"^(\d+|no) emergency admissions? in the last 12 months$")
_AGE_REASON = re.compile(r"^aged (\d+)$")


def test_reasons_match_the_persons_data(population, tmp_path):
    """Each reason, parsed back, agrees with the person's own records (not just the scores file)."""
    result = casefind(population["dir"] / "scores.parquet", population["dir"], tmp_path / "r",
                      SelectionRule.parse(top="30%"), key=KEY, include_children=True)
    truth = population["truth"].set_index("person_id")
    back = {_pseudo(p.practice_code, p.person_id): p.person_id for p in population["persons"].itertuples()}
    names = {v[0]: k for k, v in CONDITIONS.items()}
    assert len(result.lists) > 30
    for row in result.lists.itertuples():
        t = truth.loc[back[row.pseudo_id]]
        count = _NUMBER_REASON.match(row.reason_1)
        assert count, row.reason_1
        assert (0 if count.group(1) == "no" else int(count.group(1))) == t.emergency_12m
        if row.reason_2 != "no long-term conditions":
            named = [names[n] for n in row.reason_2.split(" and ")]
            assert set(named) <= set(t.ltcs)
            assert all(n in row.long_term_conditions for n in row.reason_2.split(" and "))
        else:
            assert t.ltcs == []
        assert int(_AGE_REASON.match(row.reason_3).group(1)) == t.age == row.age


def test_files_are_private(default_run):
    out = default_run.out_dir
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "practices").stat().st_mode) == 0o700
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == 2 * len(PRACTICES) + 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not list(out.rglob("*.tmp"))


def test_same_inputs_give_byte_identical_files(population, default_run, tmp_path):
    again = casefind(population["dir"] / "scores.parquet", population["dir"], tmp_path / "again", key=KEY)
    first = {p.relative_to(default_run.out_dir): p.read_bytes() for p in default_run.out_dir.rglob("*") if p.is_file()}
    second = {p.relative_to(again.out_dir): p.read_bytes() for p in again.out_dir.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], name


def test_ties_are_broken_by_person_id(population, tmp_path):
    scores = population["scores"].copy()
    scores["probability"] = 0.5
    scores["score"] = 50
    write_parquet(scores, tmp_path / "ties.parquet")
    result = casefind(tmp_path / "ties.parquet", population["dir"], tmp_path / "out", SelectionRule.parse(top_n=5), key=KEY)
    persons = population["persons"]
    for code in PRACTICES:
        eligible = [p.person_id for p in persons.itertuples() if p.practice_code == code and _expected_exclusion(p) == ""]
        expected = [_pseudo(code, pid) for pid in sorted(eligible)[:5]]
        assert result.lists.loc[result.lists["practice_code"] == code, "pseudo_id"].tolist() == expected


def test_xlsx_is_readable_with_frozen_header_and_notes(default_run):
    from openpyxl import load_workbook

    code = PRACTICES[0]
    wb = load_workbook(default_run.out_dir / "practices" / f"{code}.xlsx")
    assert wb.sheetnames == ["List", "Notes"]
    ws = wb["List"]
    assert ws.freeze_panes == "A2"
    csv = pd.read_csv(default_run.out_dir / "practices" / f"{code}.csv", dtype={"pseudo_id": str}, keep_default_na=False)
    rows = list(ws.values)
    assert list(rows[0]) == list(csv.columns)
    assert len(rows) - 1 == len(csv)
    assert [r[csv.columns.get_loc("pseudo_id")] for r in rows[1:]] == csv["pseudo_id"].tolist()
    assert [r[csv.columns.get_loc("score")] for r in rows[1:]] == csv["score"].tolist()
    assert ws.column_dimensions["J"].width > 30  # reason_1 is wide
    notes = {r[0]: r[1] for r in wb["Notes"].values}
    for col in csv.columns:
        assert col in notes
    assert "Riverside Surgery" in notes["Practice"]
    assert "emergency" in notes["How the score was made"]


def test_index_lists_every_practice(default_run):
    index = pd.read_csv(default_run.out_dir / "index.csv")
    assert index["practice_code"].tolist() == sorted(PRACTICES)
    for row in index.itertuples():
        p = default_run.summary["practices"][row.practice_code]
        assert (row.scored, row.eligible, row.listed) == (p["scored"], p["eligible"], p["listed"])
        assert (default_run.out_dir / row.csv).exists() and (default_run.out_dir / row.xlsx).exists()
    assert "pseudo_id" not in index.columns and "nhs_number" not in index.columns


# --- Options ---------------------------------------------------------------------------

def test_optional_exclusions(population, tmp_path):
    result = casefind(population["dir"] / "scores.parquet", population["dir"], tmp_path / "o",
                      SelectionRule.parse(top="100%"), key=KEY, exclude_palliative=True, exclude_care_home=True,
                      include_children=True)
    on_palliative = {r.person_id for r in population["conditions"].itertuples()
                     if r.condition == "palliative" and r.diagnosed_on < pd.Timestamp(LIST_DATE)}
    expected = {reason: 0 for reason in EXCLUSIONS}
    expected["not in persons table"] = 1
    for p in population["persons"].itertuples():
        reason = _expected_exclusion(p, children=True, palliative=True, care_home=True,
                                     on_palliative=p.person_id in on_palliative)
        if reason:
            expected[reason] += 1
    assert result.summary["excluded"] == expected
    assert expected["palliative care register"] > 0 and expected["care home"] > 0 and expected["under 18"] == 0
    assert "palliative care register excluded" in result.summary["eligibility"]["description"]


def test_previous_list_gives_changes(population, default_run, tmp_path):
    scores = population["scores"].copy()
    rng = np.random.default_rng(3)
    scores["probability"] = np.clip(scores["probability"] + rng.normal(0, 0.1, len(scores)), 0, 1).round(3)
    scores["score"] = np.round(scores["probability"] * 100).astype(int)
    scores = scores.drop(columns=["tier"], errors="ignore")
    write_parquet(scores, tmp_path / "next.parquet")
    result = casefind(tmp_path / "next.parquet", population["dir"], tmp_path / "next", SelectionRule.parse(top="5%"),
                      key=KEY, previous_dir=default_run.out_dir)
    before = pd.concat([f.assign(practice_code=c) for c, f in _read_lists(default_run.out_dir).items()])
    pyramid = load_pyramid()
    old = {(r.practice_code, r.pseudo_id): r for r in before.itertuples()}
    for row in result.lists.itertuples():
        prev = old.get((row.practice_code, row.pseudo_id))
        if prev is None:
            assert row.change == "new" and pd.isna(row.previous_rank)
        else:
            a, b = pyramid.rank_of(row.tier), pyramid.rank_of(prev.tier)
            assert row.change == ("up" if a < b else "down" if a > b else "unchanged")
            assert row.previous_rank == prev.rank
    change = result.summary["change"]
    kept = change["up"] + change["down"] + change["unchanged"]
    assert change["new"] + kept == result.summary["listed"]
    assert kept + change["left"] == len(before)
    assert kept > 0 and change["new"] > 0


def test_previous_needs_the_same_stable_key(population, default_run, tmp_path):
    scores = population["dir"] / "scores.parquet"
    with pytest.raises(ConfigError, match="different pseudonymisation key"):
        casefind(scores, population["dir"], tmp_path / "a", key=OTHER_KEY, previous_dir=default_run.out_dir)
    with pytest.raises(ConfigError, match="random key"):
        casefind(scores, population["dir"], tmp_path / "b", key=PseudonymKey(b"r" * 32, "random"),
                 previous_dir=default_run.out_dir)


def test_reidentify_puts_nhs_numbers_only_in_practice_files(population, tmp_path):
    out = tmp_path / "reid"
    result = casefind(population["dir"] / "scores.parquet", population["dir"], out, SelectionRule.parse(top="10%"),
                      key=KEY, reidentify=True)
    persons = population["persons"]
    nhs = {_pseudo(p.practice_code, p.person_id): p.nhs_number for p in persons.itertuples()}
    for code, frame in _read_lists(out).items():
        assert "nhs_number" in frame.columns
        assert frame["nhs_number"].tolist() == [nhs[p] for p in frame["pseudo_id"]]
        # only this practice's own people
        own = {_pseudo(code, p.person_id) for p in persons.itertuples() if p.practice_code == code}
        assert set(frame["pseudo_id"]) <= own
    for shared in ("index.csv", "summary.json"):
        text = (out / shared).read_text()
        assert "nhs_number" not in text
        assert not any(n in text for n in nhs.values())
    assert result.summary["reidentified"] is True
    with pytest.raises(ConfigError, match="re-identify"):
        casefind(population["dir"] / "scores.parquet", population["dir"], tmp_path / "no",
                 key=PseudonymKey(b"r" * 32, "random"), reidentify=True)


def test_custom_pyramid_recomputes_tiers(population, tmp_path):
    pyramid = tmp_path / "p.yaml"
    pyramid.write_text("tiers:\n  - {name: top, top_percent: 10}\n  - {name: rest, top_percent: 100}\n")
    result = casefind(population["dir"] / "scores.parquet", population["dir"], tmp_path / "p",
                      SelectionRule.parse(top="20%"), key=KEY, pyramid_path=pyramid)
    assert set(result.lists["tier"]) <= {"top", "rest"}
    assert set(result.summary["listed_by_tier"]) == {"top", "rest"}
    # tiers are by population percentile of all scored people
    scores = population["scores"]
    cut = sorted(scores["probability"], reverse=True)
    persons = population["persons"]
    back = {_pseudo(p.practice_code, p.person_id): p.person_id for p in persons.itertuples()}
    prob = scores.set_index("person_id")["probability"]
    for row in result.lists.itertuples():
        above = sum(v > prob[back[row.pseudo_id]] for v in cut)
        assert row.tier == ("top" if above < 0.1 * len(cut) else "rest")


# --- Bad input -------------------------------------------------------------------------

@pytest.mark.parametrize("change,message", [
    (lambda s: s.drop(columns=["probability"]), "probability missing"),
    (lambda s: s.assign(probability=s["probability"].where(s.index != 3, 1.5)), "not probabilities"),
    (lambda s: pd.concat([s, s.iloc[:2]]), "repeat a person_id"),
    (lambda s: s.assign(score=s["score"].where(s.index != 0, 101)), "0 to 100"),
    (lambda s: s.assign(practice_code=s["practice_code"].where(s.index != 0, "../etc")), "cannot name a practice's list files"),
    (lambda s: s.assign(tier="urgent"), "not in the pyramid"),
])
def test_bad_scores_file_is_a_clear_error(population, tmp_path, change, message):
    bad = change(population["scores"].copy())
    write_parquet(bad, tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=message) as err:
        casefind(tmp_path / "bad.parquet", population["dir"], tmp_path / "out", key=KEY)
    assert "bad.parquet" in str(err.value) or "scores" in str(err.value)


# --- The command line ------------------------------------------------------------------

def test_cli_writes_lists_and_reports(population, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k" * 32)
    out = tmp_path / "cli"
    result = CliRunner().invoke(main, ["casefind", "--scores", str(population["dir"] / "scores.parquet"),
                                       "--data", str(population["dir"]), "--out", str(out), "--top", "2%"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    assert "national data opt-out" in result.output  # the exclusions table
    assert "reasons do not match" in result.output  # fabricated phrasing differs from riskcap's
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pseudonym_key"]["source"] == "environment"
    assert summary["pseudonym_key"]["fingerprint"] == KEY.fingerprint
    assert verify_run(out) == []  # manifest.json records inputs and every output's hash
    assert stat.S_IMODE((out / "manifest.json").stat().st_mode) == 0o600


def test_cli_without_key_uses_a_random_one_and_says_so(population, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    args = ["casefind", "--scores", str(population["dir"] / "scores.parquet"), "--data", str(population["dir"])]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "random key" in result.output
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["pseudonym_key"]["linkable_across_runs"] is False
    refused = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "x"), "--reidentify"])
    assert refused.exit_code == 2 and "no pseudonymisation key" in refused.output
    assert not (tmp_path / "x").exists()


def test_cli_rejects_two_selection_rules(population, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k" * 32)
    result = CliRunner().invoke(main, ["casefind", "--scores", str(population["dir"] / "scores.parquet"),
                                       "--data", str(population["dir"]), "--out", str(tmp_path / "o"),
                                       "--top", "2%", "--top-n", "5"])
    assert result.exit_code == 2
    assert "only one of" in result.output


def test_reason_check_flags_reasons_the_data_does_not_support(population, tmp_path):
    """summary.json counts listed reasons that are not phrases of the person's own data."""
    result = casefind(population["dir"] / "scores.parquet", population["dir"], tmp_path / "rc",
                      SelectionRule.parse(top="30%"), key=KEY)
    lists = result.lists
    # fabricated phrasing vs riskcap's: "N emergency admission(s) ..." (N > 0), a single condition name and
    # "aged N" are riskcap phrases; "no emergency admissions", "A and B" and "no long-term conditions" are not
    single = {v[0] for v in CONDITIONS.values()}
    expected_bad = (lists["reason_1"].str.startswith("no ").sum()
                    + (~lists["reason_2"].isin(single)).sum())
    check = result.summary["reasons_check"]
    assert check["checked"] == 3 * len(lists)
    assert check["not_matching"] == expected_bad > 0
    # a scores file whose counts disagree with the data is caught
    scores = population["scores"].copy()
    scores["reason_1"] = "9 emergency admissions in the last 12 months"
    scores["reason_2"] = scores["reason_3"]
    write_parquet(scores, tmp_path / "wrong.parquet")
    wrong = casefind(tmp_path / "wrong.parquet", population["dir"], tmp_path / "w", SelectionRule.parse(top="30%"), key=KEY)
    truth = population["truth"].set_index("person_id")
    back = {_pseudo(p.practice_code, p.person_id): p.person_id for p in population["persons"].itertuples()}
    nines = sum(truth.loc[back[p], "emergency_12m"] == 9 for p in wrong.lists["pseudo_id"])
    assert wrong.summary["reasons_check"]["not_matching"] == len(wrong.lists) - nines


def test_csv_and_dataset_folders_give_the_same_lists(population, default_run, tmp_path):
    """Tables as CSV files or partitioned parquet datasets are read the same way."""
    csv_dir, dataset_dir = tmp_path / "csv", tmp_path / "dataset"
    for name in ("practices", "persons", "conditions", "activity"):
        frame = pd.read_parquet(population["dir"] / f"{name}.parquet")
        write_csv(frame, csv_dir / f"{name}.csv")
        half = len(frame) // 2
        write_parquet(frame.iloc[:half], dataset_dir / name / "part-0.parquet")
        write_parquet(frame.iloc[half:], dataset_dir / name / "part-1.parquet")
    for folder in (csv_dir, dataset_dir):
        again = casefind(population["dir"] / "scores.parquet", folder, tmp_path / f"out-{folder.name}", key=KEY)
        pd.testing.assert_frame_equal(again.lists, default_run.lists)
        assert again.summary == default_run.summary


def test_rerun_into_the_same_folder_removes_stale_practice_files(population, tmp_path, monkeypatch):
    """The earlier run's lists of a practice no longer scored go (its manifest proves they are
    riskcap's); a file someone else put there stays, and is not certified."""
    monkeypatch.setenv(KEY_ENV, "k" * 32)
    out = tmp_path / "same"
    args = ["casefind", "--data", str(population["dir"]), "--out", str(out)]
    assert CliRunner().invoke(main, [*args, "--scores", str(population["dir"] / "scores.parquet")]).exit_code == 0
    scores = population["scores"]
    write_parquet(scores[scores["practice_code"] != "B82003"], tmp_path / "two.parquet")
    (out / "practices" / "notes.csv").write_text("mine\n")
    result = CliRunner().invoke(main, [*args, "--scores", str(tmp_path / "two.parquet")])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(p.name for p in (out / "practices").iterdir()) == sorted(
        [f"{c}.{ext}" for c in summary["practices"] for ext in ("csv", "xlsx")] + ["notes.csv"])
    assert verify_run(out) == ["practices/notes.csv: not produced by the run (not in the manifest)"]


def test_formula_like_reasons_are_never_run_by_excel(population, tmp_path):
    from openpyxl import load_workbook

    scores = population["scores"].copy()
    scores["reason_1"] = '=HYPERLINK("http://example.com","click")'
    scores["reason_2"] = "-1 emergency admissions"
    write_parquet(scores, tmp_path / "evil.parquet")
    casefind(tmp_path / "evil.parquet", population["dir"], tmp_path / "e", key=KEY)
    listed = pd.read_csv(tmp_path / "e" / "practices" / f"{PRACTICES[0]}.csv")  # as a spreadsheet reads it
    assert set(listed["reason_1"]) == {'\'=HYPERLINK("http://example.com","click")'}
    assert set(listed["reason_2"]) == {"'-1 emergency admissions"}
    ws = load_workbook(tmp_path / "e" / "practices" / f"{PRACTICES[0]}.xlsx")["List"]
    cell = ws.cell(row=2, column=list_columns().index("reason_1") + 1)
    assert cell.data_type == "s" and cell.value.startswith("'=")


def test_invalid_data_is_a_clear_error(population, tmp_path):
    """Persons and the listed people's rows are checked with riskcap.data.check's rules."""
    for name, change, message in (
        ("persons", lambda f: f.assign(imd_decile=f["imd_decile"].where(f.index != 0, 11)), "IMD decile"),
        ("activity", lambda f: f.assign(setting=f["setting"].where(f.index % 2 == 1, "ward_round")), "unknown setting"),
    ):
        folder = tmp_path / name
        for table in ("practices", "persons", "conditions", "activity"):
            frame = pd.read_parquet(population["dir"] / f"{table}.parquet")
            write_parquet(change(frame) if table == name else frame, folder / f"{table}.parquet")
        with pytest.raises(DataError, match=message) as err:
            casefind(population["dir"] / "scores.parquet", folder, tmp_path / f"out-{name}",
                     SelectionRule.parse(top="50%"), key=KEY)
        assert f"{name}.parquet" in str(err.value) and "riskcap validate" in str(err.value)
