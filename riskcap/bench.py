"""``riskcap bench``: how fast riskcap runs on this machine, measured in one run.

On a synthetic population of ``people`` generated in a temporary folder, times each stage
and the straightforward baseline it replaces, on the same rows and threads, and checks they
agree:

* ``synthetic`` and ``load``: generating the population and loading it (no baseline);
* ``features``: :func:`riskcap.features.features_at`, the commands' path: each person_id range
  read, checked and built (no baseline);
* ``gbm_scoring``: riskcap's tree scorer (:class:`riskcap.models.treescorer.TreeEnsemble`)
  against ``lightgbm.Booster.predict``; the booster is trained as riskcap's gbm is, on a
  sample of the same people (speed, not accuracy, is measured);
* ``gbm_reasons``: riskcap's TreeSHAP kernel (``TreeEnsemble.contributions``) against
  ``Booster.predict(pred_contrib=True)`` for the same booster, on up to
  ``REASONS_PEOPLE`` people (LightGBM is the slow side: benchmarks/README.md), per-feature
  contributions compared;
* ``logistic_scoring``: riskcap's JSON logistic model (numba kernel) against the
  scikit-learn pipeline's ``predict_proba`` it was exported from;
* ``capitation``: need grouping + tariffs + budgets of the ``baseline`` scenario on the
  features (the kernels of a capitation run), checking the budgets add up to the envelope to
  the penny; the whole run (:func:`riskcap.capitation.run.run_scenarios_streamed` on the
  tables in memory as one partition: features at the index date and a year before, by-day
  tariffs, budgets, settlement) is timed as well (no baseline here: the ratio to a pandas implementation is measured by
  ``benchmarks/test_bench_capitation.py``, which has that implementation).

Speeds are people per second, best of ``repeats`` runs for both sides of each comparison:
for generating, loading and features the population size (people registered on the first
simulated day), for scoring and capitation the people registered at the index date.
"""
from __future__ import annotations

import contextlib
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from riskcap.stream.threads import blas_threads, numba_threads

DEFAULT_PEOPLE = 200_000
DEFAULT_THREADS = 2
#: People the models are trained on (a seeded sample): enough for a realistic model size.
TRAIN_PEOPLE = 50_000
#: People whose reasons (TreeSHAP contributions) are timed: a seeded sample.
REASONS_PEOPLE = 20_000
BENCH_SEED = 20240401


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_of(fn: Callable, repeats: int):
    """(result of the last call, best wall time in seconds) over ``repeats`` calls."""
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def _stage(name: str, people: int, seconds: float, **extra) -> dict:
    return {"stage": name, "people": int(people), "seconds": seconds,
            "people_per_second": round(people / seconds, 1) if seconds > 0 else None,
            "peak_rss_mb": round(peak_rss_mb(), 1), **extra}


def _compare(stage: dict, baseline: str, baseline_seconds: float, max_abs_diff: float | None) -> dict:
    stage.update({
        "baseline": baseline, "baseline_seconds": baseline_seconds,
        "baseline_people_per_second": round(stage["people"] / baseline_seconds, 1) if baseline_seconds > 0 else None,
        "speedup": round(baseline_seconds / stage["seconds"], 2) if stage["seconds"] > 0 else None,
        "max_abs_diff": max_abs_diff,
    })
    return stage


def _sample(frame, n: int, seed: int):
    if len(frame) <= n:
        return frame.reset_index(drop=True)
    rows = np.sort(np.random.default_rng(seed).choice(len(frame), n, replace=False))
    return frame.iloc[rows].reset_index(drop=True)


def train_bench_booster(features, seed: int):
    """A booster trained as riskcap's gbm is (same parameters, early stopping on a seeded
    validation split; the monotone recalibration, which no scorer here runs, is left out) on
    a sample of the people: speed, not accuracy, is measured. None if the sample has one label."""
    from riskcap.features import LABEL, MODEL_FEATURES
    from riskcap.models.base import feature_matrix
    from riskcap.models.gbm import CLASSIFIER_PARAMS, train_booster, validation_split

    train = _sample(features, TRAIN_PEOPLE, seed)
    y = train[LABEL].to_numpy(dtype=np.float64)
    if len(np.unique(y)) < 2:
        return None
    return train_booster(feature_matrix(train, MODEL_FEATURES), y, CLASSIFIER_PARAMS, seed,
                         validation_split(len(train), seed))[0]


