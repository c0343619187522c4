"""Unit tests behind the hostile-input corpus (issue 23): the pieces each fix is made of."""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcap.cli import main
from riskcap.config import load_yaml, shipped_config
from riskcap.errors import ConfigError, DataError, UnusablePath
from riskcap.manifest import MANIFEST, RunManifest, verify_run

# (what this issue added is imported inside each test, so each test fails on its own without it)

# --- item 1: loading a model reads, and never writes -----------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from riskcap.features import build_features
    from riskcap.models.persist import save_model
    from riskcap.models.train import train_model
    from riskcap.synthetic import TRAIN_INDEX_DATE, SynthConfig, write_population
    from riskcap.data.load import load_tables

    data = tmp_path_factory.mktemp("data")
    write_population(data, SynthConfig(people=2000, seed=2))
    frame = build_features(load_tables(data)[0], TRAIN_INDEX_DATE)
    root = tmp_path_factory.mktemp("models")
    for kind, seed in (("logistic", 0), ("gbm", 1), ("cost", 2)):
        save_model(train_model(kind, frame, TRAIN_INDEX_DATE, seed=seed), root / kind)
    return root


@pytest.mark.parametrize("kind", ["logistic", "gbm", "cost"])
def test_loading_a_model_writes_no_file(models, kind, monkeypatch, tmp_path):
    """No temporary folder, no file: the model is parsed from the bytes of its files."""
    import tempfile

    from riskcap.models import persist

    def refuse(*args, **kwargs):
        raise AssertionError("loading a model must not create files")

    for name in ("TemporaryDirectory", "mkdtemp", "mkstemp", "NamedTemporaryFile", "TemporaryFile"):
        monkeypatch.setattr(tempfile, name, refuse)
    persist._LOADED.clear()
    files = persist.read_model_files(models / kind)
    persist._LOADED.clear()
    model = persist.load_model_files(files, models / kind)
    assert model.kind == kind and persist.load_model(models / kind).features == model.features


def test_a_model_folder_lists_only_its_own_files(models, tmp_path):
    from riskcap.models.persist import MODEL_FILES, load_model

    copy = tmp_path / "gbm"
    shutil.copytree(models / "gbm", copy)
    meta = json.loads((copy / "metadata.json").read_text())
    assert set(meta["files"]) == set(MODEL_FILES["gbm"])
    del meta["files"]["calibration.json"]  # the loader must not read a file the metadata does not vouch for
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="does not list 'calibration.json', which a gbm model needs"):
        load_model(copy)
    (models / "gbm" / "notes.txt").write_text("extra files in the folder are not read, and harmless\n")
    try:
        assert load_model(models / "gbm").kind == "gbm"
    finally:
        (models / "gbm" / "notes.txt").unlink()


def test_a_model_file_larger_than_the_limit_is_refused_unread(models, tmp_path, monkeypatch):
    from riskcap.models import persist

    copy = tmp_path / "gbm"
    shutil.copytree(models / "gbm", copy)
    monkeypatch.setattr(persist, "MAX_FILE_BYTES", 20_000)  # metadata.json fits; model.txt does not
    with pytest.raises(DataError, match="model.txt: cannot read the model file: .* bytes, larger than 20,000"):
        persist.load_model(copy)


# --- item 2 / 7: run folders ----------------------------------------------------------------------

def test_a_failed_run_leaves_no_folder_and_an_earlier_run_intact(tmp_path):
    """A run that fails before writing anything undoes its claim: no new folder, and an earlier
    run's manifest comes back byte for byte (so it still verifies)."""
    bad = tmp_path / "bad-data"
    bad.mkdir()
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["capitation", "run", "baseline", "--data", str(bad), "--out", str(out)])
    assert result.exit_code == 2 and not out.exists()

    earlier = RunManifest(tmp_path / "earlier")
    (tmp_path / "earlier" / "budgets.csv").write_text("x\n")
    earlier.write()
    before = (tmp_path / "earlier" / MANIFEST).read_bytes()
    result = CliRunner().invoke(main, ["capitation", "run", "baseline", "--data", str(bad),
                                       "--out", str(tmp_path / "earlier")])
    assert result.exit_code == 2
    assert (tmp_path / "earlier" / MANIFEST).read_bytes() == before and verify_run(tmp_path / "earlier") == []


