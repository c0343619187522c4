"""``riskcap bench`` at a small size: the JSON has every key and the fast paths agree."""
from __future__ import annotations

import json

from click.testing import CliRunner

from riskcap.cli import main

STAGES = ["synthetic", "load", "features", "gbm_scoring", "gbm_reasons", "logistic_scoring", "capitation"]


def test_bench_small_population_writes_consistent_json(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--people", "3000", "--threads", "1", "--repeats", "1",
                                       "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "gbm_scoring" in result.output and "capitation" in result.output
    data = json.loads(out.read_text())
    assert data["people"] == 3000 and data["threads"] == 1
    assert [s["stage"] for s in data["stages"]] == STAGES
    assert set(data["people_per_second"]) == set(STAGES)
    assert all(v > 0 for v in data["people_per_second"].values())
    # the tree scorer reproduces LightGBM's probabilities, the logistic kernel scikit-learn's
    assert data["gbm_speedup_vs_lightgbm"] > 0
    assert 0 <= data["max_abs_diff"] < 1e-9
    # riskcap's TreeSHAP reproduces LightGBM's pred_contrib
    assert data["treeshap_speedup_vs_lightgbm"] > 0 and 0 <= data["treeshap_max_abs_diff"] < 1e-9
    assert 0 <= data["logistic_max_abs_diff"] < 1e-9
    # budgets add up to the envelope to the penny
    assert data["capitation_envelope_minus_budgets_pence"] == 0
    stages = {s["stage"]: s for s in data["stages"]}
    gbm = stages["gbm_scoring"]
    assert gbm["available"] is True and gbm["people"] == stages["features"]["rows_out"]
    assert gbm["speedup"] == round(gbm["baseline_seconds"] / gbm["seconds"], 2)  # same unrounded times
    assert data["peak_rss_mb"] >= max(s["peak_rss_mb"] for s in data["stages"]) > 0


def test_bench_help_has_example():
    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and "riskcap bench --people" in result.output
