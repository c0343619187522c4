"""Every CSV/XLSX writer against the hostile strings of tests/hostile/strings.yaml (issue 23 item 4),
and every file holding person-level rows owner-only (item 5); both rules live in riskcap/data/write.py.
"""
from __future__ import annotations

import csv
import os
import stat
from itertools import cycle
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from riskcap.cli import main

STRINGS = yaml.safe_load((Path(__file__).resolve().parent / "hostile" / "strings.yaml").read_text(encoding="utf-8"))
TRIGGERS = tuple(STRINGS["triggers"])
FORMULAS, NUMBERS, DISGUISED = STRINGS["formulas"], STRINGS["numbers"], STRINGS["disguised"]
#: What a spreadsheet may skip before it looks for a formula: blanks, line breaks, invisible characters.
SKIPPED = " \n\r\t\u3000\ufeff\u200b\xa0"
#: The one formula riskcap writes on purpose: each budget sheet's "budgets - envelope" check.
OWN_FORMULA = r"=SUM\(E2:E\d+\)-E\d+"


def _run(*args, env=None):
    result = CliRunner().invoke(main, [str(a) for a in args], env={"RISKCAP_PSEUDONYM_KEY": "k" * 32, **(env or {})})
    assert result.exit_code == 0, result.output
    return result


