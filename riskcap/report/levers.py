"""Report and workbook parts of the issue 19 levers a scenario may set (stop-loss, risk pools,
outcome withhold earned per practice).

Shown only when some scenario of the run sets them (``stop_loss.csv``, ``risk_pools.csv``,
``withhold_outcome.csv`` in the capitation output), so runs without them give the same report and workbook as before.
"""
from __future__ import annotations

import pandas as pd

#: Optional per-practice tables of the capitation output, by file stem, with their needed columns.
LEVER_FILES = {
    "stop_loss": ("scenario", "practice_code", "excess_above_attachment_pence", "pool_paid_pence",
                  "practice_retained_pence", "actual_pence"),
    "risk_pools": ("scenario", "practice_code", "pool_code", "pool_variance_pence", "payer_share_pence",
                   "provider_share_pence", "pooled_provider_share_pence", "pool_transfer_pence"),
    "withhold_outcome": ("scenario", "practice_code", "observed", "expected", "earned_share", "withhold_pence",
                         "withhold_earned_pence"),
}
#: Workbook sheets of the levers (fixed names: a scenario sheet never takes them).
SHEETS = {"stop_loss": "Stop-loss", "risk_pools": "Risk pools", "withhold_outcome": "Withhold by outcome"}


def _gbp(col: str):
    return lambda f: f[col].astype("float64") / 100


def sheet_columns(column_type, gbp_fmt: str, int_fmt: str, ratio_fmt: str) -> dict[str, list]:
    """The lever sheets' columns, built with the workbook's ``Column`` and formats."""
    c = column_type
    return {
        "stop_loss": [
            c("scenario", "scenario", width=22), c("practice_code", "practice_code", width=12),
            c("attachment (£ a person-year)", _gbp("attachment_pence"), gbp_fmt, 14),
            c("outturn charged (£)", _gbp("charged_pence"), gbp_fmt, 16),
            c("cost above attachment (£)", _gbp("excess_above_attachment_pence"), gbp_fmt, 16),
            c("paid by the pool (£)", _gbp("pool_paid_pence"), gbp_fmt, 16),
            c("borne by the practice (£)", _gbp("practice_retained_pence"), gbp_fmt, 16),
            c("practice cap reached", lambda f: f["practice_cap_reached"].map(
                lambda v: "yes" if str(v).lower() == "true" else "no"), None, 10),
            c("practice actual after pool (£)", _gbp("actual_pence"), gbp_fmt, 16),
        ],
        "risk_pools": [
            c("scenario", "scenario", width=22), c("practice_code", "practice_code", width=12),
            c("settled per", "level", width=10), c("pool", "pool_code", width=14),
            c("practices in pool", "pool_practices", int_fmt, 10), c("pool list size", "pool_list_size", int_fmt, 12),
            c("corridor band factor", "band_factor", ratio_fmt, 10),
            c("pool variance (£)", _gbp("pool_variance_pence"), gbp_fmt, 16),
            c("pool: commissioner share (£)", _gbp("pool_payer_share_pence"), gbp_fmt, 16),
            c("practice variance (£)", _gbp("variance_pence"), gbp_fmt, 16),
            c("commissioner share (£)", _gbp("payer_share_pence"), gbp_fmt, 16),
            c("practice's share of the pool's result (£)", _gbp("pooled_provider_share_pence"), gbp_fmt, 16),
            c("carried by other members (£)", _gbp("pool_transfer_pence"), gbp_fmt, 16),
        ],
        "withhold_outcome": [
            c("scenario", "scenario", width=22), c("practice_code", "practice_code", width=12),
            c("measure", "measure", width=22), c("people", "people", int_fmt, 10),
            c("observed", "observed", int_fmt, 10), c("expected", "expected", "#,##0.0", 10),
            c("observed / expected", "observed_over_expected", ratio_fmt, 10),
            c("share earned", "earned_share", "0.0%", 10),
            c("withhold (£)", _gbp("withhold_pence"), gbp_fmt, 14),
            c("earned back (£)", _gbp("withhold_earned_pence"), gbp_fmt, 14),
        ],
    }


