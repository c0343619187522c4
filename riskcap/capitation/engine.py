"""One scenario on a grouped population: tariffs -> budgets -> settlement -> accuracy.

:func:`evaluate` is shared by ``riskcap capitation run`` (which turns its result into tables)
and ``riskcap capitation sweep`` (which keeps only :meth:`ScenarioResult.summary`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskcap.capitation import accuracy, pooling, stoploss, withhold
from riskcap.capitation.budgets import Budgets, compute_budgets
from riskcap.capitation.population import DAYS_IN_YEAR, Population
from riskcap.capitation.scenario import Scenario
from riskcap.capitation.settlement import Settlement, settle
from riskcap.capitation.tariffs import Tariffs, compute_tariffs


@dataclass(frozen=True)
class ScenarioResult:
    """Everything one scenario produced, as arrays; ``*_frame`` methods give tables."""

    scenario: Scenario
    population: Population
    tariffs: Tariffs
    budgets: Budgets
    settlement: Settlement
    actual_cells: np.ndarray  # (practices, groups) outcome-year cost borne by practices
    pool_outturn_pence: int
    stop_loss: stoploss.StopLossOutturn | None = None  # issue 19 lever 1 (scenario.stop_loss)
    pooled: pooling.PooledSettlement | None = None  # issue 19 lever 2 (scenario.risk_pool)

    # --- headline numbers ----------------------------------------------------------
    def summary(self) -> dict:
        """Key numbers (pence as int, ratios as float), JSON-serialisable."""
        b, s, t = self.budgets, self.settlement, self.tariffs
        people = self.population.n_people
        withhold_earned = int(b.withhold_earned_by_practice.sum())
        payer = int(s.payer_share_pence.sum())
        out = {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "need_groups": self.population.scheme.name,
            "settings": list(self.scenario.settings),
            "mode": b.mode_label,
            "people_at_group_tariff": b.people_at_group_tariff,
            "tariff_method": t.method,
            "people": people,
            "practices": int(len(self.population.practice_codes)),
            "gross_pence": int(b.gross_pence),
            "contingency_pence": int(b.contingency_pence),
            "withhold_pence": int(b.withhold_pence),
            "withhold_earned_pence": withhold_earned,
            "envelope_pence": int(b.envelope_pence),
            "envelope_per_head_gbp": round(b.envelope_pence / 100 / people, 2) if people else None,
            "cap_pence": t.cap_pence,
            "pool_threshold_pence": t.outcome_threshold_pence,
            "pool_funding_pence": int(t.pool_funding_pence),
            "pool_outturn_pence": int(self.pool_outturn_pence),
            # every penny of in-scope outturn read, once: charged to practices (their actual plus
            # what the pool paid for their people) + the ICB's unregistered line
            "outturn_read_pence": int(self.population.read_pence),
            "charged_to_practices_pence": int(self.population.outcome.sum()),
            "unregistered_pence": int(self.population.unregistered_pence),
            "outturn_reconciles": bool(self.population.read_pence == int(self.population.outcome.sum())
                                       + self.population.unregistered_pence),
            "basis_pence": int(s.basis_pence.sum()),
            "actual_pence": int(s.actual_pence.sum()),
            "variance_pence": int(s.variance_pence.sum()),
            "payer_share_pence": payer,
            "provider_share_pence": int(s.provider_share_pence.sum()),
            # planned spend (gross + pool funding) minus what was actually paid out:
            "commissioner_balance_pence": int(b.contingency_pence + b.withhold_pence - withhold_earned
                                              + t.pool_funding_pence - self.pool_outturn_pence - payer),
            "predictive_ratio": float(s.actual_pence.sum() / s.basis_pence.sum()) if s.basis_pence.sum() else None,
            "practices_within_10pct": accuracy.share_within(s.actual_pence, s.basis_pence),
            "r_squared": accuracy.r_squared(s.actual_pence, s.basis_pence),
            "mean_abs_distance_from_target": _nanmean_abs(b.distance_from_target),
            **self.lever_summary(),
        }
        return out

    def coding_frame(self) -> pd.DataFrame | None:
        """The coding-intensity safeguard per practice (None without it)."""
        c = self.budgets.coding
        return None if c is None else pd.concat([pd.DataFrame({"scenario": [self.scenario.name] * len(c)}), c], axis=1)

    def components_frame(self) -> pd.DataFrame | None:
        """Component budgets per practice (None without components)."""
        split = self.budgets.components
        return None if split is None else split.frame(self.scenario.name, self.population.practice_codes)

    def lever_summary(self) -> dict:
        """Summary lines of the issue 19 levers a scenario sets (none by default: outputs unchanged)."""
        b, out = self.budgets, {}
        if self.stop_loss is not None:
            out.update(stoploss.summary(self.stop_loss, self.tariffs.stop_loss_loading_pence))
        if self.pooled is not None:
            out["risk_pool_level"] = self.scenario.risk_pool.level
            out["risk_pools"] = int(len(self.pooled.unit_codes))
            out["risk_pool_transfer_pence"] = int(np.abs(self.pooled.settlement.provider_share_pence
                                                         - self.pooled.pooled_provider).sum() // 2)
        if b.withhold_outcome is not None:
            out["withhold_measure"] = self.scenario.withhold_by_outcome.measure
            out["withhold_practices_earning_all"] = int(sum(f == 1 for f in b.withhold_outcome.share))
            out["withhold_practices_earning_none"] = int(sum(f == 0 for f in b.withhold_outcome.share))
        if b.components is not None:
            out["components"] = b.components.summary()
        if b.inequalities is not None:
            out["inequalities"] = b.inequalities
        if b.growing is not None:
            out["pace_of_change_growth"] = b.growing.summary()
        if b.coding is not None:
            c, ci = b.coding, self.scenario.coding_intensity
            out["coding_intensity"] = {
                "normalise_pct": ci.normalise_ppm / 10_000, "flag_threshold_pct": ci.flag_threshold_ppm / 10_000,
                "flagged": c.loc[c["flagged"], "practice_code"].tolist(),
                "moved_pence": int(np.maximum(c["change_pence"].to_numpy(), 0).sum()),
                "icb_growth": {k: (None if not np.isfinite(v) else round(float(v), 6)) for k, v in
                               c.groupby("icb_code", sort=True)["icb_growth"].first().items()}}
        return out

    def lever_frames(self) -> dict[str, pd.DataFrame]:
        """Per-practice tables of the levers this scenario sets, by output name (stop_loss, risk_pools,
        withhold_outcome, components, coding_intensity): each is written as ``<name>.csv``."""
        out = {}
        if self.stop_loss is not None:
            out["stop_loss"] = stoploss.practice_frame(self.scenario, self.population, self.stop_loss)
        if self.pooled is not None:
            out["risk_pools"] = pooling.pool_frame(self.scenario, self.population, self.pooled)
        if self.budgets.withhold_outcome is not None:
            out["withhold_outcome"] = withhold.practice_frame(self.scenario, self.population,
                                                              self.budgets.withhold_by_practice,
                                                              self.budgets.withhold_outcome)
        if self.budgets.components is not None:
            out["components"] = self.components_frame()
        if self.budgets.coding is not None:
            out["coding_intensity"] = self.coding_frame()
        return out

    # --- tables ----------------------------------------------------------------------
    def tariffs_frame(self) -> pd.DataFrame:
        t, scheme = self.tariffs, self.population.scheme
        with np.errstate(divide="ignore", invalid="ignore"):  # per registered year (365 registered days)
            mean_base = np.where(t.days > 0, t.base_pence * DAYS_IN_YEAR / np.maximum(t.days, 1) / 100, np.nan)
            mean_capped = np.where(t.days > 0, t.capped_pence * DAYS_IN_YEAR / np.maximum(t.days, 1) / 100, np.nan)
        return pd.DataFrame({
            "scenario": self.scenario.name,
            "need_group": scheme.group_ids,
            "need_group_name": [g.name for g in scheme.groups],
            "people": t.people,
            "tariff_year_days": t.days,
            "list_days": self.population.list_days.sum(axis=0),
            "base_cost_pence": t.base_pence,
            "excess_pence": t.excess_pence,
            "mean_base_cost_gbp": np.round(mean_base, 2),
            "mean_capped_cost_gbp": np.round(mean_capped, 2),
            "tariff_pence": t.tariff_pence,
            "tariff_gbp": t.tariff_pence / 100,
        })

    def budgets_frame(self) -> pd.DataFrame:
        b, pop = self.budgets, self.population
        people = pop.people.sum(axis=1)
        return pd.DataFrame({
            "scenario": self.scenario.name,
            "practice_code": pop.practice_codes.astype(str),
            "icb_code": pop.icb_codes.astype(str),
            "list_size": people,
            "weighted_list_size": np.round(pop.list_days.sum(axis=1) / DAYS_IN_YEAR, 3),
            "budget_pence": b.budget_pence,
            "budget_per_head_gbp": np.round(np.where(people > 0, b.budget_pence / 100 / np.maximum(people, 1), np.nan), 2),
            "target_pence": b.target_pence,
            "current_pence": b.current_pence,
            "distance_from_target": np.round(b.distance_from_target, 6),
            "withhold_pence": b.withhold_by_practice,
        })

    def pace_path_frame(self) -> pd.DataFrame:
        """Budgets year by year under the pace of change (empty without one)."""
        path, b = self.budgets.pace_path, self.budgets
        if path is None:
            return pd.DataFrame(columns=["scenario", "practice_code", "year", "budget_pence", "target_pence",
                                         "distance_from_target"])
        years, practices = path.shape
        target = np.tile(b.target_pence, years) if b.growing is None else b.growing.targets.ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            distance = np.where(target > 0, (path.ravel() - target) / target, np.nan)
        return pd.DataFrame({
            "scenario": self.scenario.name,
            "practice_code": np.tile(self.population.practice_codes.astype(str), years),
            "year": np.repeat(np.arange(1, years + 1), practices),
            "budget_pence": path.ravel(),
            "target_pence": target,
            "distance_from_target": np.round(distance, 6),
        })

    def settlement_frame(self) -> pd.DataFrame:
        s, pop = self.settlement, self.population
        return pd.DataFrame({
            "scenario": self.scenario.name,
            "practice_code": pop.practice_codes.astype(str),
            "icb_code": pop.icb_codes.astype(str),
            "budget_pence": self.budgets.budget_pence,
            "withhold_earned_pence": self.budgets.withhold_earned_by_practice,
            "basis_pence": s.basis_pence,
            "actual_pence": s.actual_pence,
            "variance_pence": s.variance_pence,
            "variance_pct": np.round(100 * accuracy.predictive_ratio(s.variance_pence, s.basis_pence), 4),
            "payer_share_pence": s.payer_share_pence,
            "provider_share_pence": s.provider_share_pence,
            "predictive_ratio": np.round(accuracy.predictive_ratio(s.actual_pence, s.basis_pence), 6),
        })

    def settlement_icb_frame(self) -> pd.DataFrame:
        frame = self.settlement_frame()
        cols = ["budget_pence", "withhold_earned_pence", "basis_pence", "actual_pence", "variance_pence",
                "payer_share_pence", "provider_share_pence"]
        icb = frame.groupby("icb_code", sort=True)[cols].sum().reset_index()
        icb.insert(0, "scenario", self.scenario.name)
        icb.insert(2, "practices", frame.groupby("icb_code", sort=True).size().to_numpy())
        icb["predictive_ratio"] = np.round(accuracy.predictive_ratio(icb["actual_pence"], icb["basis_pence"]), 6)
        ratio = accuracy.predictive_ratio(frame["actual_pence"], frame["basis_pence"])
        within = pd.Series(np.abs(ratio - 1) <= accuracy.WITHIN + 1e-12, index=frame.index)
        icb["practices_within_10pct"] = within.groupby(frame["icb_code"], sort=True).mean().to_numpy()
        return icb

    def accuracy_frame(self) -> pd.DataFrame:
        """Predictive ratio by need group, plus 'all' (practice-level statistics)."""
        scheme, s = self.population.scheme, self.settlement
        allocated = accuracy.group_allocation(s.basis_pence, self.budgets.cell_shares)
        actual = self.actual_cells.sum(axis=0)
        ratio = accuracy.predictive_ratio(actual, allocated)
        rel, rel_all = (np.full(len(actual), np.nan), np.nan) if self.population.spread is None else \
            accuracy.spread(*self.population.spread)
        rows = pd.DataFrame({
            "scenario": self.scenario.name,
            "level": "need_group",
            "unit": scheme.group_ids,
            "people": self.population.people.sum(axis=0),
            "allocated_pence": np.rint(allocated).astype(np.int64),
            "actual_pence": actual,
            "predictive_ratio": np.round(ratio, 6),
            "ratio_se": np.round(ratio * rel, 6),
        })
        whole = float(s.actual_pence.sum() / s.basis_pence.sum()) if s.basis_pence.sum() else np.nan
        total = pd.DataFrame({
            "scenario": [self.scenario.name], "level": ["all"], "unit": ["all"],
            "people": [self.population.n_people], "allocated_pence": [int(s.basis_pence.sum())],
            "actual_pence": [int(s.actual_pence.sum())],
            "predictive_ratio": [round(whole, 6)],
            "ratio_se": [round(whole * rel_all, 6)],
        })
        out = pd.concat([rows, total], ignore_index=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["z"] = np.round((out["predictive_ratio"] - 1) / out["ratio_se"], 3)
        out.insert(1, "method", self.tariffs.method)
        out["practices_within_10pct"] = np.where(out["level"] == "all", accuracy.share_within(s.actual_pence, s.basis_pence), np.nan)
        out["practice_r_squared"] = np.where(out["level"] == "all", accuracy.r_squared(s.actual_pence, s.basis_pence), np.nan)
        return out


def _nanmean_abs(values: np.ndarray) -> float | None:
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.mean()) if finite.size else None


def evaluate(population: Population, scenario: Scenario, components: dict | None = None) -> ScenarioResult:
    """Run one scenario on a grouped population (settings must match the population's);
    ``components``: the populations of its component budgets by settings, if it has them."""
    if tuple(scenario.settings) != tuple(population.settings):
        raise ValueError(f"scenario '{scenario.name}' has settings {scenario.settings} but the population "
                         f"was costed over {population.settings}")
    tariffs = compute_tariffs(population, scenario)
    budgets = compute_budgets(population, scenario, tariffs, components)
    actual_cells = population.outcome
    pool_outturn, stop, pools = 0, None, None
    if scenario.stop_loss is not None and tariffs.outcome_threshold_pence is not None:
        stop = stoploss.outturn(population, scenario)
        actual_cells = actual_cells - stop.pool_cells
        pool_outturn = int(stop.pool_cells.sum())
    elif tariffs.outcome_threshold_pence is not None:
        pooled = population.excess("outcome", tariffs.outcome_threshold_pence)
        actual_cells = actual_cells - pooled
        pool_outturn = int(pooled.sum())
    basis = budgets.budget_pence + budgets.withhold_earned_by_practice
    if scenario.risk_pool.is_default:
        settlement = settle(basis, actual_cells.sum(axis=1), scenario.corridor)
    else:
        pools = pooling.settle_pooled(population, basis, actual_cells.sum(axis=1), scenario)
        settlement = pools.settlement
    return ScenarioResult(scenario, population, tariffs, budgets, settlement, actual_cells, pool_outturn, stop, pools)
