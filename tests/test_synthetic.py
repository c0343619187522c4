"""The synthetic population: data contract, consistency, determinism and calibration."""
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from riskcap.cli import main
from riskcap.data.read import read_table
from riskcap.data.write import sha256_file
from riskcap.errors import ConfigError, DataError
from riskcap.schema import CONDITION_CODES, SETTING_CODES, TABLES, is_acs, nhs_number_valid
from riskcap.synthetic import (
    END_DATE, EVAL_INDEX_DATE, TRAIN_INDEX_DATE, YEAR_STARTS, SynthConfig, generate, generate_tables, write_population,
)
from riskcap.synthetic.params import PRACTICE_EFFECT_SD
from riskcap.synthetic.pipeline import OUTPUT_TABLES, PRACTICE_TABLES
from riskcap.synthetic.plan import CHANNELS
from riskcap.synthetic.practices import EXTRA_COLUMNS, read_nhse_practices, synthetic_practices

NHSE_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nhse_practice_weighted_populations_2024_25.csv"
FAR = pd.Timestamp("2100-01-01")
KIND = {"str": "string", "int": "int64", "float": "float64", "date": "datetime64[s]", "bool": "bool"}


#: New contract columns of practices (contract-v2), after the contract's own.
PRACTICE_EXTRAS = ["opened_on", "pcn_code"]
HOSPITAL = ["emergency_inpatient", "elective_inpatient", "day_case", "outpatient", "ae", "mental_health"]
CONFIG = SynthConfig(people=12000, seed=3, n_practices=12, partition_people=2500, coding_up_practices=1)


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = write_population(out, CONFIG)
    tables = {name: read_table(out, name) for name in TABLES}
    for name in ("registrations", "practice_changes", "practice_truth"):
        tables[name] = read_parquet_dates(out / f"{name}.parquet")
    truth = pd.read_parquet(out / "truth.parquet")
    return out, summary, tables, truth


def read_parquet_dates(path) -> pd.DataFrame:
    """A parquet file with dates as datetime64 and dictionary text as strings."""
    table = pq.read_table(path)
    df = table.to_pandas(date_as_object=False)
    for fld in table.schema:
        if pa.types.is_dictionary(fld.type):
            df[fld.name] = df[fld.name].astype("string")
    return df


def on_day(registrations: pd.DataFrame, person_id, day) -> pd.Series:
    """The practice each (person, day) pair is registered with (NaN: none), per contract-v2."""
    q = pd.DataFrame({"person_id": np.asarray(person_id), "day": pd.to_datetime(np.asarray(day)), "row": np.arange(len(person_id))})
    m = q.merge(registrations, on="person_id")
    inside = (m["registered_from"] <= m["day"]) & (m["day"] < m["registered_to"].fillna(FAR))
    found = m[inside].set_index("row")["practice_code"]
    return found.reindex(np.arange(len(person_id)))


def test_calendar_constants():
    assert YEAR_STARTS[0].isoformat() == "2020-04-01" and len(YEAR_STARTS) == 5
    assert TRAIN_INDEX_DATE.isoformat() == "2023-04-01" and EVAL_INDEX_DATE.isoformat() == "2024-04-01"
    assert END_DATE.isoformat() == "2025-04-01"


def test_files_and_contract_columns(population):
    out, summary, tables, truth = population
    for name in OUTPUT_TABLES + PRACTICE_TABLES:
        assert (out / f"{name}.parquet").exists()
    assert (out / "calibration.json").exists()
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
    for name, spec in TABLES.items():
        df = tables[name]
        assert list(df.columns) == spec.names + (PRACTICE_EXTRAS if name == "practices" else []), name
        for col in spec.columns:
            dtype = str(df[col.name].dtype).lower()
            assert KIND[col.kind] in dtype or (col.kind == "str" and "str" in dtype), (name, col.name, dtype)
            if not col.nullable:
                assert df[col.name].notna().all(), (name, col.name)
        assert summary.rows[name] == len(df)
    assert list(truth.columns) == ["person_id", "year_start", "p_emergency", "frailty", "state", "expected_admissions"]
    assert list(tables["registrations"].columns) == ["person_id", "practice_code", "registered_from", "registered_to"]
    assert list(tables["practice_changes"].columns) == ["practice_code", "change", "effective_on", "into_practice_code"]
    assert summary.rows["registrations"] == len(tables["registrations"])


