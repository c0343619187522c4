"""The high-cost tail, found exactly: the k-th smallest person cost (the individual cap's
nearest-rank percentile) and everyone above a threshold with their practice x group cells
(the excess a cap or stop-loss takes out), by parallel numba counting and gathering in
blocks, so a percentile of millions of people is not a full sort."""
from __future__ import annotations

import numba
import numpy as np

from riskcap.stream.threads import kernel_threads

_SELECT_BLOCK = 65536
SAMPLE_ABOVE = 200_000  #: arrays larger than this find percentiles by sampling (exactly)


@numba.njit(parallel=True, cache=True)
def _count_blocks(values, lo, hi):  # pragma: no cover - compiled
    """Per block of people: how many values are < lo, and how many are in [lo, hi]."""
    n = values.shape[0]
    n_blocks = (n + _SELECT_BLOCK - 1) // _SELECT_BLOCK
    below = np.zeros(n_blocks, dtype=np.int64)
    within = np.zeros(n_blocks, dtype=np.int64)
    for b in numba.prange(n_blocks):
        v = values[b * _SELECT_BLOCK:min(n, (b + 1) * _SELECT_BLOCK)]
        n_below = 0
        n_within = 0
        for i in range(v.shape[0]):
            n_below += v[i] < lo
            n_within += (v[i] >= lo) & (v[i] <= hi)
        below[b] = n_below
        within[b] = n_within
    return below, within


@numba.njit(parallel=True, cache=True)
def _gather_blocks(values, cells, lo, hi, offsets, values_out, cells_out):  # pragma: no cover - compiled
    """Copy values in [lo, hi] (and their cells, if given) to the outputs, block b from offsets[b]."""
    n = values.shape[0]
    n_blocks = offsets.shape[0]
    with_cells = cells.shape[0] == n
    for b in numba.prange(n_blocks):
        start = b * _SELECT_BLOCK
        v = values[start:min(n, start + _SELECT_BLOCK)]
        j = offsets[b]
        for i in range(v.shape[0]):
            x = v[i]
            if lo <= x and x <= hi:
                values_out[j] = x
                if with_cells:
                    cells_out[j] = cells[start + i]
                j += 1


def values_between(values: np.ndarray, lo: int, hi: int, cells: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Values with ``lo <= value <= hi`` in their order, their cells, and how many are below ``lo``."""
    with kernel_threads(values.size):
        below, within = _count_blocks(values, lo, hi)
        offsets = np.concatenate(([0], np.cumsum(within)[:-1])).astype(np.int64)
        total = int(within.sum())
        cells_in = np.zeros(0, dtype=np.int32) if cells is None else cells
        values_out = np.empty(total, dtype=values.dtype)
        cells_out = np.empty(total if cells is not None else 0, dtype=cells_in.dtype)
        _gather_blocks(values, cells_in, lo, hi, offsets, values_out, cells_out)
    return values_out, cells_out, int(below.sum())


def select_tail(values: np.ndarray, k: int, cells: np.ndarray | None = None, sample_above: int | None = None
                ) -> tuple[int, tuple | None]:
    """The k-th smallest (1-based) of int64 ``values``, exactly, and the tail it was found in.

    Large arrays: a systematic sample gives a value ``lo`` just below the answer; everyone
    with a value >= ``lo`` is counted and gathered (with their cells) in parallel and the
    answer selected among them. The counts prove whether ``lo`` was low enough; if not, or
    for small arrays, this falls back to ``numpy.partition`` (and returns no tail).

    Returns
    -------
    (value, tail)
        ``tail`` is ``(threshold, cells, values)`` of everyone whose value exceeds
        ``threshold`` (= lo - 1), reusable for excess above any cap >= lo; or None.
    """
    n = values.size
    if not 1 <= k <= n:
        raise ValueError(f"k={k} out of range for {n} values")
    if n > (SAMPLE_ABOVE if sample_above is None else sample_above):
        sample = np.sort(values[:: max(1, n // 100_000)])
        m = sample.size
        lo = int(sample[max(0, (k - 1) * m // n - m // 200 - 50)])
        inside, inside_cells, below = values_between(values, lo, np.iinfo(np.int64).max, cells)
        if below < k:
            value = int(np.partition(inside, k - below - 1)[k - below - 1])
            return value, (lo - 1, inside_cells, inside)
    return int(np.partition(values, k - 1)[k - 1]), None