def test_a_killed_run_is_recognised_by_its_rerun(tmp_path):
    """Killed mid-run (no cleanup ran): the folder says the run did not finish; a rerun may use it."""
    run = RunManifest(tmp_path / "run")
    (tmp_path / "run" / "budgets.csv").write_text("half\n")
    (tmp_path / "run" / ".budgets.csv.abcd1234.tmp").write_text("half\n")
    del run  # as if killed: no write(), no abandon()
    assert "did not finish" in verify_run(tmp_path / "run")[0]
    rerun = RunManifest(tmp_path / "run")
    (tmp_path / "run" / "budgets.csv").write_text("whole\n")
    rerun.write()
    assert verify_run(tmp_path / "run") == []
    assert set(json.loads((tmp_path / "run" / MANIFEST).read_text())["outputs"]) == {"budgets.csv"}


def test_stale_outputs_are_removed_only_when_provably_the_earlier_runs(tmp_path):
    first = RunManifest(tmp_path / "run")
    for name in ("a.csv", "b.csv", "c.csv"):
        (tmp_path / "run" / name).write_text(name)
    first.write()
    (tmp_path / "run" / "c.csv").write_text("changed by someone since")  # no longer what the run wrote
    second = RunManifest(tmp_path / "run")
    (tmp_path / "run" / "a.csv").write_text("a again")
    second.write()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["a.csv", "c.csv", MANIFEST]


def test_an_earlier_output_used_as_an_input_is_kept(tmp_path):
    first = RunManifest(tmp_path / "run")
    (tmp_path / "run" / "scores.parquet").write_text("scores")
    (tmp_path / "run" / "budgets.csv").write_text("old")
    first.write()
    second = RunManifest(tmp_path / "run")
    second.add_input("scores", tmp_path / "run" / "scores.parquet")
    (tmp_path / "run" / "budgets.csv").write_text("new")
    second.write()
    assert (tmp_path / "run" / "scores.parquet").exists()
    assert verify_run(tmp_path / "run") == ["scores.parquet: not produced by the run (not in the manifest)"]


def test_run_folder_of_another_kind_of_file_is_refused(tmp_path):
    (tmp_path / "run").write_text("a file")
    with pytest.raises(UnusablePath, match="is a file, not a folder"):
        RunManifest(tmp_path / "run")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / MANIFEST).write_text('{"not": "riskcap"}')
    with pytest.raises(UnusablePath, match="its manifest.json is not riskcap's"):
        RunManifest(tmp_path / "folder")


def test_claim_file_replaces_only_riskcaps_own(tmp_path):
    from riskcap.manifest import claim_file, json_with_keys

    ours = json_with_keys("status")
    assert claim_file(tmp_path / "new.json", ours, "summary") == tmp_path / "new.json"
    (tmp_path / "mine.json").write_text('{"status": "clean"}')
    assert claim_file(tmp_path / "mine.json", ours, "summary")
    (tmp_path / "theirs.json").write_text("not json")
    with pytest.raises(UnusablePath, match="is not a riskcap summary"):
        claim_file(tmp_path / "theirs.json", ours, "summary")
    (tmp_path / "link.json").symlink_to(tmp_path / "mine.json")
    with pytest.raises(UnusablePath, match="not a regular file"):
        claim_file(tmp_path / "link.json", ours, "summary")


def test_manifest_lists_regular_files_only(tmp_path):
    run = RunManifest(tmp_path / "run")
    (tmp_path / "run" / "budgets.csv").write_text("x\n")
    (tmp_path / "run" / "zero").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "run" / "pipe")
    (tmp_path / "run" / "sub").mkdir()
    (tmp_path / "run" / "sub" / "linked").symlink_to(tmp_path / "run" / "budgets.csv")
    run.write()
    assert set(json.loads((tmp_path / "run" / MANIFEST).read_text())["outputs"]) == {"budgets.csv"}


