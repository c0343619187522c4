"""What the commands share besides their options: the index date chosen, planning partitions, quarantined
rows, the scores table."""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

from rich.console import Console


def chosen_index_date(stage: str, data_dir: Path, given, console: Console):
    """The index date ``stage`` runs at (``given``, else its default from the data), printed with why."""
    from riskcap.data.dates import index_date_for

    index = index_date_for(stage, data_dir, given)
    console.print(f"index date {index}")
    return index


def plan(data_dir: Path, people: int, console: Console) -> list:
    """:func:`riskcap.stream.plan.plan_partitions`, its warnings (CSV loaded whole, files
    decoded several times over) printed in yellow."""
    from riskcap.stream.plan import plan_partitions, StreamingFallbackWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StreamingFallbackWarning)
        parts = plan_partitions(data_dir, people)
    for w in caught:
        console.print(f"[yellow]warning: {w.message}[/yellow]")
    return parts


@contextlib.contextmanager
def partition_progress(console: Console):
    """A transient progress bar per stage of a streamed run; yields ``progress(stage, done, total)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        tasks = {}

        def progress(stage, done, total):
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{stage} partitions", total=total)
            bar.update(tasks[stage], completed=done)

        yield progress


def write_quarantined(summary, rejects_dir: Path, console: Console) -> None:
    """Write a quarantine run's rejects files to ``rejects_dir`` and say how many rows went there."""
    from riskcap.data.load import write_rejects

    write_rejects(summary, rejects_dir)
    quarantined = sum(summary.rows_quarantined.values())
    if quarantined:
        console.print(f"[yellow]{quarantined:,} row(s) quarantined; see {rejects_dir}/[/yellow]")


def scored_table(scored, title: str):
    """A rich table of what a scores file holds: people per tier (cost model: expected cost)."""
    from rich.table import Table

    from riskcap.capitation.money import gbp
    from riskcap.tiers import load_pyramid

    table = Table(title=title)
    if scored.kind == "cost":
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("mean expected cost (GBP)", gbp(scored.expected_cost_gbp / max(scored.people, 1), symbol=""))
        table.add_row("total expected cost (GBP)", gbp(scored.expected_cost_gbp, symbol=""))
        return table
    for c in ("tier", "people", "mean probability", "lowest score"):
        table.add_column(c, justify="left" if c == "tier" else "right")
    for name in load_pyramid().names:
        if name in scored.tiers:
            people, probability, lowest = scored.tiers[name]
            table.add_row(name, f"{people:,}", f"{probability / people:.3f}", f"{lowest}")
    return table