def test_ids_contiguous_and_tables_sorted(population):
    _, summary, t, truth = population
    persons, reg = t["persons"], t["registrations"]
    assert np.array_equal(persons["person_id"].to_numpy(), np.arange(1, len(persons) + 1))
    # ids run in the order of the practice people first registered with (persons holds the last)
    first = reg.groupby("person_id", sort=True).head(1)
    assert first["practice_code"].is_monotonic_increasing
    assert set(persons["practice_code"]) <= set(t["practices"]["practice_code"])
    assert t["practices"]["practice_code"].is_monotonic_increasing
    assert t["practices"]["list_size"].sum() == 12000 == summary.people_start
    key = list(zip(reg["person_id"], reg["registered_from"]))
    assert key == sorted(key) and not reg.duplicated(["person_id", "registered_from"]).any()
    for name in ("conditions", "activity"):
        assert t[name]["person_id"].is_monotonic_increasing
        assert t[name]["person_id"].isin(persons["person_id"]).all()
    act = t["activity"]
    key = list(zip(act["person_id"], act["start_date"], act["setting"]))
    assert key == sorted(key)
    assert truth["person_id"].is_monotonic_increasing


def test_persons_values(population):
    p = population[2]["persons"]
    assert p["nhs_number"].is_unique and all(nhs_number_valid(x) for x in p["nhs_number"])
    assert set(p["sex"]) == {"F", "M"}
    assert p["imd_decile"].between(1, 10).all() and p["imd_decile"].nunique() == 10
    assert (p["registered_from"] >= p["birth_date"]).all()
    ended = p["registered_to"].notna()
    assert (p.loc[ended, "registered_to"] > p.loc[ended, "registered_from"]).all()
    dead = p["died_on"].notna()
    # a death ends the open period; a few die between lists, after their last period ended
    assert (p.loc[dead, "registered_to"] <= p.loc[dead, "died_on"]).all()
    assert (p.loc[dead, "registered_to"] == p.loc[dead, "died_on"]).mean() > 0.9
    assert 0.01 < p["opted_out"].mean() < 0.06
    assert p["care_home"].any()
    assert (p["registered_from"] < pd.Timestamp(END_DATE)).all()


def test_no_activity_after_death_and_only_hospital_care_between_lists(population):
    """Activity never follows death nor precedes the first registration; GP, prescribing,
    community and social care happen only while registered; hospital care (and mental health
    services) also between lists and for a while after leaving the ICB."""
    t = population[2]
    act = t["activity"].merge(t["persons"][["person_id", "registered_from", "registered_to", "died_on"]], on="person_id")
    assert (act["start_date"] >= act["registered_from"]).all()
    assert (act["start_date"] < act["died_on"].fillna(FAR)).all()
    assert (act["end_date"].isna() | (act["end_date"] <= act["died_on"].fillna(FAR))).all()
    assert act["start_date"].min() >= pd.Timestamp(YEAR_STARTS[0]) and act["start_date"].max() < pd.Timestamp(END_DATE)
    practice = on_day(t["registrations"], act["person_id"], act["start_date"]).to_numpy()
    unregistered = pd.isna(practice)
    assert unregistered.any() and (~unregistered).any()
    assert act.loc[unregistered, "setting"].isin(HOSPITAL).all()
    assert set(act.loc[unregistered, "setting"]) >= {"ae", "outpatient"}
    assert unregistered.mean() < 0.03


def test_activity_values(population):
    act = population[2]["activity"]
    assert set(act["setting"]) == set(SETTING_CODES)
    assert (act["cost_gbp"] >= 0).all() and np.allclose(act["cost_gbp"] * 100, np.round(act["cost_gbp"] * 100))
    assert (act["quantity"] >= 1).all()
    inpatient = act["setting"].isin(["emergency_inpatient", "elective_inpatient", "day_case"])
    assert act.loc[inpatient, "primary_diagnosis"].notna().all() and act.loc[~inpatient, "primary_diagnosis"].isna().all()
    assert act.loc[inpatient, "end_date"].notna().all() and (act.loc[inpatient, "end_date"] >= act.loc[inpatient, "start_date"]).all()
    assert act.loc[~inpatient, "end_date"].isna().all()
    assert act["primary_diagnosis"].dropna().str.match(r"^[A-Z]\d\d(\.\d)?$").all()
    emergency = act[act["setting"] == "emergency_inpatient"]
    assert emergency["primary_diagnosis"].map(is_acs).mean() > 0.1
    # ACS admissions belong to people on a matching register (e.g. J45 asthma codes to asthma)
    cond = population[2]["conditions"]
    asthma = emergency[emergency["primary_diagnosis"].str.startswith("J45")]
    assert asthma["person_id"].isin(cond.loc[cond["condition"] == "asthma", "person_id"]).all()


