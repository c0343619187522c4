"""The Dask engine's speed-up from 1 to 2 local workers on the streamed ``riskcap score``.

    pytest benchmarks/test_bench_dask.py --bench-sizes 500000 -s

A synthetic population of ``population_size`` people is scored at the evaluation index date
by :func:`riskcap.models.score.score_population` (what ``riskcap score`` runs) in person_id
partitions of an eighth of the population each (about 10: the persons table also holds people
who left before the index date): read and check each partition, build its features, score it with a gbm (trained,
untimed, on the committed 20,000-person sample), then the reasons pass for the top 20%.
Two local clusters (1 worker and 2 workers, one thread each) run it, interleaved, best of
``ROUNDS`` each (one below 100,000 people), after every worker has imported riskcap and parsed the
model; every run's scores file is checked byte-identical to the local
engine's. Cluster start-up (about 2 s) is not timed. The load average
before the clusters start is recorded: a second worker only helps when a core is free.
Smoke size in CI.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ROUNDS = 2
PARTITIONS = 8  #: the population over this many = people per partition
SAMPLE = Path(__file__).resolve().parents[1] / "synthetic_data"


def test_bench_dask_speedup(benchmark, population_size, tmp_path):
    pytest.importorskip("distributed")
    from click.testing import CliRunner

    from riskcap.cli import main
    from riskcap.stream.engines import LocalEngine
    from riskcap.stream.dask import DaskEngine
    from riskcap.models.persist import load_model_files, read_model_files
    from riskcap.models.score import score_population
    from riskcap.stream.plan import plan_partitions
    from riskcap.synthetic import EVAL_INDEX_DATE, SynthConfig, write_population

    data = tmp_path / "data"
    write_population(data, SynthConfig(people=population_size, seed=20240401))
    trained = CliRunner().invoke(main, ["train", "--data", str(SAMPLE), "--model", "gbm",
                                        "--out", str(tmp_path / "gbm")])
    assert trained.exit_code == 0, trained.output
    model = read_model_files(tmp_path / "gbm")
    people = -(-population_size // PARTITIONS)
    parts = plan_partitions(data, people)

    def score(engine):
        """The scores file's bytes and how many people it holds."""
        # quarantine, as the end-to-end benchmark: a rare generated row fails a check
        scored = score_population(model, data, EVAL_INDEX_DATE, tmp_path / "scores.parquet", parts=parts,
                                  engine=engine, people=people, on_invalid="quarantine")
        return (tmp_path / "scores.parquet").read_bytes(), scored.people

    expected = score(LocalEngine())
    load = os.getloadavg()[0]
    best = {}
    with DaskEngine(n_workers=1) as one, DaskEngine(n_workers=2) as two:
        engines = {1: one, 2: two}
        for engine in engines.values():
            engine.client.run(load_model_files, model)  # imports, kernels and the model on every worker
        for _ in range(ROUNDS if population_size >= 100_000 else 1):  # one round at the CI smoke size
            for workers, engine in engines.items():
                start = time.perf_counter()
                scores = score(engine)
                best[workers] = min(best.get(workers, float("inf")), time.perf_counter() - start)
                assert scores == expected
        speedup = best[1] / best[2]
        benchmark.group = f"dask n={population_size:_}"
        benchmark.extra_info.update(people=population_size, scored=expected[1], partitions=len(parts),
                                    one_worker_s=round(best[1], 2), two_workers_s=round(best[2], 2),
                                    speedup=round(speedup, 2), load_average=round(load, 2))
        print(f"\n[dask n={population_size:_}] streamed score of {expected[1]:,} people in {len(parts)} partitions: "
              f"1 worker {best[1]:.1f} s, 2 workers {best[2]:.1f} s: {speedup:.2f}x (load average {load:.1f})")
        benchmark.pedantic(score, args=(two,), rounds=1, iterations=1)
