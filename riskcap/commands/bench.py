"""``riskcap bench``: measure riskcap's speed on this machine (people per second, ratios)."""
from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.table import Table

from riskcap.bench import DEFAULT_PEOPLE, DEFAULT_THREADS


_SHORT = {"LightGBM": "lightgbm", "LightGBM pred_contrib": "lightgbm", "scikit-learn": "sklearn"}


def _rate(value) -> str:
    return f"{value:,.0f}" if value else "-"


@click.command("bench")
@click.option("--people", type=click.IntRange(min=100), default=DEFAULT_PEOPLE, show_default=True,
              help="Synthetic people to generate (in a temporary folder) and run every stage on.")
@click.option("--threads", type=click.IntRange(min=1), default=DEFAULT_THREADS, show_default=True,
              help="Threads for riskcap's kernels and LightGBM alike.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed runs per side of each comparison; the best is kept.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every number (per-stage people/s, ratios, differences, peak memory) as JSON.")
def bench(people, threads, repeats, json_path):
    """Measure how fast riskcap runs here, and check the fast paths agree with the baselines.

    Generates a synthetic population, then times feature building, gbm scoring (riskcap's
    tree scorer vs LightGBM's own predict), gbm reasons (riskcap's TreeSHAP vs LightGBM's
    pred_contrib), logistic scoring (riskcap vs scikit-learn) and capitation (need groups,
    tariffs and budgets, checked to add up to the envelope) on the same people and threads.
    Prints people per second, speed-ups and the largest differences.

    \b
    Example:
        riskcap bench --people 200000 --threads 2 --json bench.json
    """
    from riskcap.bench import run_bench
    from riskcap.data.write import write_json
    from riskcap.manifest import claim_file, json_with_keys

    if json_path is not None:  # replaces only an earlier bench's results, checked before the work
        claim_file(json_path, json_with_keys("stages", "threads"), "bench results file")

    err = Console(stderr=True)
    results = run_bench(people=people, threads=threads, repeats=repeats,
                        progress=lambda name: err.print(f"[dim]bench: {name}...[/dim]"))
    table = Table(title=f"riskcap bench: {people:,} people, {results['threads']} thread(s), best of {repeats}",
                  box=box.SIMPLE_HEAD)
    for col in ("stage", "people/s", "vs", "people/s ", "ratio", "max|diff|", "peak MB"):
        table.add_column(col, justify="left" if col in ("stage", "vs") else "right", no_wrap=True)
    for s in results["stages"]:
        available = s.get("available", True)
        diff = s.get("max_abs_diff")
        table.add_row(s["stage"].replace("_scoring", "").replace("_", " "),
                      _rate(s.get("people_per_second")) if available else "n/a",
                      _SHORT.get(s.get("baseline"), s.get("baseline", "")), _rate(s.get("baseline_people_per_second")),
                      f"{s['speedup']:.1f}x" if s.get("speedup") and available else "-",
                      f"{diff:.1e}" if diff is not None else "-", f"{s['peak_rss_mb']:,.0f}")
    Console().print(table)
    cap = next(s for s in results["stages"] if s["stage"] == "capitation")
    Console().print(f"capitation: grouping + tariffs + budgets, {cap['envelope_minus_budgets_pence']} pence short of "
                    f"the envelope; the whole capitation run on the tables (features, settlement) ran at "
                    f"{_rate(cap['run_people_per_second'])} people/s")
    if json_path is not None:
        write_json(results, json_path)
        Console().print(f"wrote {json_path}")