def test_conditions_values(population):
    t = population[2]
    cond = t["conditions"].merge(t["persons"], on="person_id")
    assert set(cond["condition"]) <= set(CONDITION_CODES)
    assert not cond.duplicated(["person_id", "condition"]).any()
    assert (cond["diagnosed_on"] >= cond["birth_date"]).all()
    assert (cond["diagnosed_on"] < cond["registered_to"].fillna(pd.Timestamp(END_DATE))).all()
    during = cond["diagnosed_on"] >= pd.Timestamp(YEAR_STARTS[0])
    assert during.any() and (~during).any()  # registers both before and during the simulation
    # nothing is recorded while registered nowhere (between lists)
    after_first = cond[cond["diagnosed_on"] >= cond["registered_from"]]
    assert on_day(t["registrations"], after_first["person_id"], after_first["diagnosed_on"]).notna().all()


def test_truth(population):
    _, _, t, truth = population
    assert truth["p_emergency"].between(0, 1, inclusive="neither").all()
    assert set(pd.to_datetime(truth["year_start"]).dt.date) == set(YEAR_STARTS)
    assert not truth.duplicated(["person_id", "year_start"]).any()
    # one row per person registered (from first to last registration, as persons says) and alive at each year start
    p = t["persons"]
    for year_start in YEAR_STARTS:
        start = pd.Timestamp(year_start)
        alive = (p["registered_from"] <= start) & (p["registered_to"].fillna(FAR) > start) & (p["died_on"].fillna(FAR) > start)
        rows = truth[pd.to_datetime(truth["year_start"]) == start]
        assert set(rows["person_id"]) == set(p.loc[alive, "person_id"])


def test_calibration_json_lists_every_target(population):
    report = population[1].calibration
    names = {t["name"] for t in report["targets"]}
    assert {f"prevalence_{c}" for c in CONDITION_CODES} <= names
    for required in ("emergency_admitted_share", "admissions_per_admitted_person", "adult_multimorbidity_2plus",
                     "mean_annual_cost_gbp_ltc_1", "mean_annual_cost_gbp_ltc_2", "mean_annual_cost_gbp_ltc_3+",
                     "truth_auroc_outcome_year", "emergency_admitted_share_age_80+", "gp_appointments_per_person_year",
                     "prescription_items_per_person_year", "outpatient_attendances_per_person_year",
                     "ae_attendances_per_person_year", "max_prescribing_per_person_year", "max_gp_per_person_year",
                     "formula_practice_r2", "formula_practices_10pct_off_share", "need_dispersion_ratio"):
        assert required in names
    for t in report["targets"]:
        assert {"name", "target", "achieved", "pass"} <= set(t)
    assert report["passed"] + report["failed"] == len(report["targets"])


ALL_FILES = [f"{t}.parquet" for t in OUTPUT_TABLES + PRACTICE_TABLES] + ["calibration.json"]


def test_same_seed_gives_identical_bytes(tmp_path):
    config = SynthConfig(people=1500, seed=9, n_practices=2)
    a = write_population(tmp_path / "a", config)
    b = write_population(tmp_path / "b", config)
    for name in ALL_FILES:
        assert sha256_file(a.out_dir / name) == sha256_file(b.out_dir / name), name
    c = write_population(tmp_path / "c", SynthConfig(people=1500, seed=10, n_practices=2))
    assert sha256_file(c.out_dir / "persons.parquet") != sha256_file(a.out_dir / "persons.parquet")


