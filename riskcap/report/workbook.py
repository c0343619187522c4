"""The finance workbook: practice budgets per scenario, comparison, tariffs, settlement,
accuracy, the levers' sheets and the assumptions (sheet by sheet: ``docs/report.md``).

Each scenario's budget sheet ends with a check that the budgets add up to the envelope to the
penny (a stored value, and an Excel formula that re-checks them if anyone edits a budget).
Document dates are fixed to the run's index date and zip entries are normalised, so the same
run outputs give the same bytes.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd

from riskcap.capitation.scenario import (DEFAULTS, PACE_DEFAULTS, RISK_POOL_DEFAULTS, STOP_LOSS_DEFAULTS,
                                        WITHHOLD_OUTCOME_DEFAULTS)
from riskcap.data.write import write_file
from riskcap.report.levers import LEVERS, lever_sheets
from riskcap.report.outputs import CapitationOutputs, RunOutputs
from riskcap.report.xlsx import GBP, INT, PCT, PCT2, PENCE, RATIO, Column, _xml_text, cell_text, pounds, saved_bytes, sheet_table

FIXED_SHEETS = ("Comparison", "Tariffs", "Settlement", "Accuracy", "Assumptions", *(lever.sheet for lever in LEVERS))
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
_ABSENT = object()


def sheet_names(scenarios: list[str]) -> dict[str, str]:
    """A valid, unique worksheet name per scenario (31 characters, no []:*?/\\, not a fixed sheet)."""
    taken = {s.lower() for s in FIXED_SHEETS}
    out = {}
    for name in scenarios:
        base = _SHEET_BAD.sub("_", _xml_text(name))[:31] or "scenario"
        candidate, k = base, 2
        while candidate.lower() in taken:
            suffix = f" ({k})"
            candidate = base[:31 - len(suffix)] + suffix
            k += 1
        taken.add(candidate.lower())
        out[name] = candidate
    return out


# --- Sheets ----------------------------------------------------------------------------

COMPARISON_COLUMNS = [
    Column("scenario", "scenario", width=22),
    Column("description", "description", width=48),
    Column("budget mode", "mode", width=30),
    Column("need groups", "need_groups", width=18),
    Column("people", "people", INT, 12),
    Column("practices", "practices", INT, 10),
    Column("gross (pence)", "gross_pence", PENCE, 16),
    Column("contingency (pence)", "contingency_pence", PENCE, 16),
    Column("outcome withhold (pence)", "withhold_pence", PENCE, 16),
    Column("envelope (pence)", "envelope_pence", PENCE, 16),
    Column("envelope (£)", pounds("envelope_pence"), GBP, 16),
    Column("envelope per head (£)", "envelope_per_head_gbp", GBP, 12),
    Column("change vs baseline (£)", pounds("change_vs_baseline_pence"), GBP, 16),
    Column("high-cost pool funding (£)", pounds("pool_funding_pence"), GBP, 16),
    Column("budget basis incl. withhold earned (£)", pounds("basis_pence"), GBP, 18),
    Column("actual (£)", pounds("actual_pence"), GBP, 16),
    Column("variance (£)", pounds("variance_pence"), GBP, 16),
    Column("commissioner share (£)", pounds("payer_share_pence"), GBP, 16),
    Column("practices' share (£)", pounds("provider_share_pence"), GBP, 16),
    Column("commissioner balance (£)", pounds("commissioner_balance_pence"), GBP, 16),
    Column("predictive ratio", "predictive_ratio", RATIO, 10),
    Column("practices within ±10%", "practices_within_10pct", PCT, 10),
    Column("practice R²", "r_squared", RATIO, 10),
    Column("mean |distance from target|", "mean_abs_distance_from_target", PCT, 12),
    Column("outturn read (£)", pounds("outturn_read_pence"), GBP, 16),
    Column("charged to practices (£)", pounds("charged_to_practices_pence"), GBP, 16),
    Column("unregistered, ICB (£)", pounds("unregistered_pence"), GBP, 14),
    Column("tariff method", "tariff_method", width=48),
]

ACCURACY_COLUMNS = [
    Column("scenario", "scenario", width=22),
    Column("level", "level", width=12),
    Column("need group", "unit", width=24),
    Column("predictive ratio", "predictive_ratio", RATIO, 10),
    Column("ratio noise (s.e.)", "ratio_se", RATIO, 10),
    Column("z", "z", RATIO, 8),
    Column("people", "people", INT, 10),
    Column("allocated (£)", pounds("allocated_pence"), GBP, 16),
    Column("actual (£)", pounds("actual_pence"), GBP, 16),
    Column("tariff method", "method", width=48),
]

BUDGET_COLUMNS = [
    Column("practice_code", "practice_code", width=12),
    Column("icb_code", "icb_code", width=10),
    Column("list size", "list_size", INT, 10),
    Column("weighted list size (list days / 365)", "weighted_list_size", "#,##0.000", 14),
    Column("budget (pence)", "budget_pence", PENCE, 16),
    Column("budget (£)", pounds("budget_pence"), GBP, 16),
    Column("budget per head (£)", "budget_per_head_gbp", GBP, 12),
    Column("target (pence)", "target_pence", PENCE, 16),
    Column("target (£)", pounds("target_pence"), GBP, 16),
    Column("current (£)", pounds("current_pence"), GBP, 16),
    Column("distance from target", "distance_from_target", PCT, 10),
    Column("outcome withhold (pence)", "withhold_pence", PENCE, 14),
    Column("change vs baseline (£)", pounds("change_vs_baseline_pence"), GBP, 14),
    Column("change vs baseline (%)", lambda f: f["change_vs_baseline_pct"].astype("float64") / 100, PCT2, 10),
]

TARIFF_COLUMNS = [
    Column("scenario", "scenario", width=22),
    Column("need_group", "need_group", width=22),
    Column("need group", "need_group_name", width=36),
    Column("people", "people", INT, 10),
    Column("list days", "list_days", INT, 12),
    Column("base-year cost (£)", pounds("base_cost_pence"), GBP, 16),
    Column("excess above cap (£)", pounds("excess_pence"), GBP, 14),
    Column("mean base cost (£)", "mean_base_cost_gbp", GBP, 12),
    Column("mean capped cost (£)", "mean_capped_cost_gbp", GBP, 12),
    Column("tariff (pence)", "tariff_pence", PENCE, 12),
    Column("tariff (£)", pounds("tariff_pence"), GBP, 12),
]

SETTLEMENT_COLUMNS = [
    Column("scenario", "scenario", width=22),
    Column("practice_code", "practice_code", width=12),
    Column("icb_code", "icb_code", width=10),
    Column("budget (£)", pounds("budget_pence"), GBP, 16),
    Column("withhold earned (£)", pounds("withhold_earned_pence"), GBP, 14),
    Column("basis (£)", pounds("basis_pence"), GBP, 16),
    Column("actual (£)", pounds("actual_pence"), GBP, 16),
    Column("variance (£)", pounds("variance_pence"), GBP, 14),
    Column("variance (% of basis)", lambda f: f["variance_pct"].astype("float64") / 100, PCT2, 10),
    Column("commissioner share (£)", pounds("payer_share_pence"), GBP, 14),
    Column("practice share (£)", pounds("provider_share_pence"), GBP, 14),
    Column("predictive ratio", "predictive_ratio", RATIO, 10),
]


def _comparison_frame(cap: CapitationOutputs) -> pd.DataFrame:
    frame = pd.DataFrame(cap.summary["scenarios"])
    base = cap.scenarios[cap.baseline]["summary"]["envelope_pence"]
    frame["change_vs_baseline_pence"] = frame["envelope_pence"] - base
    return frame


def _budget_sheet(ws, frame: pd.DataFrame, envelope_pence: int) -> None:
    from openpyxl.styles import Font

    frame = frame.sort_values("practice_code", kind="stable").reset_index(drop=True)
    last = sheet_table(ws, frame, BUDGET_COLUMNS)
    bold = Font(bold=True)
    total_row, env_row, check_row = last + 2, last + 3, last + 4
    total = int(frame["budget_pence"].sum())
    ws.cell(row=total_row, column=1, value="Total").font = bold
    for j, col in ((3, "list_size"), (5, "budget_pence"), (8, "target_pence"), (12, "withhold_pence")):
        ws.cell(row=total_row, column=j, value=int(frame[col].sum())).number_format = PENCE
    ws.cell(row=total_row, column=6, value=total / 100).number_format = GBP
    ws.cell(row=env_row, column=1, value="Envelope").font = bold
    ws.cell(row=env_row, column=5, value=int(envelope_pence)).number_format = PENCE
    ws.cell(row=env_row, column=6, value=envelope_pence / 100).number_format = GBP
    ws.cell(row=check_row, column=1, value="Check: budgets - envelope (pence)").font = bold
    ws.cell(row=check_row, column=5, value=f"=SUM(E2:E{last})-E{env_row}").number_format = PENCE
    status = ("OK: the budgets add up to the envelope to the penny (difference 0 when written)"
              if total == envelope_pence else f"MISMATCH: budgets - envelope = {total - envelope_pence} pence")
    ws.cell(row=check_row, column=6, value=status).data_type = "s"


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Nested mappings and lists as dotted keys (``corridor.overspend.0.from_pct``)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: "{}"}
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}.{i}"))
        return out
    if isinstance(value, list):
        return {prefix: ", ".join(map(str, value))}
    return {prefix: value}


def scenario_parameters(raw: dict, summary: dict) -> dict[str, object]:
    """Every parameter of a scenario as dotted keys: the file's values over the defaults,
    settings as the list that was run, plus what the run resolved (mode, cap, pool)."""
    import copy

    merged = copy.deepcopy(DEFAULTS)
    for key, value in (raw or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    pace = merged.get("budget", {}).get("pace_of_change")
    if isinstance(pace, dict):
        merged["budget"]["pace_of_change"] = {**PACE_DEFAULTS, **pace}
    for key, defaults in (("stop_loss", STOP_LOSS_DEFAULTS), ("risk_pool", RISK_POOL_DEFAULTS)):  # issue 19
        if isinstance(merged.get(key), dict):
            merged[key] = {**defaults, **merged[key]}
        else:  # not set: not listed, as before the levers existed
            merged.pop(key, None)
    slices = merged.get("top_slices", {})
    if isinstance(slices.get("withhold_earned_by"), dict):
        slices["withhold_earned_by"] = {**WITHHOLD_OUTCOME_DEFAULTS, **slices["withhold_earned_by"]}
        slices.pop("withhold_earned_pct", None)  # not used: earned per practice by outcome
    else:
        slices.pop("withhold_earned_by", None)
    merged["settings"] = list(summary.get("settings", merged.get("settings", [])))
    if merged.get("corridor") is None:
        merged["corridor"] = "none (practices bear all variance)"
    params = flatten(merged)
    params["(as run) budget mode"] = summary.get("mode")
    params["(as run) individual cost cap (£, base-year prices)"] = \
        None if summary.get("cap_pence") is None else summary["cap_pence"] / 100
    params["(as run) pool threshold (£, outcome-year prices)"] = \
        None if summary.get("pool_threshold_pence") is None else summary["pool_threshold_pence"] / 100
    params["(as run) source file"] = summary.get("source") or ""
    return params


def _assumptions_sheet(ws, run: RunOutputs) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True, size=12)
    head = Font(bold=True)
    row = 1

    def put(r, c, value, font=None, fmt=None):
        if value is None:
            return
        if isinstance(value, (list, dict)):
            value = str(value)
        if isinstance(value, str):
            value = cell_text(value)  # text from a config: no NUL reaches the XML, no formula runs
        cell = ws.cell(row=r, column=c, value=value)
        if isinstance(value, str):
            cell.data_type = "s"
        if font:
            cell.font = font
        if fmt:
            cell.number_format = fmt

    ws.column_dimensions["A"].width = 52
    cap = run.capitation
    put(row, 1, "Scenario parameters (rates are percentages: 2.9 means 2.9%)", bold)
    row += 1
    if cap is None:
        put(row, 1, "Capitation: not run")
        row += 2
    else:
        names = cap.names
        params = {n: scenario_parameters(cap.scenarios[n]["raw"], {**cap.scenarios[n]["summary"],
                                                                    "source": _source(cap, n)}) for n in names}
        sections = list(DEFAULTS)
        keys = sorted(dict.fromkeys(k for n in names for k in params[n]),
                      key=lambda k: len(sections) if k.startswith("(") else
                      sections.index(k.split(".")[0]) if k.split(".")[0] in sections else len(sections) - 1)
        put(row, 1, "parameter", head)
        for j, n in enumerate(names, start=2):
            put(row, j, n, head)
            ws.column_dimensions[get_column_letter(j)].width = 24
        header_row = row
        for key in keys:
            row += 1
            put(row, 1, key)
            for j, n in enumerate(names, start=2):
                value = params[n].get(key, _ABSENT)
                if value is _ABSENT:
                    continue
                put(row, j, "none" if value is None else value, fmt=GBP if key.startswith("(as run) individual") or
                    key.startswith("(as run) pool") else None)
        ws.freeze_panes = ws.cell(row=header_row + 1, column=2)
        row += 2
        put(row, 1, f"Baseline scenario: {cap.baseline}")
        row += 1
        for k, v in sorted(cap.summary.get("inputs", {}).items()):
            put(row, 1, f"capitation input: {k}")
            put(row, 2, ", ".join(map(str, v)) if isinstance(v, list) else v)
            row += 1
        row += 1

    put(row, 1, "Run", bold)
    row += 1
    from riskcap import __version__

    facts = [("index date", run.index_date_text), ("index date from", run.index_date_source),
             ("riskcap version", __version__)]
    for kind, m in run.metrics.items():
        facts.append((f"{kind} model: trained at / evaluated at",
                      f"{m.get('training_index_date', '?')} / {m.get('evaluation_index_date', '?')}"))
    for part, why in run.missing.items():
        facts.append((f"not run: {part}", why))
    for k, v in facts:
        put(row, 1, k)
        put(row, 2, v)
        row += 1
    row += 1

    put(row, 1, "Data and model fingerprints (SHA-256 of each file)", bold)
    row += 1
    for j, h in enumerate(("file", "bytes", "sha256", "notes"), start=1):
        put(row, j, h, head)
    row += 1
    data = run.fingerprints.get("data", {})
    if run.fingerprints.get("data_digest"):
        put(row, 1, "data (contract tables, as recorded in model metadata)")
        put(row, 3, run.fingerprints["data_digest"])
        put(row, 4, "SHA-256 over the practices, persons, conditions and activity files")
        row += 1
    if not data:
        put(row, 1, "data: not in the run directory")
        row += 1
    for name, meta in sorted(data.items()):
        put(row, 1, f"data/{name}")
        put(row, 2, meta["bytes"], fmt=INT)
        put(row, 3, meta["sha256"])
        row += 1
    for kind, meta in run.fingerprints.get("models", {}).items():
        for name, f in sorted(meta["files"].items()):
            put(row, 1, f"models/{kind}/{name}")
            put(row, 2, f["bytes"], fmt=INT)
            put(row, 3, f["sha256"])
            if name == "metadata.json":
                put(row, 4, f"trained at {meta.get('training_index_date') or '?'} on data fingerprint "
                            f"{meta.get('data_fingerprint') or '?'}")
            row += 1
    ws.column_dimensions["C"].width = max(ws.column_dimensions["C"].width or 0, 66)


def _source(cap: CapitationOutputs, name: str) -> str:
    """Where a scenario came from (its file name only: paths differ between machines)."""
    source = cap.scenarios[name]["summary"].get("source") or ""
    return Path(source).name if source else f"capitation/scenarios/{name}/scenario.yaml"


def workbook_bytes(run: RunOutputs) -> bytes:
    """The finance workbook as deterministic bytes."""
    from openpyxl import Workbook

    wb = Workbook()
    stamp = dt.datetime.combine(run.index_date or dt.date(1980, 1, 1), dt.time())  # zip's earliest date
    wb.properties.creator = "riskcap"
    wb.properties.created = stamp
    wb.properties.modified = stamp
    wb.properties.title = "riskcap capitation workbook"
    cap = run.capitation
    ws = wb.active
    ws.title = "Comparison"
    if cap is None:
        ws.cell(row=1, column=1, value="Capitation: not run (no capitation/summary.json in the run directory)")
    else:
        frame = _comparison_frame(cap)
        columns = [c for c in COMPARISON_COLUMNS if callable(c.source) or c.source in frame]
        sheet_table(ws, frame, columns)
        names = sheet_names(cap.names)
        for n in cap.names:
            sheet = wb.create_sheet(names[n])
            _budget_sheet(sheet, cap.budgets[cap.budgets["scenario"] == n], cap.scenarios[n]["summary"]["envelope_pence"])
        tariffs = wb.create_sheet("Tariffs")
        sheet_table(tariffs, cap.tariffs, TARIFF_COLUMNS, freeze="C2")
        settlement = wb.create_sheet("Settlement")
        sheet_table(settlement, cap.settlement, SETTLEMENT_COLUMNS, freeze="C2")
        accuracy = wb.create_sheet("Accuracy")
        columns = [c for c in ACCURACY_COLUMNS if callable(c.source) or c.source in cap.accuracy]
        sheet_table(accuracy, cap.accuracy, columns, freeze="D2")
        lever_sheets(wb, cap)
    _assumptions_sheet(wb.create_sheet("Assumptions"), run)

    return saved_bytes(wb)


def write_workbook(run: RunOutputs, path: str | Path) -> Path:
    """Write the workbook atomically."""
    return write_file(workbook_bytes(run), path)
