"""What every partition of one streamed run shares, as one typed value the engines ship once.

A partition function is ``fn(task, *, run: RunContext, ...)``: ``task`` says which rows
(a :class:`~riskcap.data.read.PersonRange`, or a partition already in memory), ``run`` how to
read, check and score them. Frozen, so no partition can change what the next one sees.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunContext:
    """One run's settings for its partitions.

    ``data_dir`` (absolute, so a Dask worker elsewhere reads the same files), ``on_invalid``,
    ``as_of`` and ``scans`` are :func:`riskcap.data.load.load_partition`'s; ``index_date`` the
    date features are built at. A scoring run adds ``model_files`` (the model's file bytes)
    and ``share`` (the percent of people given reasons),
    see :meth:`riskcap.models.score.ScoresWriter.scoring`. ``scores``: (path, is cost) pairs of
    scores files whose rows a capitation partition joins.
    """

    data_dir: str | None = None
    index_date: Any = None
    on_invalid: str = "reject"
    as_of: Any = None
    scans: dict | None = None
    model_files: dict[str, bytes] | None = None
    share: float = 0.0
    scores: tuple[tuple[str, bool], ...] = ()

    def replace(self, **changes) -> "RunContext":
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)