def test_partition_size_and_workers_do_not_change_the_population(tmp_path):
    """Moves, closures and mergers cross partitions; still every table, and calibration.json
    (integer counters), are the same whatever the partition size and the number of workers."""
    base = SynthConfig(people=9000, seed=4, n_practices=9)
    one = write_population(tmp_path / "one", base, jobs=1).out_dir
    small = SynthConfig(people=9000, seed=4, n_practices=9, partition_people=2000)
    many = write_population(tmp_path / "many", small, jobs=2).out_dir
    assert pq.ParquetFile(many / "activity.parquet").num_row_groups >= 4
    for name in ALL_FILES:
        if name.endswith(".parquet"):
            assert pq.read_table(one / name).equals(pq.read_table(many / name)), name
    a, b = (json.loads((d / "calibration.json").read_text()) for d in (one, many))
    assert a == b
    reg = pq.read_table(one / "registrations.parquet").to_pandas()
    assert reg["practice_code"].astype(str).ne(reg.groupby("person_id")["practice_code"].transform("first").astype(str)).any()
    tables, truth = generate_tables(small)
    assert len(tables.activity) == pq.read_metadata(one / "activity.parquet").num_rows and truth["person_id"].is_monotonic_increasing


def test_registrations_agree_with_persons(population):
    """contract-v2: one row per period, sorted, not overlapping, only the last open; persons holds the
    first registered_from, the last registered_to and the last practice; a death ends the open period."""
    t = population[2]
    reg, p = t["registrations"], t["persons"].set_index("person_id")
    assert reg["person_id"].isin(p.index).all() and set(reg["person_id"]) == set(p.index)
    assert reg["practice_code"].isin(t["practices"]["practice_code"]).all()
    assert (reg["registered_to"].isna() | (reg["registered_to"] > reg["registered_from"])).all()
    nxt = reg.groupby("person_id")["registered_from"].shift(-1)
    has_next = nxt.notna()
    assert (reg.loc[has_next, "registered_to"] <= nxt[has_next]).all()  # no overlap, gaps allowed
    assert reg.loc[has_next, "registered_to"].notna().all()  # only the last may be open
    first = reg.groupby("person_id").head(1).set_index("person_id")
    last = reg.groupby("person_id").tail(1).set_index("person_id")  # (groupby.last() would skip nulls)
    assert (first["registered_from"] == p.loc[first.index, "registered_from"]).all()
    assert (last["registered_to"].fillna(FAR) == p.loc[last.index, "registered_to"].fillna(FAR)).all()
    assert (last["practice_code"] == p.loc[last.index, "practice_code"].astype(str)).all()
    assert (reg["registered_from"] >= p.loc[reg["person_id"], "birth_date"].to_numpy()).all()
    periods = reg.groupby("person_id").size()
    moved = periods[periods >= 2].index
    assert 0.05 < len(moved) / len(p) < 0.5
    # moves: same day, another practice; gaps: registered nowhere in between
    pairs = reg.assign(next_from=nxt, next_practice=reg.groupby("person_id")["practice_code"].shift(-1))[has_next]
    same_day = pairs["registered_to"] == pairs["next_from"]
    assert (pairs.loc[same_day, "practice_code"] != pairs.loc[same_day, "next_practice"]).all()
    assert same_day.any() and (~same_day).any()


def test_practice_openings_closures_and_mergers(population):
    """The ICB (12 practices) has a practice opening, one closing and one merging inside the window,
    every list that ends does so on its effective date, and PCNs group the practices."""
    t = population[2]
    pr, changes, reg = t["practices"], t["practice_changes"], t["registrations"]
    start, end = pd.Timestamp(YEAR_STARTS[0]), pd.Timestamp(END_DATE)
    assert pr["pcn_code"].notna().all() and 1 < pr["pcn_code"].nunique() < len(pr)
    opened = pr[pr["opened_on"].notna()]
    assert len(opened) >= 1 and (opened["list_size"] == 0).all()
    assert ((opened["opened_on"] > start) & (opened["opened_on"] < end)).all()
    for code, day in zip(opened["practice_code"], opened["opened_on"]):
        mine = reg[reg["practice_code"] == code]
        assert len(mine) > 50 and (mine["registered_from"] >= day).all()
    assert set(changes["change"]) == {"merge", "close"} and changes["practice_code"].is_unique
    assert changes["practice_code"].isin(pr["practice_code"]).all()
    merge, close = changes[changes["change"] == "merge"], changes[changes["change"] == "close"]
    assert merge["into_practice_code"].isin(pr["practice_code"]).all() and close["into_practice_code"].isna().all()
    assert (merge["into_practice_code"] != merge["practice_code"]).all()
    assert ((changes["effective_on"] > start) & (changes["effective_on"] < end)).all()
    for row in changes.itertuples():
        mine = reg[reg["practice_code"] == row.practice_code]
        assert mine["registered_to"].notna().all() and (mine["registered_to"] <= row.effective_on).all()
        on_the_day = mine[mine["registered_to"] == row.effective_on]
        assert len(on_the_day) > 20  # the list that was there
        after = on_day(reg, on_the_day["person_id"], [row.effective_on] * len(on_the_day))
        if row.change == "merge":  # the whole list moves, that day, to one practice
            assert (after == row.into_practice_code).all()
        else:  # dispersed to several practices, a few re-registering only after a while
            assert after.nunique() >= 2 and after.notna().mean() > 0.7


