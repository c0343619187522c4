"""Stop-loss / high-cost pool with a pound attachment point (issue 19, lever 1).

Costs above the attachment point leave the group tariffs; the pool pays its share of each
person's outcome-year cost above it, and all of a practice's share beyond the practice cap;
practices' retained share comes back as one flat loading on every tariff. The rules, in whole
pence: ``docs/capitation.md``, "Stop-loss with a pound attachment point".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskcap.capitation.money import MAX_PRODUCT, PPM, allocate_largest_remainder, div_round_half_up, \
    div_round_half_up_array
from riskcap.capitation.population import DAYS_IN_YEAR, Population
from riskcap.capitation.scenario import Scenario


def tariff_attachment(scenario: Scenario) -> int:
    """The attachment point in tariff-year prices: ``A / (1 + cost uplift)``, pence, halves up."""
    return div_round_half_up(scenario.stop_loss.attachment_pence * PPM, PPM + scenario.cost_uplift_ppm)


def funding(excess_pence: int, days: int, scenario: Scenario) -> tuple[int, int]:
    """(pool funding, flat loading per registered year) from the tariff year's excess (pence)."""
    u, share = scenario.uplift, scenario.stop_loss.pool_share_ppm
    pool = div_round_half_up(excess_pence * share * u.numerator, PPM * u.denominator)
    loading = div_round_half_up(excess_pence * (PPM - share) * DAYS_IN_YEAR * u.numerator,
                                PPM * days * u.denominator) if days else 0
    return pool, loading


@dataclass(frozen=True)
class StopLossOutturn:
    """Outcome-year costs above the attachment per (practice, group) cell, and the pool's part."""

    excess_cells: np.ndarray
    pool_cells: np.ndarray
    cap_reached: np.ndarray  # per practice: the practice cap made the pool pay more

    @property
    def excess(self) -> np.ndarray:
        return self.excess_cells.sum(axis=1)

    @property
    def pool(self) -> np.ndarray:
        return self.pool_cells.sum(axis=1)


def outturn(population: Population, scenario: Scenario) -> StopLossOutturn:
    """Who pays the outcome year's costs above the attachment point (see the module docstring)."""
    sl = scenario.stop_loss
    excess = population.excess("outcome", sl.attachment_pence)
    numerator = excess.astype(object) if float(excess.max(initial=0)) * PPM >= MAX_PRODUCT else excess
    pool = div_round_half_up_array(numerator * sl.pool_share_ppm, PPM)
    retained = excess - pool
    over = np.zeros(len(excess), dtype=np.int64)
    if sl.practice_cap_pence is not None:
        over = np.maximum(retained.sum(axis=1) - sl.practice_cap_pence, 0)
        for p in np.flatnonzero(over):
            pool[p] += allocate_largest_remainder(int(over[p]), retained[p])
    return StopLossOutturn(excess, pool, over > 0)


def practice_frame(scenario: Scenario, population: Population, stop: StopLossOutturn) -> pd.DataFrame:
    """Per practice: outturn charged, cost above the attachment, what the pool and the practice paid."""
    charged = population.outcome.sum(axis=1)
    return pd.DataFrame({
        "scenario": scenario.name,
        "practice_code": population.practice_codes.astype(str),
        "icb_code": population.icb_codes.astype(str),
        "attachment_pence": scenario.stop_loss.attachment_pence,
        "charged_pence": charged,
        "excess_above_attachment_pence": stop.excess,
        "pool_paid_pence": stop.pool,
        "practice_retained_pence": stop.excess - stop.pool,
        "practice_cap_reached": stop.cap_reached,
        "actual_pence": charged - stop.pool,
    })


def summary(stop: StopLossOutturn, loading_pence: int) -> dict:
    """The stop-loss lines of a scenario's summary (pence)."""
    return {
        "stop_loss_loading_pence": int(loading_pence),
        "stop_loss_excess_pence": int(stop.excess.sum()),
        "stop_loss_pool_paid_pence": int(stop.pool.sum()),
        "stop_loss_practice_retained_pence": int((stop.excess - stop.pool).sum()),
        "stop_loss_practices_capped": int(stop.cap_reached.sum()),
    }
