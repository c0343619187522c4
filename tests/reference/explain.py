"""Twin of :mod:`riskcap.models.explain`'s kernel: each person's strongest reasons."""
from __future__ import annotations

import numpy as np


def reason_picks(contributions, reason_of, present, k: int) -> np.ndarray:
    """:func:`riskcap.models.explain.reason_picks` the obvious way: reason totals, a mask, then
    repeated argmax."""
    contributions = np.asarray(contributions, dtype=np.float64)
    n, R = contributions.shape[0], present.shape[0]
    totals = np.zeros((R, n))
    for j, g in enumerate(reason_of):
        if g >= 0:
            totals[g] += contributions[:, j]
    score = np.where(present & (totals > 0), totals, -np.inf)
    out = np.full((k, n), -1, dtype=np.int64)
    for rank in range(k):
        if not R:
            break
        best = np.argmax(score, axis=0)
        has = score[best, np.arange(n)] > -np.inf
        out[rank, has] = best[has]
        score[best[has], np.flatnonzero(has)] = -np.inf
    return out
