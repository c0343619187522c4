"""Year of Care group tariffs, per registered day, from the tariff year's in-scope costs.

Each person's cost is optionally capped at a nearest-rank percentile (the excess funds a
high-cost pool or is dropped), and a group's tariff is its capped cost per registered year
times the scenario's uplift, in whole pence (``docs/capitation.md``, "Tariffs").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskcap.capitation.money import PPM, check_pence, div_round_half_up
from riskcap.capitation.population import DAYS_IN_YEAR, Population
from riskcap.capitation.scenario import Scenario
from riskcap.capitation import stoploss


@dataclass(frozen=True)
class Tariffs:
    """Group tariffs of one scenario; arrays are per need group, in scheme order (pence)."""

    method: str  # how the tariffs were priced (population.FORWARD or BASE_YEAR)
    people: np.ndarray  # people the tariffs are priced from
    days: np.ndarray  # their registered days in the tariff year
    base_pence: np.ndarray  # sum of uncapped tariff-year in-scope cost
    capped_pence: np.ndarray  # sum after the individual cap
    excess_pence: np.ndarray  # sum above the cap
    tariff_pence: np.ndarray  # uplifted tariff per registered year (365 registered days)
    cap_pence: int | None  # the individual cap (tariff-year prices)
    outcome_threshold_pence: int | None  # the pool threshold in outcome-year prices (pool only)
    pool_funding_pence: int
    stop_loss_loading_pence: int = 0  # added to every priced tariff (capitation/stoploss.py)


def compute_outcome_threshold(cap_pence: int, scenario: Scenario) -> int:
    """The individual cap in outcome-year prices: cap x (1 + cost uplift), pence, halves up."""
    return div_round_half_up(cap_pence * (PPM + scenario.cost_uplift_ppm), PPM)


def compute_tariffs(population: Population, scenario: Scenario) -> Tariffs:
    """Group tariffs (and high-cost pool) for ``scenario`` on a grouped population."""
    basis = population.tariff
    base, days = basis.cost, basis.days
    cap = threshold = None
    excess = np.zeros_like(base)
    if scenario.cap_percentile is not None and basis.people.sum():
        cap = population.cap_value(scenario.cap_percentile)
        excess = population.excess("tariff", cap)
        if scenario.excess == "pool":
            threshold = compute_outcome_threshold(cap, scenario)
    if scenario.stop_loss is not None and basis.people.sum():  # a pound attachment point instead
        cap, threshold = stoploss.tariff_attachment(scenario), scenario.stop_loss.attachment_pence
        excess = population.excess("tariff", cap)
    capped = base - excess
    uplift = scenario.uplift
    tariff = [div_round_half_up(int(total) * DAYS_IN_YEAR * uplift.numerator, int(d) * uplift.denominator) if d else 0
              for total, d in zip(capped.tolist(), days.tolist())]
    pool = div_round_half_up(int(excess.sum()) * uplift.numerator, uplift.denominator) \
        if threshold is not None else 0
    loading = 0
    if scenario.stop_loss is not None and threshold is not None:  # the pool takes its share only
        pool, loading = stoploss.funding(int(excess.sum()), int(days.sum()), scenario)
        tariff = [t + loading if d else 0 for t, d in zip(tariff, days.tolist())]
    check_pence(np.array(tariff, dtype=np.float64), f"scenario '{scenario.name}': group tariffs (uplifted)")
    tariff = np.array(tariff, dtype=np.int64)
    check_pence(pool, f"scenario '{scenario.name}': high-cost pool funding (uplifted)")
    return Tariffs(method=basis.method, people=basis.people, days=days, base_pence=base, capped_pence=capped,
                   excess_pence=excess, tariff_pence=tariff, cap_pence=cap, outcome_threshold_pence=threshold,
                   pool_funding_pence=pool, stop_loss_loading_pence=loading)
