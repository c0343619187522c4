"""Capitation runs streamed partition by partition equal the whole-frame run, to the penny and byte for byte."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskcap.capitation.engine import evaluate
from riskcap.capitation.population import PREDICTED_COST, Population, PopulationBuilder, population_part
from riskcap.capitation.run import plan_run, run_scenarios_streamed, stream_populations, write_run
from riskcap.capitation.scenario import HEALTH_SETTINGS, load_scenario, parse_scenario
from riskcap.capitation.scheme import load_scheme
from riskcap.cli import main
from riskcap.data.load import load_tables
from riskcap.data.scores import read_scores_range, scores_are_cost
from riskcap.data.write import ParquetRowsWriter, write_parquet
from riskcap.errors import DataError
from riskcap.features import build_features
from riskcap.stream.context import RunContext
from riskcap.stream.engines import LocalEngine
from reference.fabricated import make_features
from reference.partitions import slice_tables

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "synthetic_data"
INDEX_DATE = "2024-04-01"
SCHEME = load_scheme("yoc_illustrative")
PER_PERSON = ("person_cell", "person_base", "person_outcome")


def slices(frame: pd.DataFrame, cuts) -> list[pd.DataFrame]:
    bounds = [0, *sorted(cuts), len(frame)]
    return [frame.iloc[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def assert_same_population(a: Population, b: Population) -> None:
    for name in ("practice_codes", "icb_codes", "people", "list_days", "base", "outcome", *PER_PERSON):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name
    assert (a.need_days is None) == (b.need_days is None)
    if a.need_days is not None:
        assert np.array_equal(a.need_days, b.need_days)


def assert_same_result(a, b) -> None:
    for table in ("budgets_frame", "tariffs_frame", "settlement_frame", "settlement_icb_frame", "accuracy_frame"):
        pd.testing.assert_frame_equal(getattr(a, table)(), getattr(b, table)())
    assert json.dumps(a.summary(), sort_keys=True, default=str) == json.dumps(b.summary(), sort_keys=True, default=str)


def assert_same_folders(a: Path, b: Path) -> None:
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file() and p.name != "manifest.json")
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


# --- combine(parts) == from_features(whole) ---------------------------------------------------

SCENARIO = st.fixed_dictionaries({
    "name": st.just("random"),
    "settings": st.sampled_from([["gp"], list(HEALTH_SETTINGS), "all"]),
    "tariff": st.fixed_dictionaries({"cap_percentile": st.sampled_from([None, 50, 90, 99, 99.9]),
                                     "excess": st.sampled_from(["pool", "drop"])}),
    "budget": st.fixed_dictionaries({"mode": st.sampled_from(["tariff", "fair_shares", "blend"])}),
    "corridor": st.sampled_from([None, {"loss_share_pct": 50, "gain_share_pct": 30}]),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 300), st.integers(1, 12), st.integers(0, 10**6), st.booleans(), st.booleans(),
       st.lists(st.integers(0, 300), max_size=8), SCENARIO)
def test_combined_parts_equal_the_whole_frame(n_people, n_practices, seed, with_scores, shuffle, cuts, raw):
    features, practices = make_features(n_people, n_practices, seed=seed, with_scores=with_scores)
    if shuffle:  # practices spread over every partition, not in runs
        rng = np.random.default_rng(seed)
        features["practice_code"] = pd.array(rng.permutation(features["practice_code"].to_numpy()), dtype="str")
    practices = practices.iloc[1:]  # one practice without an ICB: "UNKNOWN" either way
    scenario = parse_scenario(raw, source="random.yaml")
    whole = Population.from_features(features, SCHEME, scenario.settings, practices)
    parts = [population_part(part, SCHEME, scenario.settings, practices)
             for part in slices(features, [min(c, n_people) for c in cuts])]
    combined = Population.combine(parts, SCHEME)  # from the second part on, through temporary files
    assert_same_population(whole, combined)
    try:
        expected = evaluate(whole, scenario)
    except DataError as exc:
        with pytest.raises(DataError, match="predicted"):
            evaluate(combined, scenario)
        assert "predicted" in str(exc)
        return
    assert_same_result(expected, evaluate(combined, scenario))


def test_per_person_costs_wait_in_the_spill_folder_and_leave_nothing_there(tmp_path):
    features, practices = make_features(900, 7, seed=5)
    parts = [population_part(p, SCHEME, ["gp"], practices) for p in slices(features, [200, 500])]
    whole = Population.from_features(features, SCHEME, ["gp"], practices)
    assert_same_population(whole, Population.combine(parts, SCHEME, spill_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):  # the parts go to the folder
        PopulationBuilder(SCHEME, spill_dir=tmp_path / "absent")


def test_released_people_keep_what_was_computed_and_refuse_the_rest():
    features, practices = make_features(400, 5, seed=3)
    population = Population.from_features(features, SCHEME, ["gp"], practices)
    cap = population.cap_value(99)
    excess = population.excess("base", cap)
    population.release_people()
    assert population.person_base is None and population.person_cell is None
    assert population.cap_value(99) == cap and np.array_equal(population.excess("base", cap), excess)
    with pytest.raises(RuntimeError, match="released"):
        population.cap_value(95)
    with pytest.raises(RuntimeError, match="released"):
        population.excess("outcome", cap)


def test_combine_raises_the_whole_frame_errors_with_whole_counts():
    features, practices = make_features(400, 5, seed=3, with_scores=True)
    bad = features.copy()
    bad.loc[[10, 300], "cost_gp_0_12"] = np.nan
    bad.loc[[20, 350, 399], "cost_next_12m_gp"] = -1.0
    parts = [population_part(p, SCHEME, ["gp"], practices) for p in slices(bad, [100, 250])]
    with pytest.raises(DataError) as whole:
        Population.from_features(bad, SCHEME, ["gp"], practices)
    with pytest.raises(DataError) as streamed:
        Population.combine(parts, SCHEME)
    assert str(whole.value) == str(streamed.value) and "2 base-year cost value(s)" in str(whole.value)
    # outcome-year problems surface only when settlement asks, as before
    bad.loc[[10, 300], "cost_gp_0_12"] = 1.0
    pop = Population.combine([population_part(p, SCHEME, ["gp"]) for p in slices(bad, [100, 250])], SCHEME)
    assert pop.base.sum() > 0
    with pytest.raises(DataError, match="3 outcome-year cost value"):
        pop.outcome
    # predictions: any missing -> no need (fair shares refuse); else negatives counted over all parts
    need = features.copy()
    need.loc[[5, 390], PREDICTED_COST] = -3.0
    with pytest.raises(DataError, match="2 negative value"):
        Population.combine([population_part(p, SCHEME, ["gp"]) for p in slices(need, [100])], SCHEME)
    need.loc[7, PREDICTED_COST] = np.nan
    pop = Population.combine([population_part(p, SCHEME, ["gp"]) for p in slices(need, [100])], SCHEME)
    assert pop.need_days is None


# --- need groups written as partitions arrive ---------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, 9), st.lists(st.integers(0, 25), min_size=1, max_size=10))
def test_parquet_rows_writer_gives_write_parquet_bytes(tmp_path_factory, n, row_group_size, chunk_sizes):
    tmp = tmp_path_factory.mktemp("rows")
    rng = np.random.default_rng(n * 31 + row_group_size)
    table = pa.table({"person_id": pa.array(np.arange(n) * 7 + 1, pa.int64()),
                      "practice_code": pa.array([f"P{i:03d}" for i in rng.integers(0, 5, n)], pa.large_string()),
                      "need_group": pa.array(rng.choice(["well", "frail", "end_of_life"], n).tolist(),
                                             pa.large_string())})
    write_parquet(table, tmp / "whole.parquet", row_group_size=row_group_size)
    with ParquetRowsWriter(tmp / "rows.parquet", row_group_size=row_group_size) as writer:
        start, i = 0, 0
        while start < n:
            size = chunk_sizes[i % len(chunk_sizes)] if any(chunk_sizes) else n  # empty writes too
            writer.write(table.slice(start, size))
            start, i = start + size, i + 1
    assert (tmp / "rows.parquet").read_bytes() == (tmp / "whole.parquet").read_bytes()


def test_parquet_rows_writer_leaves_nothing_on_failure(tmp_path):
    table = pa.table({"x": pa.array([1, 2, 3], pa.int64())})
    with pytest.raises(RuntimeError), ParquetRowsWriter(tmp_path / "out.parquet", row_group_size=2) as writer:
        writer.write(table)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


# --- streamed runs --------------------------------------------------------------------------------

RUN_SCENARIOS = ["baseline", "cap_p99", "social_care_pooled", "fair_shares", "blend"]


def assert_same_run(a, b) -> None:
    for name in ("budgets", "tariffs", "settlement", "settlement_icb", "accuracy", "pace_path", "comparison"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert json.dumps(a.summary(), sort_keys=True) == json.dumps(b.summary(), sort_keys=True)


@pytest.mark.parametrize("people", [1234, 9000])
def test_streamed_run_equals_the_one_partition_run(tables, tmp_path, people):
    scenarios = [load_scenario(s) for s in RUN_SCENARIOS]
    run = RunContext(index_date=INDEX_DATE)
    whole = run_scenarios_streamed(LocalEngine(), [tables], scenarios, need_groups_dir=tmp_path / "whole" / "need_groups",
                                   run=run)
    write_run(whole, tmp_path / "whole")
    tasks = list(slice_tables(tables, people))
    seen = []
    streamed = run_scenarios_streamed(LocalEngine(), tasks, scenarios,
                                      need_groups_dir=tmp_path / "streamed" / "need_groups",
                                      on_result=lambda r: seen.append(r.n_people), run=run)
    assert len(seen) == len(tasks) > 1 and all(seen)
    assert_same_run(whole, streamed)
    write_run(streamed, tmp_path / "streamed")
    assert_same_folders(tmp_path / "whole", tmp_path / "streamed")


def test_a_failed_streamed_run_writes_no_need_groups(tables, tmp_path):
    activity = tables.activity.copy()
    activity.loc[activity.index[-5], "cost_gbp"] = -1.0  # found only in the last partition
    bad = dataclasses.replace(tables, activity=activity)
    with pytest.raises(DataError, match="cost_gbp"):
        run_scenarios_streamed(LocalEngine(), list(slice_tables(bad, 5000)), [load_scenario("baseline")],
                               need_groups_dir=tmp_path / "ng", run=RunContext(index_date=INDEX_DATE))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tables():
    return load_tables(DATA)[0]


def test_partitions_of_tables_equal_features_of_everyone(tables):
    """Populations built per partition of the tables (as the engine's tasks do: features, the
    tariff year and the by-day exposure of each) and combined equal the whole tables' one."""
    scenarios = [load_scenario(s) for s in ("baseline", "cap_p99", "social_care_pooled")]
    plan = plan_run(scenarios)
    whole, _ = stream_populations(LocalEngine(), [tables], plan, run=RunContext(index_date=INDEX_DATE))
    populations, summary = stream_populations(LocalEngine(), list(slice_tables(tables, 3000)), plan,
                                              run=RunContext(index_date=INDEX_DATE))
    assert summary is None
    for key in plan.keys:
        a, b = whole[key], populations[key]
        assert_same_population(a, b)
        assert a.forward and (a.unregistered_pence, a.read_pence) == (b.unregistered_pence, b.read_pence)
        for name in ("people", "days", "cost", "person_cost", "person_group"):
            assert np.array_equal(getattr(a.tariff, name), getattr(b.tariff, name)), name


