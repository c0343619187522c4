"""How well budgets matched outturn: predictive ratios, share within +/-10 %, R-squared.

* **Predictive ratio** = actual / budget (budget here is the settlement basis: budget plus
  withhold earned). 1.0 is a perfect match; above 1 the budget was too small.
* **Within +/-10 %**: practices with ``|ratio - 1| <= 0.10``.
* **Practice-level R-squared** = ``1 - sum (actual - budget)^2 / sum (actual - mean actual)^2``
  over practices: the share of the variation in practice outturn the budgets explain (it can
  be negative when budgets are worse than giving every practice the mean).
* **By need group**: each practice's basis is divided over its need groups in proportion to
  the mode's weights (tariff x list days, need x list days, or their blend), then summed per
  group; the ratio is the group's actual cost over that allocation.
"""
from __future__ import annotations

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
