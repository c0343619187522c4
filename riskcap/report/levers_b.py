"""Issue 19 levers B for the report and the workbook: component budgets, the health-inequalities
adjustment, the coding-intensity safeguard and convergence with a growing envelope, as tables
(:func:`riskcap.report.sections.lever_tables` and the workbook's lever sheets format them).

Everything comes from each scenario's ``summary.json`` entry, where these keys appear only for
scenarios that set the lever, so runs without them show (and write) nothing new.
"""
from __future__ import annotations

import pandas as pd

from riskcap.report.outputs import CapitationOutputs


def component_rows(cap: CapitationOutputs) -> pd.DataFrame:
    """One row per scenario x component: settings, need basis, envelope, budget, actual, ratio."""
    rows = [{"scenario": s["scenario"], "component": c["component"], "settings": ", ".join(c["settings"]),
             "need": c["need"], "envelope_pence": c["envelope_pence"], "budget_pence": c["budget_pence"],
             "actual_pence": c["actual_pence"], "predictive_ratio": c["predictive_ratio"]}
            for s in cap.summary["scenarios"] for c in s.get("components", ())]
    return pd.DataFrame(rows)


def inequality_rows(cap: CapitationOutputs) -> pd.DataFrame:
    """One row per scenario x deprivation band: the money before and after the adjustment."""
    rows = []
    for s in cap.summary["scenarios"]:
        i = s.get("inequalities")
        if i is None:
            continue
        for band, factor in zip(i["bands"], i["factors"]):
            rows.append({"scenario": s["scenario"], "by": i["by"], "apply_to": i["apply_to"],
                         "weight_pct": i["weight_pct"], "band": band["band"], "index": i["index"][band["band"] - 1],
                         "factor": factor, "before_pence": band["before_pence"], "after_pence": band["after_pence"],
                         "change_pence": band["change_pence"], "moved_between_practices_pence": i["moved_pence"]})
    return pd.DataFrame(rows)


def coding_rows(cap: CapitationOutputs) -> pd.DataFrame:
    """One row per scenario with the safeguard: its terms, the practices flagged, the money moved."""
    rows = [{"scenario": s["scenario"], "flag_threshold_pct": c["flag_threshold_pct"],
             "normalise_pct": c["normalise_pct"], "flagged": ", ".join(c["flagged"]) or "none",
             "icb_growth": ", ".join(f"{k} {v:+.2%}" if v is not None else f"{k} n/a" for k, v in c["icb_growth"].items()),
             "moved_pence": c["moved_pence"]}
            for s in cap.summary["scenarios"] if (c := s.get("coding_intensity")) is not None]
    return pd.DataFrame(rows)


def envelope_rows(cap: CapitationOutputs) -> pd.DataFrame:
    """One row per scenario x year of a pace of change with a growing envelope."""
    rows = []
    for s in cap.summary["scenarios"]:
        g = s.get("pace_of_change_growth")
        if g is None:
            continue
        rows.append({"scenario": s["scenario"], "year": 0, "envelope_pence": g["last_year_pence"]})
        rows.extend({"scenario": s["scenario"], "year": y, "envelope_pence": e}
                    for y, e in enumerate(g["envelopes_pence"], start=1))
    return pd.DataFrame(rows)
