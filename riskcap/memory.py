"""Start the ``riskcap`` command with allocators that keep freed memory for reuse.

A whole-population run reads, checks and scores one partition after another, and each
partition allocates and frees the same gigabytes. By default every allocator gives large
freed blocks back at once: glibc unmaps blocks over 32 MB, arrow's mimalloc purges freed
pages after 10 ms and numpy asks for transparent huge pages (arrow is switched to glibc's
allocator, which keeps them). The next partition then faults
every page in again, zero-filled by the kernel. On virtual machines whose host reclaims
returned memory that is slow: profiled here, 60% of ``riskcap score``'s CPU samples were
the kernel clearing pages. :data:`ALLOCATOR_ENVIRONMENT` keeps freed memory in the process
(resident memory stays near its high-water mark instead of shrinking between partitions).

The allocators read these settings when the process starts, so :func:`restart_with_reused_memory`
sets them and re-executes the command once. ``RISKCAP_REUSE_MEMORY=0`` leaves the allocators
as they are; settings already in the environment are kept.
"""
from __future__ import annotations

import os
import sys

#: Allocator settings read at process start (and inherited by Dask workers).
ALLOCATOR_ENVIRONMENT: dict[str, str] = {
    "MALLOC_MMAP_MAX_": "0",  # glibc: large blocks from the heap, not from mmap
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),  # glibc: never shrink the heap
    "MALLOC_TOP_PAD_": str(256 << 20),  # glibc: grow the heap 256 MB at a time
    # arrow: allocate through glibc too (so through the kept heap above). Measured at 1M people,
    # `capitation run baseline --model`: 17.9-18.3 s, 4.0-4.7 s of it system time, against
    # 23.5-25.9 s and 12.7-17.5 s with arrow's default mimalloc (even with the purge delay below)
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    # arrow's mimalloc, if chosen instead: keep freed pages a minute (not forever, so that the
    # explicit release before a run's population-wide steps can still hand them back)
    "MIMALLOC_PURGE_DELAY": "60000",
    "NUMPY_MADVISE_HUGEPAGE": "0",  # numpy: ordinary pages, faulted only as they are used
}

#: "1" once the settings are in place (set before re-executing), "0" to switch them off.
SWITCH = "RISKCAP_REUSE_MEMORY"


def allocator_environment(environ: dict[str, str]) -> dict[str, str] | None:
    """The environment to restart with, or None when ``environ`` needs no restart."""
    if environ.get(SWITCH) in ("0", "1") or not sys.platform.startswith("linux"):
        return None
    return {**ALLOCATOR_ENVIRONMENT, **environ, SWITCH: "1"}


def restart_with_reused_memory() -> None:
    """Re-execute this ``riskcap`` command with :data:`ALLOCATOR_ENVIRONMENT` (once; Linux only)."""
    env = allocator_environment(dict(os.environ))
    if env is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "riskcap", *sys.argv[1:]], env)
