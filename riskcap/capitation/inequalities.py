"""Health-inequalities (unmet need) adjustment by deprivation, in the form NHS England uses.

A weight of the money is shared by need x an index of unmet need per IMD band, normalised by
the weighted mean index so the envelope is unchanged and money only moves between practices
(``docs/capitation.md``, "Health-inequalities adjustment").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskcap.capitation.money import PPM, check_pence, checked_product
from riskcap.capitation.population import IMD_DECILES, Population
from riskcap.capitation.scenario import DEPRIVATION_BANDS, Inequalities, Scenario


@dataclass(frozen=True)
class InequalityAdjustment:
    """The adjustment of one share basis: per practice x band weights before, and the factors."""

    inequalities: Inequalities
    basis: str  # "tariffs" or "fair_shares"
    band_weights: np.ndarray  # (practices, bands) S_pb, int64
    factors: np.ndarray  # (bands,) A_b
    mean_index: float  # I

    @property
    def weights(self) -> np.ndarray:
        """Adjusted practice weights ``sum_b S_pb A_b`` (int64, rounded to whole units)."""
        adjusted = self.band_weights.astype(np.float64) @ self.factors
        check_pence(adjusted, "inequality-adjusted weights", 2**61)
        return np.rint(adjusted).astype(np.int64)

    def money_by_band(self, envelope: int) -> tuple[np.ndarray, np.ndarray]:
        """The envelope's money per band without and with the adjustment (pence, rounded)."""
        s = self.band_weights.sum(axis=0).astype(np.float64)
        total = s.sum()
        if total <= 0:
            return np.zeros_like(s, dtype=np.int64), np.zeros_like(s, dtype=np.int64)
        return np.rint(envelope * s / total).astype(np.int64), np.rint(envelope * s * self.factors / total).astype(np.int64)

    def summary(self, envelope: int, before: np.ndarray, after: np.ndarray) -> dict:
        """What the adjustment did: its terms, the money per band, and the money it moved
        between practices (``sum max(after - before, 0)`` of the practices' shares)."""
        ineq = self.inequalities
        money_before, money_after = self.money_by_band(envelope)
        return {
            "by": ineq.by, "apply_to": self.basis, "weight_pct": ineq.weight_ppm / 10_000,
            "index": [i / PPM for i in ineq.index_ppm], "mean_index": round(self.mean_index, 6),
            "factors": [round(float(a), 6) for a in self.factors],
            "moved_pence": int(np.maximum(after - before, 0).sum()),
            "bands": [{"band": b + 1, "before_pence": int(x), "after_pence": int(y), "change_pence": int(y - x)}
                      for b, (x, y) in enumerate(zip(money_before, money_after))],
        }


def band_of_decile(by: str) -> np.ndarray:
    """Band (0-based) of each IMD decile 1..10 for ``by`` (deciles, or quintiles = deciles in pairs)."""
    return np.arange(IMD_DECILES) * DEPRIVATION_BANDS[by] // IMD_DECILES


def adjustment(population: Population, scenario: Scenario, basis: str, tariff_pence: np.ndarray,
               need_is_tariff: bool = False) -> InequalityAdjustment:
    """The adjustment of ``basis`` ("tariffs": group tariff x list days; "fair_shares": need x list
    days, or the group tariff when ``need_is_tariff``, the fair-shares fallback) for ``scenario``."""
    ineq = scenario.inequalities
    dep = population.deprivation
    if dep is None:
        raise ValueError(f"scenario '{scenario.name}': the population was aggregated without IMD-decile sums "
                         "(plan_run(..., deprivation=True) or Population.from_features(..., deprivation=True))")
    if basis == "tariffs" or need_is_tariff:
        cells = checked_product(dep[0], tariff_pence[None, :, None], "tariffs x list days by IMD decile")
    else:
        cells = dep[1]
    by_decile = cells.sum(axis=1)  # (practices, deciles)
    bands = DEPRIVATION_BANDS[ineq.by]
    band_weights = np.zeros((by_decile.shape[0], bands), dtype=np.int64)
    np.add.at(band_weights.T, band_of_decile(ineq.by), by_decile.T)
    index = np.asarray(ineq.index_ppm, dtype=np.float64) / PPM
    s = band_weights.sum(axis=0).astype(np.float64)
    mean = float((s * index).sum() / s.sum()) if s.sum() > 0 else 1.0
    w = ineq.weight_ppm / PPM
    factors = (1 - w) + w * index / mean
    return InequalityAdjustment(ineq, basis, band_weights, factors, mean)
