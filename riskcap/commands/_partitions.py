"""What the streamed commands share: planning partitions and reporting quarantined rows."""
from __future__ import annotations

import warnings
from pathlib import Path

from rich.console import Console


def plan(data_dir: Path, people: int, console: Console) -> list:
    """:func:`riskcap.partitions.plan_partitions`, its warnings (CSV loaded whole, files
    decoded several times over) printed in yellow."""
    from riskcap.partitions import StreamingFallbackWarning, plan_partitions

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StreamingFallbackWarning)
        parts = plan_partitions(data_dir, people)
    for w in caught:
        console.print(f"[yellow]warning: {w.message}[/yellow]")
    return parts


def write_quarantined(summary, rejects_dir: Path, console: Console) -> None:
    """Write a quarantine run's rejects files to ``rejects_dir`` and say how many rows went there."""
    from riskcap.validate import write_rejects

    write_rejects(summary, rejects_dir)
    quarantined = sum(summary.rows_quarantined.values())
    if quarantined:
        console.print(f"[yellow]{quarantined:,} row(s) quarantined; see {rejects_dir}/[/yellow]")
