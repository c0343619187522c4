"""The commissioner report and finance workbook, built from a real (small) run directory.

A session fixture runs the real pipeline on 4,000 synthetic people: logistic model trained
at 2023-04-01 and evaluated at 2024-04-01, scores, case-finding lists and four capitation
scenarios. The gbm and cost models are left out to keep the test quick, which also checks
that absent parts are reported as "not run". The report is rendered in headless Chromium
(skipped, with the reason, when no Chromium is installed; .ci/run installs it).
"""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from riskcap.capitation.run import run_capitation
from riskcap.data.dates import IndexDate
from riskcap.capitation.scenario import load_scenario
from riskcap.casefinding.run import casefind
from riskcap.cli import main
from riskcap.data.load import load_tables
from riskcap.data.write import sha256_file, write_json
from riskcap.errors import DataError
from riskcap.features import build_features
from riskcap.manifest import RunManifest
from riskcap.models.persist import read_model_files, save_model
from riskcap.models.score import score_population
from riskcap.models.train import data_fingerprint, evaluate_model, train_model, truth_probabilities
from riskcap.pseudonymise import PseudonymKey
from riskcap.report import build_report
from riskcap.report.outputs import read_run
from riskcap.report.sections import SECTION_IDS, gains_points
from riskcap.report.workbook import flatten, scenario_parameters, sheet_names
from riskcap.synthetic import EVAL_INDEX_DATE, TRAIN_INDEX_DATE, SynthConfig, write_population

pytestmark = pytest.mark.integration
SCENARIOS = ("baseline", "cap_p99", "fair_shares", "outcome_withhold_10")


def make_run(run: Path, people: int = 4_000) -> Path:
    """A run directory made by the real pipeline (what `riskcap demo` writes, minus gbm and cost)."""
    data = run / "data"
    write_population(data, SynthConfig(people=people, seed=5, n_practices=4))
    tables, _ = load_tables(data)
    model = train_model("logistic", build_features(tables, TRAIN_INDEX_DATE), TRAIN_INDEX_DATE,
                        data={"dir": str(data), "fingerprint": data_fingerprint(data)["sha256"]})
    save_model(model, run / "models" / "logistic")
    evaluation = build_features(tables, EVAL_INDEX_DATE)
    truth = truth_probabilities(data, evaluation["person_id"].to_numpy(), EVAL_INDEX_DATE)
    write_json(evaluate_model(model, evaluation, EVAL_INDEX_DATE, truth), run / "evaluation" / "logistic" / "metrics.json")
    score_population(read_model_files(run / "models" / "logistic"), data, EVAL_INDEX_DATE, run / "scores.parquet")
    casefind(run / "scores.parquet", data, run / "casefinding", key=PseudonymKey(b"report-test-key-0123456789", "file"))
    run_capitation(data, [load_scenario(s) for s in SCENARIOS], run / "capitation",
                   IndexDate(EVAL_INDEX_DATE, "given"), shown=lambda path: path.relative_to(run).as_posix())
    return run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("report-run") / "run")


@pytest.fixture(scope="session")
def built(run_dir):
    files = build_report(run_dir)
    return run_dir, files


class _Report(HTMLParser):
    """Collects section ids and statuses, images and figure readings from report HTML."""

    def __init__(self):
        super().__init__()
        self.sections, self.images, self.readings = {}, [], []
        self._reading = False
        self.image_check = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections[a["id"]] = a.get("data-status")
        elif tag == "img":
            self.images.append(a)
        elif tag == "span" and a.get("class") == "reading":
            self._reading = True
            self.readings.append("")
        elif a.get("id") == "image-check":
            self.image_check = a

    def handle_endtag(self, tag):
        if tag == "span":
            self._reading = False

    def handle_data(self, data):
        if self._reading:
            self.readings[-1] += data


def parse(html: str) -> _Report:
    p = _Report()
    p.feed(html)
    return p


# --- The report --------------------------------------------------------------------------