def test_scores_are_read_by_person_range(tmp_path, tables):
    features = build_features(tables, INDEX_DATE)
    ids = features["person_id"].to_numpy()
    cost = pd.DataFrame({"person_id": ids, "expected_cost_gbp": np.round(np.linspace(10, 5000, len(ids)), 2),
                         "model": "cost"})
    write_parquet(cost, tmp_path / "cost.parquet", row_group_size=1000)
    cost.to_csv(tmp_path / "cost.csv", index=False)
    lo, hi = int(ids[100]), int(ids[2500])
    for name in ("cost.parquet", "cost.csv"):
        got = read_scores_range(tmp_path / name, lo, hi)
        assert got["person_id"].tolist() == ids[100:2500].tolist()
        assert scores_are_cost(tmp_path / name)
        assert len(read_scores_range(tmp_path / name, 0, 0)) == 0
        last = read_scores_range(tmp_path / name, lo, np.iinfo(np.int64).max)  # a last PersonRange: no upper bound
        assert last["person_id"].tolist() == ids[100:].tolist()
    risk = cost.drop(columns="expected_cost_gbp").assign(model="gbm")
    write_parquet(risk, tmp_path / "risk.parquet")
    assert not scores_are_cost(tmp_path / "risk.parquet")


def run_cli(args) -> None:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def reference_run(out: Path, scenarios, scores=(), on_invalid="reject", data=DATA) -> None:
    """The whole-table path (load everything, one partition of all the tables): what the command
    did before streaming."""
    tables, _ = load_tables(data, on_invalid=on_invalid,
                            rejects_dir=out / "rejects" if on_invalid == "quarantine" else None)
    run = run_scenarios_streamed(LocalEngine(), [tables], [load_scenario(s) for s in scenarios],
                                 need_groups_dir=out / "need_groups",
                                 run=RunContext(index_date=pd.Timestamp(INDEX_DATE).date(),
                                                scores=tuple((str(p), scores_are_cost(p)) for p in scores)))
    write_run(run, out, {"data": str(data), "index_date": INDEX_DATE, "index_date_source": "given",
                         "scores": [str(p) for p in scores],
                         "people": len(build_features(tables, INDEX_DATE, joining_days=365))})


