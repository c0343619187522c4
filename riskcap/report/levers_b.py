"""Issue 19 levers B in the report and the workbook: component budgets, the health-inequalities
adjustment, the coding-intensity safeguard and convergence with a growing envelope.

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


def lever_tables(cap: CapitationOutputs, Table, gbp, pct) -> list:  # noqa: N803 (the report's table type)
    """Report tables for the levers some scenario uses (none otherwise); the report passes its
    table type and formatters, as :func:`riskcap.report.levers.section_tables` takes them."""
    tables = []
    c = component_rows(cap)
    if len(c):
        tables.append(Table(
            "Component budgets", ["scenario", "component", "settings", "shared by", "envelope", "actual", "ratio"],
            [[r.scenario, r.component, r.settings, r.need, gbp(r.envelope_pence / 100, pence=True),
              gbp(r.actual_pence / 100, pence=True), "" if pd.isna(r.predictive_ratio) else f"{r.predictive_ratio:.3f}"]
             for r in c.itertuples()], [False] * 4 + [True] * 3,
            "Each component is priced from its own settings' costs and shared by its own need basis; the "
            "components add up to the envelope to the penny (components.csv per practice)."))
    i = inequality_rows(cap)
    if len(i):
        tables.append(Table(
            "Health-inequalities adjustment: money by deprivation band", ["scenario", "band", "index", "factor",
                                                                          "before", "after", "change"],
            [[r.scenario, f"{r.by.replace('imd_', 'IMD ')} {r.band}", f"{r.index:g}", f"{r.factor:.4f}",
              gbp(r.before_pence / 100, pence=True), gbp(r.after_pence / 100, pence=True),
              gbp(r.change_pence / 100, signed=True, pence=True)] for r in i.itertuples()],
            [False, False] + [True] * 5,
            "Band 1 is the most deprived. A weight of the money is shared by need x the band's index (NHS "
            "England's form); the envelope is unchanged. Moved between practices: "
            + "; ".join(f"{n} {gbp(v / 100, pence=True)}" for n, v in
                        i.groupby("scenario", sort=False)["moved_between_practices_pence"].first().items()) + "."))
    k = coding_rows(cap)
    if len(k):
        tables.append(Table(
            "Coding-intensity safeguard", ["scenario", "flag above", "normalised", "practices flagged",
                                           "ICB growth (median practice)", "money moved"],
            [[r.scenario, pct(r.flag_threshold_pct / 100), pct(r.normalise_pct / 100, 0), r.flagged, r.icb_growth,
              gbp(r.moved_pence / 100, pence=True)] for r in k.itertuples()], [False, True, True, False, False, True],
            "Age-sex-standardised register growth per practice against its ICB's between the base and the "
            "current year (coding_intensity.csv per practice)."))
    e = envelope_rows(cap)
    if len(e):
        tables.append(Table(
            "Pace of change with a growing envelope", ["scenario", "year", "envelope"],
            [[r.scenario, "last year" if r.year == 0 else str(r.year), gbp(r.envelope_pence / 100, pence=True)]
             for r in e.itertuples()], [False, True, True],
            "Growth floors and caps apply to each practice's budget of the year before (pace_path.csv)."))
    return tables
