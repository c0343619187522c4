"""riskcap.memory: the command restarts once with allocators that keep freed memory."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from riskcap import __version__
from riskcap.memory import ALLOCATOR_ENVIRONMENT, SWITCH, allocator_environment

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the restart is for glibc on Linux")


@linux_only
def test_the_restart_adds_each_setting_but_keeps_the_users():
    env = allocator_environment({"PATH": "/bin", "MIMALLOC_PURGE_DELAY": "250"})
    assert env["PATH"] == "/bin" and env["MIMALLOC_PURGE_DELAY"] == "250" and env[SWITCH] == "1"
    assert all(env[k] == v for k, v in ALLOCATOR_ENVIRONMENT.items() if k != "MIMALLOC_PURGE_DELAY")


@pytest.mark.parametrize("switch", ["0", "1"])
def test_no_restart_when_switched_off_or_already_restarted(switch):
    assert allocator_environment({SWITCH: switch}) is None


@linux_only
def test_the_command_runs_once_more_with_the_settings(tmp_path):
    """Every Python process started prints its setting (sitecustomize): the command's first
    process has none, the one it re-executes has them, and the command's output is whole."""
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys\nprint('glibc mmap max:', os.environ.get('MALLOC_MMAP_MAX_'), file=sys.stderr)\n")
    (tmp_path / "pool.py").write_text("import pyarrow, sys\n"
                                      "print('arrow pool:', pyarrow.default_memory_pool().backend_name, file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENVIRONMENT and k != SWITCH}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "riskcap", "--version"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"riskcap, version {__version__}\n"
    assert done.stderr.splitlines() == ["glibc mmap max: None", "glibc mmap max: 0"]
    env_run = {**env, **allocator_environment(env)}  # arrow, started under the settings, allocates through glibc
    done = subprocess.run([sys.executable, str(tmp_path / "pool.py")], env=env_run, capture_output=True, text=True)
    assert done.stderr.splitlines()[-1] == "arrow pool: system", done.stderr
    env[SWITCH] = "0"
    done = subprocess.run([sys.executable, "-m", "riskcap", "--version"], env=env, capture_output=True, text=True)
    assert done.stderr.splitlines() == ["glibc mmap max: None"]
