"""The Dask engine against the local one: same results in task order, shared values sent once,
task errors as raised, worker deaths retried or failed clearly, a clear message without Dask.

The cluster is a 2-worker :class:`distributed.LocalCluster` on loopback started by
``DaskEngine(None)``, once for the module. Tests needing Dask skip when it is not installed.
"""
from __future__ import annotations

import os
import sys
import time

import numba
import numpy as np
import pytest

from riskcap.errors import INSTALL_DASK, DataError, EngineError, EngineUnavailable, RiskcapError
from riskcap.stream.engines import LocalEngine, get_engine

TASKS = list(range(11))  # more than the engine's 4 tasks in flight


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("distributed")
    with get_engine("dask") as dask_engine:
        yield dask_engine


def _restored(engine, n_workers=2):
    """Wait until the nannies have restarted any killed worker."""
    engine.client.wait_for_workers(n_workers, timeout=60)


@numba.njit(cache=True)
def _kernel(x):
    total = 0.0
    for i in range(x.size):
        total += np.log1p(x[i] * x[i]) / (1.0 + i)
    return total


def work(task, weights=None):
    """A toy partition function: a numba kernel over the task's own random numbers."""
    x = np.random.default_rng(task).standard_normal(50_000)
    if weights is not None:
        x = x * weights[task % weights.size]
    return np.array([task, _kernel(x), x.sum()])


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()


def test_map_equals_local_in_task_order(engine):
    weights = np.linspace(0.5, 2.0, 7)
    local = list(LocalEngine().map(work, TASKS, weights=weights))
    _same(list(engine.map(work, TASKS, weights=weights)), local)
    _same(list(engine.map(work, TASKS[::-1], weights=weights)), local[::-1])
    assert list(engine.map(work, [])) == []


class Payload:
    """Counts how often it is pickled in this process (the driver)."""

    pickled = 0

    def __init__(self, data: bytes):
        self.data = data

    def __reduce__(self):
        Payload.pickled += 1
        return Payload, (self.data,)

    def __dask_tokenize__(self):  # content token, without pickling
        return self.data


def where(task, model, config=None):
    return os.getpid(), id(model), len(model.data), (config or {}).get("cap")


def test_shared_values_are_sent_once(engine):
    Payload.pickled = 0
    model = Payload(b"tree" * 250_000)
    seen = list(engine.map(where, TASKS, model=model))
    seen += list(engine.map(where, TASKS, model=model))  # a second pass of the same run
    assert Payload.pickled == 1  # scattered once, not with each of the 22 tasks
    assert all(size == 1_000_000 for _, _, size, _ in seen)
    # workers reuse their copy across tasks (exactly one per worker is usual, but a busy worker
    # may fetch a replica from a peer or deserialise again, so only require reuse)
    copies = {(pid, object_id) for pid, object_id, _, _ in seen}
    assert len(copies) <= len(seen) // 4


def test_changed_shared_values_are_sent_again(engine):
    model, config = Payload(b"m"), {"cap": 99}
    assert {s[3] for s in engine.map(where, TASKS, model=model, config=config)} == {99}
    config["cap"] = 95  # the same object, changed: the workers must see the new content
    assert {s[3] for s in engine.map(where, TASKS, model=model, config=config)} == {95}


def threads(task):
    forked = hasattr(sys, "_riskcap_driver_marker")  # a forked worker would have the driver's memory
    return (numba.get_num_threads(), os.environ.get("NUMBA_NUM_THREADS"), os.environ.get("OMP_NUM_THREADS"),
            forked)


def test_one_thread_per_task_on_spawned_workers(engine, monkeypatch):
    monkeypatch.setattr(sys, "_riskcap_driver_marker", True, raising=False)
    engine.client.restart()  # workers started now, after the marker was set
    assert set(engine.map(threads, range(4))) == {(1, None, "1", False)}
    assert set(engine.client.nthreads().values()) == {1}


def bad_partition(task):
    if task == 3:
        raise DataError(f"partition {task}: column 'sex' has 2 values outside the code set")
    return task


def test_task_error_reaches_the_driver_as_raised(engine):
    with pytest.raises(DataError, match="partition 3: column 'sex' has 2 values"):
        list(engine.map(bad_partition, TASKS))
    assert list(engine.map(bad_partition, [0, 1])) == [0, 1]  # the engine is still usable


def kill_once(task, marker=None):
    """``work(task)``, but the first attempt at task 5 kills its own worker process."""
    if task == 5 and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(1)
    return work(task)


def kill_always(task):
    if task == 2:
        os._exit(1)
    return task


def test_worker_killed_mid_run_loses_and_duplicates_nobody(engine, tmp_path):
    marker = str(tmp_path / "killed")
    results = list(engine.map(kill_once, TASKS, marker=marker))
    assert os.path.exists(marker)  # the worker really died
    _same(results, list(LocalEngine().map(work, TASKS)))
    _restored(engine)


