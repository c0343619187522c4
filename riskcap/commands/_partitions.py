"""What the commands share: the date type, --index-date, planning partitions, quarantined rows, scoring."""
from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import click
from rich.console import Console

from riskcap.stream.engines import ENGINES


class _IsoDate(click.ParamType):
    """A calendar date written YYYY-MM-DD, given to the command as a ``datetime.date``."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date written YYYY-MM-DD", param, ctx)


DATE = _IsoDate()


def engine_options(f):
    """The ``--engine`` and ``--scheduler`` options shared by the whole-population commands."""
    f = click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="Dask scheduler address (e.g. tcp://10.0.0.5:8786); with --engine dask and no "
                          "address a local cluster is started on this machine.")(f)
    f = click.option("--engine", "engine_name", type=click.Choice(ENGINES), default="local", show_default=True,
                     help="local: partitions one after another in this process; dask: on a Dask cluster "
                          "(pip install 'riskcap[dask]'). Same answer either way.")(f)
    return f

#: What --index-date means to each stage, and its default (riskcap.data.dates.YEARS_BEFORE_END).
_INDEX_HELP = {
    "train": "Features look back from this date; the label is the 12 months from it. "
             "Default: two years before the data's end.",
    "evaluate": "Evaluate on people at this date and their next 12 months (later than training: temporal "
                "validation). Default: one year before the data's end.",
    "score": "Score everyone registered and alive on this date (features look back from it). "
             "Default: the data's end.",
    "capitation": "Group people registered at this date; base year = the 12 months before it, outcome year = "
                  "the 365 days from it. Default: one year before the data's end.",
    "casefind": "List date. Default: the scores' index date, else the data's end.",
}
_DATA_END = ("The data's end is the extract date in DATA/extract.json, else the day after the last "
             "recorded activity.")


def index_date_option(stage: str):
    """``--index-date`` of ``stage`` (its meaning and data-derived default in the help)."""
    return click.option("--index-date", type=DATE, default=None, help=f"{_INDEX_HELP[stage]} {_DATA_END}")


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


def write_quarantined(summary, rejects_dir: Path, console: Console) -> None:
    """Write a quarantine run's rejects files to ``rejects_dir`` and say how many rows went there."""
    from riskcap.data.load import write_rejects

    write_rejects(summary, rejects_dir)
    quarantined = sum(summary.rows_quarantined.values())
    if quarantined:
        console.print(f"[yellow]{quarantined:,} row(s) quarantined; see {rejects_dir}/[/yellow]")


def reasons_for_option(f):
    """``--reasons-for PERCENT`` of the commands that score a population."""
    return click.option("--reasons-for", type=click.FloatRange(0, 100), default=None, metavar="PERCENT",
                        help="Give the top PERCENT of people (by risk) their 3 reasons; 0 = nobody. Default: "
                             "everyone for logistic; the top 20% (rising risk and above) for gbm, whose "
                             "contributions cost as much as scoring.")(f)


def scored_table(scored, title: str):
    """A rich table of what a scores file holds: people per tier (cost model: expected cost)."""
    from rich.table import Table

    from riskcap.tiers import load_pyramid

    table = Table(title=title)
    if scored.kind == "cost":
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("mean expected cost (GBP)", f"{scored.expected_cost_gbp / max(scored.people, 1):,.0f}")
        table.add_row("total expected cost (GBP)", f"{scored.expected_cost_gbp:,.0f}")
        return table
    for c in ("tier", "people", "mean probability", "lowest score"):
        table.add_column(c, justify="left" if c == "tier" else "right")
    for name in load_pyramid().names:
        if name in scored.tiers:
            people, probability, lowest = scored.tiers[name]
            table.add_row(name, f"{people:,}", f"{probability / people:.3f}", f"{lowest}")
    return table
