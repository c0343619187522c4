"""Risk pooling and size-aware corridors (issue 19, lever 2).

``risk_pool.level`` settles the corridor per practice, PCN or ICB and shares each pool's
result back to its members by basis (``pool_transfer_pence``: what other members carried);
``widen_by_size`` scales the corridor's bands by a unit's noise. The rules, in whole pence:
``docs/capitation.md``, "Risk pooling and size-aware corridors".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskcap.capitation.money import PPM, allocate_largest_remainder
from riskcap.capitation.population import Population
from riskcap.capitation.scenario import RiskPool, Scenario
from riskcap.capitation.settlement import Settlement, settle


@dataclass(frozen=True)
class PooledSettlement:
    """Settlement per practice (``settlement``) of a pooled or size-widened corridor, with the pools'."""

    settlement: Settlement
    unit_of_practice: np.ndarray  # index into unit_codes per practice
    unit_codes: np.ndarray
    unit_people: np.ndarray
    widen_ppm: np.ndarray  # per unit
    units: Settlement  # per unit
    pooled_provider: np.ndarray  # per practice: its basis share of its pool's provider share


def unit_codes(population: Population, level: str) -> np.ndarray:
    """The code of the unit each practice settles in: itself, its PCN (itself without one), its ICB."""
    practices = population.practice_codes.astype(str)
    if level == "practice":
        return practices
    if level == "icb":
        return population.icb_codes.astype(str)
    pcn = np.full(len(practices), "", dtype=object) if population.pcn_codes is None else population.pcn_codes
    return np.where(pcn.astype(str) == "", practices, pcn.astype(str))


def widening(people: np.ndarray, pool: RiskPool) -> np.ndarray | None:
    """The factor on every tier bound per unit, in parts per million, or None when off:
    ``f = min(max_factor, max(1, sqrt(N / n)))`` protecting the payer, ``1 / f`` the practice."""
    if pool.reference_list_size is None:
        return None
    with np.errstate(divide="ignore"):
        factor = np.sqrt(pool.reference_list_size / np.maximum(people, 0).astype(np.float64))
    ppm = np.minimum(np.rint(np.clip(factor, 1.0, pool.max_factor_ppm / PPM) * PPM).astype(np.int64),
                     pool.max_factor_ppm)
    return ppm if pool.protects == "payer" else (PPM * PPM + ppm // 2) // ppm  # 1 / f, rounded half up


def split_by_basis(totals: np.ndarray, unit: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Each unit's (signed) total split over its members in proportion to their basis, to the penny
    (largest remainder; members with no basis share equally when the whole unit has none)."""
    out = np.zeros(len(unit), dtype=np.int64)
    weights = np.maximum(basis, 0)
    for u in np.flatnonzero(totals):
        members = np.flatnonzero(unit == u)
        w = weights[members] if weights[members].sum() > 0 else np.ones(len(members), dtype=np.int64)
        amount = int(totals[u])
        out[members] = np.sign(amount) * allocate_largest_remainder(abs(amount), w)
    return out


def settle_pooled(population: Population, basis: np.ndarray, actual: np.ndarray, scenario: Scenario
                  ) -> PooledSettlement:
    """Settle ``scenario``'s corridor per pool (see the module docstring); per-practice arrays out."""
    codes, unit = np.unique(unit_codes(population, scenario.risk_pool.level), return_inverse=True)
    n = len(codes)
    basis = np.asarray(basis, dtype=np.int64)
    actual = np.asarray(actual, dtype=np.int64)
    sums = np.zeros((3, n), dtype=np.int64)
    np.add.at(sums[0], unit, basis)
    np.add.at(sums[1], unit, actual)
    np.add.at(sums[2], unit, population.people.sum(axis=1))
    widen = widening(sums[2], scenario.risk_pool)
    units = settle(sums[0], sums[1], scenario.corridor, widen)
    payer = split_by_basis(units.payer_share_pence, unit, basis)
    variance = actual - basis
    practice = Settlement(basis, actual, variance, payer, variance - payer)
    return PooledSettlement(practice, unit, codes, sums[2], np.full(n, PPM) if widen is None else widen, units,
                            split_by_basis(units.provider_share_pence, unit, basis))


def pool_frame(scenario: Scenario, population: Population, pooled: PooledSettlement) -> pd.DataFrame:
    """Per practice: its pool, the pool's settlement, and what the practice bears of it."""
    u, s, units = pooled.unit_of_practice, pooled.settlement, pooled.units
    return pd.DataFrame({
        "scenario": scenario.name,
        "practice_code": population.practice_codes.astype(str),
        "level": scenario.risk_pool.level,
        "pool_code": pooled.unit_codes[u].astype(str),
        "pool_practices": np.bincount(u, minlength=len(pooled.unit_codes))[u],
        "pool_list_size": pooled.unit_people[u],
        "band_factor": np.round(pooled.widen_ppm[u] / PPM, 6),
        "pool_basis_pence": units.basis_pence[u],
        "pool_variance_pence": units.variance_pence[u],
        "pool_payer_share_pence": units.payer_share_pence[u],
        "pool_provider_share_pence": units.provider_share_pence[u],
        "variance_pence": s.variance_pence,
        "payer_share_pence": s.payer_share_pence,
        "provider_share_pence": s.provider_share_pence,
        "pooled_provider_share_pence": pooled.pooled_provider,
        "pool_transfer_pence": s.provider_share_pence - pooled.pooled_provider,
    })
