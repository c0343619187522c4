"""Year-end settlement: variance against the budget shared by a risk corridor.

Per practice, in whole pence, ``variance = actual - basis`` splits exactly into
``payer_share + provider_share`` by marginal tiers, then the provider's loss cap and gain
collar, then the payer's exposure cap (``docs/capitation.md``, "Settlement and risk corridors").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskcap.capitation.money import MAX_PRODUCT, PPM, check_pence, div_round_half_up_array
from riskcap.capitation.scenario import Corridor, CorridorTier


@dataclass(frozen=True)
class Settlement:
    """Per-practice settlement arrays (pence): variance == payer_share + provider_share."""

    basis_pence: np.ndarray
    actual_pence: np.ndarray
    variance_pence: np.ndarray
    payer_share_pence: np.ndarray
    provider_share_pence: np.ndarray


def _tiered(x: np.ndarray, basis: np.ndarray, tiers: tuple[CorridorTier, ...], widen_ppm=None) -> np.ndarray:
    numerator = np.zeros_like(x)
    for tier in tiers:
        lo = basis * _band(tier.from_ppm, widen_ppm) // PPM
        part = np.maximum(x - lo, 0)
        if tier.to_ppm is not None:
            part = np.minimum(part, basis * _band(tier.to_ppm, widen_ppm) // PPM - lo)
        numerator += part * tier.payer_share_ppm
    return div_round_half_up_array(numerator, PPM)


def _band(bound_ppm: int, widen_ppm):
    """A tier bound (ppm of basis), widened per unit by ``widen_ppm`` (a factor in ppm) when given."""
    return bound_ppm if widen_ppm is None else bound_ppm * widen_ppm // PPM


def settle(basis: np.ndarray, actual: np.ndarray, corridor: Corridor, widen_ppm: np.ndarray | None = None
           ) -> Settlement:
    """Share each unit's (practice's) variance between payer (commissioner) and provider.

    ``widen_ppm`` (a factor per unit, parts per million) scales every tier's bounds:
    ``bound = floor(from_ppm x widen / 10^6)`` ppm of basis (capitation/pooling.py). Products
    of pence and parts per million are exact: when they could pass int64 (budgets of billions
    of pounds with tiers up to 1,000 %), the sums are done in Python integers.
    """
    basis = np.asarray(basis, dtype=np.int64)
    actual = np.asarray(actual, dtype=np.int64)
    check_pence(basis, "budgets (with the withhold earned)")
    check_pence(actual, "outcome-year costs")
    biggest = max(float(np.abs(basis.astype(np.float64)).max(initial=0)),
                  float(np.abs(actual.astype(np.float64)).max(initial=0)))
    widest = 1.0 if widen_ppm is None else max(1.0, float(np.max(widen_ppm, initial=PPM)) / PPM)
    if 2 * biggest * _largest_ppm(corridor) * widest >= MAX_PRODUCT:
        basis, actual = basis.astype(object), actual.astype(object)
        widen_ppm = None if widen_ppm is None else np.asarray(widen_ppm).astype(object)
    variance = actual - basis
    x = np.abs(variance)
    over = variance > 0
    payer = np.where(over, _tiered(x, basis, corridor.overspend, widen_ppm),
                     _tiered(x, basis, corridor.underspend, widen_ppm))
    provider = x - payer
    if corridor.provider_loss_cap_ppm is not None:
        shift = np.where(over, np.maximum(provider - basis * corridor.provider_loss_cap_ppm // PPM, 0), 0)
        provider, payer = provider - shift, payer + shift
    if corridor.provider_gain_cap_ppm is not None:
        shift = np.where(~over, np.maximum(provider - basis * corridor.provider_gain_cap_ppm // PPM, 0), 0)
        provider, payer = provider - shift, payer + shift
    if corridor.payer_exposure_cap_ppm is not None:
        shift = np.where(over, np.maximum(payer - basis * corridor.payer_exposure_cap_ppm // PPM, 0), 0)
        provider, payer = provider + shift, payer - shift
    sign = np.where(variance < 0, -1, 1)
    as_int = [np.asarray(a, dtype=np.int64) for a in (basis, actual, variance, sign * payer, sign * provider)]
    return Settlement(*as_int)


def _largest_ppm(corridor: Corridor) -> int:
    """The largest rate (parts per million) settlement multiplies an amount by."""
    rates = [PPM]
    for tier in (*corridor.overspend, *corridor.underspend):
        rates += [tier.from_ppm, tier.to_ppm or 0, tier.payer_share_ppm]
    rates += [c or 0 for c in (corridor.provider_loss_cap_ppm, corridor.provider_gain_cap_ppm,
                                corridor.payer_exposure_cap_ppm)]
    return max(rates)
