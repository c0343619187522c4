"""The commands with ``--engine dask`` write the local engine's files, byte for byte.

A 2-worker LocalCluster on loopback, started once for the module (``DaskEngine``), is
reached with ``--scheduler``; one run starts its own local cluster (no ``--scheduler``).
Small partitions make several tasks per run. Skips when Dask is not installed.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from riskcap.cli import main
from riskcap.errors import INSTALL_DASK
from riskcap.synthetic import SynthConfig, write_population

pytestmark = pytest.mark.e2e

PEOPLE = 3_000
PARTITION = 700  # about 5 partitions


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("distributed")
    from riskcap.stream.dask import DaskEngine

    with DaskEngine(n_workers=2) as engine:
        yield engine


@pytest.fixture(scope="module")
def scheduler(cluster):
    return cluster.cluster.scheduler_address


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    write_population(out, SynthConfig(people=PEOPLE, seed=11))
    return out


@pytest.fixture(scope="module")
def model_dir(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "gbm"
    result = run(["train", "--data", data_dir, "--model", "gbm", "--out", out])
    assert result.exit_code == 0, result.output
    return out


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def files(folder: Path) -> dict[str, bytes]:
    """Every output file's bytes, but the manifest (which records the command line and times)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def same_outputs(a: Path, b: Path) -> None:
    ours, theirs = files(a), files(b)
    assert ours and sorted(ours) == sorted(theirs)
    for name in ours:
        assert ours[name] == theirs[name], name
    manifests = [a / "manifest.json", b / "manifest.json"]
    if all(m.exists() for m in manifests):
        assert json.loads(manifests[0].read_text())["outputs"] == json.loads(manifests[1].read_text())["outputs"]


def test_score_on_dask_equals_local(model_dir, data_dir, scheduler, tmp_path):
    common = ["score", "--model", model_dir, "--data", data_dir, "--partition-people", PARTITION, "--reasons-for", 30]
    local = run([*common, "--out", tmp_path / "local" / "scores.parquet"])
    assert local.exit_code == 0, local.output
    dask = run([*common, "--out", tmp_path / "dask" / "scores.parquet", "--engine", "dask", "--scheduler", scheduler])
    assert dask.exit_code == 0, dask.output
    same_outputs(tmp_path / "local", tmp_path / "dask")


def test_train_and_evaluate_on_dask_equal_local(data_dir, scheduler, tmp_path):
    for engine in ("local", "dask"):
        common = ["--data", data_dir, "--partition-people", PARTITION, "--engine", engine]
        common += ["--scheduler", scheduler] if engine == "dask" else []
        model = tmp_path / engine / "model"
        result = run(["train", "--model", "logistic", "--out", model, *common])
        assert result.exit_code == 0, result.output
        result = run(["evaluate", "--model", model, "--out", tmp_path / engine / "eval", *common])
        assert result.exit_code == 0, result.output
    same_outputs(tmp_path / "local", tmp_path / "dask")


def test_score_on_its_own_local_cluster_equals_local(model_dir, data_dir, tmp_path):
    pytest.importorskip("distributed")
    common = ["score", "--model", model_dir, "--data", data_dir, "--partition-people", 1_000]
    assert run([*common, "--out", tmp_path / "local" / "scores.parquet"]).exit_code == 0
    dask = run([*common, "--out", tmp_path / "dask" / "scores.parquet", "--engine", "dask"])
    assert dask.exit_code == 0, dask.output
    same_outputs(tmp_path / "local", tmp_path / "dask")


def killer(prefix: str, marker: str):
    """A worker plugin: the first worker to start a task named ``prefix...`` dies on the spot."""
    from distributed import WorkerPlugin

    class Killer(WorkerPlugin):
        name = "riskcap-test-killer"

        def transition(self, key, start, finish, **kwargs):
            if finish == "executing" and str(key).startswith(prefix) and not Path(marker).exists():
                Path(marker).touch()
                os._exit(1)

    return Killer()


def test_score_survives_a_worker_killed_mid_run(model_dir, data_dir, cluster, scheduler, tmp_path):
    common = ["score", "--model", model_dir, "--data", data_dir, "--partition-people", PARTITION]
    assert run([*common, "--out", tmp_path / "local" / "scores.parquet"]).exit_code == 0
    marker = tmp_path / "killed"
    cluster.client.register_plugin(killer("score_partition-", str(marker)))
    try:
        dask = run([*common, "--out", tmp_path / "dask" / "scores.parquet", "--engine", "dask",
                    "--scheduler", scheduler])
    finally:
        cluster.client.unregister_worker_plugin("riskcap-test-killer")
    assert marker.exists()  # a worker died while scoring a partition
    assert dask.exit_code == 0, dask.output
    same_outputs(tmp_path / "local", tmp_path / "dask")  # nobody lost or scored twice
    cluster.client.wait_for_workers(2, timeout=60)


