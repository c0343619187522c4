"""Practice budgets: tariff, fair-share and blended modes, top-slices and pace of change.

All amounts are whole pence and every split adds up exactly (largest remainder:
:mod:`riskcap.capitation.money`). The steps (gross envelope, top-slices, targets, current,
pace of change, withhold) are in ``docs/capitation.md``, "Practice budgets"; the levers that
reweight or replace the split (:mod:`.inequalities`, :mod:`.coding`, :mod:`.components`) and
the growing envelope (:func:`growing_envelope_path`) under "Policy levers".
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import gcd

import numpy as np
import pandas as pd

from riskcap.capitation.coding import normalising_factors
from riskcap.capitation.components import ComponentSplit, split_components
from riskcap.capitation.inequalities import adjustment
from riskcap.capitation.money import (
    MAX_PRODUCT, PPM, allocate_largest_remainder, check_pence, checked_product, div_round_half_up,
)
from riskcap.capitation.population import DAYS_IN_YEAR, Population
from riskcap.capitation.scenario import PaceOfChange, Scenario
from riskcap.capitation.tariffs import Tariffs
from riskcap.capitation.withhold import OutcomeEarned, earned_by_outcome
from riskcap.errors import ConfigError, DataError



@dataclass(frozen=True)
class Budgets:
    """Practice budgets of one scenario; arrays are per practice in practice_code order (pence)."""

    mode_label: str
    gross_pence: int
    contingency_pence: int
    withhold_pence: int
    envelope_pence: int  # shared by practices: sum(budget_pence) == envelope_pence
    tariff_weights: np.ndarray  # W_p = sum_g tariff_g x list_days_pg (pence-days)
    target_pence: np.ndarray
    current_pence: np.ndarray
    budget_pence: np.ndarray
    withhold_by_practice: np.ndarray
    withhold_earned_by_practice: np.ndarray
    cell_shares: np.ndarray  # (practices, groups): how each budget divides over need groups
    pace_path: np.ndarray | None = None  # (years, practices): budgets year by year (year 1 = budget_pence)
    withhold_outcome: OutcomeEarned | None = None  # the withhold earned by outcome (issue 19 lever 7)
    components: ComponentSplit | None = None  # budget.components: the component budgets
    inequalities: dict | None = None  # budget.inequalities: what the adjustment did (InequalityAdjustment.summary)
    growing: GrowingPath | None = None  # pace of change with a growing envelope (envelope_growth_pct)
    coding: pd.DataFrame | None = None  # budget.coding_intensity: per practice growth, flag and money (coding_report)
    #: fair shares and blend: people whose need is their group tariff, for want of a predicted cost
    people_at_group_tariff: int = 0

    @property
    def distance_from_target(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.target_pence > 0,
                            (self.current_pence - self.target_pence) / self.target_pence, np.nan)


def _check_weights(weights: np.ndarray, what: str) -> None:
    check_pence(weights, what, 2**61)


def _need_cells(population: Population, scenario: Scenario, tariffs: Tariffs,
                tariff_cells: np.ndarray) -> tuple[np.ndarray, str, int]:
    """Need x list days per cell, and what the need is. People without a predicted cost among
    people with one (joiners after T, absent from scores made at T) are priced at their group
    tariff, and counted in the label; with no predictions at all, everyone is (``auto``).
    Returns (cells, label, people priced at their group tariff)."""
    if scenario.need in ("predicted_cost", "auto") and population.need_days is not None:
        if population.unpredicted_days is None:
            return population.need_days, "predicted cost", 0
        at_tariff = checked_product(population.unpredicted_days, tariffs.tariff_pence[None, :], "tariffs x list days")
        check_pence(population.need_days.sum(dtype=np.float64) + at_tariff.sum(dtype=np.float64),
                    "need x list days", MAX_PRODUCT)  # before the sum could wrap
        return (population.need_days + at_tariff,
                f"predicted cost; group tariff for {population.unpredicted_people:,} people without one",
                population.unpredicted_people)
    if scenario.need == "predicted_cost":
        raise DataError(
            f"scenario '{scenario.name}' ({scenario.source}) shares the envelope by predicted cost "
            f"(budget.need: predicted_cost) but there are no predicted costs: pass --scores with a "
            f"'predicted_cost_gbp' column for every person, or set budget.need: group_tariff (labelled fallback)"
        )
    if scenario.need == "auto":
        return tariff_cells, "group tariff (fallback: no predicted costs)", population.n_people
    return tariff_cells, "group tariff", 0


def _share(envelope: int, weights: np.ndarray, scenario: Scenario, what: str) -> np.ndarray:
    """Largest-remainder split of ``envelope``; DataError when there is money but no weight."""
    if envelope > 0 and not weights.any():
        raise DataError(f"scenario '{scenario.name}' ({scenario.source}): cannot share GBP {envelope / 100:,.2f} "
                        f"over practices: every practice's {what} is zero (no days on the list in the outcome "
                        "year, or no cost)")
    return allocate_largest_remainder(envelope, weights)


def _row_shares(cells: np.ndarray) -> np.ndarray:
    totals = cells.sum(axis=1, keepdims=True).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(totals > 0, cells / totals, 0.0)


def compute_budgets(population: Population, scenario: Scenario, tariffs: Tariffs,
                    components: dict | None = None) -> Budgets:
    """Practice budgets for ``scenario`` from its tariffs (see the module docstring);
    ``components``: the populations of its component budgets by settings (:mod:`.components`)."""
    tariff_cells = checked_product(population.list_days, tariffs.tariff_pence[None, :], "tariffs x list days")
    _check_weights(tariff_cells.sum(axis=1), "tariff x list days")
    tariff_w = tariff_cells.sum(axis=1)
    tariff_gross = div_round_half_up(int(tariff_w.sum()), DAYS_IN_YEAR)
    at_group_tariff = 0
    if scenario.mode == "tariff":
        gross, label = tariff_gross, "tariff"
    else:
        gross = scenario.envelope_pence if scenario.envelope_pence is not None else tariff_gross
    check_pence(gross, f"scenario '{scenario.name}': the gross envelope")
    contingency = div_round_half_up(gross * scenario.contingency_ppm, PPM)
    withhold = div_round_half_up(gross * scenario.outcome_withhold_ppm, PPM)
    envelope = gross - contingency - withhold

    ineq = scenario.inequalities
    by_tariff_w, adjusted = tariff_w, []
    if ineq is not None and ineq.apply_to == "tariffs":
        adjusted.append(adjustment(population, scenario, "tariffs", tariffs.tariff_pence))
        by_tariff_w = adjusted[-1].weights
    coding = scenario.coding_intensity
    factors = None
    if coding is not None and coding.normalise_ppm:  # need scaled down by the register growth in excess of the ICB's
        factors = normalising_factors(population.coding_growth, population.practice_codes, coding.normalise_ppm)
        by_tariff_w = _normalised(by_tariff_w, factors)
    if scenario.mode == "tariff":
        target = _share(envelope, by_tariff_w, scenario, "tariff x list days")
        shares = _row_shares(tariff_cells)
    else:
        need_cells, need_label, at_group_tariff = _need_cells(population, scenario, tariffs, tariff_cells)
        need_w = need_cells.sum(axis=1)
        _check_weights(need_w, "need x list days")
        if ineq is not None and ineq.apply_to == "fair_shares":
            adjusted.append(adjustment(population, scenario, "fair_shares", tariffs.tariff_pence,
                                       need_is_tariff=need_cells is tariff_cells))
            need_w = adjusted[-1].weights
        if factors is not None:
            need_w = _normalised(need_w, factors)
        fair = _share(envelope, need_w, scenario, f"{need_label} x list days")
        if scenario.mode == "fair_shares":
            target, shares = fair, _row_shares(need_cells)
            label = f"fair shares (need = {need_label})"
        else:
            a = scenario.tariff_weight_ppm
            g = gcd(a, PPM - a) or 1
            wa, wb = a // g, (PPM - a) // g
            by_tariff = _share(envelope, by_tariff_w, scenario, "tariff x list days")
            weights = (checked_product(by_tariff, wa, "blend weights", 2**61)
                       + checked_product(fair, wb, "blend weights", 2**61))
            _check_weights(weights, "blend weights")
            target = allocate_largest_remainder(envelope, weights)
            alpha = a / PPM
            shares = alpha * _row_shares(tariff_cells) + (1 - alpha) * _row_shares(need_cells)
            label = f"blend ({a / 10_000:g}% tariff, {100 - a / 10_000:g}% fair shares by {need_label})"

    inequalities = None
    if adjusted:  # the money the adjustment moved: targets with it against targets without
        plain = compute_budgets(population, dataclasses.replace(scenario, inequalities=None, components=(),
                                                                pace_of_change=None), tariffs)
        inequalities = adjusted[0].summary(envelope, plain.target_pence, target)
    coding_summary = None
    if coding is not None:
        plain = target if factors is None else compute_budgets(
            population, dataclasses.replace(scenario, coding_intensity=None, pace_of_change=None), tariffs).target_pence
        coding_summary = coding_report(population, scenario, plain, target)
    split = None
    if scenario.components:  # the components' own need bases replace the mode's split of the envelope
        split, component_cells = split_components(envelope, scenario, population, components or {})
        target, shares = split.target, split.cell_shares(component_cells)
        label = f"{label}; components: " + ", ".join(f"{n} by {need}" for n, need in zip(split.names, split.needs))
    base_w = population.base.sum(axis=1)
    current = allocate_largest_remainder(envelope, base_w) if base_w.sum() > 0 else target.copy()
    budget, path, growing = target, None, None
    if scenario.pace_of_change is not None and scenario.pace_of_change.envelope_growth_ppm:
        growing = growing_envelope_path(base_w, target, envelope, scenario.pace_of_change, scenario)
        budget, path = growing.budgets[0], growing.budgets
    elif scenario.pace_of_change is not None:
        path = [apply_pace_of_change(current, target, envelope, scenario.pace_of_change, scenario)]
        for _ in range(scenario.pace_of_change.years - 1):  # later years: same envelope, step and limits
            path.append(apply_pace_of_change(path[-1], target, envelope, scenario.pace_of_change, scenario))
        budget, path = path[0], np.vstack(path)
    withhold_p = allocate_largest_remainder(withhold, budget) if budget.sum() > 0 else np.zeros_like(budget)
    earned = div_round_half_up(withhold * scenario.withhold_earned_ppm, PPM)
    earned_p = allocate_largest_remainder(earned, withhold_p) if withhold_p.sum() > 0 else np.zeros_like(budget)
    by_outcome = None
    if scenario.withhold_by_outcome is not None:  # earned per practice by observed / expected outcome
        by_outcome = earned_by_outcome(population, scenario, withhold_p)
        earned_p = by_outcome.earned_pence
    return Budgets(
        mode_label=label, gross_pence=gross, contingency_pence=contingency, withhold_pence=withhold,
        envelope_pence=envelope, tariff_weights=tariff_w, target_pence=target, current_pence=current,
        budget_pence=budget, withhold_by_practice=withhold_p, withhold_earned_by_practice=earned_p,
        cell_shares=shares, pace_path=path, withhold_outcome=by_outcome,
        components=None if split is None else split.with_budgets(budget), inequalities=inequalities,
        growing=growing, coding=coding_summary, people_at_group_tariff=at_group_tariff,
    )


def apply_pace_of_change(current: np.ndarray, target: np.ndarray, envelope: int, pace: PaceOfChange,
                         scenario: Scenario | None = None) -> np.ndarray:
    """Move budgets part of the way from ``current`` to ``target``, growth within limits.

    ``paced = current + step x (target - current)``; growth limits give bounds
    ``current x (1 + min)`` and ``current x (1 + max)`` (none for practices with no current
    spend); one common factor ``k`` is found so that ``sum(clip(k x paced, lo, hi))`` equals
    the envelope; the result is allocated to the penny (so bounds hold to within a penny).

    Raises ConfigError when the limits cannot be met within the envelope.
    """
    cur = current.astype(np.float64)
    paced = cur + pace.step_ppm / PPM * (target.astype(np.float64) - cur)
    free = cur <= 0
    lo = np.zeros_like(cur) if pace.min_growth_ppm is None else \
        np.where(free, 0.0, np.maximum(cur * (1 + pace.min_growth_ppm / PPM), 0.0))
    hi = np.full_like(cur, np.inf) if pace.max_growth_ppm is None else \
        np.where(free, np.inf, cur * (1 + pace.max_growth_ppm / PPM))
    where = f"{scenario.source}: " if scenario is not None else ""
    if lo.sum() > envelope + 0.5:
        raise ConfigError(f"{where}key 'budget.pace_of_change.min_growth_pct': the growth floor needs "
                          f"GBP {lo.sum() / 100:,.2f} but the envelope is GBP {envelope / 100:,.2f}; lower the floor")
    if hi.sum() < envelope - 0.5:
        raise ConfigError(f"{where}key 'budget.pace_of_change.max_growth_pct': the growth cap allows only "
                          f"GBP {hi.sum() / 100:,.2f} but the envelope is GBP {envelope / 100:,.2f}; raise the cap")

    def filled(k: float) -> float:
        return float(np.clip(paced * k, lo, hi).sum())

    k_lo, k_hi = 0.0, 1.0
    for _ in range(200):
        if filled(k_hi) >= envelope:
            break
        k_lo, k_hi = k_hi, k_hi * 2
    for _ in range(200):
        mid = (k_lo + k_hi) / 2
        if mid in (k_lo, k_hi):
            break
        if filled(mid) < envelope:
            k_lo = mid
        else:
            k_hi = mid
    amounts = np.clip(paced * k_hi, lo, hi)
    _check_weights(amounts * 1000, "pace-of-change amounts")  # before the cast to int64 could wrap
    weights = np.rint(amounts * 1000).astype(np.int64)  # milli-pence
    return allocate_largest_remainder(envelope, weights)


# --- issue 19 lever 6: convergence with a growing envelope ---------------------------------

@dataclass(frozen=True)
class GrowingPath:
    """Budgets year by year when the envelope grows by ``g`` a year (year 1 is the scenario's)."""

    last_year_pence: int  # last year's total: round_half_up(envelope / (1 + g))
    current_pence: np.ndarray  # last year's budgets: base-year spend scaled to last year's total
    envelopes: np.ndarray  # (years,) envelope x (1 + g)^(year - 1), halves up
    targets: np.ndarray  # (years, practices): the target shares of each year's envelope
    budgets: np.ndarray  # (years, practices)

    def summary(self) -> dict:
        return {"last_year_pence": self.last_year_pence, "envelopes_pence": [int(e) for e in self.envelopes]}


def growing_envelope_path(base_w: np.ndarray, target: np.ndarray, envelope: int, pace: PaceOfChange,
                          scenario: Scenario | None = None) -> GrowingPath:
    """Pace of change when the envelope grows by ``g`` (``envelope_growth_pct``) year on year.

    Last year's budgets are the base-year spend scaled to ``envelope / (1 + g)``, so growth is
    measured on what practices had; a growth floor up to ``g`` can then be met. Year y's
    envelope is ``envelope x (1 + g)^(y - 1)`` and its target the same shares as year 1's; each
    year moves from the year before with :func:`apply_pace_of_change` (step, floor and cap).
    """
    g = pace.envelope_growth_ppm
    last = div_round_half_up(envelope * PPM, PPM + g)
    current = allocate_largest_remainder(last, base_w) if base_w.sum() > 0 else \
        allocate_largest_remainder(last, target) if target.any() else np.zeros_like(target)
    envelopes, targets, budgets, previous = [], [], [], current
    for year in range(pace.years):
        env = div_round_half_up(envelope * (PPM + g) ** year, PPM ** year)
        check_pence(env, f"scenario '{getattr(scenario, 'name', '')}': the envelope in year {year + 1}")
        tgt = target if year == 0 else allocate_largest_remainder(env, target)
        previous = apply_pace_of_change(previous, tgt, env, pace, scenario)
        envelopes.append(env)
        targets.append(tgt)
        budgets.append(previous)
    return GrowingPath(last, current, np.array(envelopes, dtype=np.int64), np.vstack(targets), np.vstack(budgets))


# --- issue 19 lever 4: coding-intensity safeguard -------------------------------------------

def _normalised(weights: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Share weights divided by the practices' coding-intensity factors (whole units)."""
    return np.rint(weights.astype(np.float64) / factors).astype(np.int64)


def coding_report(population: Population, scenario: Scenario, plain: np.ndarray, target: np.ndarray) -> pd.DataFrame:
    """Per practice: its register growth against its ICB's (:func:`~riskcap.capitation.coding.coding_growth`),
    whether it is flagged for audit, its normalising factor and the target it gained or lost by it."""
    coding = scenario.coding_intensity
    codes = population.practice_codes.astype(str)
    growth = population.coding_growth.set_index("practice_code").reindex(codes).reset_index()
    growth["icb_code"] = population.icb_codes.astype(str)
    excess = growth["excess_growth"].to_numpy(dtype=np.float64)
    growth["flagged"] = np.isfinite(excess) & (excess > coding.flag_threshold_ppm / PPM)
    growth["factor"] = np.round(normalising_factors(population.coding_growth, population.practice_codes,
                                                    coding.normalise_ppm), 6)
    growth["target_without_pence"] = plain
    growth["target_pence"] = target
    growth["change_pence"] = target - plain
    return growth
