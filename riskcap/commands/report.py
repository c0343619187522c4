"""``riskcap report`` (rebuild a run's HTML report and workbook) and ``riskcap verify``."""
from __future__ import annotations

import sys
from pathlib import Path

import click

_RUN_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("report")
@click.argument("run_dir", type=_RUN_DIR)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write (default RUN_DIR/report.html); the workbook goes beside it as workbook.xlsx.")
def report(run_dir: Path, out_path: Path | None):
    """Rebuild the commissioner report and the finance workbook from a run's outputs.

    Reads RUN_DIR (written by `riskcap demo`): data/, evaluation/*/metrics.json,
    scores.parquet, casefinding/ and capitation/. Writes one self-contained HTML file
    (charts embedded, each with a one-line reading; no network needed) and an Excel
    workbook (a budget sheet per scenario, comparison, tariffs, settlement, assumptions).
    Parts the run did not produce are marked "not run". The same outputs give
    byte-identical files, so a rebuilt report still passes `riskcap verify`.
    Prints the paths written.

    \b
    Example:
        riskcap report demo-run
        riskcap report demo-run --out /tmp/review/report.html
    """
    from rich.console import Console

    from riskcap.report import build_report

    files = build_report(run_dir, out_path)
    if files.sections_not_run:
        Console(stderr=True).print(f"[yellow]not run: {', '.join(files.sections_not_run)}[/yellow]")
    click.echo(str(files.report))
    click.echo(str(files.workbook))


@click.command("verify")
@click.argument("run_dir", type=_RUN_DIR)
def verify(run_dir: Path):
    """Check a run's outputs against its manifest.json: verified, or every problem.

    Re-hashes every output file recorded in RUN_DIR/manifest.json and reports files that
    are missing, changed (size or SHA-256 differs) or not produced by the run, and runs that
    did not finish. Only regular files inside RUN_DIR are checked. Exit code 0 when
    verified, 2 when there is any problem.

    \b
    Example:
        riskcap verify demo-run
    """
    from riskcap.manifest import leftovers, verify_run

    problems = verify_run(run_dir)
    left = leftovers(run_dir)
    if left:
        click.echo(f"note: {len(left)} temporary file(s) left by interrupted writes (not outputs; safe to delete): "
                   f"{', '.join(left[:5])}", err=True)
    if not problems:
        click.echo(f"verified: every output in {run_dir} matches its manifest")
        return
    for problem in problems:
        click.echo(problem)
    click.secho(f"{len(problems)} problem(s) in {run_dir}", fg="red", err=True)
    sys.exit(2)