def section_tables(cap, table_type, gbp) -> list:
    """HTML report tables of ``cap`` (:class:`~riskcap.report.outputs.CapitationOutputs`, which reads
    this module's files: not imported here): the stop-loss's who-paid-what, the risk pools and the
    withhold earned by outcome, for the scenarios that set them."""
    out = []
    rows = []
    for sc in cap.summary["scenarios"]:
        if "stop_loss_excess_pence" in sc:
            rows.append([sc["scenario"], gbp(sc["pool_threshold_pence"] / 100), gbp(sc["stop_loss_excess_pence"] / 100),
                         gbp(sc["stop_loss_pool_paid_pence"] / 100),
                         gbp(sc["stop_loss_practice_retained_pence"] / 100),
                         f"{sc['stop_loss_practices_capped']:,}", gbp(sc["pool_funding_pence"] / 100),
                         gbp(sc["stop_loss_loading_pence"] / 100, pence=True)])
    if rows:
        out.append(table_type(
            "Stop-loss: who paid the costs above the attachment point",
            ["scenario", "attachment (a person-year)", "cost above it", "paid by the pool", "borne by practices",
             "practices at their cap", "pool funding", "loading on every tariff (a year)"],
            rows, [False] + [True] * 7,
            "The pool pays its share of each person's outcome-year cost above the attachment, and all of a "
            "practice's share beyond its cap; costs above the attachment were taken out of the group tariffs, and "
            "practices' share of them is added back as one flat loading per registered year (stop_loss.csv)."))
    pools = cap.levers.get("risk_pools")
    rows = []
    for sc in cap.summary["scenarios"]:
        if "risk_pool_level" not in sc or pools is None:
            continue
        part = pools[pools["scenario"] == sc["scenario"]]
        factor = pd.to_numeric(part["band_factor"])
        rows.append([sc["scenario"], sc["risk_pool_level"], f"{sc['risk_pools']:,}",
                     f"{factor.min():.3g} to {factor.max():.3g}", gbp(sc["payer_share_pence"] / 100, signed=True),
                     gbp(sc["risk_pool_transfer_pence"] / 100)])
    if rows:
        out.append(table_type(
            "Risk pools: corridors settled per pool",
            ["scenario", "settled per", "pools", "corridor band factor", "commissioner share",
             "carried between members"],
            rows, [False, False, True, True, True, True],
            "Each pool's variance is shared by the corridor (bands widened by the factor for small pools); the "
            "commissioner's and the providers' shares go to members by basis. 'Carried between members': the "
            "total one member's result was borne by others (risk_pools.csv)."))
    rows = []
    for sc in cap.summary["scenarios"]:
        if "withhold_measure" in sc:
            rows.append([sc["scenario"], sc["withhold_measure"].replace("_", " "), gbp(sc["withhold_pence"] / 100),
                         gbp(sc["withhold_earned_pence"] / 100), f"{sc['withhold_practices_earning_all']:,}",
                         f"{sc['withhold_practices_earning_none']:,}"])
    if rows:
        out.append(table_type(
            "Outcome withhold earned per practice",
            ["scenario", "measure", "withhold", "earned back", "practices earning all", "practices earning none"],
            rows, [False, False, True, True, True, True],
            "Each practice earns its withhold by its observed outcome against what its people were expected to "
            "have at the whole population's rate in each need group (withhold_outcome.csv)."))
    return out


def read_lever_tables(folder, read_csv, require) -> dict[str, pd.DataFrame]:
    """The lever tables present in a capitation output folder (none is required)."""
    out = {}
    for name, columns in LEVER_FILES.items():
        file = folder / f"{name}.csv"
        if file.exists():
            frame = require(read_csv(file), columns, file)
            for col in ("scenario", "practice_code", "pool_code"):
                if col in frame.columns:
                    frame[col] = frame[col].astype(str)
            out[name] = frame
    return out
