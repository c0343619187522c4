"""riskcap.stream.memory: freed memory kept while partitions stream, set in the process itself."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from riskcap import __version__
from riskcap.stream.memory import SWITCH

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the policy sets glibc's allocator")

#: Frees a 64 MB array and prints how much resident memory that gave back, and arrow's pool.
_PROBE = """
import numpy as np, pyarrow as pa
from riskcap.stream.memory import keep_freed_memory, release_freed_memory
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
kept = keep_freed_memory()
a = np.ones(64 << 17)  # 64 MB, every page touched
before = rss(); del a; after = rss()
release_freed_memory(); released = rss()
print(kept, pa.default_memory_pool().backend_name, (before - after) >> 20, (after - released) >> 20)
"""


def _probe(env_extra: dict) -> list[str]:
    env = {**os.environ, **env_extra}
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@linux_only
def test_freed_memory_is_kept_until_released():
    kept, pool, given_back, released = _probe({SWITCH: "1"})
    assert (kept, pool) == ("True", "system")
    assert int(given_back) < 8 and int(released) >= 56  # kept when freed; handed back by the release


@linux_only
def test_the_switch_leaves_the_allocators_alone():
    kept, pool, given_back, _ = _probe({SWITCH: "0"})
    assert kept == "False" and pool != "system"
    assert int(given_back) >= 56  # glibc's default: a large block is unmapped when freed


def test_the_command_runs_in_one_process_with_its_interpreter_flags(tmp_path):
    """No restart: a sitecustomize prints once per Python process, and -X flags reach the command."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nprint('python started, dev mode', sys.flags.dev_mode, file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-X", "dev", "-m", "riskcap", "--version"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"riskcap, version {__version__}\n"
    assert [line for line in done.stderr.splitlines() if line.startswith("python started")] == \
        ["python started, dev mode True"]
