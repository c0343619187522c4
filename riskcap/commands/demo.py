"""``riskcap demo``: the whole job on the embedded synthetic ICB."""
from __future__ import annotations

import time
from pathlib import Path

import click


@click.command("demo")
@click.option("--out", "out_dir", default="demo-run", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Run directory to write: new, empty, or an earlier riskcap run's.")
@click.option("--people", type=click.IntRange(min=2000), default=None,
              help="People in the synthetic ICB [default: 300,000 across 35 practices].")
@click.option("--seed", type=int, default=None, help="Random seed of the synthetic population [default: the preset's].")
def demo(out_dir: Path, people: int | None, seed: int | None):
    """Run the whole job on a synthetic ICB and write a report.

    Generates the default synthetic ICB (seeded), trains the logistic, LightGBM and cost
    models two years before the data's end (2023-04-01), evaluates them a year later
    (2024-04-01: temporal validation), scores
    everyone, writes case-finding lists (top 2% per practice), runs every shipped
    capitation scenario side by side with settlement against the outcome year, and
    writes report.html, workbook.xlsx and manifest.json into the run directory.

    \b
    Example:
        riskcap demo
        riskcap demo --out my-run --people 50000
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from riskcap.capitation.money import gbp
    from riskcap.demo import STAGES, run_demo

    console = Console()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("starting", total=len(STAGES))
        last = {"name": None, "t": time.perf_counter()}

        def stage(name: str) -> None:
            now = time.perf_counter()
            if last["name"]:
                timings[last["name"]] = now - last["t"]
                bar.advance(task)
            last.update(name=name, t=now)
            bar.update(task, description=STAGES[name])

        result = run_demo(out_dir, people=people, seed=seed, stage=stage)
        timings[last["name"]] = time.perf_counter() - last["t"]
        bar.update(task, completed=len(STAGES), description="done")

    models = Table(title=f"Emergency-admission models: {result.people:,} people at the evaluation date")
    for col in ("model", "AUROC", "oracle AUROC", "AUPRC", "top-2% PPV", "top-2% sensitivity"):
        models.add_column(col, justify="left" if col == "model" else "right")
    for kind in ("logistic", "gbm"):
        m = result.metrics[kind]
        oracle = m.get("oracle_auroc")
        models.add_row(kind, f"{m['auroc']:.3f}", f"{oracle:.3f}" if oracle else "-", f"{m['auprc']:.3f}",
                       f"{m['ppv_at']['0.02']:.1%}", f"{m['sensitivity_at']['0.02']:.1%}")
    console.print(models)

    budgets = Table(title="Capitation scenarios (outcome year, back-tested)")
    for col in ("scenario", "envelope £", "per head £", "within ±10% of outturn", "R²"):
        budgets.add_column(col, justify="left" if col == "scenario" else "right")
    for row in result.comparison.itertuples():
        budgets.add_row(row.scenario, gbp(row.envelope_gbp, 2, symbol=""),
                        gbp(row.per_head_gbp, 2, symbol="") if row.per_head_gbp else "-",
                        f"{row.practices_within_10pct:.0%}", f"{row.r_squared:.3f}")
    console.print(budgets)

    s = result.casefind_summary
    console.print(f"Case-finding: {s['listed']:,} people listed across {len(s['practices'])} practices "
                  f"({s['eligible']:,} eligible) -> {out_dir / 'casefinding'}")
    console.print("Stage times: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    if result.report:
        console.print(f"Report: [bold]{result.report}[/bold]  Workbook: [bold]{result.workbook}[/bold]")
    console.print(f"Finished in {time.perf_counter() - started:.0f} s; run directory {out_dir} "
                  f"(check it later with: riskcap verify {out_dir})")