def test_coding_up_is_recorded_for_evaluators_only(population, tmp_path):
    """A practice that codes up: its register entries grow faster than its patients' morbidity;
    calibration.json and practice_truth say which practice and by how much; the truth (morbidity,
    risk) and every other practice's registers are the same as without coding up."""
    out, summary, t, truth = population
    report = summary.calibration["coding_up"]
    (entry,) = report["practices"]
    assert entry["uplift"] == CONFIG.coding_up_uplift and entry["from"] == YEAR_STARTS[-2].isoformat()
    assert entry["excess_register_growth"] > 0.5 * entry["uplift"]
    assert abs(entry["condition_growth"] - entry["icb_condition_growth"]) < 0.5 * entry["uplift"]
    flagged = t["practice_truth"]
    assert flagged.loc[flagged["coding_up_uplift"] > 0, "practice_code"].tolist() == [entry["practice_code"]]
    assert "coding_up" not in " ".join(t["practices"].columns)  # never in the model's inputs
    plain = write_population(tmp_path / "plain", SynthConfig(**{**CONFIG.__dict__, "coding_up_practices": 0}))
    assert pq.read_table(plain.out_dir / "truth.parquet").equals(pq.read_table(out / "truth.parquet"))
    cond_plain = read_table(plain.out_dir, "conditions")
    changed = cond_plain.merge(t["conditions"], how="outer", indicator=True)
    changed = changed[changed["_merge"] != "both"]
    at = on_day(t["registrations"], changed["person_id"], [pd.Timestamp(entry["from"])] * len(changed))
    assert len(changed) > 0 and (at == entry["practice_code"]).all()


def test_utilisation_tails_are_physically_plausible(population):
    """Nobody gets twenty prescription items a day or daily GP appointments (issue 20: 12,000 items
    and 558 consultations in a year)."""
    act = population[2]["activity"]
    year = act[act["start_date"] >= pd.Timestamp(YEAR_STARTS[-1])]
    per_person = year.groupby(["person_id", "setting"], observed=True)["quantity"].sum().unstack(fill_value=0)
    assert per_person["prescribing"].max() <= 1200 and per_person["gp"].max() <= 150
    assert per_person["outpatient"].max() <= 220 and per_person["emergency_inpatient"].max() <= 40
    monthly = year.loc[year["setting"] == "prescribing", "quantity"]
    assert monthly.max() <= 120  # a month of weekly dispensing of 20 medicines plus acute items
    assert per_person["prescribing"].quantile(0.99) > 100  # but polypharmacy is real


def test_generate_partitions_are_contiguous_id_ranges():
    parts = list(generate(SynthConfig(people=3000, seed=4, n_practices=3, partition_people=1)))
    assert [p.person_id_range[0] for p in parts][0] == 1
    for a, b in zip(parts, parts[1:]):
        assert a.person_id_range[1] == b.person_id_range[0]
    tables = parts[1].tables()
    lo, hi = parts[1].person_id_range
    assert tables.activity["person_id"].between(lo, hi - 1).all()


