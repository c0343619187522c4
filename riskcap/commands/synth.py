"""``riskcap synth``: write a synthetic population (contract tables, truth, calibration)."""
from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from riskcap.manifest import RunManifest
from riskcap.synthetic import DEFAULT_SEED, SynthConfig, write_population

#: Calibration results shown in the summary (all are in calibration.json).
KEY_TARGETS = (
    "emergency_admitted_share", "admissions_per_admitted_person", "adult_multimorbidity_2plus",
    "mean_annual_cost_gbp_ltc_1", "mean_annual_cost_gbp_ltc_2", "mean_annual_cost_gbp_ltc_3+",
    "truth_auroc_outcome_year",
)


@click.command("synth")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: new, empty, or an earlier riskcap run's (docs/security.md).")
@click.option("--people", type=click.IntRange(min=1), default=None,
              help="People registered at the start (default 100,000; with --practices: scale the real list sizes to this total).")
@click.option("--practices", "practices_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="NHS England's practice file (weighted populations CSV): place people in the real practices.")
@click.option("--icb", default=None, help="With --practices: one ICB, by ICS22 code (QE1) or name.")
@click.option("--seed", type=int, default=None, help=f"Random seed (default {DEFAULT_SEED}).")
@click.option("--years", type=click.IntRange(1, 30), default=None,
              help="Financial years simulated, ending 2025-03-31 (default 5: from 2020-04-01).")
@click.option("--preset", default=None,
              help="A preset in configs/synthetic (e.g. default_icb: 300,000 people in 35 practices) or a YAML path.")
@click.option("--partition-people", type=click.IntRange(min=1), default=None,
              help="People per partition (memory is bounded by one partition; default 100,000).")
@click.option("--extracts", "extracts_dir", type=click.Path(file_okay=False), default=None,
              help="Also write the population as raw GP, hospital and community extracts here (riskcap import "
                   "reads them back; docs/import.md). Needs --codelists.")
@click.option("--codelists", "codelists_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="With --extracts: the OpenCodelists CSVs the journal codes are drawn from.")
@click.option("--coding-up", "coding_up_practices", type=click.IntRange(min=0), default=None,
              help="How many practices code up: from the start of the second-last year their registers grow "
                   "faster than their patients' morbidity (calibration.json and practice_truth.parquet say which).")
def synth(out_dir, people, practices_file, icb, seed, years, preset, partition_people, coding_up_practices,
          extracts_dir, codelists_dir):
    """Generate a synthetic registered population with known true risks.

    Writes practices, persons, conditions, activity, registrations and practice_changes (the
    data contract) as parquet, truth.parquet and practice_truth.parquet (each person's true
    probability of an emergency admission in each year, each practice's hidden effects: for
    evaluation only) and calibration.json (every realism target with the achieved value). The
    same arguments and seed give byte-identical files, whatever --partition-people.

    \b
    Example:
        riskcap synth --out synth --people 20000 --seed 42
        riskcap synth --out icb --preset default_icb
        riskcap synth --out lsc --practices nhse_practice_weighted_populations_2024_25.csv --icb QE1
        riskcap synth --out synth --people 20000 --extracts extracts --codelists codelists
        riskcap synth --out coded --people 200000 --coding-up 3
    """
    if (extracts_dir is None) != (codelists_dir is None):
        raise click.UsageError("--extracts and --codelists go together")
    overrides = dict(people=people, practices_file=practices_file, icb=icb, seed=seed, years=years,
                     partition_people=partition_people, coding_up_practices=coding_up_practices)
    config = SynthConfig.from_preset(preset, **overrides) if preset else SynthConfig(
        **{k: v for k, v in overrides.items() if v is not None})
    # run folders (new, empty or an earlier run's): a synthetic population never replaces real data
    manifest = RunManifest(Path(out_dir), seed=config.seed)
    extracts_manifest = None if extracts_dir is None else RunManifest(Path(extracts_dir), seed=config.seed)
    console = Console(stderr=True)
    started = time.perf_counter()
    with Progress(TextColumn("[bold]partitions"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[people]:,} people"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task("synth", total=None, people=0)

        def on_partition(partition, total):
            lo, hi = partition.person_id_range
            progress.update(task, total=total, advance=1, people=hi - 1)

        summary = write_population(out_dir, config, progress=on_partition)
    manifest.add_config("synth", {"preset": preset, **{k: str(v) if isinstance(v, Path) else v
                                                       for k, v in overrides.items()}})
    manifest.write()
    elapsed = time.perf_counter() - started
    out = Console()
    table = Table(title=f"Synthetic population in {summary.out_dir}")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("practices", f"{summary.practices:,}")
    table.add_row("people registered at the start", f"{summary.people_start:,}")
    for name, rows in summary.rows.items():
        table.add_row(f"{name} rows", f"{rows:,}")
    table.add_row("seconds", f"{elapsed:.1f}")
    out.print(table)
    calib = Table(title="Calibration (calibration.json)")
    for col in ("target", "wanted", "achieved", ""):
        calib.add_column(col)
    targets = {t["name"]: t for t in summary.calibration["targets"]}
    for name in KEY_TARGETS:
        t = targets[name]
        calib.add_row(name, str(t["target"]), str(t["achieved"]), "[green]pass" if t["pass"] else "[red]fail")
    out.print(calib)
    out.print(f"{summary.calibration['passed']} of {len(targets)} targets met; "
              f"full list in {summary.out_dir / 'calibration.json'}")
    out.print(f"Wrote {summary.out_dir}")
    if extracts_dir is not None:
        from riskcap.ingest.roundtrip import write_extracts

        with Progress(TextColumn("[bold]extracts"), BarColumn(), MofNCompleteColumn(), TextColumn("partitions"),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("extracts", total=None)
            rows = write_extracts(summary.out_dir, extracts_dir, codelists_dir, seed=config.seed,
                                  progress=lambda done, total: progress.update(task, total=total, completed=done))
        extracts_manifest.add_input("population", summary.out_dir)
        extracts_manifest.write()
        out.print(f"Wrote extracts to {extracts_dir}: " + ", ".join(f"{k} {n:,}" for k, n in rows.items()))