def test_capitation_run_on_dask_equals_local(data_dir, scheduler, tmp_path):
    common = ["capitation", "run", "baseline", "cap_p99", "fair_shares", "--data", data_dir,
              "--partition-people", PARTITION]
    local = run([*common, "--out", tmp_path / "local"])
    assert local.exit_code == 0, local.output
    dask = run([*common, "--out", tmp_path / "dask", "--engine", "dask", "--scheduler", scheduler])
    assert dask.exit_code == 0, dask.output
    same_outputs(tmp_path / "local", tmp_path / "dask")


def test_capitation_sweep_on_dask_equals_local(data_dir, scheduler, tmp_path):
    common = ["capitation", "sweep", "baseline", "--data", data_dir, "--partition-people", PARTITION,
              "--vary", "tariff.cost_uplift_pct=0,2.9", "--vary", "corridor.overspend.1.payer_share_pct=0:100:3"]
    local = run([*common, "--out", tmp_path / "local"])
    assert local.exit_code == 0, local.output
    dask = run([*common, "--out", tmp_path / "dask", "--engine", "dask", "--scheduler", scheduler])
    assert dask.exit_code == 0, dask.output
    same_outputs(tmp_path / "local", tmp_path / "dask")


def test_bad_data_fails_the_same_way_and_writes_nothing(data_dir, model_dir, scheduler, tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    bad = tmp_path / "bad"
    bad.mkdir()
    for table in ("practices", "persons", "conditions", "activity"):
        (bad / f"{table}.parquet").write_bytes((data_dir / f"{table}.parquet").read_bytes())
    persons = pq.read_table(bad / "persons.parquet")
    last = pa.array(np.arange(len(persons)) == len(persons) - 1)  # in the last partition
    column = persons.schema.get_field_index("sex")
    persons = persons.set_column(column, "sex", pc.if_else(last, "Q", persons.column("sex")))
    pq.write_table(persons, bad / "persons.parquet")
    outcomes = {}
    for engine in ("local", "dask"):
        out = tmp_path / engine / "scores.parquet"
        extra = ["--scheduler", scheduler] if engine == "dask" else []
        result = run(["score", "--model", model_dir, "--data", bad, "--out", out, "--partition-people", PARTITION,
                      "--engine", engine, *extra])
        assert result.exit_code == 2, result.output
        assert not out.parent.exists() or not any(out.parent.iterdir())
        outcomes[engine] = result.output
    assert outcomes["dask"] == outcomes["local"] and "sex" in outcomes["local"]


def test_engine_dask_without_dask_says_what_to_install(model_dir, data_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    monkeypatch.delitem(sys.modules, "riskcap.stream.dask", raising=False)
    out = tmp_path / "scores.parquet"
    result = run(["score", "--model", model_dir, "--data", data_dir, "--out", out, "--engine", "dask"])
    assert result.exit_code == 2
    assert INSTALL_DASK in result.output and not out.exists()


def test_casefind_on_dask_equals_local(model_dir, data_dir, scheduler, tmp_path, monkeypatch):
    """The listed people's features are built in blocks on the workers; the lists are the same."""
    import riskcap.casefinding.inputs

    monkeypatch.setattr(riskcap.casefinding.inputs, "LISTED_BLOCK", 100)  # about 6 blocks of listed people
    scores = tmp_path / "scores.parquet"
    assert run(["score", "--model", model_dir, "--data", data_dir, "--out", scores]).exit_code == 0
    key = tmp_path / "key"
    key.write_text("a" * 64)
    key.chmod(0o600)
    common = ["casefind", "--scores", scores, "--data", data_dir, "--top", "20%", "--key-file", key]
    local = run([*common, "--out", tmp_path / "local"])
    assert local.exit_code == 0, local.output
    dask = run([*common, "--out", tmp_path / "dask", "--engine", "dask", "--scheduler", scheduler])
    assert dask.exit_code == 0, dask.output
    assert json.loads((tmp_path / "local" / "summary.json").read_text())["listed"] > 300  # several blocks
    same_outputs(tmp_path / "local", tmp_path / "dask")
