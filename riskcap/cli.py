"""The ``riskcap`` command line: a click group whose commands live in riskcap.commands."""
from __future__ import annotations

import importlib
import sys

import click

from riskcap import __version__
from riskcap.errors import as_riskcap_error

#: (module in riskcap.commands, attribute) of every command, in --help order.
COMMANDS: list[tuple[str, str]] = [
    ("demo", "demo"),
    ("synth", "synth"),
    ("data", "validate"),
    ("model", "train"),
    ("model", "evaluate"),
    ("model", "score"),
    ("casefind", "casefind"),
    ("capitation", "capitation"),
    ("report", "report"),
    ("report", "verify"),
    ("bench", "bench"),
]


class RiskcapGroup(click.Group):
    """Turns every :class:`~riskcap.errors.RiskcapError` (a full disk included) into one red line
    and its exit code; anything else is a bug and keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            error = as_riskcap_error(exc)
            if error is None:
                raise
            click.secho(f"error: {error}", fg="red", err=True)
            sys.exit(error.exit_code)


@click.group(cls=RiskcapGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="riskcap")
def main():
    """Risk stratification and Year of Care capitation for GP populations.

    Score every registered person for the risk of an emergency admission in the next
    12 months, build case-finding lists for multidisciplinary teams, and set
    risk-adjusted capitation budgets per practice.

    \b
    Example (the whole job on a synthetic ICB):
        riskcap demo --out demo-run
    """


def _register() -> None:
    for module_name, attr in COMMANDS:
        main.add_command(getattr(importlib.import_module(f"riskcap.commands.{module_name}"), attr))


_register()


def run() -> None:
    """The ``riskcap`` program."""
    main(prog_name="riskcap")
