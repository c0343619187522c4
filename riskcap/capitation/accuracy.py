"""How well budgets matched outturn: predictive ratios (actual / basis) by need group and by
practice, the share within +/-10 %, practice-level R-squared and each ratio's noise
(``ratio_se``, ``z``). Definitions: ``docs/capitation.md``, "Accuracy".
"""
from __future__ import annotations

import numba
import numpy as np

WITHIN = 0.10


def predictive_ratio(actual: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """actual / budget element-wise (NaN where the budget is zero)."""
    actual = np.asarray(actual, dtype=np.float64)
    budget = np.asarray(budget, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(budget > 0, actual / budget, np.nan)


def share_within(actual: np.ndarray, budget: np.ndarray, tolerance: float = WITHIN) -> float:
    """Share of units whose predictive ratio is within 1 +/- tolerance."""
    ratio = predictive_ratio(actual, budget)
    return float(np.mean(np.abs(ratio - 1) <= tolerance + 1e-12)) if ratio.size else float("nan")


def r_squared(actual: np.ndarray, budget: np.ndarray) -> float:
    """1 - SS(actual - budget) / SS(actual - mean(actual)); NaN for fewer than two units."""
    actual = np.asarray(actual, dtype=np.float64)
    budget = np.asarray(budget, dtype=np.float64)
    if actual.size < 2:
        return float("nan")
    total = float(((actual - actual.mean()) ** 2).sum())
    if total == 0:
        return float("nan")
    return 1.0 - float(((actual - budget) ** 2).sum()) / total


def group_allocation(basis: np.ndarray, cell_shares: np.ndarray) -> np.ndarray:
    """Each need group's share of the practices' basis (float pence per group)."""
    return (np.asarray(basis, dtype=np.float64)[:, None] * cell_shares).sum(axis=0)


#: Per-group sums kept for :func:`spread` (costs x in whole pounds, days d): x, d, x^2, x d, d^2.
SPREAD_SUMS = 5


def spread_sums(group: np.ndarray, pence: np.ndarray, days: np.ndarray, n_groups: int) -> np.ndarray:
    """(groups, :data:`SPREAD_SUMS`) exact int64 sums of x, d, x^2, x d and d^2 by group, x being
    each person's cost in whole pounds (pence rounded half up), d their days (one pass;
    ``tests/reference/capitation.py`` has the numpy twin)."""
    out = np.zeros((n_groups, SPREAD_SUMS), dtype=np.int64)
    _spread_kernel(np.ascontiguousarray(group), np.ascontiguousarray(pence, dtype=np.int64),
                   np.ascontiguousarray(days, dtype=np.int64), out)
    return out


@numba.njit(cache=True)
def _spread_kernel(group, pence, d, out):  # pragma: no cover - compiled
    for i in range(group.shape[0]):
        g, x = group[i], (pence[i] + 50) // 100
        out[g, 0] += x
        out[g, 1] += d[i]
        out[g, 2] += x * x
        out[g, 3] += x * d[i]
        out[g, 4] += d[i] * d[i]


def _variance_of_rate(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``sums``: the rate sum x / sum d and the variance of that ratio estimate."""
    sx, sd, sxx, sxd, sdd = (sums[..., k].astype(np.float64) for k in range(SPREAD_SUMS))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(sd > 0, sx / sd, np.nan)
        var = np.where(sd > 0, np.maximum(sxx - 2 * rate * sxd + rate * rate * sdd, 0) / (sd * sd), np.nan)
    return rate, var


def spread(outcome: np.ndarray, tariff: np.ndarray) -> tuple[np.ndarray, float]:
    """Relative standard error of each group's predictive ratio and of the whole's, from the
    outcome-year and tariff-year :func:`spread_sums` ((groups, 5) each)."""
    r_out, v_out = _variance_of_rate(outcome)
    r_tar, v_tar = _variance_of_rate(tariff)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_group = np.sqrt(v_out / r_out ** 2 + v_tar / r_tar ** 2)
        days = outcome[:, 1].astype(np.float64)
        known = np.isfinite(r_tar) & (days > 0)
        actual = float(outcome[:, 0].sum())
        budget = float((r_tar[known] * days[known]).sum())
        whole = np.sqrt(np.nansum(v_out * days ** 2) / actual ** 2 + np.nansum((v_tar * days ** 2)[known]) / budget ** 2) \
            if actual > 0 and budget > 0 else float("nan")
    return per_group, float(whole)
