"""The ``riskcap`` command line: a click group whose commands live in riskcap.commands."""
from __future__ import annotations

import errno
import importlib
import sys

import click

from riskcap import __version__
from riskcap.config import ConfigError
from riskcap.io import DataError
from riskcap.manifest import abandon_unfinished
from riskcap.memory import restart_with_reused_memory

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


#: errno values of a full disk or an exhausted quota (EDQUOT is missing on some platforms).
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
#: errno values of a path that cannot be used (permissions, a read-only disk, a file in the way, no such place).
_NOT_USABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG,
               errno.ENOENT, errno.ELOOP}


class RiskcapGroup(click.Group):
    """Turns DataError, ConfigError and a full disk into a clear message and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (DataError, ConfigError) as exc:
            _fail(str(exc))
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                _fail(f"the disk is full ({exc}). Free some space, or write --out to another disk "
                      f"(streamed runs keep their temporary files beside it), and run again.")
            if exc.errno in _NOT_USABLE and exc.filename:
                _fail(f"{exc.filename}: {exc.strerror}. Check the path: inputs must exist and be readable, "
                      f"and --out must be somewhere you can write.")
            raise
        finally:
            abandon_unfinished()  # a failed run's claim on its --out (riskcap.manifest)


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(2)


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
        try:
            module = importlib.import_module(f"riskcap.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"riskcap.commands.{module_name}":
                continue  # area not built yet
            raise
        command = getattr(module, attr, None)
        if command is not None:
            main.add_command(command)


_register()


def run() -> None:
    """The ``riskcap`` program: :data:`main` in a process whose allocators reuse freed memory
    (:mod:`riskcap.memory`)."""
    restart_with_reused_memory()
    main(prog_name="riskcap")
