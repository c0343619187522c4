"""Feature builder: hand-built cases, the index-date boundary, and a plain-Python reference."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskcap import features as F
from riskcap.data.read import Tables
from riskcap.errors import DataError
from riskcap.schema import CONDITION_CODES, SETTING_CODES, is_acs
from reference import features as naive
from reference.partitions import slice_tables

INDEX = dt.date(2023, 4, 1)
D = pd.Timestamp


def make_tables(persons=(), conditions=(), activity=()) -> Tables:
    """Tables from lists of dicts, with contract dtypes and sensible defaults."""
    p = pd.DataFrame([{
        "person_id": 1, "practice_code": "A00001", "sex": "F", "birth_date": "1950-06-15", "imd_decile": 3,
        "registered_from": "2000-01-01", "registered_to": None, "died_on": None, "care_home": False,
        "opted_out": False, **row} for row in persons],
        columns=["person_id", "practice_code", "sex", "birth_date", "imd_decile", "registered_from",
                 "registered_to", "died_on", "care_home", "opted_out"])
    for col in ("birth_date", "registered_from", "registered_to", "died_on"):
        p[col] = pd.to_datetime(p[col]).astype("datetime64[s]")
    c = pd.DataFrame(list(conditions), columns=["person_id", "condition", "diagnosed_on"])
    c["diagnosed_on"] = pd.to_datetime(c["diagnosed_on"]).astype("datetime64[s]")
    a = pd.DataFrame([{"quantity": 1, "end_date": None, "cost_gbp": 0.0, "primary_diagnosis": None, **row}
                      for row in activity],
                     columns=["person_id", "setting", "start_date", "end_date", "quantity", "cost_gbp",
                              "primary_diagnosis"])
    for col in ("start_date", "end_date"):
        a[col] = pd.to_datetime(a[col]).astype("datetime64[s]")
    a["person_id"] = a["person_id"].astype(np.int64)
    c["person_id"] = c["person_id"].astype(np.int64)
    practices = pd.DataFrame({"practice_code": ["A00001"], "icb_code": ["QHM"], "list_size": [1000]})
    return Tables(practices=practices, persons=p, conditions=c, activity=a)


def test_columns_and_constants():
    t = make_tables([{"person_id": 1}])
    f = F.build_features(t, INDEX)
    assert list(f.columns) == F.COLUMNS
    assert len(F.MODEL_FEATURES) == len(set(F.MODEL_FEATURES))
    assert F.LABEL == "y_emergency_12m"
    assert not set(F.MODEL_FEATURES) & set(F.OUTCOME_COLUMNS)
    for c in CONDITION_CODES:
        assert f"ltc_{c}" in F.MODEL_FEATURES and f"years_since_{c}" in F.MODEL_FEATURES
    for s in SETTING_CODES:
        assert f"cost_{s}_0_12" in F.MODEL_FEATURES and f"cost_next_12m_{s}" in F.OUTCOME_COLUMNS
    assert set(F.FEATURE_DESCRIPTIONS) == set(F.COLUMNS)


def test_who_is_in_the_frame():
    t = make_tables([
        {"person_id": 5},  # in
        {"person_id": 2, "registered_from": "2023-04-01"},  # registered on the index date: in
        {"person_id": 3, "registered_from": "2023-04-02"},  # registers after: out
        {"person_id": 4, "registered_to": "2023-04-01"},  # left on the index date: out
        {"person_id": 6, "died_on": "2023-04-01"},  # died on the index date: out
        {"person_id": 7, "died_on": "2023-04-02", "registered_to": "2023-04-02"},  # dies the day after: in
        {"person_id": 8, "birth_date": "2023-05-01", "registered_from": "2023-05-01"},  # not born: out
        {"person_id": 1, "registered_to": "2023-10-01"},  # leaves in 6 months: in
    ])
    f = F.build_features(t, INDEX)
    assert f["person_id"].tolist() == [1, 2, 5, 7]
    assert f["list_days_next_12"].tolist() == [183, 365, 365, 1]


def test_demographics():
    t = make_tables([
        {"person_id": 1, "birth_date": "1950-04-01", "sex": "M", "imd_decile": 1, "care_home": True},
        {"person_id": 2, "birth_date": "1950-04-02", "imd_decile": 10, "opted_out": True},
        {"person_id": 3, "birth_date": "2005-04-02", "imd_decile": 4},
        {"person_id": 4, "birth_date": "2023-03-31", "imd_decile": 6},
    ])
    f = F.build_features(t, "2023-04-01")
    assert f["age"].tolist() == [73, 72, 17, 0]
    assert f["age_band"].tolist() == ["70-79", "70-79", "0-17", "0-17"]
    assert f["male"].tolist() == [1, 0, 0, 0] and f["sex"].tolist() == ["M", "F", "F", "F"]
    assert f["imd_quintile"].tolist() == [1, 5, 2, 3]
    assert f["care_home"].tolist() == [True, False, False, False]
    assert f["opted_out"].tolist() == [False, True, False, False]
    assert F.age_band(np.array([17, 18, 39, 40, 79, 80, 104])).tolist() == [
        "0-17", "18-39", "18-39", "40-49", "70-79", "80+", "80+"]


def test_events_either_side_of_the_index_date():
    """Events on the day before the index date count; events on the index date never enter a feature."""
    before, on = "2023-03-31", "2023-04-01"
    rows = []
    for pid, day in ((1, before), (2, on)):
        for s in SETTING_CODES:
            rows.append({"person_id": pid, "setting": s, "start_date": day, "cost_gbp": 100.0, "quantity": 2,
                         "end_date": day, "primary_diagnosis": "I50.0" if s == "emergency_inpatient" else None})
    conds = [(1, "heart_failure", before), (2, "heart_failure", on)]
    t = make_tables([{"person_id": 1}, {"person_id": 2}], conds, rows)
    f = F.build_features(t, INDEX).set_index("person_id")
    model = f[F.MODEL_FEATURES]
    # Person 2's only information is dated on the index date: every feature equals a person with nothing.
    empty = F.build_features(make_tables([{"person_id": 2}]), INDEX).set_index("person_id")[F.MODEL_FEATURES]
    pd.testing.assert_frame_equal(model.loc[[2]], empty)
    # ... but it is all in the outcome columns.
    assert f.loc[2, F.LABEL] == 1 and f.loc[2, "cost_next_12m_total"] == 1000.0
    assert f.loc[1, F.LABEL] == 0 and f.loc[1, "cost_next_12m_total"] == 0.0
    # Person 1's events the day before are in the 0-12 window.
    assert f.loc[1, "ltc_heart_failure"] == 1 and f.loc[1, "years_since_heart_failure"] == pytest.approx(1 / 365.25)
    assert f.loc[1, "emergency_admissions_0_12"] == 1  # spells are counted as rows, not quantity
    assert f.loc[1, "gp_0_12"] == 2 and f.loc[1, "prescribing_items_0_12"] == 2
    assert f.loc[1, "days_since_emergency"] == 1 and f.loc[1, "days_since_ae"] == 1
    assert f.loc[1, "acs_admissions_0_12"] == 1
    assert f.loc[1, "cost_total_0_12"] == 1000.0
    assert f.loc[1, "ltc_count"] == 1


def test_spell_straddling_the_index_date_counts_only_nights_before():
    rows = [
        {"person_id": 1, "setting": "emergency_inpatient", "start_date": "2023-03-25", "end_date": "2023-04-10"},
        # began before the 3-year look-back, discharged inside it: nights inside count, admission does not
        {"person_id": 1, "setting": "elective_inpatient", "start_date": "2020-03-20", "end_date": "2020-04-05"},
    ]
    f = F.build_features(make_tables([{"person_id": 1}], [], rows), INDEX)
    assert f.loc[0, "bed_days_0_12"] == 7
    assert f.loc[0, "bed_days_24_36"] == 4
    assert f.loc[0, "elective_admissions_24_36"] == 0
    assert f.loc[0, F.LABEL] == 0  # the admission started before the index date


def test_windows_use_calendar_months():
    rows = [{"person_id": 1, "setting": "ae", "start_date": d} for d in
            ("2022-04-01", "2022-03-31", "2021-04-01", "2021-03-31", "2020-04-01", "2020-03-31")]
    f = F.build_features(make_tables([{"person_id": 1}], [], rows), INDEX)
    assert [f.loc[0, f"ae_{w}"] for w in F.WINDOWS] == [1, 2, 2]
    assert f.loc[0, "days_since_ae"] == 365


def test_unknown_codes_are_clear_errors():
    with pytest.raises(DataError, match="activity: column 'setting'.*'bogus'"):
        F.build_features(make_tables([{"person_id": 1}], [], [
            {"person_id": 1, "setting": "bogus", "start_date": "2023-01-01"}]), INDEX)
    with pytest.raises(DataError, match="conditions: column 'condition'.*'gout'"):
        F.build_features(make_tables([{"person_id": 1}], [(1, "gout", "2020-01-01")]), INDEX)
    with pytest.raises(DataError, match="index date"):
        F.build_features(make_tables([{"person_id": 1}]), "not a date")
    with pytest.raises(DataError, match="duplicate"):
        F.build_features(make_tables([{"person_id": 1}, {"person_id": 1}]), INDEX)


def test_money_adds_up_to_the_penny():
    costs = [0.1, 0.2, 0.7, 1234.56, 0.01] * 20
    rows = [{"person_id": 1, "setting": "gp", "start_date": "2023-01-01", "cost_gbp": c} for c in costs]
    f = F.build_features(make_tables([{"person_id": 1}], [], rows), INDEX)
    assert round(f.loc[0, "cost_total_0_12"] * 100) == round(sum(costs) * 100) == 123557 * 20
    assert f.loc[0, "cost_total_0_12"] == f.loc[0, "cost_gp_0_12"]


def test_partitions_give_the_same_rows():
    rng = np.random.default_rng(1)
    t = random_tables(rng, 60)
    whole = F.build_features(t, INDEX)
    parts = []
    for lo, hi in ((0, 20), (20, 45), (45, 10**9)):
        pick = lambda df: df[(df["person_id"] >= lo) & (df["person_id"] < hi)]
        parts.append(F.build_features(Tables(t.practices, pick(t.persons), pick(t.conditions), pick(t.activity)), INDEX))
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)


# --- Plain-Python reference -------------------------------------------------------------

def _shift_months(d: dt.date, months: int) -> dt.date:
    return (pd.Timestamp(d) - pd.DateOffset(months=months)).date()


def reference_features(t: Tables, index: dt.date) -> pd.DataFrame:
    """The builder's definition written as an obviously-correct loop over people."""
    def day(v):
        return None if pd.isna(v) else pd.Timestamp(v).date()

    bounds = {w: (_shift_months(index, b), _shift_months(index, a)) for w, (a, b) in F.WINDOWS.items()}
    far = _shift_months(index, 36)
    out_end = index + dt.timedelta(days=F.OUTCOME_DAYS)
    conds_of, acts_of = {}, {}
    for c in t.conditions.to_dict("records"):
        conds_of.setdefault(c["person_id"], []).append(c)
    for a in t.activity.to_dict("records"):
        a["primary_diagnosis"] = None if pd.isna(a["primary_diagnosis"]) else a["primary_diagnosis"]
        acts_of.setdefault(a["person_id"], []).append(a)
    records = []
    for p in sorted(t.persons.to_dict("records"), key=lambda r: r["person_id"]):
        born, reg_from, reg_to, died = (day(p[c]) for c in ("birth_date", "registered_from", "registered_to", "died_on"))
        if not (born <= index and reg_from <= index and (reg_to is None or index < reg_to)
                and (died is None or index < died)):
            continue
        age = index.year - born.year - ((index.month, index.day) < (born.month, born.day))
        r = {"person_id": p["person_id"], "age": age, "male": int(p["sex"] == "M"), "imd_decile": p["imd_decile"],
             "imd_quintile": (p["imd_decile"] + 1) // 2, "age_band": F.age_band(np.array([age]))[0]}
        ends = [d for d in (reg_to, died, out_end) if d is not None]
        r["list_days_next_12"] = (min(ends) - index).days
        conds = conds_of.get(p["person_id"], [])
        for c in CONDITION_CODES:
            dates = [day(k["diagnosed_on"]) for k in conds if k["condition"] == c and day(k["diagnosed_on"]) < index]
            r[f"ltc_{c}"] = int(bool(dates))
            r[f"years_since_{c}"] = (index - min(dates)).days / 365.25 if dates else math.nan
        r["ltc_count"] = sum(r[f"ltc_{c}"] for c in CONDITION_CODES if c not in ("frailty", "palliative"))
        acts = acts_of.get(p["person_id"], [])
        for measure, setting in F.MEASURES.items():
            for w, (lo, hi) in bounds.items():
                total = 0
                for a in acts:
                    s, e = day(a["start_date"]), day(a["end_date"]) or day(a["start_date"])
                    e = max(e, s)
                    if measure == "bed_days":
                        if a["setting"] in ("emergency_inpatient", "elective_inpatient") and s < index:
                            total += max(0, (min(e, hi) - max(s, lo)).days)
                    elif a["setting"] == setting and lo <= s < hi:
                        total += 1 if setting in F.SPELL_SETTINGS else a["quantity"]
                r[f"{measure}_{w}"] = total
        for col, setting in (("days_since_emergency", "emergency_inpatient"), ("days_since_ae", "ae")):
            dates = [day(a["start_date"]) for a in acts if a["setting"] == setting and far <= day(a["start_date"]) < index]
            r[col] = (index - max(dates)).days if dates else F.NO_EVENT_DAYS
        lo, hi = bounds["0_12"]
        for s in SETTING_CODES:
            r[f"cost_{s}_0_12"] = sum(round(a["cost_gbp"] * 100) for a in acts
                                      if a["setting"] == s and lo <= day(a["start_date"]) < hi) / 100
            r[f"cost_next_12m_{s}"] = sum(round(a["cost_gbp"] * 100) for a in acts
                                          if a["setting"] == s and index <= day(a["start_date"]) < out_end) / 100
        r["cost_total_0_12"] = sum(round(a["cost_gbp"] * 100) for a in acts if lo <= day(a["start_date"]) < hi) / 100
        r["cost_next_12m_total"] = sum(round(a["cost_gbp"] * 100) for a in acts
                                       if index <= day(a["start_date"]) < out_end) / 100
        r["acs_admissions_0_12"] = sum(1 for a in acts if a["setting"] == "emergency_inpatient"
                                       and lo <= day(a["start_date"]) < hi and is_acs(a["primary_diagnosis"]))
        r[F.LABEL] = int(any(a["setting"] == "emergency_inpatient" and index <= day(a["start_date"]) < out_end
                             for a in acts))
        records.append(r)
    return pd.DataFrame(records)


def random_tables(rng: np.random.Generator, n: int) -> Tables:
    base = np.datetime64("2019-06-01")
    persons, conditions, activity = [], [], []
    for pid in range(n):
        reg_from = base + int(rng.integers(-3000, 1800))
        persons.append({
            "person_id": pid, "sex": "FM"[rng.integers(2)], "imd_decile": int(rng.integers(1, 11)),
            "birth_date": str(np.datetime64("1930-01-01") + int(rng.integers(0, 33000))),
            "registered_from": str(reg_from),
            "registered_to": str(reg_from + int(rng.integers(1, 3000))) if rng.random() < 0.3 else None,
            "died_on": str(base + int(rng.integers(0, 2500))) if rng.random() < 0.1 else None,
        })
        persons[-1]["birth_date"] = min(persons[-1]["birth_date"], str(reg_from))
        for _ in range(rng.integers(0, 4)):
            conditions.append((pid, CONDITION_CODES[rng.integers(len(CONDITION_CODES))],
                               str(base + int(rng.integers(-2000, 2000)))))
        for _ in range(rng.integers(0, 12)):
            s = SETTING_CODES[rng.integers(len(SETTING_CODES))]
            start = base + int(rng.integers(-400, 2200))
            end = start + int(rng.integers(0, 40)) if s in F.SPELL_SETTINGS and rng.random() < 0.9 else None
            activity.append({"person_id": pid, "setting": s, "start_date": str(start),
                             "end_date": None if end is None else str(end), "quantity": int(rng.integers(1, 5)),
                             "cost_gbp": round(float(rng.uniform(0, 3000)), 2),
                             "primary_diagnosis": ["I50.0", "S72.0", "J44.1", None][rng.integers(4)]})
    return make_tables(persons, conditions, activity)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 25),
       index=st.sampled_from([dt.date(2023, 4, 1), dt.date(2022, 2, 28), dt.date(2024, 2, 29), dt.date(2021, 7, 15)]))
