"""One memory policy for streamed runs: keep freed memory while partitions stream, hand it
back to the operating system before the population-wide steps.

Each partition allocates and frees the same gigabytes. Left to their defaults, the
allocators return large freed blocks at once (glibc unmaps blocks over 32 MB and trims its
heap, arrow's mimalloc purges freed pages, numpy asks for transparent huge pages), so the
next partition faults every page in again, zero-filled by the kernel: slow on virtual
machines whose host reclaims returned memory (docs/scaling.md has the measurements).

:func:`keep_freed_memory` sets, in this process and once, glibc's ``mallopt`` (large blocks
from the heap, the heap never trimmed, grown 256 MB at a time), arrow's default pool to the
system allocator (so arrow's buffers reuse that heap) and numpy's huge-page advice off. The
engines call it where partitions start, in the driver and on every Dask worker.
:func:`release_freed_memory` gives what the partitions freed back before a step that needs
memory for everyone (ranking the scores, reading back the per-person costs).
``RISKCAP_REUSE_MEMORY=0`` leaves the allocators as they are.
"""
from __future__ import annotations

import ctypes
import gc
import os
import sys

#: Set to "0" to leave the allocators' defaults alone.
SWITCH = "RISKCAP_REUSE_MEMORY"

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
#: glibc: grow the heap this much at a time.
TOP_PAD = 256 << 20

_kept = False


def _glibc():
    """glibc's C library, or None on other platforms and C libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # pragma: no cover - no C library to load
        return None


def keep_freed_memory() -> bool:
    """Keep freed memory in this process for the next partition (once; returns whether it is kept)."""
    global _kept
    if _kept or os.environ.get(SWITCH) == "0":
        return _kept
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_MAX, 0)  # large blocks from the heap, not from mmap
        libc.mallopt(_M_TRIM_THRESHOLD, -1)  # never trim the heap
        libc.mallopt(_M_TOP_PAD, TOP_PAD)
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())  # arrow allocates through glibc too: the kept heap
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _set_madvise_hugepage
    _set_madvise_hugepage(False)  # ordinary pages, faulted only as they are used
    _kept = True
    return True


def release_freed_memory() -> None:
    """Hand the memory the partitions freed back to the operating system (before a
    population-wide step, so what was kept does not add to its peak)."""
    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