def bench_gbm(features, booster, threads: int, repeats: int) -> dict:
    """Tree scorer vs LightGBM on every person's features (probabilities compared)."""
    from riskcap.features import MODEL_FEATURES
    from riskcap.models.base import feature_matrix
    from riskcap.models.treescorer import TreeEnsemble

    if booster is None:
        return {"stage": "gbm_scoring", "available": False, "reason": "the sample has only one label value"}
    X = feature_matrix(features, MODEL_FEATURES)
    theirs, lgb_seconds = best_of(lambda: booster.predict(X, num_threads=threads), repeats)
    ensemble = TreeEnsemble.from_booster(booster)  # up to the best iteration, as booster.predict
    ensemble.predict(X[:1000], n_threads=threads)  # compile / load the kernel before timing
    ours, seconds = best_of(lambda: ensemble.predict(X, n_threads=threads), repeats)
    diff = float(np.max(np.abs(ours - theirs))) if len(X) else 0.0
    return _compare(_stage("gbm_scoring", len(X), seconds, available=True,
                           trees=ensemble.n_iterations * ensemble.num_class, features=len(MODEL_FEATURES)),
                    "LightGBM", lgb_seconds, diff)


def bench_reasons(features, booster, threads: int, repeats: int, seed: int) -> dict:
    """TreeSHAP contributions: riskcap's kernel vs LightGBM's ``pred_contrib`` on a sample."""
    from riskcap.features import MODEL_FEATURES
    from riskcap.models.base import feature_matrix
    from riskcap.models.treescorer import TreeEnsemble

    if booster is None:
        return {"stage": "gbm_reasons", "available": False, "reason": "the sample has only one label value"}
    X = feature_matrix(_sample(features, REASONS_PEOPLE, seed + 1), MODEL_FEATURES)
    theirs, lgb_seconds = best_of(lambda: booster.predict(X, pred_contrib=True, num_threads=threads), repeats)
    ensemble = TreeEnsemble.from_booster(booster)
    ensemble.contributions(X[:100], n_threads=threads)  # compile / load the kernels before timing
    ours, seconds = best_of(lambda: ensemble.contributions(X, n_threads=threads), repeats)
    diff = float(np.max(np.abs(ours - theirs))) if len(X) else 0.0
    return _compare(_stage("gbm_reasons", len(X), seconds, available=True,
                           trees=ensemble.n_iterations * ensemble.num_class), "LightGBM pred_contrib",
                    lgb_seconds, diff)


def bench_logistic(features, threads: int, repeats: int, seed: int) -> dict:
    """riskcap's logistic kernel vs the scikit-learn pipeline (uncalibrated probabilities)."""
    from riskcap.features import MODEL_FEATURES
    from riskcap.models.base import feature_matrix
    from riskcap.models.logistic import LogisticModel, fit_pipeline

    pipeline = fit_pipeline(_sample(features, TRAIN_PEOPLE, seed))
    model = LogisticModel.from_pipeline(pipeline)
    model.predict_uncalibrated(features.iloc[:1000])  # compile / load the kernel before timing

    def sklearn_predict():
        with blas_threads(threads):  # BLAS gets the same threads as riskcap's kernel
            return pipeline.predict_proba(feature_matrix(features, MODEL_FEATURES))[:, 1]

    theirs, sk_seconds = best_of(sklearn_predict, repeats)
    ours, seconds = best_of(lambda: model.predict_uncalibrated(features), repeats)
    diff = float(np.max(np.abs(ours - theirs))) if len(features) else 0.0
    return _compare(_stage("logistic_scoring", len(features), seconds, terms=len(model.coef)),
                    "scikit-learn", sk_seconds, diff)


def bench_capitation(features, tables, index_date, repeats: int) -> dict:
    """Grouping + tariffs + budgets (``baseline`` scenario) in people per second.

    ``assign_need_groups``, ``Population.from_features``, ``compute_tariffs`` and
    ``compute_budgets``; ``envelope_minus_budgets_pence`` is 0 when the practice budgets add
    up to the envelope to the penny. The whole run on ``tables`` (the capitation command's
    path with the tables as one partition in memory: features, by-day tariffs, budgets,
    settlement, accuracy) is timed too, as ``run_people_per_second`` (people registered at
    ``index_date``, as for the kernels).
    """
    from riskcap.capitation.budgets import compute_budgets
    from riskcap.capitation.population import Population
    from riskcap.capitation.run import run_scenarios_streamed
    from riskcap.capitation.scenario import load_scenario
    from riskcap.capitation.scheme import assign_need_groups, load_scheme
    from riskcap.capitation.tariffs import compute_tariffs
    from riskcap.stream.context import RunContext
    from riskcap.stream.engines import LocalEngine
    from riskcap.stream.threads import use_threads

    scenario = load_scenario("baseline")
    scheme = load_scheme(scenario.scheme_location)

    def fast(features=features):
        groups = assign_need_groups(features, scheme)
        population = Population.from_features(features, scheme, scenario.settings, tables.practices, groups=groups)
        return compute_budgets(population, scenario, compute_tariffs(population, scenario))

    fast(features.iloc[:1000])  # compile / load the kernels
    budgets, seconds = best_of(fast, repeats)
    run = RunContext(index_date=index_date)
    _, run_seconds = best_of(lambda: run_scenarios_streamed(LocalEngine(), [tables], [scenario], run=run), repeats)
    pence = np.asarray(budgets.budget_pence, dtype=np.int64)
    return _stage("capitation", len(features), seconds, scenario=scenario.name, practices=int(len(pence)),
                  envelope_minus_budgets_pence=int(budgets.envelope_pence) - int(pence.sum()),
                  run_seconds=run_seconds, kernels_parallel=use_threads(len(features)),
                  run_people_per_second=round(len(features) / run_seconds, 1))