def test_score_keeps_its_partitions_in_an_unnamed_file(models, tmp_path):
    """While scoring, nothing named holds person-level rows (a killed run leaves no .parts/)."""
    from riskcap.models.persist import read_model_files
    from riskcap.models.score import ScoresWriter

    frame = pd.DataFrame({"person_id": np.arange(5), "probability": np.linspace(0, 1, 5)})
    with pytest.raises(RuntimeError, match="stopped"):
        with ScoresWriter(tmp_path / "scores.parquet", read_model_files(models / "gbm")) as writer:
            writer.add(frame)
            writer.add(frame.assign(person_id=frame["person_id"] + 5))
            entries = list(tmp_path.iterdir())  # only the (still empty) output being written
            assert len(entries) == 1 and entries[0].suffix == ".tmp" and entries[0].stat().st_size == 0, entries
            pd.testing.assert_frame_equal(writer._read(1), frame.assign(person_id=frame["person_id"] + 5))
            assert writer._read(0, ["probability"])["probability"].tolist() == frame["probability"].tolist()
            raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == []


# --- item 3: safe names ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["baseline", "cap_p99", "uplift_2_9_eff_1_1", "A81001", "v1.2", "a" * 64])
def test_safe_names(name):
    from riskcap.names import is_safe_name

    assert is_safe_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "/abs", "a/b", "a\\b", "a\0b", "a b", "CON", "nul",
                                  "com1.txt", "LPT9", "a" * 65, "café", "name.", "-x", None, 3])
def test_unsafe_names(name):
    from riskcap.names import is_safe_name

    assert not is_safe_name(name)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=80))
def test_a_safe_name_is_one_path_component_inside_its_folder(name):
    from riskcap.names import is_safe_name

    if is_safe_name(name):
        folder = Path("/run/out")
        joined = folder / name
        assert joined.parent == folder and os.path.normpath(joined) == str(joined) and len(name) <= 64


# --- item 6: money ----------------------------------------------------------------------------------