def test_every_section_present_with_embedded_images_and_readings(built):
    run_dir, files = built
    assert files.report == run_dir / "report.html" and files.workbook == run_dir / "workbook.xlsx"
    html = files.report.read_text(encoding="utf-8")
    report = parse(html)
    assert list(report.sections)[:len(SECTION_IDS)] == list(SECTION_IDS)
    assert all(report.sections[s] == "ok" for s in SECTION_IDS), report.sections
    assert files.sections_not_run == ()
    # self-contained: no external resource of any kind
    assert not re.search(r"""(src|href)=["'](https?:|//)""", html)
    assert "<link" not in html
    assert len(report.images) >= 13 and len(report.images) == len(report.readings)
    for img in report.images:
        assert img["src"].startswith("data:image/png;base64,")
        png = base64.b64decode(img["src"].split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"Software" not in png[:200]
    for reading in report.readings:
        assert len(reading) > 40 and re.search(r"\d", reading), reading  # a sentence with numbers in it


def test_readings_are_computed_from_the_run(built):
    run_dir, files = built
    html = files.report.read_text(encoding="utf-8")
    readings = " ".join(parse(html).readings)
    m = json.loads((run_dir / "evaluation" / "logistic" / "metrics.json").read_text())
    # the PPV chart's reading quotes the top 2% size, sensitivity, PPV and the base rate
    assert f"The top 2% of people by risk ({m['top_n']['0.02']:,} people) include {m['sensitivity_at']['0.02']:.0%}" \
           in readings
    assert f"{m['ppv_at']['0.02']:.0%} of them were admitted, against {m['prevalence']:.1%} of everyone" in readings
    summary = json.loads((run_dir / "capitation" / "summary.json").read_text())
    base = next(s for s in summary["scenarios"] if s["scenario"] == "baseline")
    payer = base["payer_share_pence"] / 100
    assert f"{'+' if payer > 0 else '-' if payer < 0 else ''}£{abs(payer):,.0f} under baseline" in readings
    budgets = pd.read_csv(run_dir / "capitation" / "budgets.csv")
    per_head = budgets.loc[budgets["scenario"] == "baseline", "budget_per_head_gbp"]
    assert f"from £{per_head.min():,.0f} to £{per_head.max():,.0f} per registered person" in readings
    people = pd.read_parquet(run_dir / "scores.parquet")
    assert f"{len(people):,} people are registered in 4 practices" in readings


def test_missing_models_are_marked_not_run(built):
    _, files = built
    html = files.report.read_text(encoding="utf-8")
    assert "gbm model: not run (no evaluation/gbm/metrics.json)" in html
    assert "cost model: not run (no evaluation/cost/metrics.json)" in html


def test_rebuild_is_byte_identical(built, tmp_path):
    run_dir, files = built
    again = build_report(run_dir, tmp_path / "again.html")
    assert again.workbook == tmp_path / "workbook.xlsx"
    assert again.report.read_bytes() == files.report.read_bytes()
    assert again.workbook.read_bytes() == files.workbook.read_bytes()


def test_partial_runs_say_not_run(run_dir, tmp_path):
    part = tmp_path / "part"
    shutil.copytree(run_dir / "data", part / "data")
    shutil.copytree(run_dir / "evaluation", part / "evaluation")
    files = build_report(part)
    report = parse(files.report.read_text(encoding="utf-8"))
    assert set(SECTION_IDS) <= set(report.sections)
    ok = {"population", "models", "subgroups"}
    assert {s for s in SECTION_IDS if report.sections[s] == "ok"} == ok
    assert set(files.sections_not_run) == set(SECTION_IDS) - ok
    assert "Not run: no capitation/summary.json" in files.report.read_text(encoding="utf-8")

    empty = tmp_path / "empty"
    empty.mkdir()
    files = build_report(empty)
    assert set(files.sections_not_run) == set(SECTION_IDS)
    from openpyxl import load_workbook

    wb = load_workbook(files.workbook)
    assert wb.sheetnames == ["Comparison", "Assumptions"]
    assert "not run" in wb["Comparison"]["A1"].value


def test_unreadable_part_is_a_clear_error(run_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(run_dir / "evaluation", bad / "evaluation")
    (bad / "evaluation" / "logistic" / "metrics.json").write_text("{not json")
    with pytest.raises(DataError, match=r"evaluation/logistic/metrics.json: not valid JSON"):
        read_run(bad)
    result = CliRunner().invoke(main, ["report", str(bad)])
    assert result.exit_code == 2
    assert "metrics.json: not valid JSON" in result.output

    shutil.copytree(run_dir / "capitation", bad / "capitation")
    (bad / "evaluation" / "logistic" / "metrics.json").unlink()
    (bad / "capitation" / "tariffs.csv").unlink()
    with pytest.raises(DataError, match=r"tariffs.csv: missing from the capitation output"):
        read_run(bad)


def test_gains_points_run_from_the_top_to_everyone(built):
    run_dir, _ = built
    m = json.loads((run_dir / "evaluation" / "logistic" / "metrics.json").read_text())
    x, y = gains_points(m)
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) >= -1e-12)
    assert x[-1] == pytest.approx(1.0) and y[-1] == pytest.approx(1.0)
    i = int(np.argmin(np.abs(x - 0.02)))
    assert y[i] == pytest.approx(m["sensitivity_at"]["0.02"])


