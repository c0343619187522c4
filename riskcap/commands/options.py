"""The options several commands share, each defined once with one help text (as ``sqlite-utils`` does).

Command modules decorate with these; the command line's ``--help`` imports none of them.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from riskcap.data.parse import ON_INVALID
from riskcap.stream.engines import ENGINES
from riskcap.stream.plan import PARTITION_PEOPLE


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


def reasons_for_option(f):
    """``--reasons-for PERCENT`` of the commands that score a population."""
    return click.option("--reasons-for", type=click.FloatRange(0, 100), default=None, metavar="PERCENT",
                        help="Give the top PERCENT of people (by risk) their 3 reasons; 0 = nobody. Default: "
                             "everyone for logistic; the top 20% (rising risk and above) for gbm, whose "
                             "contributions cost as much as scoring.")(f)


def data_option(f):
    """``--data DIR``: the data folder a command reads."""
    return click.option("--data", "data_dir", required=True,
                        type=click.Path(exists=True, file_okay=False, path_type=Path),
                        help="Data folder: practices, persons, conditions and activity (.parquet, dataset dir or "
                             ".csv), as docs/data-contract.md describes.")(f)


def on_invalid_option(f):
    """``--on-invalid reject|quarantine``: what a command does with rows that break the data contract."""
    return click.option("--on-invalid", type=click.Choice(ON_INVALID), default="reject", show_default=True,
                        help="reject: any data problem fails, listing every problem; quarantine: set bad rows aside "
                             "in rejects files, with their reasons, and carry on.")(f)


def partition_people_option(default: int | None = PARTITION_PEOPLE):
    """``--partition-people N``: how many people a command holds in memory at a time."""
    return click.option("--partition-people", type=click.IntRange(min=1), default=default,
                        show_default=default is not None,
                        help="People per partition: read, checked and processed one partition at a time, so "
                             "memory is bounded by one partition.")


def model_dir_option(f):
    """``--model DIR``: a model trained by ``riskcap train``."""
    return click.option("--model", "model_dir", required=True,
                        type=click.Path(exists=True, file_okay=False, path_type=Path),
                        help="Model directory from 'riskcap train'.")(f)