def test_matches_plain_python_reference(seed, n, index):
    t = random_tables(np.random.default_rng(seed), n)
    got = F.build_features(t, index)
    want = reference_features(t, index)
    assert len(got) == len(want)
    if not len(want):
        return
    for col in want.columns:
        g, w = got[col].to_numpy(), want[col].to_numpy()
        if g.dtype.kind == "f":
            np.testing.assert_allclose(g, w.astype(float), rtol=0, atol=1e-9, err_msg=col)
        else:
            assert g.tolist() == w.tolist(), col


def test_docs_describe_every_column():
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "features.md").read_text(encoding="utf-8")
    for col in F.COLUMNS:
        assert f"| `{col}` | {F.FEATURE_DESCRIPTIONS[col]} |" in doc, col


def test_empty_population_and_partitions():
    empty = F.build_features(make_tables([]), INDEX)
    assert list(empty.columns) == F.COLUMNS and len(empty) == 0
    t = random_tables(np.random.default_rng(3), 30)
    parts = list(slice_tables(t, 7))
    assert sum(len(p.persons) for p in parts) == 30
    assert sum(len(p.activity) for p in parts) == len(t.activity)
    joined = F._joined([F._feature_columns(p, F.to_day(INDEX)) for p in parts])  # as features_at joins ranges
    pd.testing.assert_frame_equal(joined, F.build_features(t, INDEX))


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.integers(0, 60), unique=True), rows=st.lists(st.integers(-5, 70), max_size=400))
def test_rows_of_fast_path_matches_reference(ids, rows):
    ids = np.sort(np.array(ids, dtype=np.int64))
    person_id = np.sort(np.array(rows, dtype=np.int64))  # sorted: the run-filling path when long enough
    np.testing.assert_array_equal(F._rows_of(ids, person_id), naive.rows_of(ids, person_id))
    shuffled = np.random.default_rng(0).permutation(person_id)
    np.testing.assert_array_equal(F._rows_of(ids, shuffled), naive.rows_of(ids, shuffled))