def test_fast_calibration_loosened():
    """20,000 people: the main targets hold with tolerances loosened for the smaller sample."""
    from riskcap.synthetic import calibration
    from riskcap.synthetic.params import PREVALENCE_TARGET

    stats: dict = {}
    for part in generate(SynthConfig(people=20000, seed=21, partition_people=10**9)):
        calibration.merge_stats(stats, part.stats)
    report = {t["name"]: t["achieved"] for t in calibration.summarise(stats, 5)["targets"]}
    for code, (target, _) in PREVALENCE_TARGET.items():
        if target >= 0.02:
            assert abs(report[f"prevalence_{code}"] / target - 1) < 0.3, code
    assert 0.045 <= report["emergency_admitted_share"] <= 0.08
    assert 1.25 <= report["admissions_per_admitted_person"] <= 1.8
    assert report["emergency_admitted_share_age_80+"] > report["emergency_admitted_share_age_60-69"] > report["emergency_admitted_share_age_0-49"]
    assert 0.15 <= report["adult_multimorbidity_2plus"] <= 0.4
    assert report["mean_annual_cost_gbp_ltc_0"] < report["mean_annual_cost_gbp_ltc_1"] < report["mean_annual_cost_gbp_ltc_2"] < report["mean_annual_cost_gbp_ltc_3+"]
    assert 0.77 <= report["truth_auroc_outcome_year"] <= 0.88
    assert 4.5 <= report["gp_appointments_per_person_year"] <= 7
    assert 15 <= report["prescription_items_per_person_year"] <= 25
    assert 1.1 <= report["outpatient_attendances_per_person_year"] <= 2.1
    assert 0.3 <= report["ae_attendances_per_person_year"] <= 0.55


@pytest.mark.slow
def test_calibration_200k(tmp_path):
    """The issue's check: every target in calibration.json is met by 200,000 people."""
    summary = write_population(tmp_path / "big", SynthConfig(people=200_000, seed=7))
    failed = [t for t in summary.calibration["targets"] if not t["pass"]]
    assert not failed, failed


@pytest.mark.slow
def test_practice_variation_1m():
    """Issue 20: with about 110 synthetic practices (1,000,000 people) a demographic-plus-morbidity
    formula explains practice outturn about as well as NHS England's person-based formula did
    (PBRA: R-squared 0.77, a third of practices 10%+ off), and the need it finds is as spread as
    the practices' need indices."""
    from riskcap.synthetic import calibration

    config = SynthConfig(people=1_000_000, seed=1, partition_people=250_000)
    plan = config.plan()
    stats: dict = {}
    for part in generate(config, plan=plan):
        calibration.merge_stats(stats, part.stats)
    report = {t["name"]: t for t in calibration.summarise(stats, config.years, practices=plan.frame)["targets"]}
    for name in ("formula_practice_r2", "formula_practices_10pct_off_share", "need_dispersion_ratio"):
        assert report[name]["pass"] and "reported only" not in report[name].get("note", ""), report[name]


@pytest.mark.slow
def test_boosted_trees_beat_the_main_effects_model():
    """Issue 20: interactions in the true risk put the main-effects logistic regression measurably
    behind LightGBM at 200,000 people (SPARRA v4: about +0.01 AUROC), on two seeds, while the
    oracle stays in 0.80-0.85."""
    from riskcap.features import build_features
    from riskcap.models.train import evaluate_model, train_model

    for seed in (1, 2):
        tables, truth = generate_tables(SynthConfig(people=200_000, seed=seed))
        train = build_features(tables, TRAIN_INDEX_DATE)
        test = build_features(tables, EVAL_INDEX_DATE)
        at_eval = truth[truth["year_start"] == pd.Timestamp(EVAL_INDEX_DATE)].set_index("person_id")["p_emergency"]
        truth_p = at_eval.reindex(test["person_id"].to_numpy()).to_numpy()
        auroc = {kind: evaluate_model(train_model(kind, train, TRAIN_INDEX_DATE, seed=seed), test, EVAL_INDEX_DATE, truth_p)
                 for kind in ("logistic", "gbm")}
        assert auroc["gbm"]["auroc"] - auroc["logistic"]["auroc"] >= 0.003, (seed, auroc["gbm"]["auroc"], auroc["logistic"]["auroc"])
        assert 0.80 <= auroc["gbm"]["oracle_auroc"] <= 0.85


def test_synthetic_practices_follow_england():
    pr = synthetic_practices(500_000, seed=1)
    assert pr["list_size"].sum() == 500_000 and pr["practice_code"].is_unique
    assert 5000 < pr["list_size"].median() < 11000 and 40 < len(pr) < 80
    assert pr["need_index"].between(0.5, 2).all()
    fixed = synthetic_practices(300_000, seed=1, n_practices=35)
    assert len(fixed) == 35 and fixed["list_size"].sum() == 300_000


