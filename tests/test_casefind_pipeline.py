"""Case-finding on the real pipeline: synthetic population -> model -> scores -> lists.

Checks what the issue asks for against the person's own records: nobody opted out,
dead or deregistered is listed, the per-practice counts follow the rule, and every
reason the scorer wrote is a phrase of the person's data at the list date.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from riskcap.cli import main
from riskcap.data.load import load_tables
from riskcap.features import MODEL_FEATURES, build_features
from riskcap.models.explain import reasons_for
from riskcap.models.persist import read_model_files, save_model
from riskcap.models.score import score_population
from riskcap.models.train import train_model
from riskcap.pseudonymise import KEY_ENV, PseudonymKey, pseudonymise
from riskcap.synthetic import EVAL_INDEX_DATE, TRAIN_INDEX_DATE, SynthConfig, write_population

pytestmark = pytest.mark.integration
KEY_TEXT = "pipeline-test-key-0123456789"


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline")
    write_population(folder, SynthConfig(people=4_000, seed=11))
    tables, _ = load_tables(folder)
    model = train_model("logistic", build_features(tables, TRAIN_INDEX_DATE), TRAIN_INDEX_DATE)
    model_dir = tmp_path_factory.mktemp("model")
    save_model(model, model_dir)
    score_population(read_model_files(model_dir), folder, EVAL_INDEX_DATE, folder / "scores.parquet")
    scores = pd.read_parquet(folder / "scores.parquet")
    return folder, tables, scores


def test_lists_from_real_scores(scored, tmp_path, monkeypatch):
    folder, tables, scores = scored
    monkeypatch.setenv(KEY_ENV, KEY_TEXT)
    out = tmp_path / "lists"
    result = CliRunner().invoke(main, ["casefind", "--scores", str(folder / "scores.parquet"), "--data", str(folder),
                                       "--out", str(out), "--top", "5%", "--exclude-care-home",
                                       "--index-date", EVAL_INDEX_DATE.isoformat()])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["list_date"] == EVAL_INDEX_DATE.isoformat()
    assert summary["scored"] == len(scores) == summary["eligible"] + sum(summary["excluded"].values())
    assert summary["listed"] > 0

    persons = tables.persons
    key = PseudonymKey(KEY_TEXT.encode(), "environment")
    back = dict(zip(pseudonymise(key, persons["practice_code"].astype(str).tolist(), persons["person_id"]),
                    range(len(persons))))
    features = build_features(tables, EVAL_INDEX_DATE).set_index("person_id")
    reasons = reasons_for(MODEL_FEATURES)
    for code, p in summary["practices"].items():
        frame = pd.read_csv(out / "practices" / f"{code}.csv", dtype={"pseudo_id": str}, keep_default_na=False)
        assert len(frame) == p["listed"] == math.ceil(5 * p["eligible"] / 100)
        for row in frame.itertuples():
            person = persons.iloc[back[row.pseudo_id]]
            assert person["practice_code"] == code
            assert not person["opted_out"] and not person["care_home"]
            assert pd.isna(person["died_on"]) or person["died_on"] > pd.Timestamp(EVAL_INDEX_DATE)
            assert pd.isna(person["registered_to"]) or person["registered_to"] > pd.Timestamp(EVAL_INDEX_DATE)
            f = features.loc[person["person_id"]]
            assert row.age == f["age"] >= 18
            assert row.emergency_admissions_12m == f["emergency_admissions_0_12"]
            # each reason is one of the phrases the person's own features give
            phrases = set()
            for reason in reasons:
                value = np.array([f[reason.shown]], dtype=np.float64)
                shown = reason.bucket(value) if reason.bucket else value
                if reason.present(value)[0]:
                    phrases.add(reason.phrase(shown[0]))
            for text in (row.reason_1, row.reason_2, row.reason_3):
                assert text == "" or text in phrases, (text, row.pseudo_id)
    assert summary["reasons_check"]["not_matching"] == 0
    assert summary["reasons_check"]["checked"] > 0
    assert summary["list_date_source"] == "given"


def test_the_list_date_defaults_to_the_data_end(scored, tmp_path, monkeypatch):
    """Scores do not carry their index date: the list date is then the data's end, said and recorded."""
    folder, _, _ = scored
    monkeypatch.setenv(KEY_ENV, KEY_TEXT)
    out = tmp_path / "lists"
    result = CliRunner().invoke(main, ["casefind", "--scores", str(folder / "scores.parquet"), "--data", str(folder),
                                       "--out", str(out), "--top", "5%"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["list_date"] == "2025-04-01"  # the synthetic data's last activity is on 2025-03-31
    assert summary["list_date_source"] == "the data's end (the day after the last recorded activity, 2025-03-31)"
    assert "list date 2025-04-01: the data's end" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["index_dates"] == {"casefind": {"date": "2025-04-01", "source": summary["list_date_source"]}}


def test_listed_features_in_blocks_equal_one_go(tmp_path, monkeypatch):
    """casefind's engine path (blocks of listed people, concatenated) gives the one-go features."""
    import riskcap.casefinding.inputs as inputs
    from riskcap.stream.engines import LocalEngine
    from riskcap.data.read import read_table
    from riskcap.synthetic import SynthConfig, write_population

    write_population(tmp_path, SynthConfig(people=2_000, seed=5))
    persons, practices = read_table(tmp_path, "persons"), read_table(tmp_path, "practices")
    ids = persons["person_id"].to_numpy()[::7]
    whole = inputs.listed_features(tmp_path, persons, ids, "2024-04-01", practices=practices)
    monkeypatch.setattr(inputs, "LISTED_BLOCK", 37)
    mapped = inputs.listed_features_mapped(LocalEngine(), tmp_path, persons, ids, "2024-04-01", practices)
    assert len(whole) > 200 and (len(ids) + 36) // 37 > 5  # several blocks
    pd.testing.assert_frame_equal(mapped, whole)
