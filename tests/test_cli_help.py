"""Every command and subcommand has help text with an example; ``riskcap --help`` starts fast."""
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from riskcap.cli import COMMANDS, main


def _walk(group: click.Group, prefix=()):
    for name in group.list_commands(None):
        cmd = group.get_command(None, name)
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


@pytest.mark.parametrize("name,short_help", [(name, text) for name, _, _, text in COMMANDS])
def test_listed_short_help_is_the_commands_own(name, short_help):
    """cli.COMMANDS repeats each command's short help so --help need not import it: keep them equal."""
    assert main.get_command(None, name).get_short_help_str(limit=10**6) == short_help


def test_root_help_imports_no_command_module():
    """The listing comes from cli.COMMANDS: no pandas, numba or command module is imported."""
    probe = ("import sys; from riskcap.cli import main\n"
             "try: main(['--help'], prog_name='riskcap')\n"
             "except SystemExit: pass\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'numba', 'pyarrow')"
             " or m.startswith('riskcap.commands')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
