"""Engines that stream partitions of a population through the same pure stage functions.

Every whole-population command is written as *map a partition function over partition
tasks, then combine the results in task order on the driver*:

    engine = get_engine(name, scheduler)           # "local" or "dask"
    for result in engine.map(fn, tasks, run=context):
        combine(result)                            # results arrive in the order of tasks

- ``fn(task, **shared)`` is a module-level function of plain, picklable arguments: the task
  (a :class:`riskcap.data.read.PersonRange`, or a partition in memory) and, by name, the
  run's shared values, above all its :class:`~riskcap.stream.context.RunContext` (paths,
  dates, checking, model file bytes). It reads its own partition and returns a small result
  (a frame or arrays); it never writes outputs.
- ``shared`` values are the same for every task; an engine ships them to its workers once.
- Outputs are written by the driver only, atomically, after the last result: a failed run
  leaves no partial output, and because results are combined in task order the answer does
  not depend on the engine, the number of workers or which worker ran which task.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from riskcap.errors import ConfigError
from riskcap.stream.memory import keep_freed_memory

ENGINES = ("local", "dask")


class LocalEngine:
    """Run partition tasks one after another in this process (bounded memory: one at a time)."""

    name = "local"

    def map(self, fn: Callable[..., Any], tasks: Sequence[Any], **shared) -> Iterator[Any]:
        """Yield ``fn(task, **shared)`` for each task, in task order, lazily."""
        keep_freed_memory()
        for task in tasks:
            yield fn(task, **shared)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def get_engine(name: str = "local", scheduler: str | None = None):
    """The engine called ``name``: ``local``, or ``dask`` (``scheduler`` address, or a local cluster)."""
    if name == "local":
        if scheduler:
            raise ConfigError("--scheduler is only used with --engine dask")
        return LocalEngine()
    if name == "dask":
        from riskcap.stream.dask import DaskEngine  # noqa: PLC0415 - optional extra

        return DaskEngine(scheduler)
    raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