@pytest.mark.integration
def test_cli_run_is_byte_identical_to_the_whole_table_run(tmp_path, tables):
    features = build_features(tables, INDEX_DATE, joining_days=365)
    cost = pd.DataFrame({"person_id": features["person_id"],
                         "expected_cost_gbp": np.round(features["cost_total_0_12"] * 1.1 + 50, 2), "model": "cost"})
    write_parquet(cost, tmp_path / "cost.parquet", row_group_size=2000)
    scenarios = ["baseline", "cap_p99", "fair_shares"]
    reference_run(tmp_path / "ref", scenarios, scores=[tmp_path / "cost.parquet"])
    for people in (4000, 100_000):
        out = tmp_path / f"p{people}"
        run_cli(["capitation", "run", *scenarios, "--data", str(DATA), "--out", str(out), "--index-date", INDEX_DATE,
                 "--scores", str(tmp_path / "cost.parquet"), "--partition-people", str(people)])
        assert_same_folders(tmp_path / "ref", out)
    assert json.loads((out / "summary.json").read_text())["inputs"]["people"] == len(features)


@pytest.mark.integration
@pytest.mark.parametrize("reasons_for", ["10", "0"])
def test_cli_run_with_a_model_scores_in_the_same_pass(tmp_path, reasons_for):
    """--model: the scores file `riskcap score` writes and, beside it, the budgets of a run without it."""
    run_cli(["train", "--data", str(DATA), "--model", "gbm", "--out", str(tmp_path / "gbm")])
    run_cli(["score", "--model", str(tmp_path / "gbm"), "--data", str(DATA), "--out", str(tmp_path / "scores.parquet"),
             "--index-date", INDEX_DATE, "--reasons-for", reasons_for])
    run_cli(["capitation", "run", "baseline", "--data", str(DATA), "--out", str(tmp_path / "budgets"),
             "--index-date", INDEX_DATE])
    fused = tmp_path / "fused"
    run_cli(["capitation", "run", "baseline", "--data", str(DATA), "--out", str(fused), "--index-date", INDEX_DATE,
             "--model", str(tmp_path / "gbm"), "--reasons-for", reasons_for, "--partition-people", "3000"])
    assert (fused / "scores.parquet").read_bytes() == (tmp_path / "scores.parquet").read_bytes()
    (fused / "scores.parquet").unlink()
    assert_same_folders(tmp_path / "budgets", fused)  # and no parts folder left behind
    assert "gbm" in (fused / "manifest.json").read_text()


