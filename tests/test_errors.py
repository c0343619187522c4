"""riskcap.errors: one base with typed subclasses, mapped to exit codes by the command line alone."""
from __future__ import annotations

import errno

import click
import pytest
from click.testing import CliRunner

from riskcap import cli
from riskcap.errors import (ConfigError, DataError, DiskFull, EngineError, EngineUnavailable, LoadRejected,
                            RiskcapError, UnusablePath, as_riskcap_error)

pytestmark = pytest.mark.unit


class _Summary:
    def error_message(self) -> str:
        return "data: 1 problem(s) found"


def test_every_error_is_a_riskcap_error_of_its_own_kind():
    for kind in (DataError, ConfigError, EngineError, DiskFull, UnusablePath):
        assert issubclass(kind, RiskcapError) and kind.exit_code == 2
    assert not issubclass(EngineError, ConfigError) and not issubclass(ConfigError, DataError)
    assert issubclass(EngineUnavailable, EngineError) and issubclass(EngineUnavailable, ImportError)


def test_a_rejected_load_carries_its_summary():
    summary = _Summary()
    exc = LoadRejected(summary)
    assert isinstance(exc, DataError) and exc.summary is summary and str(exc) == "data: 1 problem(s) found"


def test_a_full_disk_and_an_unusable_path_are_riskcap_errors_and_other_os_errors_are_bugs():
    full = as_riskcap_error(OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(full, DiskFull) and "the disk is full" in str(full)
    assert as_riskcap_error(OSError(errno.EACCES, "Permission denied")) is None
    assert as_riskcap_error(ValueError("a bug")) is None
    unusable = as_riskcap_error(PermissionError(errno.EACCES, "Permission denied", "/out/x.csv"))
    assert isinstance(unusable, UnusablePath) and str(unusable).startswith("/out/x.csv: Permission denied.")
    error = ConfigError("x")
    assert as_riskcap_error(error) is error


@pytest.fixture
def failing_command():
    calls = {}

    @click.command("boom")
    @click.argument("kind")
    def boom(kind):
        calls["ran"] = True
        raise {"data": DataError("bad data"), "engine": EngineError("no workers"),
               "bug": KeyError("a bug")}[kind]

    cli.main.add_command(boom)
    yield calls
    cli.main.commands.pop("boom")


@pytest.mark.parametrize("kind,message", [("data", "bad data"), ("engine", "no workers")])
def test_the_command_line_prints_one_line_and_exits_2(failing_command, kind, message):
    result = CliRunner().invoke(cli.main, ["boom", kind])
    assert result.exit_code == 2 and result.output.strip() == f"error: {message}"


def test_a_bug_keeps_its_traceback(failing_command):
    result = CliRunner().invoke(cli.main, ["boom", "bug"])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)


def test_every_listed_command_resolves():
    """A command module that fails to import fails the command line, rather than vanishing from it."""
    for name, _, _, _ in cli.COMMANDS:
        assert cli.main.get_command(None, name).name == name