def test_a_small_synthetic_icb_is_england_average():
    """With a handful of synthetic practices, their drawn mix and persistent effects are centred
    over the ICB (list-weighted), so the ICB as a whole is not younger, more deprived or busier
    than England (independent draws moved the mean deprivation of 5-7 practices by up to 0.7 SD)."""
    sd = np.array([PRACTICE_EFFECT_SD[c] for c in CHANNELS])
    for seed in (1, 2, 3):
        plan = SynthConfig(people=50_000, seed=seed).plan()
        f = plan.frame
        w = f["nominal_size"].to_numpy(dtype=float) / f["nominal_size"].sum()
        for col in ("age_tilt", "deprivation", "mental_health", "morbidity"):
            assert abs(w @ f[col].to_numpy(dtype=float)) < 0.01, (seed, col)
        # what remains is the yearly part, which is not centred
        assert np.abs(w @ plan.effects.mean(axis=1) + 0.5 * (sd ** 2).sum(axis=1)).max() < 0.06, seed


def test_presets_and_config_errors(tmp_path):
    icb = SynthConfig.from_preset("default_icb")
    assert icb.people == 300_000 and icb.n_practices == 35
    assert SynthConfig.from_preset("default_icb", people=1000, seed=None).people == 1000
    bad = tmp_path / "bad.yaml"
    bad.write_text("peeple: 5\n")
    with pytest.raises(ConfigError, match="peeple"):
        SynthConfig.from_preset(bad)
    with pytest.raises(ConfigError, match="practices"):
        SynthConfig(icb="QE1")


@pytest.mark.skipif(not NHSE_FILE.exists(), reason="shared NHS England practice file not available")
def test_real_practices_file():
    lsc = read_nhse_practices(NHSE_FILE, icb="qe1")
    assert len(lsc) == 203 and (lsc["icb_code"] == "QE1").all()
    assert lsc.equals(read_nhse_practices(NHSE_FILE, icb="Lancashire and South Cumbria"))
    scaled = read_nhse_practices(NHSE_FILE, icb="QE1", people=50_000)
    assert scaled["list_size"].sum() == 50_000
    england = read_nhse_practices(NHSE_FILE)
    assert len(england) == 6553 and (england["list_size"] >= 0).all()
    assert england.loc[england["list_size"] == 0, "need_index"].isna().all()  # empty lists: no need index, no crash
    with pytest.raises(DataError, match="North West London"):
        read_nhse_practices(NHSE_FILE, icb="north wset london")


@pytest.mark.skipif(not NHSE_FILE.exists(), reason="shared NHS England practice file not available")
def test_real_practices_shape_population():
    """Practices with a high need index get older, more deprived, more morbid people."""
    pr = read_nhse_practices(NHSE_FILE, icb="QE1", people=40_000)
    tables, truth = generate_tables(SynthConfig(practices_file=str(NHSE_FILE), icb="QE1", people=40_000, seed=2))
    p = tables.persons.merge(pr[["practice_code", "need_index"]], on="practice_code")
    p["age"] = (pd.Timestamp("2020-04-01") - p["birth_date"]).dt.days / 365.25
    high = p["need_index"] > p["need_index"].quantile(0.75)
    low = p["need_index"] < p["need_index"].quantile(0.25)
    assert p.loc[high, "age"].mean() > p.loc[low, "age"].mean()
    assert p.loc[high, "imd_decile"].mean() < p.loc[low, "imd_decile"].mean()


def test_cli_synth(tmp_path):
    result = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "s"), "--people", "1500", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "calibration" in result.output.lower() and (tmp_path / "s" / "activity.parquet").exists()
    coded = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "c"), "--people", "30000", "--seed", "5",
                                      "--coding-up", "2"])
    assert coded.exit_code == 0, coded.output
    report = json.loads((tmp_path / "c" / "calibration.json").read_text())
    assert len(report["coding_up"]["practices"]) == 2 and report["config"]["coding_up_practices"] == 2
    too_many = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "d"), "--people", "1500", "--coding-up", "3"])
    assert too_many.exit_code == 2 and "coding_up_practices" in too_many.output and not (tmp_path / "d").exists()
    bad = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "t"), "--icb", "QE1"])
    assert bad.exit_code == 2 and "practices" in bad.output
