"""The malformed-extract corpus: each case fails `riskcap import` with its own clear message (or,
for rows the contract has no place for, imports and reports them), and every row-level case
quarantines the bad row with its reason instead when asked."""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from corpus import assert_complete, assert_matches_generator
from riskcap.cli import main
from riskcap.data.dates import IndexDate, data_end

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "malformed_extracts"
FIXTURE = HERE / "fixtures" / "import"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
EXTRACT_DATE = "2025-04-01"  # the first day the extracts do not cover
LAST_DAY = "2025-03-31"



def _import(folder: Path, out: Path, *args: str):
    mapping = folder / "mapping.txt" if (folder / "mapping.txt").exists() else FIXTURE / "codelists.txt"
    return CliRunner().invoke(main, [
        "import", "--gp", str(folder / "gp"), "--hospital", str(folder / "hospital"),
        "--community", str(folder / "community"), "--codelists", str(FIXTURE / "codelists"),
        "--mapping", str(mapping), "--out", str(out), "--extract-date", EXTRACT_DATE, *args])


def test_corpus_is_complete():
    assert_complete(CORPUS, CASES, at_least=30)


def test_corpus_matches_its_generator(tmp_path):
    """The committed folders are what make_cases.py writes, byte for byte."""
    assert_matches_generator(CORPUS, CASES, tmp_path)


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


def _reshaped(valid: Path, out: Path) -> None:
    """The valid extracts as other systems write them: a byte-order mark (Excel's "CSV UTF-8"),
    headers in other case and spacing, UK day-first dates, birth months as MM/YYYY, A&E arrival
    times with a UTC offset, ICD-10 codes without the dot in lower case, NHS numbers spaced 3-3-4."""
    for path in sorted(valid.rglob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            header, *rows = list(csv.reader(fh))
        for row in rows:
            for k, value in enumerate(row):
                if header[k] == "arrival_date" and value:
                    row[k] = f"{value}T23:30:00+01:00"
                elif header[k] == "nhs_number" and value:
                    row[k] = f"{value[:3]} {value[3:6]} {value[6:]}"
                elif header[k] == "primary_diagnosis":
                    row[k] = value.replace(".", "").lower()
                elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                    row[k] = "/".join(reversed(value.split("-")))
                elif re.fullmatch(r"\d{4}-\d{2}", value):
                    row[k] = "/".join(reversed(value.split("-")))
        target = out / path.relative_to(valid)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", newline="", encoding="utf-8-sig") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow([f" {h.replace('_', ' ').title()}" for h in header])
            writer.writerows(rows)


def test_other_shapes_of_the_same_extracts_import_the_same(tmp_path):
    _reshaped(CORPUS / "valid", tmp_path / "reshaped")
    assert (tmp_path / "reshaped" / "gp" / "registrations.csv").read_bytes().startswith(b"\xef\xbb\xbf Person Id,")
    for folder in ("valid", "reshaped"):
        result = _import(CORPUS / "valid" if folder == "valid" else tmp_path / folder, tmp_path / f"out-{folder}")
        assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path / "out-valid") for p in (tmp_path / "out-valid").rglob("*.parquet"))
    assert len(written) >= 5
    for rel in [*written, Path("extract.json")]:
        assert (tmp_path / "out-valid" / rel).read_bytes() == (tmp_path / "out-reshaped" / rel).read_bytes(), rel


@pytest.mark.parametrize("day, ok", [(LAST_DAY, True), (EXTRACT_DATE, False)])
def test_the_extract_date_is_the_first_day_not_covered(tmp_path, day, ok):
    """As in extract.json (riskcap.data.dates): an event on the day before the extract date is
    imported, one on the extract date itself is an error."""
    shutil.copytree(CORPUS / "valid", tmp_path / "in")
    events = tmp_path / "in" / "gp" / "events.csv"
    text = events.read_text(encoding="utf-8").splitlines()
    text[1] = ",".join(text[1].split(",")[:2] + [day])
    events.write_text("\n".join(text) + "\n", encoding="utf-8")
    result = _import(tmp_path / "in", tmp_path / "out")
    assert (result.exit_code == 0) == ok, result.output
    if not ok:
        assert f"row 1: '{day}'" in result.output and f"on or after the extract date {EXTRACT_DATE}" in result.output


def test_quarantined_rows_are_formula_safe_in_the_rejects_csv(tmp_path):
    """A value from an extract that a spreadsheet would run is written behind a ' (riskcap.data.write)."""
    shutil.copytree(CORPUS / "valid", tmp_path / "in")
    registrations = tmp_path / "in" / "gp" / "registrations.csv"
    lines = registrations.read_text(encoding="utf-8").splitlines()
    fields = lines[1].split(",")
    fields[1] = "=1+1"  # practice_code: not a practice, so the row is quarantined
    lines[1] = ",".join(fields)
    registrations.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = _import(tmp_path / "in", tmp_path / "out", "--on-invalid", "quarantine")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "rejects" / "gp_registrations_rejects.csv").read_text(encoding="utf-8")
    assert "'=1+1" in text and ",=1+1" not in text