def test_check_pence_refuses_before_int64_could_wrap():
    from riskcap.capitation.money import MAX_PENCE, PenceOverflow, check_pence

    check_pence(np.array([MAX_PENCE // 2, MAX_PENCE // 2 - 1]), "x")
    with pytest.raises(PenceOverflow, match="x reach"):
        check_pence(np.array([MAX_PENCE // 2, MAX_PENCE // 2]), "x")
    with pytest.raises(PenceOverflow):
        check_pence(np.array([np.nan]), "x")
    assert isinstance(PenceOverflow("x"), DataError) and isinstance(PenceOverflow("x"), OverflowError)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**62), min_size=1, max_size=6), st.integers(0, 2**40))
def test_checked_product_is_exact_or_refused(values, factor):
    from riskcap.capitation.money import MAX_PRODUCT, PenceOverflow, checked_product

    a = np.array(values, dtype=np.int64)
    exact = [v * factor for v in values]
    try:
        out = checked_product(a, factor, "p")
    except PenceOverflow:
        assert sum(exact) >= MAX_PRODUCT * (1 - 1e-9)
    else:
        assert out.tolist() == exact


def test_allocation_overflow_is_a_clear_data_error():
    from riskcap.capitation.money import PenceOverflow, allocate_largest_remainder

    with pytest.raises(PenceOverflow):
        allocate_largest_remainder(10, np.array([2**61, 2**61], dtype=np.int64))


def test_population_refuses_costs_that_would_wrap():
    from riskcap.capitation.money import PenceOverflow
    from riskcap.capitation.population import Population
    from riskcap.capitation.scheme import load_scheme

    scheme = load_scheme("ltc_count_age")
    n = 2000
    features = pd.DataFrame({"person_id": np.arange(n), "practice_code": "A1", "age": 50, "ltc_count": 1,
                             "list_days_next_12": 365, "cost_gp_0_12": 1e13, "cost_next_12m_gp": 0.0})
    with pytest.raises(PenceOverflow, match="base-year costs in cost_gp_0_12 reach"):
        Population.from_features(features, scheme, ("gp",))
    small = features.assign(cost_gp_0_12=1e9)
    assert int(Population.from_features(small, scheme, ("gp",)).base.sum()) == n * 10**11
    huge = features.assign(cost_gp_0_12=1e300)
    with pytest.raises(DataError, match="missing, negative or too large"):
        Population.from_features(huge, scheme, ("gp",))


def test_the_cost_maximum_is_configurable(monkeypatch, tmp_path):
    from riskcap.data.load import validate_data

    data = Path(__file__).resolve().parent / "malformed" / "valid"
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    activity = pd.read_csv(copy / "activity.csv")
    activity.loc[0, "cost_gbp"] = 15_000_000
    activity.to_csv(copy / "activity.csv", index=False)
    _, summary = validate_data(copy, as_of="2025-03-31")
    assert [p.rule for p in summary.problems] == ["implausible"]
    monkeypatch.setenv("RISKCAP_MAX_COST_GBP", "20000000")
    tables, summary = validate_data(copy, as_of="2025-03-31")
    assert tables is not None and not summary.problems


def test_sweep_bounds_are_documented_and_checked():
    from riskcap.capitation.sweep import MAX_COMBINATIONS, check_grid, parse_axes

    assert len(parse_axes(["tariff.cost_uplift_pct=0:1:100", "tariff.efficiency_pct=0:1:1000"])) == 2
    with pytest.raises(ConfigError, match="combinations"):
        check_grid([("a", [0] * 1000), ("b", [0] * 1000)])
    assert str(MAX_COMBINATIONS) in Path(__file__).resolve().parents[1].joinpath("docs", "capitation.md").read_text() \
        .replace(",", "")


# --- item 8: YAML -----------------------------------------------------------------------------------

def test_every_shipped_config_loads_with_the_bounded_loader():
    root = shipped_config("tiers.yaml").parent
    paths = sorted(root.rglob("*.yaml"))
    assert len(paths) >= 12
    for path in paths:
        assert isinstance(load_yaml(path), dict), path


@pytest.mark.parametrize("text,message", [
    ("a: 1\na: 2\n", "duplicate key 'a' at line 2 (first at line 1)"),
    ("a: {b: 1, b: 2}\n", "duplicate key 'b'"),
    ("a: &x 1\nb: *x\n", "an anchor (&x)"),
    ("b: *x\n", "an alias (*x)"),
    ("a: " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 levels"),
    ("a: 1" + "0" * 40 + "\n", "has 41 digits"),
    ("? [1, 2]\n: x\n", "is not text"),
    ("a: !!python/object:os.system 1\n", "not valid YAML"),
])
def test_bounded_yaml_loader_refuses(text, message):
    from riskcap.config import parse_yaml

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        parse_yaml(text, "test.yaml")


def test_bounded_yaml_loader_reads_ordinary_yaml():
    from riskcap.config import parse_yaml

    assert parse_yaml("a: [1, 2.5, null, true, '2024-01-01']\nb: {c: -3}\n") == \
        {"a": [1, 2.5, None, True, "2024-01-01"], "b": {"c": -3}}


def test_a_config_larger_than_the_limit_is_refused(tmp_path, monkeypatch):
    from riskcap import config

    monkeypatch.setattr(config, "MAX_CONFIG_BYTES", 100)
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "# padding\n" * 50)
    with pytest.raises(ConfigError, match="bytes, larger than 100"):
        load_yaml(path)


# --- item 8: report labels ----------------------------------------------------------------------------

@pytest.mark.parametrize("label", ["$\\frac{$", "$x^{$", "$$", "$\\nosuchcommand$", "a\0b", "=1+1"])
def test_report_plots_draw_any_label_as_text(label):
    from riskcap.report import plots

    shares = np.array([[0.1, 0.9], [0.2, 0.8]])
    for png in (plots.risk_pyramid([label, "B"], [label, "low"], shares),
                plots.budgets_per_head([label, "b"], [np.array([1.0, 2.0]), np.array([3.0, 4.0])]),
                plots.need_group_mix([label, "b"], np.array([0.5, 0.5]), np.array([0.4, 0.6]), np.array([10.0, 20.0])),
                plots.distance_from_target([label, "B"], np.array([0.1, -0.2])),
                plots.corridor_exposure([label], np.array([1.0]), np.array([-1.0])),
                plots.predictive_ratios([label], np.array([1.0]))):
        assert png.startswith(b"\x89PNG")


def test_workbook_cells_drop_characters_xml_cannot_hold(tmp_path):
    from openpyxl import Workbook

    from riskcap.report.xlsx import Column, sheet_table

    wb = Workbook()
    frame = pd.DataFrame({"name": ["a\0b\x07c", "ok"]})
    sheet_table(wb.active, frame, [Column("name", "name")])
    wb.save(tmp_path / "w.xlsx")
    assert wb.active.cell(row=2, column=1).value == "abc"
    assert stat.S_ISREG((tmp_path / "w.xlsx").stat().st_mode)
