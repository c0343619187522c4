"""The Dask engine: partition tasks on a Dask cluster, results back in task order.

``DaskEngine(address)`` connects to a running scheduler; ``DaskEngine(None)`` starts a
:class:`distributed.LocalCluster` on loopback (worker processes, one thread each) and closes
it with the engine. :meth:`DaskEngine.map` keeps the contract of :mod:`riskcap.stream.engines`:

- ``shared`` values are scattered to every worker (broadcast) once per distinct content for
  the engine's life, and reach each task as the worker's own copy, never pickled per task;
- at most ``max_in_flight`` tasks are submitted ahead of the one being consumed, so the
  driver holds a bounded number of results;
- a task that raises re-raises the same exception type and message on the driver;
- a task whose worker dies is rerun elsewhere by the scheduler (``allowed_failures`` times);
  after that, or when no worker is left for ``no_workers_timeout`` seconds, the map raises
  :class:`~riskcap.stream.engines.EngineError` naming the task;
- a task the scheduler cancels because a shared value was lost with the worker that held it
  is resubmitted with the value scattered again (:data:`RESUBMITS` times);
- each task runs with one numba thread and the streaming memory policy, and local workers
  are spawned (numba's OpenMP layer is not fork-safe) with ``OMP_NUM_THREADS`` set to 1.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from typing import Any

from riskcap.errors import INSTALL_DASK, EngineError, EngineUnavailable
from riskcap.stream.memory import keep_freed_memory
from riskcap.stream.threads import numba_threads

try:
    import dask
    from dask.base import tokenize
    from distributed import Client, KilledWorker, LocalCluster
except ImportError as exc:  # pragma: no cover - exercised with the import blocked
    raise EngineUnavailable(f"--engine dask needs Dask, which is not installed ({exc}): {INSTALL_DASK}") from exc

#: Environment of local worker processes: one thread per task for OpenMP and BLAS. numba's
#: threads are set by each task (:func:`_run_task`): a worker may import numba before the
#: nanny sets this environment (spawn re-imports the driver's script), and numba refuses a
#: ``NUMBA_NUM_THREADS`` that changes after its threads start.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
#: Times a task may lose its worker before the run fails (local clusters; a remote scheduler
#: uses its own ``distributed.scheduler.allowed-failures``).
ALLOWED_FAILURES = 3
#: Packages whose versions must be the same on the driver and every worker.
ANSWER_PACKAGES = ("riskcap", "numpy", "pandas", "pyarrow", "numba", "lightgbm")
CONNECT_TIMEOUT = 30  #: seconds to reach a scheduler and see at least one worker
#: Seconds a run waits with no worker at all (dead workers not replaced) before it fails.
NO_WORKERS_TIMEOUT = 60
_POLL = 1.0  # seconds between checks for workers while waiting for a result
#: Times a task cancelled for a lost shared value is resubmitted before the map gives up.
RESUBMITS = 2

# Worker processes are started by nannies in this process, also when they restart a dead
# worker, so the start method is set for the process rather than around the cluster's start.
dask.config.set({"distributed.worker.multiprocessing-method": "spawn"})


def _versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide the answer (None: not installed)."""
    versions = {}
    for package in ANSWER_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _run_task(fn: Callable[..., Any], task: Any, shared: dict[str, Any]) -> Any:
    """``fn(task, **shared)`` on one numba thread, whatever the worker's environment says, with
    the streaming memory policy (:func:`~riskcap.stream.memory.keep_freed_memory`) in the worker."""
    keep_freed_memory()
    with numba_threads(1):
        return fn(task, **shared)


class _Cancelled(Exception):
    """The scheduler cancelled a task (a shared value it needs was lost with a worker)."""