# --- Rendering in a real browser ------------------------------------------------------------

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _render(path: Path, profile: Path) -> _Report:
    """The DOM of ``path`` after headless Chromium has loaded it and run its scripts."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium binary on PATH (chromium, chromium-browser or google-chrome): .ci/run installs "
                    "the OS package; install it to render the report")
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", path.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return parse(proc.stdout)


def test_report_renders_in_headless_chromium(built, tmp_path):
    _, files = built
    dom = _render(files.report, tmp_path / "profile")
    for section in SECTION_IDS:
        assert section in dom.sections, f"section #{section} missing from the rendered page"
    assert len(dom.images) >= 13
    broken = [img.get("data-figure") for img in dom.images if img.get("data-loaded") != "yes"]
    assert not broken, f"images that did not load: {broken}"
    check = dom.image_check
    assert check["data-broken"] == "0"
    assert int(check["data-loaded"]) == int(check["data-images"]) == len(dom.images)


def test_the_render_check_catches_a_broken_image(built, tmp_path):
    _, files = built
    html = files.report.read_text(encoding="utf-8")
    damaged = tmp_path / "damaged.html"
    damaged.write_text(re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,AAAA", html, count=1),
                       encoding="utf-8")
    dom = _render(damaged, tmp_path / "profile")
    assert [img.get("data-loaded") for img in dom.images].count("no") == 1
    assert dom.image_check["data-broken"] == "1"


# --- The workbook -------------------------------------------------------------------------

def test_workbook_reads_back_with_budgets_that_add_up(built):
    from openpyxl import load_workbook

    run_dir, files = built
    wb = load_workbook(files.workbook)
    assert wb.sheetnames == ["Comparison", *SCENARIOS, "Tariffs", "Settlement", "Accuracy", "Assumptions"]
    summary = json.loads((run_dir / "capitation" / "summary.json").read_text())
    budgets = pd.read_csv(run_dir / "capitation" / "budgets.csv", dtype={"practice_code": str})
    for s in summary["scenarios"]:
        ws = wb[s["scenario"]]
        assert ws.freeze_panes == "B2"
        header = [c.value for c in ws[1]]
        rows = list(ws.iter_rows(min_row=2, values_only=True))
        n = int((budgets["scenario"] == s["scenario"]).sum())
        data = pd.DataFrame(rows[:n], columns=header)
        pence = data["budget (pence)"].tolist()
        assert all(isinstance(v, int) for v in pence)
        assert sum(pence) == s["envelope_pence"]
        expected = budgets[budgets["scenario"] == s["scenario"]].sort_values("practice_code")
        assert data["practice_code"].tolist() == expected["practice_code"].tolist()
        assert pence == expected["budget_pence"].tolist()
        assert data["budget (£)"].tolist() == pytest.approx([p / 100 for p in pence], abs=1e-9)
        total, envelope, check = rows[n + 1], rows[n + 2], rows[n + 3]
        assert total[0] == "Total" and total[4] == s["envelope_pence"]
        assert envelope[0] == "Envelope" and envelope[4] == s["envelope_pence"]
        assert check[4] == f"=SUM(E2:E{n + 1})-E{n + 4}" and check[5].startswith("OK")
        assert ws.cell(row=2, column=5).number_format == "#,##0"
        assert ws.cell(row=2, column=6).number_format == "#,##0.00"
        assert ws.column_dimensions["A"].width >= 10

    comparison = wb["Comparison"]
    header = [c.value for c in comparison[1]]
    rows = [dict(zip(header, r)) for r in comparison.iter_rows(min_row=2, values_only=True)]
    assert [r["scenario"] for r in rows] == list(SCENARIOS)
    for r, s in zip(rows, summary["scenarios"]):
        assert r["envelope (pence)"] == s["envelope_pence"]
        assert r["commissioner share (£)"] == pytest.approx(s["payer_share_pence"] / 100)

    tariffs = pd.read_csv(run_dir / "capitation" / "tariffs.csv")
    ws = wb["Tariffs"]
    sheet = pd.DataFrame(list(ws.iter_rows(min_row=2, values_only=True)), columns=[c.value for c in ws[1]])
    assert sheet["tariff (pence)"].tolist() == tariffs["tariff_pence"].tolist()
    settlement = pd.read_csv(run_dir / "capitation" / "settlement.csv")
    ws = wb["Settlement"]
    sheet = pd.DataFrame(list(ws.iter_rows(min_row=2, values_only=True)), columns=[c.value for c in ws[1]])
    assert len(sheet) == len(settlement)
    assert sheet["variance (£)"].sum() == pytest.approx(settlement["variance_pence"].sum() / 100)


def test_assumptions_list_every_parameter_and_fingerprint(built):
    from openpyxl import load_workbook

    import yaml

    run_dir, files = built
    ws = load_workbook(files.workbook)["Assumptions"]
    cells = list(ws.iter_rows(values_only=True))
    header = next(i for i, r in enumerate(cells) if r[0] == "parameter")
    scenarios = [v for v in cells[header][1:] if v]
    assert scenarios == list(SCENARIOS)
    table = {r[0]: dict(zip(scenarios, r[1:])) for r in cells[header + 1:] if r[0]}
    for name in SCENARIOS:
        raw = yaml.safe_load((run_dir / "capitation" / "scenarios" / name / "scenario.yaml").read_text())
        for key, value in flatten(raw).items():
            if key == "settings":
                continue  # shown as the list that was run
            assert key in table, f"{name}: parameter {key} missing from the Assumptions sheet"
            shown = table[key][name]
            assert shown == ("none" if value is None else value), (name, key)
        for default in ("tariff.cap_percentile", "tariff.cost_uplift_pct", "budget.mode", "top_slices.contingency_pct"):
            assert table[default][name] is not None
    assert table["tariff.cap_percentile"]["baseline"] == "none"
    assert table["tariff.cap_percentile"]["cap_p99"] == 99
    text = {str(v) for r in cells for v in r if v is not None}
    for path in sorted((run_dir / "data").iterdir()):
        assert f"data/{path.name}" in text and sha256_file(path) in text
    for path in sorted((run_dir / "models" / "logistic").iterdir()):
        assert f"models/logistic/{path.name}" in text and sha256_file(path) in text
    assert data_fingerprint(run_dir / "data")["sha256"] in text


def test_sheet_names_are_valid_and_unique():
    names = sheet_names(["baseline", "a/b:c*d?[e]", "x" * 40, "x" * 40 + "y", "Tariffs", "tariffs"])
    values = list(names.values())
    assert len(set(v.lower() for v in values)) == len(values)
    assert all(len(v) <= 31 and not re.search(r"[\[\]:*?/\\]", v) for v in values)
    assert names["a/b:c*d?[e]"] == "a_b_c_d__e_"
    assert names["Tariffs"].lower() != "tariffs" and names["tariffs"].lower() != "tariffs"


def test_scenario_parameters_fill_defaults():
    params = scenario_parameters({"name": "x", "budget": {"mode": "fair_shares", "pace_of_change": {"step_pct": 50}}},
                                 {"settings": ["gp"], "mode": "fair shares", "cap_pence": None})
    assert params["budget.pace_of_change.step_pct"] == 50
    assert "budget.pace_of_change.max_growth_pct" in params
    assert params["tariff.efficiency_pct"] == 0
    assert params["settings"] == "gp"
    assert params["corridor"].startswith("none")
    assert flatten({"a": [{"b": 1}, {"b": 2}], "c": [1, 2]}) == {"a.0.b": 1, "a.1.b": 2, "c": "1, 2"}


# --- CLI ------------------------------------------------------------------------------------

def test_cli_report_and_verify(built, tmp_path):
    run_dir, _ = built
    run = tmp_path / "run"
    manifest = RunManifest(run)  # claims the folder before the outputs are written, as `riskcap demo` does
    shutil.copytree(run_dir, run, dirs_exist_ok=True)
    manifest.write()
    runner = CliRunner()
    # rebuilding the report from the same outputs keeps the run verified (byte-identical files)
    result = runner.invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-2:] == [str(run / "report.html"), str(run / "workbook.xlsx")]

    result = runner.invoke(main, ["verify", str(run)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("verified")

    (run / "capitation" / "comparison.csv").write_text("tampered\n")
    (run / "scores.parquet").unlink()
    (run / "extra.txt").write_text("x")
    result = runner.invoke(main, ["verify", str(run)])
    assert result.exit_code == 2
    assert "capitation/comparison.csv: changed since the run" in result.output
    assert "scores.parquet: missing" in result.output
    assert "extra.txt: not produced by the run" in result.output

    result = runner.invoke(main, ["verify", str(tmp_path)])
    assert result.exit_code == 2 and "no manifest" in result.output
