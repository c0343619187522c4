"""Running scenarios side by side, sweeps, and the `riskcap capitation` commands end to end."""
from __future__ import annotations

import errno
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from riskcap.capitation.engine import evaluate
from riskcap.capitation.population import Population
from riskcap.capitation.run import write_run
from riskcap.stream.spill import Spill
from riskcap.capitation.scenario import load_scenario
from riskcap.capitation.scheme import load_scheme
from riskcap.capitation.sweep import parse_axis, run_sweep
from riskcap.cli import main
from riskcap.data.write import write_parquet
from riskcap.errors import ConfigError
from reference.fabricated import make_features, run_on_features

SCENARIOS = ["cap_p99", "baseline", "social_care_pooled", "outcome_withhold_10", "fair_shares"]
BUDGET_COLUMNS = ["scenario", "practice_code", "icb_code", "list_size", "budget_pence", "budget_per_head_gbp",
                  "change_vs_baseline_pence", "distance_from_target"]


@pytest.fixture(scope="module")
def frames():
    return make_features(3000, 9, seed=21, with_scores=True)


@pytest.mark.integration
def test_run_compares_scenarios_against_the_baseline(frames, tmp_path):
    features, practices = frames
    run = run_on_features(features, practices, [load_scenario(s) for s in SCENARIOS])
    assert run.baseline == "baseline"
    assert set(BUDGET_COLUMNS) <= set(run.budgets.columns)
    for name, part in run.budgets.groupby("scenario"):
        summary = next(r.summary() for r in run.results if r.scenario.name == name)
        assert part["budget_pence"].sum() == summary["envelope_pence"]
    base = run.budgets[run.budgets["scenario"] == "baseline"].set_index("practice_code")["budget_pence"]
    cap = run.budgets[run.budgets["scenario"] == "cap_p99"].set_index("practice_code")
    assert (cap["change_vs_baseline_pence"] == cap["budget_pence"] - base).all()
    assert run.comparison["scenario"].tolist() == SCENARIOS
    assert set(run.person_groups) == {"yoc_illustrative"}
    assert len(run.person_groups["yoc_illustrative"]) == len(features)
    # the two settings sets share one grouping: the person groups are those of a direct call
    direct = evaluate(Population.from_features(features, load_scheme("yoc_illustrative"),
                                               load_scenario("social_care_pooled").settings, practices),
                      load_scenario("social_care_pooled"))
    assert run.results[2].budgets.budget_pence.tolist() == direct.budgets.budget_pence.tolist()

    out = write_run(run, tmp_path / "a", {"index_date": "2024-04-01"})
    write_run(run, tmp_path / "b", {"index_date": "2024-04-01"})
    for rel in ("budgets.parquet", "budgets.csv", "tariffs.csv", "settlement.parquet", "accuracy.csv",
                "summary.json", "scenarios/cap_p99/budgets.parquet", "scenarios/cap_p99/scenario.yaml"):
        assert (out / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    summary = json.loads((out / "summary.json").read_text())
    assert [s["scenario"] for s in summary["scenarios"]] == SCENARIOS
    csv = pd.read_csv(out / "scenarios" / "baseline" / "budgets.csv")
    assert csv["budget_pence"].sum() == summary["scenarios"][1]["envelope_pence"]


def test_duplicate_scenario_names_are_refused(frames):
    features, practices = frames
    with pytest.raises(ConfigError, match="'baseline' is used by more than one file"):
        run_on_features(features, practices, [load_scenario("baseline"), load_scenario("baseline")])


@pytest.mark.integration
def test_sweep_grid_matches_individual_runs(frames):
    features, practices = frames
    base = load_scenario("baseline")
    pop = Population.from_features(features, load_scheme(base.need_groups), base.settings, practices)
    axes = [parse_axis("tariff.cost_uplift_pct=0:3:4"), parse_axis("tariff.cap_percentile=null,99,95"),
            parse_axis("corridor=@baseline,@asymmetric_corridor")]
    frame = run_sweep(pop, base, axes)
    assert len(frame) == 4 * 3 * 2
    assert frame["tariff.cost_uplift_pct"].unique().tolist() == [0, 1, 2, 3]
    row = frame[(frame["tariff.cost_uplift_pct"] == 2) & (frame["tariff.cap_percentile"] == 95)
                & (frame["corridor"] == "@asymmetric_corridor")].iloc[0]
    scenario = base.with_overrides({"tariff.cost_uplift_pct": 2, "tariff.cap_percentile": 95,
                                    "corridor": load_scenario("asymmetric_corridor").raw["corridor"]})
    fresh = Population.from_features(features, load_scheme(base.need_groups), base.settings, practices)
    direct = evaluate(fresh, scenario).summary()
    for col in ("envelope_pence", "pool_funding_pence", "payer_share_pence", "provider_share_pence", "r_squared"):
        assert row[col] == direct[col], col
    with pytest.raises(ConfigError, match="cannot vary"):
        parse_axis("settings=all")
    with pytest.raises(ConfigError, match="KEY=VALUES"):
        parse_axis("tariff.cost_uplift_pct")


# --- the commands, end to end on a small synthetic population ---------------------------

@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    from riskcap.synthetic import SynthConfig, write_population

    folder = tmp_path_factory.mktemp("synth")
    write_population(folder, SynthConfig(people=2_500, seed=5))
    return folder


@pytest.mark.e2e
def test_capitation_run_command(synth_dir, tmp_path):
    runner = CliRunner()
    args = ["capitation", "run", "baseline", "cap_p99", "uplift_2_9_eff_1_1", "--data", str(synth_dir)]
    first = runner.invoke(main, [*args, "--out", str(tmp_path / "one")])
    assert first.exit_code == 0, first.output
    assert "cap_p99" in first.output and "within ±10%" in first.output
    second = runner.invoke(main, [*args, "--out", str(tmp_path / "two")])
    assert second.exit_code == 0, second.output
    for rel in ("budgets.csv", "budgets.parquet", "summary.json", "settlement.csv", "tariffs.csv"):
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
    budgets = pd.read_csv(tmp_path / "one" / "budgets.csv")
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["inputs"]["index_date"] == "2024-04-01"  # one year before the synthetic data's end
    assert summary["inputs"]["index_date_source"].startswith("one year before the data's end, 2025-04-01")
    assert "index date 2024-04-01: one year before the data's end" in first.output
    for s in summary["scenarios"]:
        assert budgets.loc[budgets["scenario"] == s["scenario"], "budget_pence"].sum() == s["envelope_pence"]
    practices = pd.read_parquet(synth_dir / "practices.parquet")
    assert set(budgets["icb_code"]) <= set(practices["icb_code"])
    assert (tmp_path / "one" / "manifest.json").exists()


@pytest.mark.e2e
def test_capitation_commands_refuse_bad_input(synth_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntariff:\n  cost_uplift_pct: lots\n")
    result = CliRunner().invoke(main, ["capitation", "run", str(bad), "--data", str(synth_dir), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "bad.yaml: key 'tariff.cost_uplift_pct'" in result.output
    strict = tmp_path / "strict.yaml"
    strict.write_text("name: strict\nbudget:\n  mode: fair_shares\n  need: predicted_cost\n")
    result = CliRunner().invoke(main, ["capitation", "run", str(strict), "--data", str(synth_dir), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "predicted_cost_gbp" in result.output


@pytest.mark.e2e
def test_capitation_sweep_command(synth_dir, tmp_path):
    result = CliRunner().invoke(main, ["capitation", "sweep", "baseline", "--data", str(synth_dir),
                                       "--out", str(tmp_path), "--vary", "tariff.cost_uplift_pct=0,2.9",
                                       "--vary", "corridor.overspend.1.payer_share_pct=0:100:3"])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(tmp_path / "sweep.parquet")
    assert len(frame) == 6 and (frame["combination"] == np.arange(6)).all()
    assert frame["corridor.overspend.1.payer_share_pct"].tolist() == [0, 50, 100] * 2
    assert (frame["payer_share_pence"] + frame["provider_share_pence"] == frame["variance_pence"]).all()
    for _, group in frame.groupby("tariff.cost_uplift_pct"):  # the corridor moves money, not the budgets
        assert group["envelope_pence"].nunique() == 1 and group["variance_pence"].nunique() == 1
    assert frame.groupby("tariff.cost_uplift_pct")["envelope_pence"].first().is_monotonic_increasing


def test_scheme_paths_are_relative_to_the_scenario_file(frames, tmp_path):
    features, practices = frames
    (tmp_path / "schemes").mkdir()
    (tmp_path / "schemes" / "two.yaml").write_text(
        "name: two\ngroups:\n  - id: older\n    rules: [[\"age >= 65\"]]\n  - id: younger\n    rules: [[]]\n")
    (tmp_path / "s.yaml").write_text("name: s\nneed_groups: schemes/two.yaml\n")
    run = run_on_features(features, practices, [load_scenario(tmp_path / "s.yaml")])
    assert run.tariffs["need_group"].tolist() == ["older", "younger"]
    older = (features["age"] >= 65).sum()
    assert run.tariffs["people"].tolist() == [older, len(features) - older]


@pytest.mark.e2e
def test_a_full_disk_while_streaming_is_a_clear_error_and_leaves_no_outputs(synth_dir, tmp_path, monkeypatch):
    def full(self, table):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Spill, "append", full)
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["capitation", "run", "baseline", "--data", str(synth_dir), "--out", str(out),
                                       "--partition-people", "1000"])
    assert result.exit_code == 2, result.output
    assert "the disk is full" in result.output and "No space left on device" in result.output
    assert not out.exists() or (not any(out.rglob("*.csv")) and not any(out.rglob("*.parquet")))
    assert list(tmp_path.glob(".*.tmp")) == []


@pytest.mark.e2e
def test_outturn_reconciles_to_the_penny_and_every_practice_is_accounted_for(synth_dir, tmp_path):
    """Outturn read (summed here from the activity file) = charged to practices + unregistered,
    in summary.json and the settlement files; a practice nobody is on is listed with its reason."""
    import shutil

    import pyarrow.parquet as pq

    from riskcap.capitation.scenario import HEALTH_SETTINGS

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    practices = pq.read_table(data / "practices.parquet").to_pandas()
    empty = practices.iloc[[0]].assign(practice_code="Z99999", practice_name="Nobody's Surgery")
    write_parquet(pd.concat([practices, empty], ignore_index=True), data / "practices.parquet")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["capitation", "run", "baseline", "--data", str(data), "--out", str(out),
                                       "--index-date", "2024-04-01", "--partition-people", "700"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    s = summary["scenarios"][0]
    activity = pq.read_table(data / "activity.parquet").to_pandas()
    start = pd.to_datetime(activity["start_date"])
    rows = activity[(start >= "2024-04-01") & (start < "2025-04-01") & activity["setting"].isin(HEALTH_SETTINGS)]
    read = int(np.rint(rows["cost_gbp"].to_numpy() * 100).astype(np.int64).sum())
    assert s["outturn_read_pence"] == read
    assert s["charged_to_practices_pence"] + s["unregistered_pence"] == read and s["outturn_reconciles"]
    settlement = pd.read_csv(out / "settlement.csv")
    assert int(settlement["actual_pence"].sum()) + s["pool_outturn_pence"] == s["charged_to_practices_pence"]
    assert int(pd.read_csv(out / "budgets.csv")["budget_pence"].sum()) == s["envelope_pence"]
    assert "forward" in s["tariff_method"] and "unregistered (ICB)" in result.output
    without = pd.read_csv(out / "practices_without_people.csv")
    assert without["practice_code"].tolist() == ["Z99999"]
    assert without["reason"].tolist() == ["no one on its list in the outcome year"]
    listed = set(settlement["practice_code"]) | set(without["practice_code"])
    assert listed == set(practices["practice_code"]) | {"Z99999"}  # every practice, once


@pytest.mark.e2e
def test_fair_shares_price_joiners_without_a_prediction_at_their_group_tariff(synth_dir, tmp_path):
    """Scores made at T cover the people registered then; people joining a list later are
    priced at their group tariff, counted, never a silent fallback for everyone."""
    from riskcap.capitation.exposure import exposure_of
    from riskcap.capitation.money import allocate_largest_remainder
    from riskcap.features import OUTCOME_DAYS, build_features, to_day
    from riskcap.data.load import load_tables

    tables, _ = load_tables(synth_dir, as_of="2030-01-01")
    day = to_day("2024-04-01")
    at_t = build_features(tables, day)["person_id"].to_numpy(dtype=np.int64)
    everyone = build_features(tables, day, joining_days=OUTCOME_DAYS)["person_id"].to_numpy(dtype=np.int64)
    predicted = 100.0 + (at_t % 37) * 25.0
    write_parquet(pd.DataFrame({"person_id": at_t, "model": "cost", "predicted_cost_gbp": predicted}),
                  tmp_path / "scores.parquet")
    scenario = tmp_path / "fair.yaml"
    scenario.write_text("name: fair\nbudget:\n  mode: fair_shares\n  need: predicted_cost\n")
    result = CliRunner().invoke(main, ["capitation", "run", str(scenario), "--data", str(synth_dir), "--scores",
                                       str(tmp_path / "scores.parquet"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    joiners = np.setdiff1d(everyone, at_t)
    assert len(joiners) > 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())["scenarios"][0]
    assert summary["people_at_group_tariff"] == len(joiners)
    assert summary["mode"] == f"fair shares (need = predicted cost; group tariff for {len(joiners):,} people without one)"
    assert f"group tariff for {len(joiners):,} people" in result.output

    # the targets, recomputed: predicted pence x days on each list, joiners' group tariff x days
    exposure = exposure_of(tables, day, everyone, np.zeros(0, dtype=np.int64))
    person = everyone[exposure.stay_row]
    groups = pd.read_parquet(tmp_path / "o" / "need_groups" / "yoc_illustrative.parquet").set_index("person_id")
    tariff = pd.read_csv(tmp_path / "o" / "tariffs.csv").set_index("need_group")["tariff_pence"]
    need = pd.Series(np.rint(predicted * 100).astype(np.int64), index=at_t)
    per_year = np.where(np.isin(person, at_t), need.reindex(person).fillna(0).to_numpy(dtype=np.int64),
                        tariff.reindex(groups["need_group"].reindex(person)).to_numpy(dtype=np.int64))
    weights = pd.Series(per_year * exposure.stay_days).groupby(exposure.stay_practice).sum()
    budgets = pd.read_csv(tmp_path / "o" / "budgets.csv").set_index("practice_code")
    weights = weights.reindex(budgets.index).fillna(0).astype(np.int64)
    expected = allocate_largest_remainder(int(budgets["target_pence"].sum()), weights.to_numpy())
    assert budgets["target_pence"].tolist() == expected.tolist()
