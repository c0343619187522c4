"""The malformed-extract corpus: each case fails `riskcap import` with its own clear message (or,
for rows the contract has no place for, imports and reports them), and every row-level case
quarantines the bad row with its reason instead when asked."""
from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from riskcap.cli import main
from riskcap.data.dates import IndexDate, data_end

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "malformed_extracts"
FIXTURE = HERE / "fixtures" / "import"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
EXTRACT_DATE = "2025-04-01"  # the first day the extracts do not cover
LAST_DAY = "2025-03-31"


def _make_cases():
    spec = importlib.util.spec_from_file_location("make_extract_cases", CORPUS / "make_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _import(folder: Path, out: Path, *args: str):
    mapping = folder / "mapping.txt" if (folder / "mapping.txt").exists() else FIXTURE / "codelists.txt"
    return CliRunner().invoke(main, [
        "import", "--gp", str(folder / "gp"), "--hospital", str(folder / "hospital"),
        "--community", str(folder / "community"), "--codelists", str(FIXTURE / "codelists"),
        "--mapping", str(mapping), "--out", str(out), "--extract-date", EXTRACT_DATE, *args])


def test_corpus_is_complete():
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir() and p.name not in ("valid", "__pycache__")}
    assert len(CASES) >= 30
    assert set(CASES) == folders == set(_make_cases().CASES)


def test_corpus_matches_its_generator(tmp_path):
    """The committed folders are what make_cases.py writes, byte for byte."""
    _make_cases().build(tmp_path)
    for case in CASES:
        committed = sorted(p.relative_to(CORPUS / case) for p in (CORPUS / case).rglob("*") if p.is_file())
        built = sorted(p.relative_to(tmp_path / case) for p in (tmp_path / case).rglob("*") if p.is_file())
        assert committed == built, case
        for rel in committed:
            assert (CORPUS / case / rel).read_bytes() == (tmp_path / case / rel).read_bytes(), f"{case}/{rel}"


def test_valid_extracts_import_cleanly(tmp_path):
    out = tmp_path / "out"
    result = _import(CORPUS / "valid", out)
    assert result.exit_code == 0, result.output
    assert "Extracts read (extract date 2025-04-01; clean)" in result.output
    assert CliRunner().invoke(main, ["validate", "--data", str(out), "--as-of", LAST_DAY]).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    files = {f["file"]: f for f in manifest["configs"]["codelists"]["files"]}
    text = (FIXTURE / "codelists" / "riskcap-test-ckd12.csv").read_bytes()
    assert files["riskcap-test-ckd12.csv"]["sha256"] == hashlib.sha256(text).hexdigest()
    assert {"gp", "hospital", "community", "codelists"} <= set(manifest["inputs"])
    assert manifest["configs"]["import"]["extract_date"] == EXTRACT_DATE
    assert data_end(out) == IndexDate(dt.date.fromisoformat(EXTRACT_DATE), "extract_date in extract.json")
    verify = CliRunner().invoke(main, ["verify", str(out)])
    assert verify.exit_code == 0, verify.output


@pytest.mark.parametrize("case", sorted(CASES))
def test_case_message(case, tmp_path):
    spec = CASES[case]
    out = tmp_path / "out"
    result = _import(CORPUS / case, out)
    assert result.exit_code == spec.get("exit", 2), result.output
    for fragment in spec["expect"]:
        assert fragment in result.output, f"{case}: {fragment!r} not in\n{result.output}"
    if result.exit_code == 2:
        assert "nothing was imported" in result.output or "codelist" in result.output
        assert not out.exists(), "a failed import left output behind"


@pytest.mark.parametrize("case", sorted(c for c, spec in CASES.items() if "quarantine" in spec))
def test_case_quarantined_with_its_reason(case, tmp_path):
    rejects_of, reason = CASES[case]["quarantine"]
    out = tmp_path / "out"
    result = _import(CORPUS / case, out, "--on-invalid", "quarantine")
    assert result.exit_code == 0, result.output
    rejects = pd.read_csv(out / "rejects" / f"{rejects_of}_rejects.csv", dtype=str)
    assert rejects["reason"].str.contains(reason, regex=False).any(), rejects
    assert oct(os.stat(out / "rejects" / f"{rejects_of}_rejects.parquet").st_mode & 0o777) == "0o600"
    assert CliRunner().invoke(main, ["validate", "--data", str(out), "--as-of", LAST_DAY]).exit_code == 0
