"""The whole job on a synthetic ICB: generate, train, evaluate, score, list, budget, report.

:func:`run_demo` calls the same core functions as the individual commands, but loads and
validates the data once and builds each index date's features once; scoring runs ``riskcap
score``'s path on the data folder. The run directory:

``data/`` synthetic population; ``models/{logistic,gbm,cost}/``;
``evaluation/{logistic,gbm,cost}/metrics.json`` (temporal validation: trained two years and
evaluated one year before the data's end, :mod:`riskcap.data.dates`); ``scores.parquet`` and
``cost_scores.parquet``; ``casefinding/``; ``capitation/`` (every shipped scenario side by
side); ``report.html``, ``workbook.xlsx``; ``manifest.json``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from riskcap.config import shipped_config

MODEL_KINDS = ("logistic", "gbm", "cost")
#: The stages in order, with what the progress display calls them.
STAGES = {
    "synth": "generate synthetic ICB",
    "load": "validate and load data",
    "features": "build features (train and evaluation dates)",
    "train": "train logistic, gbm and cost models",
    "evaluate": "evaluate (temporal validation)",
    "score": "score everyone at the evaluation date",
    "casefind": "case-finding lists (top 2% per practice)",
    "capitation": "capitation scenarios and settlement",
    "report": "HTML report and Excel workbook",
}


@dataclass
class DemoResult:
    """What the demo produced: the run directory and the headline numbers."""

    run_dir: Path
    metrics: dict = field(default_factory=dict)
    comparison: object = None
    casefind_summary: dict = field(default_factory=dict)
    report: Path | None = None
    workbook: Path | None = None
    people: int = 0


def shipped_scenarios() -> list[Path]:
    """Every scenario file shipped in ``configs/scenarios``, baseline first."""
    paths = sorted(shipped_config("scenarios").glob("*.yaml"))
    return sorted(paths, key=lambda p: p.stem != "baseline")


def demo_key(seed: int):
    """The pseudonymisation key for the demo: ``$RISKCAP_PSEUDONYM_KEY`` if set, else one
    derived from the seed, so that reruns are byte-identical (synthetic data only)."""
    from riskcap.pseudonymise import PseudonymKey, load_key

    key = load_key(allow_random=True)
    if key.stable:
        return key
    return PseudonymKey(hashlib.sha256(f"riskcap synthetic demo {seed}".encode()).digest(), "demo")


def run_demo(out_dir: str | Path, people: int | None = None, seed: int | None = None,
             stage: Callable[[str], None] | None = None) -> DemoResult:
    """Run the whole pipeline on the default synthetic ICB into ``out_dir``.

    ``stage(name)`` is called as each stage of :data:`STAGES` starts (for progress display).
    """
    from riskcap.capitation.run import run_capitation
    from riskcap.capitation.scenario import load_scenario
    from riskcap.features import features_at
    from riskcap.data.write import write_json
    from riskcap.manifest import RunManifest
    from riskcap.models.persist import read_model_files, save_model
    from riskcap.models.score import score_population
    from riskcap.models.train import data_fingerprint, evaluate_model, train_model, truth_probabilities
    from riskcap.casefinding.run import casefind
    from riskcap.casefinding.selection import SelectionRule
    from riskcap.data.dates import index_date_for
    from riskcap.synthetic.pipeline import SynthConfig, write_population

    stage = stage or (lambda name: None)
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = SynthConfig.from_preset("default_icb", people=people, seed=seed)
    manifest = RunManifest(run_dir, seed=config.seed)
    manifest.add_config("synthetic", {"preset": "default_icb", "people": config.people, "seed": config.seed,
                                      "years": config.years})
    result = DemoResult(run_dir)

    stage("synth")
    data_dir = run_dir / "data"
    write_population(data_dir, config)

    stage("load")
    trained_at, evaluated_at = index_date_for("train", data_dir), index_date_for("evaluate", data_dir)
    capitated_at = index_date_for("capitation", data_dir)
    for name, index in (("train", trained_at), ("evaluate", evaluated_at), ("score", evaluated_at),
                        ("casefind", evaluated_at), ("capitation", capitated_at)):
        manifest.add_index_date(name, index)
    fingerprint = {"dir": "data", "fingerprint": data_fingerprint(data_dir)["sha256"]}

    stage("features")
    train_frame, _ = features_at(data_dir, trained_at.date)
    eval_frame, _ = features_at(data_dir, evaluated_at.date)
    result.people = len(eval_frame)

    stage("train")
    models = {}
    for kind in MODEL_KINDS:
        models[kind] = train_model(kind, train_frame, trained_at.date, seed=0, data=fingerprint)
        save_model(models[kind], run_dir / "models" / kind)
    del train_frame

    stage("evaluate")
    truth = truth_probabilities(data_dir, eval_frame["person_id"].to_numpy(), evaluated_at.date)
    for kind, model in models.items():
        result.metrics[kind] = evaluate_model(model, eval_frame, evaluated_at.date, truth)
        write_json(result.metrics[kind], run_dir / "evaluation" / kind / "metrics.json")

    stage("score")
    for kind, name in (("gbm", "scores.parquet"), ("cost", "cost_scores.parquet")):  # as `riskcap score`
        score_population(read_model_files(run_dir / "models" / kind), data_dir, evaluated_at.date, run_dir / name)

    stage("casefind")
    found = casefind(run_dir / "scores.parquet", data_dir, run_dir / "casefinding", SelectionRule.parse("2%"),
                     key=demo_key(config.seed), index_date=evaluated_at.date)
    result.casefind_summary = found.summary

    stage("capitation")
    scenarios = [load_scenario(p) for p in shipped_scenarios()]
    run = run_capitation(data_dir, scenarios, run_dir / "capitation", capitated_at,
                         scores=(run_dir / "scores.parquet", run_dir / "cost_scores.parquet"),
                         shown=lambda path: path.relative_to(run_dir).as_posix())
    result.comparison = run.comparison
    for s in scenarios:
        manifest.add_config(f"scenario:{s.name}", s.raw)

    stage("report")
    from riskcap.report import build_report

    files = build_report(run_dir)
    result.report, result.workbook = files.report, files.workbook

    for kind in MODEL_KINDS:
        manifest.add_model(kind, run_dir / "models" / kind)
    manifest.write()
    return result
