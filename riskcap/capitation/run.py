"""Run capitation scenarios side by side and write their tables (``riskcap capitation run``).

Timing (documented in ``docs/capitation.md``): at index date T every person registered and
alive at T is grouped with their features at T; tariffs come from the base year (the 12
months before T); budgets are for the outcome year [T, T + 365 days), pro-rated by each
person's days on the list in it; settlement compares them with that year's actual costs.

Output folder layout::

    OUT/summary.json            every scenario's key numbers, the comparison, the inputs
    OUT/comparison.csv          one row per scenario (the table printed on the terminal)
    OUT/budgets.parquet|csv     practice budgets of all scenarios, with change vs baseline
    OUT/tariffs.parquet|csv     group tariffs of all scenarios
    OUT/settlement.parquet|csv  per-practice settlement; settlement_icb.csv per ICB
    OUT/accuracy.csv            predictive ratios by need group and overall
    OUT/pace_path.csv           budgets year by year for scenarios with a pace of change
    OUT/scenarios/<name>/       the same tables for one scenario, its summary.json and scenario.yaml
    OUT/need_groups/<scheme>.parquet  each person's need group (person_id, practice_code, need_group)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from riskcap.capitation.engine import ScenarioResult, evaluate
from riskcap.capitation.population import Population
from riskcap.capitation.scenario import Scenario
from riskcap.capitation.scheme import NeedGroupScheme, assign_need_groups, load_scheme
from riskcap.config import ConfigError
from riskcap.io import DataError, atomic_path, write_csv, write_json, write_parquet


@dataclass
class RunResult:
    """The scenarios' results and the tables built from them."""

    results: list[ScenarioResult]
    baseline: str
    budgets: pd.DataFrame
    tariffs: pd.DataFrame
    settlement: pd.DataFrame
    settlement_icb: pd.DataFrame
    accuracy: pd.DataFrame
    pace_path: pd.DataFrame
    comparison: pd.DataFrame
    person_groups: dict[str, pd.DataFrame]

    def summary(self, inputs: dict | None = None) -> dict:
        return {
            "baseline": self.baseline,
            "inputs": inputs or {},
            "scenarios": [r.summary() for r in self.results],
            "comparison": _records(self.comparison),
        }


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def group_and_aggregate(features: pd.DataFrame, practices: pd.DataFrame | None, scenarios: list[Scenario]
                        ) -> tuple[dict[str, NeedGroupScheme], dict[str, np.ndarray], dict[tuple, Population]]:
    """Group people once per scheme and aggregate once per (scheme, settings) the scenarios use."""
    schemes: dict[str, NeedGroupScheme] = {}
    groups: dict[str, np.ndarray] = {}
    populations: dict[tuple, Population] = {}
    for scenario in scenarios:
        where = scenario.scheme_location
        if where not in schemes:
            scheme = load_scheme(where)
            clash = next((w for w, s in schemes.items() if s.name == scheme.name), None)
            if clash is not None:
                raise ConfigError(f"need-group schemes {clash} and {where} are both named '{scheme.name}'; "
                                  "scheme names must be unique within a run")
            schemes[where] = scheme
            groups[where] = assign_need_groups(features, scheme)
        key = (where, scenario.settings)
        if key not in populations:
            populations[key] = Population.from_features(features, schemes[where], scenario.settings,
                                                        practices, groups=groups[where])
    return schemes, groups, populations


