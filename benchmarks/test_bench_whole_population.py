"""Whole population through the CLI, as an analyst runs it: generate -> score (gbm) -> budgets.

Each stage is its own ``riskcap`` process under ``/usr/bin/time``, so every stage's time
and **peak memory** (maximum resident set size) are its own::

    pytest benchmarks/test_bench_whole_population.py --bench-sizes 1000000,10000000 -s

Stages: ``riskcap synth`` (the population), ``riskcap score`` with a gbm (features, the
numba tree scorer, ranks, tiers and TreeSHAP reasons for the top 20%),
``riskcap capitation run baseline`` (features, need groups, tariffs, budgets, settlement),
and the two in one pass: ``riskcap capitation run baseline --model gbm`` (each partition read,
checked and featured once for both). The gbm is trained (untimed) with ``riskcap train`` on a
separate population of ``TRAIN_PEOPLE`` from the same generator, as an analyst scores a new
year with last year's model. Checks alongside: one score per person registered at the index
date, budgets that add up to the envelope to the penny, and the one-pass run's scores and
budgets byte-identical to the separate stages'.

Extrapolation to England (``ENGLAND_PEOPLE``): each stage's people per second is taken as
constant (every stage streams fixed-size partitions, so time grows linearly; peak memory
grows only by the population-wide arrays, 8 bytes a person for score, 20 for budgets:
compare the peaks across sizes). "Features to budgets" is the one-pass stage.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

INDEX_DATE = "2024-04-01"  # capitation's and scoring's index date (one year before the synthetic data's end)

SEED = 20240401
TRAIN_PEOPLE = 100_000
#: One index date for score and both capitation runs (their defaults differ: score at the data's end,
#: capitation a year before), so the one-pass scores can equal the scores file.
INDEX_DATE = "2024-04-01"
ENGLAND_PEOPLE = 62_000_000
TIME = shutil.which("time") or "/usr/bin/time"

pytestmark = pytest.mark.skipif(not Path(TIME).exists(), reason="needs GNU time for per-stage peak memory")


def run_stage(args: list[str], log: Path) -> dict:
    """Run ``riskcap ARGS`` under GNU time; return its seconds and peak RSS (MB)."""
    cmd = [TIME, "-f", "%e %M", "-o", str(log), sys.executable, "-m", "riskcap", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    if done.returncode != 0:
        raise AssertionError(f"riskcap {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    seconds, kb = log.read_text().split()[-2:]
    return {"seconds": float(seconds), "peak_rss_mb": round(int(kb) / 1024)}


def test_bench_whole_population(benchmark, population_size, tmp_path):
    data, train_data, model = tmp_path / "data", tmp_path / "train", tmp_path / "gbm"
    scores, budgets, one_pass = tmp_path / "scores.parquet", tmp_path / "budgets", tmp_path / "one_pass"
    train_people = min(TRAIN_PEOPLE, population_size)
    run_stage(["synth", "--out", str(train_data), "--people", str(train_people), "--seed", str(SEED + 1)],
              tmp_path / "t0")
    run_stage(["train", "--data", str(train_data), "--model", "gbm", "--out", str(model)], tmp_path / "t1")
    stages: dict[str, dict] = {}

    def pipeline():
        stages["generate"] = run_stage(["synth", "--out", str(data), "--people", str(population_size),
                                        "--seed", str(SEED)], tmp_path / "t2")
        stages["score_gbm"] = run_stage(["score", "--model", str(model), "--data", str(data),
                                         "--out", str(scores), "--index-date", INDEX_DATE], tmp_path / "t3")
        stages["budgets"] = run_stage(["capitation", "run", "baseline", "--data", str(data),
                                       "--out", str(budgets), "--index-date", INDEX_DATE], tmp_path / "t4")
        stages["one_pass"] = run_stage(["capitation", "run", "baseline", "--data", str(data), "--model", str(model),
                                        "--out", str(one_pass), "--index-date", INDEX_DATE], tmp_path / "t5")

    benchmark.pedantic(pipeline, rounds=1, iterations=1)

    scored = pq.read_metadata(scores).num_rows
    summary = json.loads((budgets / "summary.json").read_text())
    from riskcap.features import eligible_mask  # noqa: PLC0415
    from riskcap.data.read import read_optional_table, read_table  # noqa: PLC0415

    persons = read_table(data, "persons", columns=["person_id", "birth_date", "died_on", "practice_code",
                                                   "registered_from", "registered_to"])
    people = int(eligible_mask(persons, INDEX_DATE, read_optional_table(data, "registrations")).sum())
    assert scored == people, f"{scored:,} scores for {people:,} people registered at the index date"
    assert summary["inputs"]["people"] >= people  # budgets also cover those joining a list in the outcome year
    budget_total = int(pq.read_table(budgets / "budgets.parquet", columns=["budget_pence"])["budget_pence"]
                       .to_numpy().sum())
    assert budget_total == summary["scenarios"][0]["envelope_pence"]
    assert (one_pass / "scores.parquet").read_bytes() == scores.read_bytes()
    for name in ("budgets.parquet", "settlement.parquet", "tariffs.parquet", "summary.json"):
        assert (one_pass / name).read_bytes() == (budgets / name).read_bytes(), name

    for s in stages.values():
        s["people_per_second"] = round(population_size / s["seconds"]) if s["seconds"] else None
    separate = stages["score_gbm"]["seconds"] + stages["budgets"]["seconds"]
    features_to_budgets = stages["one_pass"]["seconds"]
    england_minutes = features_to_budgets * ENGLAND_PEOPLE / population_size / 60
    benchmark.extra_info.update({"people": population_size, "people_scored": scored, "stages": stages,
                                 "features_to_budgets_seconds": round(features_to_budgets, 1),
                                 "score_then_budgets_seconds": round(separate, 1),
                                 "england_minutes_extrapolated": round(england_minutes, 1),
                                 "load_average": os.getloadavg()[0]})
    print(f"\nwhole population, {population_size:,} people ({scored:,} registered at the index date):")
    for name, s in stages.items():
        print(f"  {name:10s} {s['seconds']:8.1f} s {s['people_per_second']:>10,} people/s   peak {s['peak_rss_mb']:>6,} MB")
    print(f"  score then budgets: {separate:.1f} s; in one pass: {features_to_budgets:.1f} s; at that rate "
          f"England ({ENGLAND_PEOPLE:,}) takes {england_minutes:.1f} min")
