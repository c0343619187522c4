"""`riskcap train / evaluate / score` end to end on a small synthetic population."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from riskcap.cli import main
from riskcap.models.score import COST_SCORE_COLUMNS, SCORE_COLUMNS
from riskcap.synthetic import SynthConfig, write_population

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    write_population(out, SynthConfig(people=5000, seed=5))
    return out


def run(args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for kind in ("logistic", "gbm", "cost"):
        result = run(["train", "--data", data_dir, "--model", kind, "--out", root / kind])
        assert result.exit_code == 0, result.output
    return root


def test_train_writes_a_model_directory(trained):
    meta = json.loads((trained / "logistic" / "metadata.json").read_text())
    assert meta["kind"] == "logistic" and meta["training_index_date"] == "2023-04-01"  # the default
    assert len(meta["data"]["fingerprint"]) == 64
    assert {p.name for p in (trained / "logistic").iterdir()} >= {"metadata.json", "model.json", "coefficients.csv"}
    assert {p.name for p in (trained / "gbm").iterdir()} >= {"metadata.json", "model.txt", "calibration.json"}


def test_evaluate_writes_metrics_with_oracle(trained, data_dir, tmp_path):
    result = run(["evaluate", "--model", trained / "gbm", "--data", data_dir, "--out", tmp_path])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("auroc", "auprc", "brier", "oracle_auroc", "oracle_gap", "ppv_at", "sensitivity_at",
                "calibration_by_decile", "calibration_slope", "calibration_intercept", "subgroups"):
        assert key in metrics, key
    assert metrics["evaluation_index_date"] == "2024-04-01" and metrics["temporal_validation"]
    assert set(metrics["ppv_at"]) == {"0.005", "0.01", "0.02", "0.05", "0.1"}
    assert 0.5 < metrics["auroc"] <= 1 and 0.5 < metrics["oracle_auroc"] <= 1
    assert "AUROC" in result.output and "oracle AUROC" in result.output and "Subgroups" in result.output


def test_evaluate_cost_model(trained, data_dir, tmp_path):
    result = run(["evaluate", "--model", trained / "cost", "--data", data_dir, "--out", tmp_path])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["model"] == "cost" and "r2" in metrics and "calibration_by_decile" in metrics


def test_score_writes_the_scores_file(trained, data_dir, tmp_path):
    out = tmp_path / "scores.parquet"
    result = run(["score", "--model", trained / "logistic", "--data", data_dir, "--out", out,
                  "--partition-people", 1500])
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(out)
    assert list(scores.columns) == SCORE_COLUMNS
    assert scores["person_id"].is_unique and scores["score"].between(0, 100).all()
    again = tmp_path / "again.parquet"
    assert run(["score", "--model", trained / "logistic", "--data", data_dir, "--out", again]).exit_code == 0
    assert again.read_bytes() == out.read_bytes()  # partition size does not change a byte
    cost = tmp_path / "cost.parquet"
    assert run(["score", "--model", trained / "cost", "--data", data_dir, "--out", cost]).exit_code == 0
    cost_scores = pd.read_parquet(cost)
    assert list(cost_scores.columns) == COST_SCORE_COLUMNS and (cost_scores["reason_1"] == "").all()
    gbm = tmp_path / "gbm.parquet"
    assert run(["score", "--model", trained / "gbm", "--data", data_dir, "--out", gbm]).exit_code == 0
    gbm_scores = pd.read_parquet(gbm)
    explained = gbm_scores["reason_1"] != ""
    assert not explained[gbm_scores["tier"] == "low"].any()  # default: the top 20% only
    assert explained[gbm_scores["tier"] != "low"].mean() > 0.9


def test_bad_model_directory_is_a_clear_error(data_dir, tmp_path):
    result = CliRunner().invoke(main, ["score", "--model", str(tmp_path), "--data", str(data_dir),
                                       "--out", str(tmp_path / "s.parquet")])
    assert result.exit_code == 2
    assert "not a riskcap model directory" in result.output
