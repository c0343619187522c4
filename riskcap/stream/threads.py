"""How many threads numba's kernels and the BLAS libraries use: one policy, one way of setting each.

The parallel kernels (features, need groups, capitation sums, the tree scorer and TreeSHAP)
split their work statically over numba's threads. :func:`numba_threads` is the one way
riskcap sets that number, for the enclosed block, and :func:`kernel_threads` the policy for
kernels whose work grows with a partition: all of numba's threads from
:data:`PARALLEL_MIN` items, one below it, where starting threads costs more than it saves.
``NUMBA_NUM_THREADS`` caps the threads (a Dask task runs on one: parallelism comes from
the workers). Results never depend on the thread count. :func:`blas_threads` does the same
for the BLAS/OpenMP pools scikit-learn's numpy maths runs on.
"""
from __future__ import annotations

import contextlib

import numba

PARALLEL_MIN = 200_000  #: items (people or rows) below which a kernel runs on one thread


@contextlib.contextmanager
def numba_threads(threads: int | None):
    """Run the enclosed kernels on ``threads`` of numba's threads (capped by ``NUMBA_NUM_THREADS``;
    None: as they are), then restore the number. Yields the number in use."""
    previous = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield numba.get_num_threads()
    finally:
        numba.set_num_threads(previous)


def use_threads(n: int) -> bool:
    """Whether a kernel over ``n`` items uses all of numba's threads."""
    return n >= PARALLEL_MIN and numba.get_num_threads() > 1


def kernel_threads(n: int):
    """The threads a kernel over ``n`` items runs on (:func:`use_threads`), for the enclosed block."""
    return numba_threads(None if use_threads(n) else 1)


@contextlib.contextmanager
def blas_threads(threads: int):
    """Run the enclosed numpy/scikit-learn maths on at most ``threads`` BLAS/OpenMP threads."""
    from threadpoolctl import threadpool_limits  # noqa: PLC0415  (imported only when fitting)

    with threadpool_limits(limits=threads):
        yield