def run_bench(people: int = DEFAULT_PEOPLE, threads: int = DEFAULT_THREADS, repeats: int = 3,
              seed: int = BENCH_SEED, work_dir: str | Path | None = None,
              progress: Callable[[str], None] | None = None) -> dict:
    """Run every stage on a fresh synthetic population; returns the JSON-ready results.

    Parameters
    ----------
    people : int
        Population size to generate.
    threads : int
        Threads for riskcap's numba kernels and for LightGBM (the same for both sides).
    repeats : int
        Timed runs per side of each comparison (the best is kept).
    work_dir : path, optional
        Where to generate the population (default: a temporary folder, removed afterwards).
    progress : callable, optional
        Called with each stage's name as it starts.
    """
    from riskcap.features import features_at
    from riskcap.data.dates import index_date_for
    from riskcap.synthetic import SynthConfig, write_population
    from riskcap.data.load import load_tables

    say = progress or (lambda _name: None)
    stages: list[dict] = []
    with contextlib.ExitStack() as stack:
        folder = Path(work_dir) if work_dir else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="riskcap-bench-")))
        used = stack.enter_context(numba_threads(threads))
        say("synthetic")
        start = time.perf_counter()
        written = write_population(folder / "data", SynthConfig(people=int(people), seed=seed))
        stages.append(_stage("synthetic", written.people_start, time.perf_counter() - start, rows=written.rows))
        say("load")
        start = time.perf_counter()
        # quarantine, not reject: a benchmark should not stop on a generator's stray row
        tables, loaded = load_tables(folder / "data", on_invalid="quarantine", rejects_dir=folder / "rejects")
        stages.append(_stage("load", written.people_start, time.perf_counter() - start, persons=len(tables.persons),
                             rows_quarantined=int(sum(loaded.rows_quarantined.values()))))
        say("features")
        start = time.perf_counter()
        index = index_date_for("evaluate", folder / "data")
        features, _ = features_at(folder / "data", index.date, on_invalid="quarantine")
        stages.append(_stage("features", written.people_start, time.perf_counter() - start, persons=len(tables.persons),
                             rows_out=int(len(features)), index_date=str(index.date)))
        booster = train_bench_booster(features, seed)
        say("gbm_scoring")
        stages.append(bench_gbm(features, booster, used, repeats))
        say("gbm_reasons")
        stages.append(bench_reasons(features, booster, used, repeats, seed))
        say("logistic_scoring")
        stages.append(bench_logistic(features, used, repeats, seed))
        say("capitation")
        stages.append(bench_capitation(features, tables, index.date, repeats))
    by_name = {s["stage"]: s for s in stages}
    gbm = by_name["gbm_scoring"]
    return {
        "people": int(people),
        "threads": int(used),
        "repeats": int(repeats),
        "seed": int(seed),
        "gbm_speedup_vs_lightgbm": gbm.get("speedup") if gbm.get("available") else None,
        "max_abs_diff": gbm.get("max_abs_diff"),
        "treeshap_speedup_vs_lightgbm": by_name["gbm_reasons"].get("speedup"),
        "treeshap_max_abs_diff": by_name["gbm_reasons"].get("max_abs_diff"),
        "logistic_speedup_vs_sklearn": by_name["logistic_scoring"]["speedup"],
        "logistic_max_abs_diff": by_name["logistic_scoring"]["max_abs_diff"],
        "capitation_envelope_minus_budgets_pence": by_name["capitation"]["envelope_minus_budgets_pence"],
        "people_per_second": {s["stage"]: s.get("people_per_second") for s in stages},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "stages": stages,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                    "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None},
    }
