"""Practice budgets: tariff, fair-share and blended modes, top-slices and pace of change.

All amounts are whole pence and every split adds up exactly (largest remainder, ties to the
lower practice_code; see :mod:`riskcap.capitation.money`):

1. **Gross envelope.** Tariff mode: ``round_half_up(sum_p W_p / 365)`` with practice weight
   ``W_p = sum_g tariff_g x list_days_pg`` (people's days on the list in the outcome year, so
   a person registered half the year counts half). Fair shares and blend: the scenario's
   ``envelope_gbp``, or the tariff-mode gross when it is not given (same money, shared
   differently).
2. **Top-slices.** ``contingency = round_half_up(gross x rate)``, likewise the outcome
   withhold; the **envelope** shared by practices is ``gross - contingency - withhold``.
3. **Targets.** The envelope is split by weights: tariff mode ``W_p``; fair shares the summed
   need ``sum_i need_pence_i x list_days_i`` (need = predicted next-year cost; people without
   one among people with one, e.g. joiners after T, at their group tariff, counted in the mode
   label; with no predictions at all, everyone's group tariff as a labelled fallback); blend ``a x B_tariff + (1 - a) x B_fair``
   (the two allocations in pence, ``a`` the tariff weight).
4. **Current** budgets are each practice's base-year in-scope spend scaled to the envelope;
   distance from target is ``(current - target) / target``.
5. **Pace of change** (optional): ``current + step x (target - current)``, growth on current
   kept within [min, max] (practices without base-year spend are not limited), rescaled to
   the envelope by one common factor, then re-allocated to the penny. With ``years: N`` the
   path over N years is also reported (each year starts from the last, same envelope).
6. The withhold is shared in proportion to the final budgets; ``withhold_earned_pct`` of it
   is assumed earned back in the settlement back-test.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np

from riskcap.capitation.money import (
    MAX_PRODUCT, PPM, allocate_largest_remainder, check_pence, checked_product, div_round_half_up,
)
from riskcap.capitation.population import DAYS_IN_YEAR, Population
from riskcap.capitation.scenario import PaceOfChange, Scenario
from riskcap.capitation.tariffs import Tariffs
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


def compute_budgets(population: Population, scenario: Scenario, tariffs: Tariffs) -> Budgets:
    """Practice budgets for ``scenario`` from its tariffs (see the module docstring)."""
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

    if scenario.mode == "tariff":
        target = _share(envelope, tariff_w, scenario, "tariff x list days")
        shares = _row_shares(tariff_cells)
    else:
        need_cells, need_label, at_group_tariff = _need_cells(population, scenario, tariffs, tariff_cells)
        need_w = need_cells.sum(axis=1)
        _check_weights(need_w, "need x list days")
        fair = _share(envelope, need_w, scenario, f"{need_label} x list days")
        if scenario.mode == "fair_shares":
            target, shares = fair, _row_shares(need_cells)
            label = f"fair shares (need = {need_label})"
        else:
            a = scenario.tariff_weight_ppm
            g = gcd(a, PPM - a) or 1
            wa, wb = a // g, (PPM - a) // g
            by_tariff = _share(envelope, tariff_w, scenario, "tariff x list days")
            weights = (checked_product(by_tariff, wa, "blend weights", 2**61)
                       + checked_product(fair, wb, "blend weights", 2**61))
            _check_weights(weights, "blend weights")
            target = allocate_largest_remainder(envelope, weights)
            alpha = a / PPM
            shares = alpha * _row_shares(tariff_cells) + (1 - alpha) * _row_shares(need_cells)
            label = f"blend ({a / 10_000:g}% tariff, {100 - a / 10_000:g}% fair shares by {need_label})"

    base_w = population.base.sum(axis=1)
    current = allocate_largest_remainder(envelope, base_w) if base_w.sum() > 0 else target.copy()
    budget, path = target, None
    if scenario.pace_of_change is not None:
        path = [apply_pace_of_change(current, target, envelope, scenario.pace_of_change, scenario)]
        for _ in range(scenario.pace_of_change.years - 1):  # later years: same envelope, step and limits
            path.append(apply_pace_of_change(path[-1], target, envelope, scenario.pace_of_change, scenario))
        budget, path = path[0], np.vstack(path)
    withhold_p = allocate_largest_remainder(withhold, budget) if budget.sum() > 0 else np.zeros_like(budget)
    earned = div_round_half_up(withhold * scenario.withhold_earned_ppm, PPM)
    earned_p = allocate_largest_remainder(earned, withhold_p) if withhold_p.sum() > 0 else np.zeros_like(budget)
    return Budgets(
        mode_label=label, gross_pence=gross, contingency_pence=contingency, withhold_pence=withhold,
        envelope_pence=envelope, tariff_weights=tariff_w, target_pence=target, current_pence=current,
        budget_pence=budget, withhold_by_practice=withhold_p, withhold_earned_by_practice=earned_p,
        cell_shares=shares, pace_path=path, people_at_group_tariff=at_group_tariff,
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