def run_scenarios(features: pd.DataFrame, practices: pd.DataFrame | None, scenarios: list[Scenario]) -> RunResult:
    """Evaluate scenarios on one features frame and build the comparison tables.

    The baseline for "change vs baseline" is the scenario named ``baseline`` if there is one,
    else the first scenario.
    """
    if not scenarios:
        raise ConfigError("no scenarios to run")
    if len(features) == 0:
        raise DataError("no people in the features (nobody registered and alive at the index date?)")
    names = [s.name for s in scenarios]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"scenario name '{dupes[0]}' is used by more than one file "
                          f"({', '.join(s.source for s in scenarios if s.name == dupes[0])}); names must be unique")
    schemes, groups, populations = group_and_aggregate(features, practices, scenarios)
    results = [evaluate(populations[(s.scheme_location, s.settings)], s) for s in scenarios]
    baseline = "baseline" if "baseline" in names else names[0]
    base = next(r for r in results if r.scenario.name == baseline)

    budgets = pd.concat([r.budgets_frame() for r in results], ignore_index=True)
    ref = base.budgets_frame().set_index("practice_code")["budget_pence"]
    budgets["baseline_budget_pence"] = budgets["practice_code"].map(ref).astype("Int64")
    budgets["change_vs_baseline_pence"] = (budgets["budget_pence"] - budgets["baseline_budget_pence"]).astype("Int64")
    with np.errstate(divide="ignore", invalid="ignore"):
        budgets["change_vs_baseline_pct"] = np.round(
            100 * budgets["change_vs_baseline_pence"].astype("float64") / budgets["baseline_budget_pence"].astype("float64"), 4)

    summaries = [r.summary() for r in results]
    base_envelope = next(s["envelope_pence"] for s in summaries if s["scenario"] == baseline)
    comparison = pd.DataFrame({
        "scenario": [s["scenario"] for s in summaries],
        "mode": [s["mode"] for s in summaries],
        "envelope_gbp": [s["envelope_pence"] / 100 for s in summaries],
        "per_head_gbp": [s["envelope_per_head_gbp"] for s in summaries],
        "change_vs_baseline_gbp": [(s["envelope_pence"] - base_envelope) / 100 for s in summaries],
        "pool_funding_gbp": [s["pool_funding_pence"] / 100 for s in summaries],
        "actual_gbp": [s["actual_pence"] / 100 for s in summaries],
        "predictive_ratio": [s["predictive_ratio"] for s in summaries],
        "practices_within_10pct": [s["practices_within_10pct"] for s in summaries],
        "r_squared": [s["r_squared"] for s in summaries],
        "payer_share_gbp": [s["payer_share_pence"] / 100 for s in summaries],
        "provider_share_gbp": [s["provider_share_pence"] / 100 for s in summaries],
        "commissioner_balance_gbp": [s["commissioner_balance_pence"] / 100 for s in summaries],
    })
    person_groups = {}
    for name, scheme in schemes.items():
        ids = scheme.group_ids
        person_groups[scheme.name] = pd.DataFrame({
            "person_id": features["person_id"].to_numpy(),
            "practice_code": features["practice_code"].astype(str).to_numpy(),
            "need_group": np.asarray(ids, dtype=object)[groups[name]],
        })
    return RunResult(
        results=results, baseline=baseline, budgets=budgets,
        tariffs=pd.concat([r.tariffs_frame() for r in results], ignore_index=True),
        settlement=pd.concat([r.settlement_frame() for r in results], ignore_index=True),
        settlement_icb=pd.concat([r.settlement_icb_frame() for r in results], ignore_index=True),
        accuracy=pd.concat([r.accuracy_frame() for r in results], ignore_index=True),
        pace_path=pd.concat([r.pace_path_frame() for r in results if r.budgets.pace_path is not None]
                            or [results[0].pace_path_frame()], ignore_index=True),
        comparison=comparison, person_groups=person_groups,
    )


def write_run(run: RunResult, out_dir: str | Path, inputs: dict | None = None) -> Path:
    """Write a run's tables (see the module docstring for the layout); returns ``out_dir``."""
    out = Path(out_dir)
    tables = {"budgets": run.budgets, "tariffs": run.tariffs, "settlement": run.settlement}
    for name, frame in tables.items():
        write_parquet(frame, out / f"{name}.parquet")
        write_csv(frame, out / f"{name}.csv")
    write_csv(run.settlement_icb, out / "settlement_icb.csv")
    write_csv(run.accuracy, out / "accuracy.csv")
    write_csv(run.comparison, out / "comparison.csv")
    if len(run.pace_path):
        write_csv(run.pace_path, out / "pace_path.csv")
    write_json(run.summary(inputs), out / "summary.json")
    for result in run.results:
        name = result.scenario.name
        folder = out / "scenarios" / name
        for table, frame in (("budgets", run.budgets), ("tariffs", run.tariffs), ("settlement", run.settlement),
                             ("settlement_icb", run.settlement_icb), ("accuracy", run.accuracy)):
            part = frame[frame["scenario"] == name]
            if table == "budgets":
                write_parquet(part, folder / "budgets.parquet")
            write_csv(part, folder / f"{table}.csv")
        if result.budgets.pace_path is not None:
            write_csv(result.pace_path_frame(), folder / "pace_path.csv")
        write_json({"inputs": inputs or {}, "source": result.scenario.source, **result.summary()},
                   folder / "summary.json")
        with atomic_path(folder / "scenario.yaml") as tmp:
            tmp.write_text(f"# resolved from {result.scenario.source}\n"
                           + yaml.safe_dump(result.scenario.raw, sort_keys=False), encoding="utf-8")
    for scheme_name, frame in run.person_groups.items():
        write_parquet(frame, out / "need_groups" / f"{scheme_name}.parquet")
    return out