def test_date_days_matches_io_days():
    from riskcap.data.read import days

    s = pd.Series(pd.to_datetime(["1969-12-31", "2024-02-29", None, "1900-01-01"])).astype("datetime64[s]")
    got = F._date_days(s, -7)
    want = days(s).astype(np.int64)
    want[want == np.iinfo(np.int32).min] = -7
    assert got.tolist() == want.tolist() == [-1, 19782, -7, -25567]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 30),
       index=st.sampled_from([dt.date(2023, 4, 1), dt.date(2024, 2, 29), dt.date(2021, 7, 15)]))
def test_activity_kernel_matches_numpy_reference(seed, n, index):
    t = random_tables(np.random.default_rng(seed), n)
    ids = np.sort(t.persons["person_id"].to_numpy(dtype=np.int64))[::2]  # some people absent
    day = F.to_day(index)
    got = F._activity_features(t.activity, ids, day)
    want = naive.activity_features(t.activity, ids, day)
    assert set(got) == set(want) | {F._BLOCK}
    np.testing.assert_array_equal(got.pop(F._BLOCK), np.stack([want[c] for c in F._BLOCK_COLUMNS]))
    for col in want:
        np.testing.assert_array_equal(got[col], want[col], err_msg=col)
        assert got[col].dtype == want[col].dtype, col


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 60), block=st.integers(1, 9), shuffle=st.booleans(),
       categorical=st.booleans(), index=st.sampled_from([dt.date(2023, 4, 1), dt.date(2021, 7, 15)]))
