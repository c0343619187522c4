"""The engine contract (riskcap.stream.engines): choosing an engine and the local engine's map."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from riskcap.cli import main
from riskcap.errors import ConfigError, EngineError, RiskcapError
from riskcap.stream.engines import ENGINES, LocalEngine, get_engine

pytestmark = pytest.mark.unit


def double(task, offset=0):
    return 2 * task + offset


def test_local_map_is_lazy_and_in_task_order():
    calls = []

    def record(task, **shared):
        calls.append(task)
        return double(task, **shared)

    results = LocalEngine().map(record, [3, 1, 2], offset=1)
    assert calls == []  # nothing runs before the first result is asked for
    assert next(results) == 7 and calls == [3]
    assert list(results) == [3, 5] and calls == [3, 1, 2]


def test_get_engine_checks_its_arguments():
    with get_engine() as engine:
        assert isinstance(engine, LocalEngine) and engine.name == "local"
    with pytest.raises(ConfigError, match="--scheduler is only used with --engine dask"):
        get_engine("local", "tcp://127.0.0.1:8786")
    with pytest.raises(ConfigError, match="unknown engine 'spark'; choose one of local, dask"):
        get_engine("spark")


def test_engine_errors_are_their_own_kind_and_exit_2():
    assert issubclass(EngineError, RiskcapError) and not issubclass(EngineError, ConfigError)
    assert EngineError.exit_code == 2  # RiskcapGroup: "error: ..." and exit status 2


@pytest.mark.parametrize("command", [["score"], ["capitation", "run"], ["capitation", "sweep"]])
def test_whole_population_commands_take_engine_options(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "--engine [" + "|".join(ENGINES) + "]" in result.output and "--scheduler ADDRESS" in result.output
