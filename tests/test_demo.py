"""End to end: `riskcap demo` on a small ICB writes every output, verifies, and reruns byte-identically."""
import json

import numba
import pytest
from click.testing import CliRunner

from riskcap.cli import main
from riskcap.manifest import fingerprint, verify_run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    runner = CliRunner()
    first = runner.invoke(main, ["demo", "--out", str(root / "a"), "--people", "6000"])
    assert first.exit_code == 0, first.output
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # a different thread count must not change any output
    try:
        second = runner.invoke(main, ["demo", "--out", str(root / "b"), "--people", "6000"])
    finally:
        numba.set_num_threads(threads)
    assert second.exit_code == 0, second.output
    return root / "a", root / "b", first.output


def test_demo_writes_every_stage(demo_runs):
    run, _, output = demo_runs
    for path in ("data/persons.parquet", "models/gbm/metadata.json", "models/logistic/metadata.json",
                 "evaluation/gbm/metrics.json", "scores.parquet", "casefinding/summary.json",
                 "capitation/budgets.csv", "report.html", "workbook.xlsx", "manifest.json"):
        assert (run / path).exists(), path
    metrics = json.loads((run / "evaluation/gbm/metrics.json").read_text())
    assert metrics["temporal_validation"] is True
    assert 0.6 < metrics["auroc"] <= 1
    assert "AUROC" in output and "Report:" in output
    assert verify_run(run) == []


def test_demo_rerun_is_byte_identical(demo_runs):
    a, b, _ = demo_runs
    fa, fb = fingerprint(a), fingerprint(b)
    fa.pop("manifest.json"), fb.pop("manifest.json")  # holds start and end times
    assert fa.keys() == fb.keys()
    differ = sorted(k for k in fa if fa[k]["sha256"] != fb[k]["sha256"])
    assert differ == []


def test_demo_scores_are_what_riskcap_score_writes(demo_runs, tmp_path):
    """The demo's scores files are `riskcap score`'s on the demo's own data, models and date."""
    run = demo_runs[0]
    at = json.loads((run / "manifest.json").read_text())["index_dates"]["score"]["date"]
    for kind, name in (("gbm", "scores.parquet"), ("cost", "cost_scores.parquet")):
        result = CliRunner().invoke(main, ["score", "--model", str(run / "models" / kind), "--data", str(run / "data"),
                                           "--out", str(tmp_path / name), "--index-date", at])
        assert result.exit_code == 0, result.output
        assert (tmp_path / name).read_bytes() == (run / name).read_bytes(), name


def test_demo_capitation_is_the_command_on_the_demos_data_and_scores(demo_runs, tmp_path, monkeypatch):
    """The demo prices as `riskcap capitation run` does: every shipped scenario, coding intensity
    included, on its data folder with its scores files, gives the same files byte for byte."""
    from riskcap.demo import shipped_scenarios

    run, _, _ = demo_runs
    monkeypatch.chdir(run)  # the demo's summary names its inputs relative to the run folder
    out = tmp_path / "capitation"
    command = CliRunner().invoke(main, ["capitation", "run", *(str(p) for p in shipped_scenarios()), "--data", "data",
                                        "--scores", "scores.parquet", "--scores", "cost_scores.parquet",
                                        "--out", str(out)])
    assert command.exit_code == 0, command.output
    demo, ran = fingerprint(run / "capitation"), fingerprint(out)
    ran.pop("manifest.json")  # the command's own record (times, command line); the demo's is the run's
    assert "coding_intensity.csv" in demo
    assert demo.keys() == ran.keys()
    assert sorted(k for k in demo if demo[k]["sha256"] != ran[k]["sha256"]) == []
