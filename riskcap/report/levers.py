"""The policy levers in the report and the workbook, each described once (:data:`LEVERS`).

A lever shows only when some scenario of the run sets it (its keys in the scenario's
``summary.json`` entry, or its per-practice table in the capitation output), so runs without
levers give the same report and workbook as before. The HTML table has one row per scenario
(or per scenario and component, band, year); a stop-loss, risk-pool or withhold sheet lists
practices, so those levers give the table rows separately (``table_rows``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from riskcap.capitation.money import gbp
from riskcap.report.html import Table, pct
from riskcap.report.xlsx import GBP, INT, PENCE, RATIO, Column, pounds, sheet_table


@dataclass(frozen=True)
class Lever:
    """One lever's table: ``cells`` in the report section ``section``, ``columns`` on sheet ``sheet``."""

    sheet: str
    rows: Callable  # CapitationOutputs -> DataFrame for the sheet (and the table), None when no scenario sets it
    columns: list[Column]
    section: str  # report section id ("budgets" or "settlement")
    title: str
    cells: list[tuple[str, bool, Callable]]  # header, right-aligned, row (a dict) -> text
    note: str | Callable  # or rows -> text
    table_rows: Callable | None = None  # CapitationOutputs -> list of dicts, when the table is not the sheet's rows
    file: str | None = None  # the capitation output's per-practice CSV (``rows``), with its needed columns
    needs: tuple[str, ...] = ()
    freeze: str = "B2"


def _money(key: str, **how) -> Callable:
    return lambda r: gbp(r[key] / 100, **how)


def _frame(rows: list[dict]) -> pd.DataFrame | None:
    return pd.DataFrame(rows) if rows else None


def _scenarios_with(key: str) -> Callable:
    return lambda cap: [s for s in cap.summary["scenarios"] if key in s]


def _pool_rows(cap) -> list[dict]:
    pools = cap.levers.get("risk_pools")
    out = []
    for s in _scenarios_with("risk_pool_level")(cap) if pools is not None else ():
        factor = pd.to_numeric(pools.loc[pools["scenario"] == s["scenario"], "band_factor"])
        out.append({**s, "band_factors": f"{factor.min():.3g} to {factor.max():.3g}"})
    return out


def _components(cap) -> pd.DataFrame | None:
    return _frame([{"scenario": s["scenario"], "component": c["component"], "settings": ", ".join(c["settings"]),
                    "need": c["need"], "envelope_pence": c["envelope_pence"], "budget_pence": c["budget_pence"],
                    "actual_pence": c["actual_pence"], "predictive_ratio": c["predictive_ratio"]}
                   for s in cap.summary["scenarios"] for c in s.get("components", ())])


def _inequality_bands(cap) -> pd.DataFrame | None:
    return _frame([{"scenario": s["scenario"], "by": i["by"], "apply_to": i["apply_to"], "weight_pct": i["weight_pct"],
                    "band": band["band"], "index": i["index"][band["band"] - 1], "factor": factor,
                    "before_pence": band["before_pence"], "after_pence": band["after_pence"],
                    "change_pence": band["change_pence"], "moved_between_practices_pence": i["moved_pence"]}
                   for s in cap.summary["scenarios"] if (i := s.get("inequalities")) is not None
                   for band, factor in zip(i["bands"], i["factors"])])


def _moved(rows: list[dict]) -> str:
    moved = {r["scenario"]: r["moved_between_practices_pence"] for r in rows}
    return ("Band 1 is the most deprived. A weight of the money is shared by need x the band's index (NHS England's "
            "form); the envelope is unchanged. Moved between practices: "
            + "; ".join(f"{n} {gbp(v / 100, 2)}" for n, v in moved.items()) + ".")


def _coding(cap) -> pd.DataFrame | None:
    return _frame([{"scenario": s["scenario"], "flag_threshold_pct": c["flag_threshold_pct"],
                    "normalise_pct": c["normalise_pct"], "flagged": ", ".join(c["flagged"]) or "none",
                    "icb_growth": ", ".join(f"{k} {v:+.2%}" if v is not None else f"{k} n/a"
                                            for k, v in c["icb_growth"].items()),
                    "moved_pence": c["moved_pence"]}
                   for s in cap.summary["scenarios"] if (c := s.get("coding_intensity")) is not None])


def _envelopes(cap) -> pd.DataFrame | None:
    return _frame([{"scenario": s["scenario"], "year": y, "envelope_pence": e}
                   for s in cap.summary["scenarios"] if (g := s.get("pace_of_change_growth")) is not None
                   for y, e in enumerate([g["last_year_pence"], *g["envelopes_pence"]])])


_SCENARIO, _PRACTICE = Column("scenario", "scenario", width=22), Column("practice_code", "practice_code", width=12)
_NAME = ("scenario", False, lambda r: r["scenario"])

