"""Run manifests record outputs' hashes, and verify finds changed, missing and extra files."""
import json

from riskcap.errors import DataError
from riskcap.manifest import RunManifest, verify_run


def test_manifest_roundtrip_and_tampering(tmp_path):
    m = RunManifest(tmp_path, command=["riskcap", "demo"], seed=7)
    (tmp_path / "budgets.csv").write_text("a,b\n1,2\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.json").write_text("{}")
    inp = tmp_path.parent / f"{tmp_path.name}_input.csv"
    inp.write_text("x\n1\n")
    m.add_input("persons", inp)
    m.write()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest["outputs"]) == {"budgets.csv", "sub/x.json"}
    assert manifest["seed"] == 7 and manifest["inputs"]["persons"]["files"][inp.name]["bytes"] == 4
    assert verify_run(tmp_path) == []

    (tmp_path / "budgets.csv").write_text("a,b\n1,3\n")
    (tmp_path / "sub" / "x.json").unlink()
    (tmp_path / "extra.txt").write_text("?")
    problems = verify_run(tmp_path)
    assert any("budgets.csv: changed" in p for p in problems)
    assert any("sub/x.json: missing" in p for p in problems)
    assert any("extra.txt: not produced" in p for p in problems)


def test_verify_without_manifest(tmp_path):
    assert "no manifest" in verify_run(tmp_path)[0]


def test_outputs_follow_umask_unless_a_mode_is_given(tmp_path):
    import os

    from riskcap.data.write import write_csv, write_json
    import pandas as pd

    old = os.umask(0o022)
    try:
        public = write_csv(pd.DataFrame({"a": [1]}), tmp_path / "budgets.csv")
        private = write_json({"a": 1}, tmp_path / "summary.json", mode=0o600)
    finally:
        os.umask(old)
    assert public.stat().st_mode & 0o777 == 0o644
    assert private.stat().st_mode & 0o777 == 0o600


def test_inputs_are_hashed_in_the_background_and_failures_surface_at_write(tmp_path):
    import hashlib

    import pytest

    data = tmp_path / "data"
    data.mkdir()
    (data / "persons.parquet").write_bytes(b"x" * 3_000_000)  # more than one read chunk
    run = tmp_path / "run"
    run.mkdir()
    m = RunManifest(run)
    m.add_input("data", data)
    m.add_input("gone", tmp_path / "missing.parquet")
    with pytest.raises(DataError, match="missing.parquet: missing"):
        m.write()
    assert "did not finish" in verify_run(run)[0]  # the unfinished marker stays until a write succeeds
    del m.inputs["gone"]
    m.write()
    files = json.loads((run / "manifest.json").read_text())["inputs"]["data"]["files"]
    assert files == {"persons.parquet": {"bytes": 3_000_000, "sha256": hashlib.sha256(b"x" * 3_000_000).hexdigest()}}
