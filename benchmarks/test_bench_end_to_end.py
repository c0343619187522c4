"""End to end: generate -> load -> features -> gbm scoring -> grouping + budgets.

Times each stage once on a fresh synthetic population and records, per stage, seconds,
people per second and memory in ``benchmark.extra_info``:

* ``rss_before_mb`` / ``rss_after_mb``: the process's resident memory around the stage;
* ``peak_rss_mb``: the process's peak so far (``ru_maxrss``), so a stage's own peak is
  visible when it raises it.

People per second divide the population size (people registered on the first simulated
day) by each stage's time, so the stages' rates add up and extrapolate linearly; ``rows``
is what the stage processed (rows written or read, persons, people scored).

    pytest benchmarks/test_bench_end_to_end.py --bench-sizes 1000000 -s

Features are the commands' path (``features_at``: each person_id range read, checked and
built), so they read the data again; the whole-folder load gives the budgets their practices.
The gbm is riskcap's classifier (``train_model("gbm")``) trained, untimed, on a seeded
sample of 50,000 people of the same index date; scoring is its ``predict`` on everyone
(feature matrix, tree scorer, recalibration: what ``riskcap score`` computes before the
reasons); capitation is the command's run (``run_scenarios_streamed``) on the ``baseline``
scenario with the tables in memory as one partition (features at the index date and a year
before, by-day tariffs, budgets, settlement). Checks
alongside: budgets add up to the envelope to the penny, and the tree scorer's log-odds on a
sample equal LightGBM's.
"""
from __future__ import annotations

import os
import resource
import time

import numpy as np

from riskcap.bench import TRAIN_PEOPLE, peak_rss_mb

SEED = 20240401


def rss_mb() -> float:
    """Current resident memory of this process in MB (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_bench_end_to_end(benchmark, population_size, tmp_path):
    from riskcap.capitation.run import run_scenarios_streamed
    from riskcap.capitation.scenario import load_scenario
    from riskcap.features import features_at
    from riskcap.models.base import feature_matrix
    from riskcap.models.train import train_model
    from riskcap.synthetic import EVAL_INDEX_DATE, TRAIN_INDEX_DATE, SynthConfig, write_population
    from riskcap.data.load import load_tables
    from riskcap.stream.context import RunContext
    from riskcap.stream.engines import LocalEngine

    stages: dict[str, dict] = {}
    state: dict = {}

    def timed(name, fn, rows):
        """Run one stage; people/s counts the population size (people registered on day one),
        the same for every stage so rates extrapolate together; ``rows`` is what it processed."""
        before = rss_mb()
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        stages[name] = {"seconds": round(seconds, 3), "rows": int(rows),
                        "people_per_second": round(population_size / seconds) if seconds > 0 else None,
                        "rss_before_mb": round(before), "rss_after_mb": round(rss_mb()),
                        "peak_rss_mb": round(peak_rss_mb())}
        return result

    def pipeline():
        data = tmp_path / "data"
        written = timed("generate", lambda: write_population(data, SynthConfig(people=population_size, seed=SEED)),
                        population_size)
        rejects = tmp_path / "rejects"
        tables, loaded = timed("load", lambda: load_tables(data, on_invalid="quarantine", rejects_dir=rejects),
                               sum(written.rows.values()))
        state["quarantined"] = int(sum(loaded.rows_quarantined.values()))
        features = timed("features", lambda: features_at(data, EVAL_INDEX_DATE, on_invalid="quarantine")[0],
                         len(tables.persons))
        sample = features.iloc[np.sort(np.random.default_rng(SEED).choice(
            len(features), min(TRAIN_PEOPLE, len(features)), replace=False))].reset_index(drop=True)
        model = train_model("gbm", sample, TRAIN_INDEX_DATE, seed=SEED)  # not timed: not part of scoring
        model.predict(features.iloc[:1000])  # load the compiled kernel
        # what `riskcap score` computes: the feature matrix, the tree scorer, the recalibration
        probability = timed("gbm_scoring", lambda: model.predict(features), len(features))
        scenario = load_scenario("baseline")
        run = timed("capitation", lambda: run_scenarios_streamed(LocalEngine(), [tables], [scenario],
                                                                 run=RunContext(index_date=EVAL_INDEX_DATE)),
                    len(features))
        state.update(features=features, model=model, probability=probability, run=run)

    benchmark.pedantic(pipeline, rounds=1, iterations=1)

    run, features, probability, model = state["run"], state["features"], state["probability"], state["model"]
    result = run.results[0]
    assert int(run.budgets["budget_pence"].sum()) == result.summary()["envelope_pence"]
    rows = np.sort(np.random.default_rng(0).choice(len(features), min(5_000, len(features)), replace=False))
    sample = features.iloc[rows]
    lightgbm_raw = model.booster.predict(feature_matrix(sample, model.features), raw_score=True)
    assert np.max(np.abs(model.raw(sample) - lightgbm_raw)) < 1e-9
    assert len(probability) == len(features) and 0 < probability.min() and probability.max() < 1

    total = sum(s["seconds"] for s in stages.values())
    benchmark.extra_info.update({"people": population_size, "people_scored": int(len(features)),
                                 "rows_quarantined": state["quarantined"], "total_seconds": round(total, 2),
                                 "load_average": os.getloadavg()[0],
                                 "stages": stages})
    print(f"\nend to end, {population_size:,} people ({len(features):,} registered at the index date), "
          f"{total:.1f} s in all:")
    for name, s in stages.items():
        print(f"  {name:17s} {s['seconds']:8.2f} s {s['people_per_second']:>12,} people/s   "
              f"RSS {s['rss_before_mb']:>6,} -> {s['rss_after_mb']:>6,} MB, peak so far {s['peak_rss_mb']:>6,} MB")