#: The levers, in report and workbook order.
LEVERS = (
    Lever("Stop-loss", lambda cap: cap.levers.get("stop_loss"), [
        _SCENARIO, _PRACTICE, Column("attachment (£ a person-year)", pounds("attachment_pence"), GBP, 14),
        Column("outturn charged (£)", pounds("charged_pence"), GBP, 16),
        Column("cost above attachment (£)", pounds("excess_above_attachment_pence"), GBP, 16),
        Column("paid by the pool (£)", pounds("pool_paid_pence"), GBP, 16),
        Column("borne by the practice (£)", pounds("practice_retained_pence"), GBP, 16),
        Column("practice cap reached", lambda f: f["practice_cap_reached"].map(
            lambda v: "yes" if str(v).lower() == "true" else "no"), None, 10),
        Column("practice actual after pool (£)", pounds("actual_pence"), GBP, 16)],
        "settlement", "Stop-loss: who paid the costs above the attachment point", [
        _NAME, ("attachment (a person-year)", True, _money("pool_threshold_pence")),
        ("cost above it", True, _money("stop_loss_excess_pence")),
        ("paid by the pool", True, _money("stop_loss_pool_paid_pence")),
        ("borne by practices", True, _money("stop_loss_practice_retained_pence")),
        ("practices at their cap", True, lambda r: f"{r['stop_loss_practices_capped']:,}"),
        ("pool funding", True, _money("pool_funding_pence")),
        ("loading on every tariff (a year)", True, _money("stop_loss_loading_pence", decimals=2))],
        "The pool pays its share of each person's outcome-year cost above the attachment, and all of a practice's "
        "share beyond its cap; costs above the attachment were taken out of the group tariffs, and practices' share "
        "of them is added back as one flat loading per registered year (stop_loss.csv).",
        _scenarios_with("stop_loss_excess_pence"), "stop_loss",
        ("scenario", "practice_code", "excess_above_attachment_pence", "pool_paid_pence", "practice_retained_pence",
         "actual_pence"), "C2"),
    Lever("Risk pools", lambda cap: cap.levers.get("risk_pools"), [
        _SCENARIO, _PRACTICE, Column("settled per", "level", width=10), Column("pool", "pool_code", width=14),
        Column("practices in pool", "pool_practices", INT, 10), Column("pool list size", "pool_list_size", INT, 12),
        Column("corridor band factor", "band_factor", RATIO, 10),
        Column("pool variance (£)", pounds("pool_variance_pence"), GBP, 16),
        Column("pool: commissioner share (£)", pounds("pool_payer_share_pence"), GBP, 16),
        Column("practice variance (£)", pounds("variance_pence"), GBP, 16),
        Column("commissioner share (£)", pounds("payer_share_pence"), GBP, 16),
        Column("practice's share of the pool's result (£)", pounds("pooled_provider_share_pence"), GBP, 16),
        Column("carried by other members (£)", pounds("pool_transfer_pence"), GBP, 16)],
        "settlement", "Risk pools: corridors settled per pool", [
        _NAME, ("settled per", False, lambda r: r["risk_pool_level"]), ("pools", True, lambda r: f"{r['risk_pools']:,}"),
        ("corridor band factor", True, lambda r: r["band_factors"]),
        ("commissioner share", True, _money("payer_share_pence", signed=True)),
        ("carried between members", True, _money("risk_pool_transfer_pence"))],
        "Each pool's variance is shared by the corridor (bands widened by the factor for small pools); the "
        "commissioner's and the providers' shares go to members by basis. 'Carried between members': the total one "
        "member's result was borne by others (risk_pools.csv).",
        _pool_rows, "risk_pools",
        ("scenario", "practice_code", "pool_code", "pool_variance_pence", "payer_share_pence", "provider_share_pence",
         "pooled_provider_share_pence", "pool_transfer_pence"), "C2"),
    Lever("Withhold by outcome", lambda cap: cap.levers.get("withhold_outcome"), [
        _SCENARIO, _PRACTICE, Column("measure", "measure", width=22), Column("people", "people", INT, 10),
        Column("observed", "observed", INT, 10), Column("expected", "expected", "#,##0.0", 10),
        Column("observed / expected", "observed_over_expected", RATIO, 10),
        Column("share earned", "earned_share", "0.0%", 10),
        Column("withhold (£)", pounds("withhold_pence"), GBP, 14),
        Column("earned back (£)", pounds("withhold_earned_pence"), GBP, 14)],
        "settlement", "Outcome withhold earned per practice", [
        _NAME, ("measure", False, lambda r: r["withhold_measure"].replace("_", " ")),
        ("withhold", True, _money("withhold_pence")), ("earned back", True, _money("withhold_earned_pence")),
        ("practices earning all", True, lambda r: f"{r['withhold_practices_earning_all']:,}"),
        ("practices earning none", True, lambda r: f"{r['withhold_practices_earning_none']:,}")],
        "Each practice earns its withhold by its observed outcome against what its people were expected to have at "
        "the whole population's rate in each need group (withhold_outcome.csv).",
        _scenarios_with("withhold_measure"), "withhold_outcome",
        ("scenario", "practice_code", "observed", "expected", "earned_share", "withhold_pence",
         "withhold_earned_pence"), "C2"),
    Lever("Component budgets", _components, [
        _SCENARIO, Column("component", "component", width=16), Column("settings", "settings", width=40),
        Column("need basis", "need", width=14), Column("envelope (pence)", "envelope_pence", PENCE, 18),
        Column("envelope (£)", pounds("envelope_pence"), GBP, 16), Column("budget (pence)", "budget_pence", PENCE, 18),
        Column("actual (pence)", "actual_pence", PENCE, 18), Column("predictive ratio", "predictive_ratio", RATIO)],
        "budgets", "Component budgets", [
        _NAME, ("component", False, lambda r: r["component"]), ("settings", False, lambda r: r["settings"]),
        ("shared by", False, lambda r: r["need"]), ("envelope", True, _money("envelope_pence", decimals=2)),
        ("actual", True, _money("actual_pence", decimals=2)),
        ("ratio", True, lambda r: "" if pd.isna(r["predictive_ratio"]) else f"{r['predictive_ratio']:.3f}")],
        "Each component is priced from its own settings' costs and shared by its own need basis; the components add "
        "up to the envelope to the penny (components.csv per practice)."),
    Lever("Inequalities adjustment", _inequality_bands, [
        _SCENARIO, Column("by", "by"), Column("applied to", "apply_to"), Column("weight %", "weight_pct", "0.00"),
        Column("band (1 = most deprived)", "band", INT, 12), Column("index", "index", "0.000000"),
        Column("factor", "factor", "0.000000"), Column("before (pence)", "before_pence", PENCE, 18),
        Column("after (pence)", "after_pence", PENCE, 18), Column("change (pence)", "change_pence", PENCE, 18),
        Column("moved between practices (pence)", "moved_between_practices_pence", PENCE, 20)],
        "budgets", "Health-inequalities adjustment: money by deprivation band", [
        _NAME, ("band", False, lambda r: f"{r['by'].replace('imd_', 'IMD ')} {r['band']}"),
        ("index", True, lambda r: f"{r['index']:g}"), ("factor", True, lambda r: f"{r['factor']:.4f}"),
        ("before", True, _money("before_pence", decimals=2)), ("after", True, _money("after_pence", decimals=2)),
        ("change", True, _money("change_pence", signed=True, decimals=2))], _moved),
    Lever("Coding intensity", _coding, [
        _SCENARIO, Column("flag above %", "flag_threshold_pct", "0.00"), Column("normalise %", "normalise_pct", "0.00"),
        Column("practices flagged", "flagged", width=40), Column("ICB growth (median practice)", "icb_growth", width=30),
        Column("money moved (pence)", "moved_pence", PENCE, 18)],
        "budgets", "Coding-intensity safeguard", [
        _NAME, ("flag above", True, lambda r: pct(r["flag_threshold_pct"] / 100)),
        ("normalised", True, lambda r: pct(r["normalise_pct"] / 100, 0)),
        ("practices flagged", False, lambda r: r["flagged"]),
        ("ICB growth (median practice)", False, lambda r: r["icb_growth"]),
        ("money moved", True, _money("moved_pence", decimals=2))],
        "Age-sex-standardised register growth per practice against its ICB's between the base and the current year "
        "(coding_intensity.csv per practice)."),
    Lever("Envelope path", _envelopes, [
        _SCENARIO, Column("year (0 = last year)", "year", INT), Column("envelope (pence)", "envelope_pence", PENCE, 18),
        Column("envelope (£)", pounds("envelope_pence"), GBP, 16)],
        "budgets", "Pace of change with a growing envelope", [
        _NAME, ("year", True, lambda r: "last year" if r["year"] == 0 else str(r["year"])),
        ("envelope", True, _money("envelope_pence", decimals=2))],
        "Growth floors and caps apply to each practice's budget of the year before (pace_path.csv)."),
)


def lever_tables(cap, section: str) -> list[Table]:
    """The report tables of the levers some scenario of ``cap`` sets, for report section ``section``."""
    tables = []
    for lever in LEVERS:
        if lever.section != section:
            continue
        if lever.table_rows is not None:
            rows = lever.table_rows(cap)
        else:
            frame = lever.rows(cap)
            rows = [] if frame is None else frame.to_dict("records")
        if rows:
            tables.append(Table(lever.title, [c[0] for c in lever.cells], [[c[2](r) for c in lever.cells] for r in rows],
                                [c[1] for c in lever.cells], lever.note(rows) if callable(lever.note) else lever.note))
    return tables


def lever_sheets(wb, cap) -> None:
    """The workbook sheets of the levers some scenario of ``cap`` sets."""
    for lever in LEVERS:
        frame = lever.rows(cap)
        if frame is not None:
            sheet_table(wb.create_sheet(lever.sheet), frame, lever.columns, lever.freeze)
