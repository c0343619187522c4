"""``riskcap train``, ``riskcap evaluate`` and ``riskcap score``: the emergency-admission models."""
from __future__ import annotations

import math
from pathlib import Path

import click

from riskcap.commands._partitions import chosen_index_date
from riskcap.commands.options import (data_option, engine_options, index_date_option, model_dir_option,
                                      on_invalid_option, partition_people_option, reasons_for_option)


def _features(data_dir: Path, index, on_invalid: str, partition_people: int, engine_name: str, scheduler,
              rejects_dir: Path, console):
    """Everyone's features at the index date, read, checked and built one person_id range at a time."""
    from riskcap.commands._partitions import partition_progress, plan, write_quarantined
    from riskcap.features import features_at
    from riskcap.stream.engines import get_engine

    parts = plan(data_dir, partition_people, console)
    with get_engine(engine_name, scheduler) as engine, partition_progress(console) as progress:
        frame, summary = features_at(data_dir, index.date, parts=parts, engine=engine, on_invalid=on_invalid,
                                     progress=progress)
    if on_invalid == "quarantine":
        write_quarantined(summary, rejects_dir, console)
    return frame


@click.command("train")
@data_option
@index_date_option("train")
@click.option("--model", "kind", type=click.Choice(["logistic", "gbm", "cost"]), required=True,
              help="logistic: CPM-style regression; gbm: LightGBM (calibrated); cost: next-year cost (Tweedie).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Model directory to write (metadata.json plus model.json or model.txt): new, empty, or an "
                   "earlier riskcap run's.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the validation split and LightGBM.")
@on_invalid_option
@partition_people_option()
@engine_options
def train(data_dir: Path, index_date, kind: str, out_dir: Path, seed: int, on_invalid: str, partition_people: int,
          engine_name: str, scheduler):
    """Train a model at an index date and write a model directory.

    Validates the data, builds one row of features per person registered and alive at the
    index date (only information dated before it), fits the model and writes plain-text
    artefacts (no pickle) with metadata: feature names, training date, data fingerprint,
    metrics and package versions. Evaluate at a later date for temporal validation.

    \b
    Example:
        riskcap train --data synth --index-date 2023-04-01 --model gbm --out models/gbm
        riskcap train --data synth --model logistic --out models/logistic
    """
    import time

    from rich.console import Console
    from rich.table import Table

    from riskcap.manifest import RunManifest
    from riskcap.models.persist import save_model
    from riskcap.models.train import data_fingerprint, train_model

    console = Console(stderr=True)
    started = time.perf_counter()
    manifest = RunManifest(out_dir, seed=seed)
    index = chosen_index_date("train", data_dir, index_date, console)
    manifest.add_index_date("train", index)
    frame = _features(data_dir, index, on_invalid, partition_people, engine_name, scheduler, out_dir / "rejects",
                      console)
    console.print(f"features: {len(frame):,} people at {index.date}")
    model = train_model(kind, frame, index.date, seed=seed,
                        data={"dir": str(data_dir), "fingerprint": data_fingerprint(data_dir)["sha256"]})
    save_model(model, out_dir)
    manifest.add_input("data", data_dir)
    manifest.write()

    out = Console()
    meta = model.metadata
    table = Table(title=f"{kind} model trained at {meta['training_index_date']} -> {out_dir}")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("people", f"{meta['training_rows']:,}")
    if "prevalence" in meta:
        table.add_row("with an emergency admission", f"{100 * meta['prevalence']:.2f}%")
    fit = meta.get("fit", {})
    if "best_iteration" in fit:
        table.add_row("boosting rounds (early stopping)", f"{fit['best_iteration']}")
    for key, value in meta["metrics"].items():
        if isinstance(value, float):
            table.add_row(f"{key} ({meta['metrics']['on']})", f"{value:.4f}")
    table.add_row("seconds", f"{time.perf_counter() - started:.1f}")
    out.print(table)
    if kind == "logistic":
        coef = model.coefficients().head(12)
        ct = Table(title="Largest coefficients (per standard deviation of the term)")
        for c in ("term", "coef_per_sd", "odds_ratio_per_sd"):
            ct.add_column(c, justify="left" if c == "term" else "right")
        for row in coef.itertuples():
            ct.add_row(row.term, f"{row.coef_per_sd:+.3f}", f"{row.odds_ratio_per_sd:.2f}")
        out.print(ct)