def test_parallel_kernel_blocks_match_numpy_reference(seed, n, block, shuffle, categorical, index):
    """Many small blocks on all of numba's threads, categorical codes, rows in any order."""
    import contextlib

    t = random_tables(np.random.default_rng(seed), n)
    activity = t.activity
    if categorical:
        activity = activity.astype({"setting": "category", "primary_diagnosis": "category"})
    if shuffle:
        activity = activity.sample(frac=1.0, random_state=seed % 2**31)
    ids = np.sort(t.persons["person_id"].to_numpy(dtype=np.int64))[1::2]
    day = F.to_day(index)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F, "_BLOCK_PEOPLE", block)
        mp.setattr(F, "kernel_threads", lambda rows: contextlib.nullcontext())  # threads whatever the load
        got = F._activity_features(activity, ids, day)
    want = naive.activity_features(activity, ids, day)
    assert set(got) == set(want) | {F._BLOCK}
    np.testing.assert_array_equal(got.pop(F._BLOCK), np.stack([want[c] for c in F._BLOCK_COLUMNS]))
    for col in want:
        np.testing.assert_array_equal(got[col], want[col], err_msg=col)
        assert got[col].dtype == want[col].dtype, col


def test_unused_unknown_category_is_fine_and_used_one_is_an_error():
    t = random_tables(np.random.default_rng(5), 10)
    setting = pd.Categorical(t.activity["setting"], categories=[*SETTING_CODES, "bogus"])
    activity = t.activity.assign(setting=setting)
    ids = np.sort(t.persons["person_id"].to_numpy(dtype=np.int64))
    want = naive.activity_features(t.activity, ids, F.to_day(INDEX))
    got = F._activity_features(activity, ids, F.to_day(INDEX))
    for col in want:
        np.testing.assert_array_equal(got[col], want[col], err_msg=col)
    activity.loc[activity.index[0], "setting"] = "bogus"
    with pytest.raises(DataError, match="bogus"):
        F._activity_features(activity, ids, F.to_day(INDEX))


def test_frame_is_not_fragmented():
    """Few enough pandas blocks that adding a column does not warn (PerformanceWarning)."""
    import warnings

    parts = slice_tables(random_tables(np.random.default_rng(2), 30), 7)
    f = F._joined([F._feature_columns(p, F.to_day(INDEX)) for p in parts])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f["extra"] = 1