class DaskEngine:
    """Run partition tasks on a Dask cluster: ``scheduler`` address, or a local cluster."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, *, n_workers: int = 2, max_in_flight: int | None = None,
                 allowed_failures: int = ALLOWED_FAILURES, connect_timeout: float = CONNECT_TIMEOUT,
                 no_workers_timeout: float = NO_WORKERS_TIMEOUT):
        if n_workers < 1:
            raise ValueError("n_workers must be at least 1")
        self.scheduler = scheduler
        self.no_workers_timeout = no_workers_timeout
        self.cluster = None
        self.client = None
        self._scattered: dict[str, Any] = {}  # content token -> future of a shared value
        self._scratch = None
        try:
            if scheduler is None:
                # workers spill partitions (person-level rows) to disk: an owner-only folder (mkdtemp
                # makes it 0700), removed on close, not the shared dask-scratch-space
                self._scratch = tempfile.mkdtemp(prefix="riskcap-dask-")
                with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
                    self.cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                                local_directory=self._scratch,
                                                host="127.0.0.1", dashboard_address=None,
                                                scheduler_kwargs={"dashboard_address": ":0"},  # any free port
                                                silence_logs=logging.ERROR, env=WORKER_ENV)
                address = self.cluster.scheduler_address
            else:
                address = scheduler
            self.client = Client(address, timeout=connect_timeout, set_as_default=False)
            self.client.wait_for_workers(1, timeout=connect_timeout)
            self._check_versions()
        except (OSError, TimeoutError) as exc:
            self.close()
            where = f"the Dask scheduler at {scheduler}" if scheduler else "a local Dask cluster"
            raise EngineError(f"could not use {where}: {exc}") from exc
        except BaseException:
            self.close()
            raise
        threads = sum(self.client.nthreads().values())
        self.max_in_flight = max_in_flight or max(2, 2 * threads)

    def _check_versions(self) -> None:
        ours = _versions()
        try:
            theirs = self.client.run(_versions)
        except ImportError as exc:
            raise EngineError(f"Dask workers cannot import riskcap ({exc}); install riskcap {ours['riskcap']} "
                              "on every worker") from exc
        for worker, versions in sorted(theirs.items()):
            diff = [f"{k} {versions.get(k)} (here {v})" for k, v in ours.items() if versions.get(k) != v]
            if diff:
                raise EngineError(f"Dask worker {worker} has different versions, so its answers could differ: "
                                  f"{', '.join(diff)}")

    def map(self, fn: Callable[..., Any], tasks: Sequence[Any], **shared) -> Iterator[Any]:
        """Yield ``fn(task, **shared)`` for each task, in task order, lazily."""
        tasks = list(tasks)
        keep_freed_memory()  # the driver combines the results: the same policy as the workers
        client = self.client
        if client is None:
            raise EngineError("the Dask engine is closed")
        label = getattr(fn, "__name__", "task")
        token = uuid.uuid4().hex[:12]
        pending: deque = deque()
        futures = {name: self._shared(value) for name, value in sorted(shared.items())}

        def submit(i: int, attempt: int = 0):
            return client.submit(_run_task, fn, tasks[i], futures, key=f"{label}-{token}-{i}-{attempt}",
                                 priority=len(tasks) - i, pure=False)

        def collect(i: int, future):
            for attempt in range(1, RESUBMITS + 2):
                try:
                    return self._result(i, future, label, len(tasks), retry=attempt <= RESUBMITS)
                except _Cancelled as exc:  # a shared value was lost: scatter it again (cached ones too)
                    what = f"{label} task {i + 1} of {len(tasks)} did not finish on the Dask cluster"
                    if client.status != "running":
                        raise EngineError(f"{what}: lost the Dask scheduler ({exc.__cause__!r}); "
                                          "nothing was written") from exc
                    try:
                        futures.update({name: self._shared(value) for name, value in sorted(shared.items())})
                        future = submit(i, attempt)
                    except (Exception, asyncio.CancelledError) as again:  # noqa: BLE001 - the cluster is gone
                        raise EngineError(f"{what} ({exc.__cause__!r}, then {again!r}); nothing was written") from again
            raise AssertionError("unreachable")  # pragma: no cover - the last attempt raises EngineError

        try:
            for i in range(len(tasks)):
                pending.append((i, submit(i)))
                if len(pending) >= self.max_in_flight:
                    yield collect(*pending.popleft())
            while pending:
                yield collect(*pending.popleft())
        finally:
            for _, future in pending:
                future.cancel()

    def _shared(self, value: Any):
        """``value`` on every worker: scattered once for the engine's life per distinct content
        (the model reaches the workers once for all the passes of a run)."""
        try:
            token = tokenize(value, ensure_deterministic=True)
        except Exception:  # noqa: BLE001 - no content token: scatter it every time
            token = None
        held = self._scattered.get(token)
        if held is not None and held.status == "finished":  # not lost with a worker
            return held
        [future] = self.client.scatter([value], broadcast=True, hash=False)
        if token is not None:
            self._scattered[token] = future
        return future

    def _wait(self, future, what: str) -> None:
        """Until ``future`` is done; EngineError after ``no_workers_timeout`` s without any worker
        (a nanny does not replace a worker that dies while starting, so workers can run out)."""
        alone_since = None
        while True:
            try:
                future.result(timeout=_POLL)
                return
            except TimeoutError:
                if future.done():
                    return  # the task's own TimeoutError: _result raises it
            except (Exception, asyncio.CancelledError):
                return  # done with an error: _result raises it
            try:
                workers = len(self.client.nthreads())
            except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - the scheduler is gone
                raise EngineError(f"{what} did not finish: lost the Dask scheduler ({exc!r}); "
                                  "nothing was written") from exc
            if workers:
                alone_since = None
            elif alone_since is None:
                alone_since = time.monotonic()
            elif time.monotonic() - alone_since >= self.no_workers_timeout:
                raise EngineError(f"{what} cannot run: the Dask cluster has had no workers for "
                                  f"{self.no_workers_timeout:g} s "
                                  "(workers died and were not replaced); nothing was written")

    def _result(self, i: int, future, label: str, n: int, retry: bool = False) -> Any:
        """The task's result; its own exception; EngineError if it cannot finish. ``retry``:
        raise _Cancelled instead when the scheduler cancelled it."""
        try:
            self._wait(future, f"{label} task {i + 1} of {n}")
            result = future.result()
        except EngineError:
            raise
        except KilledWorker as exc:
            raise EngineError(f"{label} task {i + 1} of {n} failed: every worker that ran it died ({exc}); "
                              "nothing was written") from exc
        except (Exception, asyncio.CancelledError) as exc:
            if future.status == "error":
                raise  # the task's own exception, same type and message as on the worker
            if retry and future.status == "cancelled":
                raise _Cancelled from exc
            raise EngineError(f"{label} task {i + 1} of {n} did not finish on the Dask cluster ({exc!r}); "
                              "nothing was written") from exc
        future.release()
        return result

    def close(self) -> None:
        """Disconnect, and stop the local cluster if this engine started one."""
        self._scattered.clear()
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.scheduler or (self.cluster.scheduler_address if self.cluster else "closed")
        return f"DaskEngine({where!r})"