@click.command("evaluate")
@model_dir_option
@data_option
@index_date_option("evaluate")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for metrics.json: new, empty, or an earlier riskcap run's.")
@on_invalid_option
@partition_people_option()
@engine_options
def evaluate(model_dir: Path, data_dir: Path, index_date, out_dir: Path, on_invalid: str, partition_people: int,
             engine_name: str, scheduler):
    """Evaluate a model at an index date: discrimination, calibration, top-N, subgroups.

    Writes metrics.json (auroc, auprc, brier, calibration slope and intercept,
    calibration_by_decile, ppv_at and sensitivity_at the top 0.5%-10%, number to enrol per
    admission captured, subgroups by age band, sex and IMD quintile) and prints it as
    tables. On synthetic data it also reports the oracle AUROC of the true probabilities
    (truth.parquet) and the gap.

    \b
    Example:
        riskcap evaluate --model models/gbm --data synth --index-date 2024-04-01 --out eval/gbm
    """
    from rich.console import Console

    from riskcap.data.write import write_json
    from riskcap.manifest import RunManifest
    from riskcap.models.persist import load_model
    from riskcap.models.train import evaluate_model, truth_probabilities

    console = Console(stderr=True)
    manifest = RunManifest(out_dir)
    model = load_model(model_dir)
    index = chosen_index_date("evaluate", data_dir, index_date, console)
    manifest.add_index_date("evaluate", index)
    frame = _features(data_dir, index, on_invalid, partition_people, engine_name, scheduler, out_dir / "rejects",
                      console)
    truth = truth_probabilities(data_dir, frame["person_id"].to_numpy(), index.date)
    metrics = evaluate_model(model, frame, index.date, truth)
    write_json(metrics, out_dir / "metrics.json")
    manifest.add_input("data", data_dir)
    manifest.add_model(model.kind, model_dir)
    manifest.write()
    out = Console()
    title = (f"{model.kind} model (trained {metrics['training_index_date']}) evaluated at "
             f"{metrics['evaluation_index_date']}")
    for table in metrics_tables(metrics, title):
        out.print(table)
    if "warning" in metrics:
        out.print(f"[yellow]warning: {metrics['warning']}[/yellow]")
    out.print(f"metrics written to {out_dir / 'metrics.json'}")


