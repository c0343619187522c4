"""The ``riskcap`` command line: a click group whose commands live in riskcap.commands."""
from __future__ import annotations

import importlib
import sys

import click

from riskcap import __version__
from riskcap.errors import as_riskcap_error

#: Every command, in --help order: (name, module in riskcap.commands, attribute, its short help).
#: The short help is repeated here so that ``riskcap --help`` lists the commands without importing
#: them (their modules import pandas and numba); tests/test_cli_help.py checks it matches each
#: command's own first sentence.
COMMANDS: list[tuple[str, str, str, str]] = [
    ("demo", "demo", "demo", "Run the whole job on a synthetic ICB and write a report."),
    ("synth", "synth", "synth", "Generate a synthetic registered population with known true risks."),
    ("import", "ingest", "import_command",
     "Import GP, hospital and community extracts into a data folder of the contract."),
    ("validate", "data", "validate", "Check a data folder against the data contract (docs/data-contract.md)."),
    ("train", "model", "train", "Train a model at an index date and write a model directory."),
    ("evaluate", "model", "evaluate",
     "Evaluate a model at an index date: discrimination, calibration, top-N, subgroups."),
    ("score", "model", "score",
     "Score a whole population: probability, 0-100 score, tier, percentile and reasons."),
    ("casefind", "casefind", "casefind",
     "Case-finding lists: each practice's people most at risk of an emergency admission."),
    ("capitation", "capitation", "capitation",
     "Year of Care capitation: need groups, tariffs, practice budgets, settlement."),
    ("report", "report", "report", "Rebuild the commissioner report and the finance workbook from a run's outputs."),
    ("verify", "report", "verify", "Check a run's outputs against its manifest.json: verified, or every problem."),
    ("bench", "bench", "bench",
     "Measure how fast riskcap runs here, and check the fast paths agree with the baselines."),
]


class RiskcapGroup(click.Group):
    """Imports a command's module only when that command runs (so ``--help`` starts fast), and
    turns every :class:`~riskcap.errors.RiskcapError` (a full disk or an unusable path included)
    into one red line and its exit code; anything else is a bug and keeps its traceback. A run
    that failed gives up its claim on its --out folder."""

    def list_commands(self, ctx):
        return [name for name, *_ in COMMANDS] + sorted(set(self.commands) - {name for name, *_ in COMMANDS})

    def get_command(self, ctx, name):
        if name not in self.commands:
            found = [(module, attr) for command, module, attr, _ in COMMANDS if command == name]
            if not found:
                return None
            module, attr = found[0]
            self.add_command(getattr(importlib.import_module(f"riskcap.commands.{module}"), attr), name)
        return self.commands[name]

    def format_commands(self, ctx, formatter):
        rows = [(name, short_help) for name, _, _, short_help in COMMANDS]
        rows += [(name, self.commands[name].get_short_help_str()) for name in self.list_commands(ctx)[len(COMMANDS):]]
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(name, click.utils.make_default_short_help(text, limit)) for name, text in rows])

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            error = as_riskcap_error(exc)
            if error is None:
                raise
            click.secho(f"error: {error}", fg="red", err=True)
            sys.exit(error.exit_code)
        finally:
            manifest = sys.modules.get("riskcap.manifest")  # only a command that imported it claimed a folder
            if manifest is not None:
                manifest.abandon_unfinished()  # a failed run's claim on its --out


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


def run() -> None:
    """The ``riskcap`` program."""
    main(prog_name="riskcap")
