"""How many threads the capitation kernels use.

The kernels are ``prange`` loops split statically over numba's threads, so a parallel region
lasts as long as its slowest thread. On an idle machine two threads nearly halve the time; on
a busy one (more runnable processes than cores) each thread waits for a core and OpenMP's
spinning workers waste CPU, and one thread is about twice as fast as two (measured: 0.20 s
against 0.46 s for 10 million people at load average 4.5 on 2 cores). So the kernels use
numba's threads only for large inputs and only when the machine has an idle core; otherwise
they run on the calling thread. Results do not depend on the thread count (integer sums).
``NUMBA_NUM_THREADS`` still caps the number of threads.
"""
from __future__ import annotations

import contextlib
import os

import numba

PARALLEL_MIN = 200_000  #: people (or values) below which kernels always run single-threaded


def idle_cores() -> float:
    """Cores available to this process minus the 1-minute load average (>= 0)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - no load average on this platform
        return float(cores)
    return max(0.0, cores - load)


def use_threads(n: int) -> bool:
    """Whether kernels over ``n`` items should use all of numba's threads."""
    return n >= PARALLEL_MIN and numba.get_num_threads() > 1 and idle_cores() >= 1


@contextlib.contextmanager
def kernel_threads(n: int):
    """Run the enclosed kernels on numba's threads when :func:`use_threads`, else on one thread."""
    if use_threads(n):
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