def slow_work(task, weights=None):
    time.sleep(0.5)
    return work(task, weights)


def test_tasks_cancelled_for_a_lost_shared_value_are_resubmitted(engine):
    """The scheduler forgets a scattered value whose only holder died and cancels the tasks
    that need it; here the value is released by force while the first tasks run."""
    import threading

    weights = np.linspace(0.25, 1.75, 5)
    lost = threading.Event()

    def lose_the_shared_value():
        time.sleep(0.2)
        engine.client.cancel(list(engine._scattered.values()), force=True)
        lost.set()

    results = engine.map(slow_work, TASKS, weights=weights)
    first = next(results)  # submitted; the thread cancels the scattered weights mid-task
    assert first[0] == 0
    threading.Thread(target=lose_the_shared_value).start()
    rest = list(results)
    assert lost.is_set()
    _same([first, *rest], list(LocalEngine().map(work, TASKS, weights=weights)))


def test_worker_killed_every_time_fails_clearly_and_nothing_is_written(tmp_path):
    pytest.importorskip("distributed")
    from riskcap.stream.dask import DaskEngine

    out = tmp_path / "out.txt"
    start = time.monotonic()
    # its own cluster: a nanny does not replace a worker that dies while starting, so the
    # workers may run out before the scheduler's 4th death; either way the error is clear
    with DaskEngine(no_workers_timeout=10) as engine, pytest.raises(
            EngineError, match=r"kill_always task \d+ of 11 (failed: every worker that ran it died|cannot run: "
                               r"the Dask cluster has had no workers for 10 s)"):
        results = list(engine.map(kill_always, TASKS))
        out.write_text(str(results))  # the driver writes only after the last result
    assert time.monotonic() - start < 120
    assert not out.exists()


def test_no_workers_left_fails_clearly_instead_of_waiting_for_ever():
    pytest.importorskip("distributed")
    from riskcap.stream.dask import DaskEngine

    with DaskEngine(n_workers=1, no_workers_timeout=3) as engine:
        engine.cluster.scale(0)
        while engine.client.nthreads():
            time.sleep(0.1)
        with pytest.raises(EngineError, match="work task 1 of 2 cannot run: the Dask cluster has had no workers "
                                              "for 3 s"):
            list(engine.map(work, [1, 2]))


def test_own_local_cluster_is_closed_with_the_engine():
    """...and the folder its workers spill person-level partitions to is owner-only, then removed."""
    import os
    import stat

    pytest.importorskip("distributed")
    from riskcap.stream.dask import DaskEngine

    with DaskEngine(n_workers=1) as one:
        cluster, scratch = one.cluster, one._scratch
        assert stat.S_IMODE(os.stat(scratch).st_mode) == 0o700 and os.listdir(scratch)  # the workers' folders
        _same(list(one.map(work, [1, 2])), list(LocalEngine().map(work, [1, 2])))
    assert one.client is None and cluster.status.name == "closed" and not os.path.exists(scratch)
    with pytest.raises(EngineError, match="closed"):
        list(one.map(work, [1]))


def test_scheduler_lost_mid_run_is_a_clear_error_within_seconds(tmp_path):
    pytest.importorskip("distributed")
    import threading

    from riskcap.stream.dask import DaskEngine

    out = tmp_path / "out.txt"
    with DaskEngine() as engine:
        threading.Timer(1.0, engine.cluster.close).start()
        start = time.monotonic()
        with pytest.raises(EngineError, match=r"slow_work task \d+ of 11 did not finish.*nothing was written"):
            out.write_text(str(list(engine.map(slow_work, TASKS))))
        assert time.monotonic() - start < 30
    assert not out.exists()


def test_unreachable_scheduler_is_a_clear_error():
    pytest.importorskip("distributed")
    from riskcap.stream.dask import DaskEngine

    with pytest.raises(EngineError, match="could not use the Dask scheduler at tcp://127.0.0.1:9"):
        DaskEngine("tcp://127.0.0.1:9", connect_timeout=2)  # nothing listens on port 9


def test_workers_with_other_versions_are_refused(engine, monkeypatch):
    from riskcap.stream import dask as dask_engine

    monkeypatch.setattr(dask_engine.metadata, "version", lambda package: "0.0-other")
    with pytest.raises(EngineError, match=r"different versions.*riskcap 0\.1\.0 \(here 0\.0-other\)"):
        engine._check_versions()


def test_without_dask_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    monkeypatch.delitem(sys.modules, "riskcap.stream.dask", raising=False)
    with pytest.raises(EngineUnavailable) as caught:
        get_engine("dask")
    assert INSTALL_DASK in str(caught.value)
    assert isinstance(caught.value, ImportError) and isinstance(caught.value, RiskcapError)  # CLI: exit 2
