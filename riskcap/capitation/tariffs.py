"""Year of Care group tariffs from base-year in-scope costs.

For need group g with ``n_g`` members (people registered and alive at the index date):

* each person's base-year in-scope cost ``c_i`` (pence; the 12 months before the index date,
  settings chosen by the scenario) is optionally capped at ``K`` = the scenario's
  nearest-rank percentile of all people's ``c_i``; the excess ``max(c_i - K, 0)`` is funded
  by a commissioner-held high-cost pool (``excess: pool``) or not at all (``excess: drop``);
* ``tariff_g = round_half_up(sum_i min(c_i, K) / n_g x U)`` whole pence, with the uplift
  ``U = (1 + demographic growth) x (1 + cost uplift) x (1 - efficiency)`` applied exactly;
* the pool is funded with ``round_half_up(sum_i max(c_i - K, 0) x U)`` pence, and in the
  outcome year pays each person's in-scope cost above ``K x (1 + cost uplift)`` (the cap in
  outcome-year prices), which practices then do not carry.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskcap.capitation.money import PPM, check_pence, div_round_half_up
from riskcap.capitation.population import Population
from riskcap.capitation.scenario import Scenario


@dataclass(frozen=True)
class Tariffs:
    """Group tariffs of one scenario; arrays are per need group, in scheme order (pence)."""

    people: np.ndarray
    base_pence: np.ndarray  # sum of uncapped base-year in-scope cost
    capped_pence: np.ndarray  # sum after the individual cap
    excess_pence: np.ndarray  # sum above the cap
    tariff_pence: np.ndarray  # uplifted annual tariff per person
    cap_pence: int | None  # the individual cap (base-year prices)
    outcome_threshold_pence: int | None  # the pool threshold in outcome-year prices (pool only)
    pool_funding_pence: int
    excess_cells: np.ndarray | None  # (practices, groups) base-year excess, or None without a cap


def compute_outcome_threshold(cap_pence: int, scenario: Scenario) -> int:
    """The individual cap in outcome-year prices: cap x (1 + cost uplift), pence, halves up."""
    return div_round_half_up(cap_pence * (PPM + scenario.cost_uplift_ppm), PPM)


def compute_tariffs(population: Population, scenario: Scenario) -> Tariffs:
    """Group tariffs (and high-cost pool) for ``scenario`` on a grouped population."""
    people = population.people.sum(axis=0)
    base = population.base.sum(axis=0)
    cap = threshold = None
    excess_cells = None
    excess = np.zeros_like(base)
    if scenario.cap_percentile is not None and population.person_base.size:
        cap = population.cap_value(scenario.cap_percentile)
        excess_cells = population.excess("base", cap)
        excess = excess_cells.sum(axis=0)
        if scenario.excess == "pool":
            threshold = compute_outcome_threshold(cap, scenario)
    capped = base - excess
    uplift = scenario.uplift
    tariff = [div_round_half_up(int(total) * uplift.numerator, int(n) * uplift.denominator) if n else 0
              for total, n in zip(capped.tolist(), people.tolist())]
    check_pence(np.array(tariff, dtype=np.float64), f"scenario '{scenario.name}': group tariffs (uplifted)")
    tariff = np.array(tariff, dtype=np.int64)
    pool = div_round_half_up(int(excess.sum()) * uplift.numerator, uplift.denominator) \
        if threshold is not None else 0
    check_pence(pool, f"scenario '{scenario.name}': high-cost pool funding (uplifted)")
    return Tariffs(people=people, base_pence=base, capped_pence=capped, excess_pence=excess, tariff_pence=tariff,
                   cap_pence=cap, outcome_threshold_pence=threshold, pool_funding_pence=pool,
                   excess_cells=excess_cells)