@pytest.mark.integration
def test_cli_sweep_does_not_depend_on_partitions(tmp_path):
    outs = []
    for people in (3000, 100_000):
        outs.append(tmp_path / f"p{people}")
        run_cli(["capitation", "sweep", "baseline", "--data", str(DATA), "--out", str(outs[-1]), "--index-date",
                 INDEX_DATE, "--vary", "tariff.cap_percentile=null,95,99.5", "--partition-people", str(people)])
    assert_same_folders(*outs)


@pytest.mark.integration
def test_cli_quarantine_and_reject_match_the_whole_table_load(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    activity = pq.read_table(data / "activity.parquet").to_pandas()
    activity.loc[[5, 40_000], "cost_gbp"] = -12.5
    write_parquet(activity, data / "activity.parquet", row_group_size=20_000)
    result = CliRunner().invoke(main, ["capitation", "run", "baseline", "--data", str(data), "--out",
                                       str(tmp_path / "rejected"), "--partition-people", "4000"])
    assert result.exit_code != 0 and "cost_gbp" in result.output, result.output
    assert not (tmp_path / "rejected" / "need_groups").exists()
    reference_run(tmp_path / "ref", ["baseline", "cap_p99"], on_invalid="quarantine", data=data)
    run_cli(["capitation", "run", "baseline", "cap_p99", "--data", str(data), "--out", str(tmp_path / "q"),
             "--index-date", INDEX_DATE, "--on-invalid", "quarantine", "--partition-people", "4000"])
    assert_same_folders(tmp_path / "ref", tmp_path / "q")


def test_dask_engine_gives_the_local_answer(tables, tmp_path):
    pytest.importorskip("distributed")
    from riskcap.stream.engines import get_engine

    scenarios = [load_scenario(s) for s in ("baseline", "cap_p99")]
    tasks, run = list(slice_tables(tables, 6000)), RunContext(index_date=INDEX_DATE)
    local = run_scenarios_streamed(LocalEngine(), tasks, scenarios, need_groups_dir=tmp_path / "local", run=run)
    with get_engine("dask") as engine:
        remote = run_scenarios_streamed(engine, tasks, scenarios, need_groups_dir=tmp_path / "dask", run=run)
    assert_same_run(local, remote)
    name = "yoc_illustrative.parquet"
    assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes()
