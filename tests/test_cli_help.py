"""Every command and subcommand has help text with an example."""
import click
import pytest
from click.testing import CliRunner

from riskcap.cli import main


def _walk(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, prefix + (name,))


def test_root_help():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


@pytest.mark.parametrize("path,cmd", list(_walk(main)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_has_help_with_example(path, cmd):
    assert cmd.help and cmd.help.strip(), f"riskcap {' '.join(path)} has no help text"
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output or "example" in result.output, f"riskcap {' '.join(path)} --help has no example"