def _f(value, digits: int = 3, pct: bool = False) -> str:
    """A metric as text: ``digits`` decimals, or a percentage; "-" when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if pct:
        return f"{100 * value:.{max(digits - 2, 1)}f}%"
    return f"{value:.{digits}f}"


def metrics_tables(metrics: dict, title: str = "") -> list:
    """Rich tables presenting a metrics dict (risk or cost)."""
    from rich.table import Table

    from riskcap.models.evaluate import TOP_FRACTIONS, fraction_key

    tables = []
    if "auroc" not in metrics:
        head = Table(title=title or "Next-year cost model")
        head.add_column("measure")
        head.add_column("value", justify="right")
        for label, key, fmt in (("people", "n", "{:,}"), ("R-squared (person)", "r2", None),
                                ("R-squared (practice)", "practice_r2", None), ("mean observed (GBP)", "mean_observed", "{:,.0f}"),
                                ("mean predicted (GBP)", "mean_predicted", "{:,.0f}"), ("predicted / observed", "predicted_observed", None),
                                ("practices >10% off", "practices_10pct_off", "{:,}")):
            if key in metrics:
                v = metrics[key]
                head.add_row(label, fmt.format(v) if fmt and v is not None else _f(v))
        tables.append(head)
        dec = Table(title="By decile of predicted cost")
        for c in ("decile", "people", "mean predicted", "mean observed", "pred / obs"):
            dec.add_column(c, justify="right")
        for d in metrics["calibration_by_decile"]:
            dec.add_row(str(d["decile"]), f"{d['n']:,}", f"{d['mean_predicted']:,.0f}", f"{d['mean_observed']:,.0f}",
                        _f(d["predicted_observed"], 2))
        tables.append(dec)
        return tables

    head = Table(title=title or "Emergency admission in the next 12 months")
    head.add_column("measure")
    head.add_column("value", justify="right")
    head.add_row("people", f"{metrics['n']:,}")
    head.add_row("with an emergency admission", f"{metrics['events']:,} ({_f(metrics['prevalence'], 3, pct=True)})")
    head.add_row("AUROC", _f(metrics["auroc"]))
    if metrics.get("oracle_auroc") is not None:
        head.add_row("oracle AUROC (true probabilities)", _f(metrics["oracle_auroc"]))
        head.add_row("gap to oracle", _f(metrics["oracle_gap"]))
    head.add_row("AUPRC", _f(metrics["auprc"]))
    head.add_row("Brier score", _f(metrics["brier"], 4))
    head.add_row("calibration slope", _f(metrics["calibration_slope"]))
    head.add_row("calibration intercept (in the large)", _f(metrics["calibration_intercept"]))
    head.add_row("observed / expected", _f(metrics["observed_expected"]))
    if "enrol_to_capture_1000" in metrics:
        head.add_row("enrol to capture 1,000 admitted people", f"{metrics['enrol_to_capture_1000']:,}")
    tables.append(head)

    top = Table(title="Top of the risk list")
    for c in ("top", "people", "PPV", "sensitivity", "enrol per admission captured"):
        top.add_column(c, justify="right")
    for f in TOP_FRACTIONS:
        k = fraction_key(f)
        top.add_row(f"{100 * f:g}%", f"{metrics['top_n'][k]:,}", _f(metrics["ppv_at"][k]), _f(metrics["sensitivity_at"][k]),
                    _f(metrics["number_to_enrol_per_admission"][k], 2))
    tables.append(top)

    dec = Table(title="Calibration by risk decile (10 = highest)")
    for c in ("decile", "people", "mean predicted", "observed rate", "observed / expected"):
        dec.add_column(c, justify="right")
    for d in metrics["calibration_by_decile"]:
        dec.add_row(str(d["decile"]), f"{d['n']:,}", _f(d["mean_predicted"], 4), _f(d["observed_rate"], 4),
                    _f(d["observed_expected"], 3))
    tables.append(dec)

    if metrics.get("subgroups"):
        sub = Table(title="Subgroups")
        for c in ("subgroup", "group", "people", "prevalence", "AUROC", "observed / expected"):
            sub.add_column(c, justify="right" if c not in ("subgroup", "group") else "left")
        for key, groups in metrics["subgroups"].items():
            for g in groups:
                sub.add_row(key, str(g["group"]), f"{g['n']:,}", _f(g["prevalence"], 3, pct=True), _f(g["auroc"]),
                            _f(g["observed_expected"]))
        tables.append(sub)
    return tables


@click.command("score")
@model_dir_option
@data_option
@index_date_option("score")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Scores file to write (parquet); an existing file is replaced only if it is a riskcap scores file.")
@reasons_for_option
@on_invalid_option
@partition_people_option()
@engine_options
def score(model_dir: Path, data_dir: Path, index_date, out_path: Path, reasons_for, on_invalid: str,
          partition_people: int, engine_name: str, scheduler):
    """Score a whole population: probability, 0-100 score, tier, percentile and reasons.

    Reads, checks and scores one partition of people (a person_id range) at a time, so memory
    stays bounded whatever the population, then ranks everyone: percentile (100 = highest
    risk) and tier (very high = top 0.5%, high = to 5%, rising = to 20%, low). Writes
    person_id, practice_code, probability, score, tier, percentile, reason_1..reason_3 (plain
    English; empty beyond --reasons-for) and model. CSV data are loaded whole (with a warning).

    \b
    Example:
        riskcap score --model models/gbm --data synth --index-date 2024-04-01 --out scores.parquet
        riskcap score --model models/logistic --data synth --out scores.parquet --reasons-for 5
    """
    import time

    from rich.console import Console

    from riskcap.commands._partitions import partition_progress, plan, scored_table, write_quarantined
    from riskcap.stream.engines import get_engine
    from riskcap.manifest import claim_file, table_with_columns
    from riskcap.models.persist import read_model_files
    from riskcap.models.score import score_population

    console = Console(stderr=True)
    started = time.perf_counter()
    claim_file(out_path, table_with_columns("person_id", "practice_code", "model"), "scores file")
    model_files = read_model_files(model_dir)
    index = chosen_index_date("score", data_dir, index_date, console)
    parts = plan(data_dir, partition_people, console)
    with get_engine(engine_name, scheduler) as engine, partition_progress(console) as progress:
        scored = score_population(model_files, data_dir, index.date, out_path, parts=parts, engine=engine,
                                  people=partition_people, reasons_for=reasons_for, on_invalid=on_invalid,
                                  progress=progress)
    if on_invalid == "quarantine":
        write_quarantined(scored.summary, out_path.parent / "rejects", console)
    Console().print(scored_table(scored, f"{scored.people:,} people scored at {index.date} with the "
                                          f"{scored.kind} model ({len(parts)} partition(s)) -> {out_path}"))
    Console().print(f"seconds: {time.perf_counter() - started:.1f}")
