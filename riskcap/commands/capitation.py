"""``riskcap capitation run`` and ``riskcap capitation sweep``: Year of Care capitation scenarios."""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from riskcap.capitation.money import gbp
from riskcap.commands._partitions import chosen_index_date, scored_table
from riskcap.commands.options import (data_option, engine_options, index_date_option, on_invalid_option,
                                      partition_people_option, reasons_for_option)

#: compact pounds for the terminal (512.34m, 698.1k, 950); the files hold exact pence
short_gbp = partial(gbp, decimals=2, symbol="", compact=True)


def _common(f):
    f = click.option("--scores", "scores_paths", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Scores file(s) from `riskcap score` (parquet or CSV): risk tiers for schemes that use "
                          "risk_tier, predicted_cost_gbp/expected_cost_gbp for fair shares. Repeatable.")(f)
    f = index_date_option("capitation")(f)
    f = data_option(f)
    f = click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Output folder: new, empty, or an earlier riskcap run's (docs/security.md).")(f)
    f = on_invalid_option(f)
    return f


def _stream_options(f):
    f = engine_options(f)
    return partition_people_option()(f)


def _stream(work, data_dir: Path, on_invalid: str, out_dir: Path, partition_people: int, engine_name: str,
            scheduler, console: Console):
    """Plan the partitions and call ``work(engine, parts, on_result) -> (value, load summary)``
    under a progress bar; write quarantined rows to OUT/rejects. Returns the value."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from riskcap.commands._partitions import plan, write_quarantined
    from riskcap.stream.engines import get_engine

    parts = plan(data_dir, partition_people, console)
    with get_engine(engine_name, scheduler) as engine, Progress(
            TextColumn("[bold]partitions"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[people]:,} people"), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("partitions", total=len(parts), people=0)
        people = [0]

        def advance(result):
            people[0] += result.n_people
            bar.update(task, advance=1, people=people[0])

        value, summary = work(engine, parts, advance)
    if on_invalid == "quarantine":
        write_quarantined(summary, out_dir / "rejects", console)
    return value


@click.group("capitation")
def capitation():
    """Year of Care capitation: need groups, tariffs, practice budgets, settlement.

    `run` compares scenarios side by side; `sweep` runs a grid of scenario parameters.
    Scenario files: configs/scenarios/*.yaml (shipped names work too, e.g. baseline).

    \b
    Example:
        riskcap capitation run baseline cap_p99 --data synthetic_data --out cap-run
    """


@capitation.command("run")
@click.argument("scenarios", nargs=-1, required=True)
@_common
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Also score everyone with this model (from `riskcap train`) in the same pass over the data: "
                   "writes OUT/scores.parquet, the file `riskcap score` writes, for about the cost of scoring "
                   "alone. Those scores are not used for grouping (tiers need everyone ranked first).")
@reasons_for_option
@_stream_options
def run(scenarios, data_dir: Path, index_date, scores_paths, out_dir: Path, on_invalid: str, model_dir: Path | None,
        reasons_for, partition_people: int, engine_name: str, scheduler):
    """Run capitation scenarios side by side and compare them.

    SCENARIOS are YAML files or shipped scenario names. People registered and alive at the
    index date are grouped by need; group tariffs come from the base year's in-scope costs;
    practice budgets cover the outcome year (pro-rated by days on the list) and add up to the
    envelope to the penny; settlement back-tests them against the outcome year's actual costs.
    Writes budgets, tariffs, settlement, accuracy (parquet and CSV), summary.json and one
    folder per scenario (plus stop_loss.csv, risk_pools.csv or withhold_outcome.csv when a
    scenario sets those levers, e.g. stop_loss_50k, pcn_pooled, withhold_by_admissions);
    the first scenario named baseline (else the first) is the baseline.
    People are read, checked and aggregated one partition (a person_id range) at a time, so
    memory stays bounded; CSV data are loaded whole (with a warning).

    \b
    Example:
        riskcap capitation run baseline cap_p99 social_care_pooled uplift_2_9_eff_1_1 \\
            asymmetric_corridor outcome_withhold_10 --data synthetic_data --out cap-run
        riskcap capitation run my_scenario.yaml fair_shares --data icb-data \\
            --scores run/scores.parquet --scores run/cost_scores.parquet --out cap-run
        riskcap capitation run baseline --data england --model models/gbm --out run
    """
    from riskcap.capitation.run import run_capitation
    from riskcap.capitation.scenario import load_scenario
    from riskcap.manifest import RunManifest
    from riskcap.models.persist import read_model_files

    console = Console(width=max(Console().width, 120))
    loaded = [load_scenario(s) for s in scenarios]  # refuse bad files before reading data
    model_files = None if model_dir is None else read_model_files(model_dir)  # and bad models
    manifest = RunManifest(out_dir)
    index = chosen_index_date("capitation", data_dir, index_date, console)
    manifest.add_index_date("capitation", index)
    manifest.add_input("data", data_dir)  # hashed while the run reads it
    for path in scores_paths:
        manifest.add_input(f"scores:{path.name}", path)
    started = time.perf_counter()

    def work(engine, parts, on_result):
        result = run_capitation(data_dir, loaded, out_dir, index, scores=scores_paths, model_files=model_files,
                                reasons_for=reasons_for, on_invalid=on_invalid, partition_people=partition_people,
                                engine=engine, parts=parts, on_result=on_result)
        return result, result.load_summary

    result = _stream(work, data_dir, on_invalid, out_dir, partition_people, engine_name, scheduler, console)
    people = result.results[0].population.n_people
    for s in loaded:
        manifest.add_config(f"scenario:{s.name}", s.raw)
    if result.scored is not None:
        manifest.add_model(result.scored.kind, model_dir)
    manifest.write()
    console.print(comparison_table(result.comparison, result.baseline, index.date, people))
    if result.scored is not None:
        console.print(scored_table(result.scored, f"{result.scored.people:,} people scored in the same pass with the "
                                                  f"{result.scored.kind} model -> {out_dir / 'scores.parquet'}"))
    for r in result.results:
        if r.budgets.people_at_group_tariff:
            console.print(f"[yellow]{r.scenario.name}: {r.budgets.mode_label}[/yellow]")
    first = result.results[0].summary()
    console.print(f"Outturn read {short_gbp(first['outturn_read_pence'] / 100)} = charged to practices "
                  f"{short_gbp(first['charged_to_practices_pence'] / 100)} + unregistered (ICB) "
                  f"{short_gbp(first['unregistered_pence'] / 100)}; tariffs: {first['tariff_method']}")
    without = result.practices_without_people
    if len(without):
        console.print(f"[yellow]{len(without)} practice(s) with no one on their list in the outcome year "
                      f"(e.g. {without['practice_code'].iloc[0]}: {without['reason'].iloc[0]}): "
                      f"{out_dir / 'practices_without_people.csv'}[/yellow]")
    console.print(f"{len(loaded)} scenario(s) in {time.perf_counter() - started:.1f} s -> {out_dir}")


def comparison_table(comparison: pd.DataFrame, baseline: str, index_date, people: int) -> Table:
    """The scenario comparison as a rich table (exact pence are in the files)."""
    table = Table(title=f"Capitation scenarios: {people:,} people at {index_date}, back-tested on the outcome year "
                        f"(baseline: {baseline})")
    for name in ("scenario", "envelope £", "per head £", "vs baseline £", "within ±10%", "R²",
                 "payer £", "provider £", "pool £"):
        table.add_column(name, justify="left" if name == "scenario" else "right", no_wrap=True)
    for row in comparison.itertuples():
        table.add_row(
            row.scenario, short_gbp(row.envelope_gbp), gbp(row.per_head_gbp, 2, symbol="") if row.per_head_gbp else "-",
            short_gbp(row.change_vs_baseline_gbp, signed=True), f"{row.practices_within_10pct:.0%}",
            f"{row.r_squared:.3f}" if pd.notna(row.r_squared) else "-",
            short_gbp(row.payer_share_gbp, signed=True), short_gbp(row.provider_share_gbp, signed=True),
            short_gbp(row.pool_funding_gbp),
        )
    table.caption = ("payer / provider: shares of (actual - budget) after the risk corridor (+ cost borne, "
                     "- saving kept); pool: high-cost pool funding. Exact pence: comparison.csv, budgets.csv.")
    return table


@capitation.command("sweep")
@click.argument("scenario")
@click.option("--vary", "axes", multiple=True, required=True, metavar="KEY=VALUES",
              help="A grid axis: dotted scenario key = comma list (0,1.5,2.9), range start:stop:count, "
                   "or @scenario names (corridor=@baseline,@asymmetric_corridor). Repeatable.")
@_common
@_stream_options
def sweep(scenario, axes, data_dir: Path, index_date, scores_paths, out_dir: Path, on_invalid: str,
          partition_people: int, engine_name: str, scheduler):
    """Run a grid of scenario parameters on one grouped population.

    People are grouped and costed once, one partition at a time; each combination works on
    per-practice x need-group aggregates. Writes sweep.parquet and sweep.csv (one row per combination: the varied
    values, envelope, pool, settlement shares, practices within ±10%, R-squared, tariffs)
    and summary.json. At most 100,000 combinations.

    \b
    Example (1,000 combinations):
        riskcap capitation sweep baseline --data synthetic_data --out sweep \\
            --vary tariff.cost_uplift_pct=0:4.5:10 \\
            --vary tariff.cap_percentile=null,95,96,97,98,99,99.5,99.8,99.9,99.95 \\
            --vary corridor.overspend.1.payer_share_pct=0:90:10
    """
    from riskcap.capitation.run import (component_populations, plan_run, run_context, run_inputs, spill_dir,
                                        stream_populations)
    from riskcap.capitation.scenario import load_scenario
    from riskcap.capitation.sweep import parse_axes, run_sweep
    from riskcap.data.write import write_csv, write_json, write_parquet
    from riskcap.manifest import RunManifest

    console = Console(width=max(Console().width, 100))
    base = load_scenario(scenario)
    parsed = parse_axes(axes)  # every axis and the grid's size, before any data are read
    manifest = RunManifest(out_dir)
    index = chosen_index_date("capitation", data_dir, index_date, console)
    manifest.add_index_date("capitation", index)
    manifest.add_input("data", data_dir)  # hashed while the sweep reads it
    started = time.perf_counter()
    plan = plan_run([base], deprivation=any(k.startswith("budget.inequalities") for k, _ in parsed),
                    coding=any(k.startswith("budget.coding_intensity") for k, _ in parsed))

    def work(engine, parts, on_result):
        return stream_populations(engine, parts, plan, run=run_context(data_dir, parts, index.date, on_invalid,
                                                                       scores_paths),
                                  on_result=on_result, spill_dir=spill_dir(out_dir))

    populations = _stream(work, data_dir, on_invalid, out_dir, partition_people, engine_name, scheduler, console)
    population = populations[plan.keys[0]]
    frame = run_sweep(population, base, parsed, component_populations(populations, base))
    seconds = time.perf_counter() - started
    people = population.n_people
    write_parquet(frame, out_dir / "sweep.parquet")
    write_csv(frame, out_dir / "sweep.csv")
    write_json({"base_scenario": base.source, "axes": [{"key": k, "values": v} for k, v in parsed],
                "combinations": len(frame), "inputs": run_inputs(data_dir, index, scores_paths, people)},
               out_dir / "summary.json")
    manifest.add_config(f"scenario:{base.name}", base.raw)
    manifest.add_config("axes", list(axes))
    manifest.write()
    table = Table(title=f"{len(frame):,} combinations on {people:,} people in {seconds:.1f} s -> {out_dir}")
    for name in ("", "envelope £", "within ±10%", "R²", "payer £", "provider £"):
        table.add_column(name, justify="right")
    for label, stat in (("min", "min"), ("median", "median"), ("max", "max")):
        table.add_row(label, short_gbp(getattr(frame["envelope_pence"], stat)() / 100),
                      f"{getattr(frame['practices_within_10pct'], stat)():.0%}",
                      f"{getattr(frame['r_squared'], stat)():.3f}",
                      short_gbp(getattr(frame["payer_share_pence"], stat)() / 100, signed=True),
                      short_gbp(getattr(frame["provider_share_pence"], stat)() / 100, signed=True))
    console.print(table)