def _table(data: Path, name: str, change) -> None:
    path = data / f"{name}.parquet"
    change(pd.read_parquet(path)).to_parquet(path, index=False)


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("practices", "persons", "conditions", "activity"):
        (dst / f"{name}.parquet").write_bytes((src / f"{name}.parquet").read_bytes())
    return dst


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Every writer run once on data and configs carrying the hostile strings (umask 022, as usual)."""
    from riskcap.synthetic import SynthConfig, write_population

    old_umask = os.umask(0o022)
    try:
        root = tmp_path_factory.mktemp("hostile-writers")
        clean = root / "clean"
        write_population(clean, SynthConfig(people=3000, n_practices=24, seed=5))
        _run("train", "--data", clean, "--model", "logistic", "--out", root / "model")
        texts = FORMULAS + NUMBERS + DISGUISED

        # practice names and ICB codes hostile; practice codes stay file-name safe for casefind
        named = _copy(clean, root / "named")
        # every string on a practice that holds people at the end (a practice that closed has no list)
        listed = set(pd.read_parquet(clean / "persons.parquet").query("registered_to.isna()")["practice_code"])

        def rename(frame):
            order = sorted(frame.index, key=lambda i: frame.at[i, "practice_code"] not in listed)
            names = dict(zip(order, cycle(texts)))
            return frame.assign(practice_name=[names[i] for i in frame.index],
                                icb_code=[s for s, _ in zip(cycle(FORMULAS), frame.index)])
        _table(named, "practices", rename)
        # practice codes hostile (text is stripped on reading, so unique after stripping)
        codes = list(dict.fromkeys(s.strip() for s in texts))
        coded = _copy(clean, root / "coded")
        mapping = {}

        def recode(frame):
            mapping.update({c: codes[i] for i, c in enumerate(sorted(frame["practice_code"].unique())) if i < len(codes)})
            return frame.assign(practice_code=frame["practice_code"].map(lambda c: mapping.get(c, c)))
        _table(coded, "practices", recode)
        _table(coded, "persons", lambda f: f.assign(practice_code=f["practice_code"].map(lambda c: mapping.get(c, c))))
        # rows to quarantine, carrying the strings
        bad = _copy(clean, root / "bad")
        _table(bad, "activity", lambda f: f.assign(setting=[texts[i] if i < len(texts) else s
                                                            for i, s in enumerate(f["setting"])]))
        _table(bad, "persons", lambda f: f.assign(nhs_number=[texts[i] if i < len(texts) else s
                                                              for i, s in enumerate(f["nhs_number"])]))

        out = {"root": root}
        _run("score", "--model", root / "model", "--data", named, "--out", root / "scores.parquet")
        scores = pd.read_parquet(root / "scores.parquet")
        scores["reason_1"] = [s for s, _ in zip(cycle(texts), scores.index)]
        scores.to_parquet(root / "hostile_scores.parquet", index=False)
        pyramid = root / "tiers.yaml"
        pyramid.write_text(yaml.safe_dump({"name": "hostile", "tiers": [
            {"name": FORMULAS[1], "top_percent": 5}, {"name": "@SUM(A1:A2)", "top_percent": 20},
            {"name": "-5", "top_percent": 100}]}))
        _run("casefind", "--scores", root / "hostile_scores.parquet", "--data", named, "--out", root / "lists",
             "--top", "50%", "--pyramid", pyramid)
        scenario = root / "described.yaml"
        scenario.write_text(yaml.safe_dump({"name": "described", "description": FORMULAS[1],
                                            "tariff": {"cap_percentile": 99}}))
        _run("capitation", "run", "baseline", scenario, "--data", coded, "--out", root / "run" / "capitation",
             "--model", root / "model")
        _run("report", root / "run")
        _run("validate", "--data", bad, "--on-invalid", "quarantine", "--rejects", root / "rejects",
             "--summary", root / "validate_summary.json")
        _run("score", "--model", root / "model", "--data", bad, "--on-invalid", "quarantine",
             "--out", root / "scored_bad" / "scores.parquet")
        _run("capitation", "run", "baseline", "--data", bad, "--on-invalid", "quarantine", "--out", root / "cap_bad")
        swept = [s for s in FORMULAS if "," not in s and not s.startswith(("@", "\t", "\r", "\uff20"))]
        _run("capitation", "sweep", "baseline", "--data", named, "--out", root / "sweep",
             "--vary", "description=" + ",".join(f"'{s}'" if "'" not in s else s for s in swept[:4]))
        out["swept"] = swept[:4]
        return out
    finally:
        os.umask(old_umask)


def _csv_cells(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def _runs(cell: str) -> bool:
    """Whether a spreadsheet would run this CSV cell: it starts with a trigger (a tab or CR
    itself, or one behind what a spreadsheet may skip) and is not a number."""
    return (cell.startswith(TRIGGERS) or cell.lstrip(SKIPPED).startswith(TRIGGERS)) and not _is_number(cell)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _xlsx_cells(path: Path) -> list:
    from openpyxl import load_workbook

    return [cell for ws in load_workbook(path).worksheets for row in ws.iter_rows() for cell in row
            if cell.value is not None]


WRITERS = {
    "capitation CSVs (practice and ICB codes)": ("run/capitation", "**/*.csv", FORMULAS),
    "case-finding index.csv (practice names, tier columns)": ("lists", "index.csv", FORMULAS),
    "case-finding list CSVs (reasons, custom pyramid tiers)": ("lists/practices", "*.csv", FORMULAS),
    "case-finding list XLSX and notes sheet": ("lists/practices", "*.xlsx", [FORMULAS[1], "@SUM(A1:A2)"]),
    "quarantine rejects (every value)": ("rejects", "*.csv", FORMULAS),
    "sweep CSV (a swept description)": ("sweep", "sweep.csv", None),
    "finance workbook (practice codes, scenario description)": ("run", "workbook.xlsx", FORMULAS),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_no_writer_writes_a_formula(outputs, writer):
    folder, pattern, expected = WRITERS[writer]
    expected = outputs["swept"] if expected is None else expected
    files = sorted((outputs["root"] / folder).glob(pattern))
    assert files, f"{writer}: nothing written under {folder}/{pattern}"
    seen: list[str] = []
    for path in files:
        if path.suffix == ".csv":
            cells = _csv_cells(path)
            seen += cells
            bad = [c for c in cells if _runs(c)]
            assert not bad, f"{path.name}: a spreadsheet would run {bad[:3]}"
        else:
            import re

            cells = _xlsx_cells(path)
            seen += [str(c.value) for c in cells]
            formulas = [c.value for c in cells if c.data_type == "f" and not re.fullmatch(OWN_FORMULA, str(c.value))]
            assert not formulas, f"{path.name}: formula cells {formulas[:3]}"
    missing = [s for s in expected if not any(s.strip() in cell for cell in seen)]
    assert not missing, f"{writer}: the hostile text {missing[:3]} was dropped, or never reached the writer"


def test_numbers_stay_numbers(outputs):
    """Text that really is a number is written as it is, never neutralised."""
    cells = set(_csv_cells(outputs["root"] / "lists" / "index.csv"))
    for path in (outputs["root"] / "lists" / "practices").glob("*.csv"):
        cells |= set(_csv_cells(path))
    for number in NUMBERS:
        assert number in cells, number
    budgets = pd.read_csv(outputs["root"] / "run" / "capitation" / "budgets.csv")
    assert (budgets["change_vs_baseline_pence"].dropna() < 0).any()  # negative amounts stay numbers
    assert pd.api.types.is_numeric_dtype(budgets["change_vs_baseline_pence"])


PERSON_LEVEL = {
    "score: scores.parquet": "scores.parquet",
    "score --on-invalid quarantine: rejects": "scored_bad/rejects/*",
    "validate --rejects": "rejects/*",
    "validate --summary (examples of bad values)": "validate_summary.json",
    "capitation run: need_groups/<scheme>.parquet": "run/capitation/need_groups/*.parquet",
    "capitation run --model: scores.parquet": "run/capitation/scores.parquet",
    "capitation run --on-invalid quarantine: rejects": "cap_bad/rejects/*",
    "casefind: lists, index.csv, summary.json, manifest.json": "lists/**/*.*",
}


@pytest.mark.parametrize("files", PERSON_LEVEL)
def test_person_level_files_are_owner_only(outputs, files):
    pattern = PERSON_LEVEL[files]
    paths = [p for p in outputs["root"].glob(pattern) if p.is_file()]
    assert paths, pattern
    modes = {p.relative_to(outputs["root"]).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in paths}
    assert all(mode == "0o600" for mode in modes.values()), modes


def test_strings_file_is_what_the_tests_expect():
    assert all(isinstance(s, str) for s in FORMULAS + NUMBERS + list(TRIGGERS))
    assert all(s.startswith(TRIGGERS) for s in FORMULAS)
    assert all(not s.startswith(TRIGGERS) and _runs(s.split("\r")[-1].lstrip("\n")) for s in DISGUISED)
    assert all(_is_number(s) for s in NUMBERS)
    assert {"\t", "\r", "="} <= set(TRIGGERS) and any(s.startswith("\uff1d") for s in FORMULAS)


def test_folders_made_for_person_level_files_are_owner_only(outputs):
    root = outputs["root"]
    for folder in ("rejects", "scored_bad/rejects", "cap_bad/rejects", "lists", "lists/practices"):
        assert oct(stat.S_IMODE((root / folder).stat().st_mode)) == "0o700", folder


def test_riskcap_reads_its_own_csvs_back_exactly(outputs, tmp_path):
    """The ' that neutralises a formula is not part of the text: the report, reading the
    capitation CSVs, shows the hostile practice codes marked once (not twice), and a list with
    hostile tier names is a valid --previous."""
    from openpyxl import load_workbook

    from riskcap.data.write import to_cell

    root = outputs["root"]
    texts = {str(c.value) for ws in load_workbook(root / "run" / "workbook.xlsx").worksheets
             for row in ws.iter_rows() for c in row if c.value is not None}
    codes = list(dict.fromkeys(s.strip() for s in FORMULAS + NUMBERS))[:24]  # the 24 practices' codes
    assert [c for c in codes if to_cell(c) in texts and to_cell(c) != c], "no hostile practice code reached it"
    assert not [t for t in texts if t.startswith("''")], "a CSV's ' was read back as text"
    _run("casefind", "--scores", root / "hostile_scores.parquet", "--data", root / "named", "--out", tmp_path / "again",
         "--top", "50%", "--pyramid", root / "tiers.yaml", "--previous", root / "lists")
    index = pd.read_csv(tmp_path / "again" / "index.csv")
    assert index.filter(like="unchanged").to_numpy().sum() > 0  # the same lists again: people unchanged
