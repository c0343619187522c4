"""Money as integer pence: exact rounding and largest-remainder (Hamilton) allocation.

Every amount that leaves the capitation engine is a whole number of pence, and every split
of a total adds back to that total exactly. The rules (documented in ``docs/capitation.md``):

* rates in scenario files are percentages with at most 4 decimal places; internally they are
  integer parts per million (ppm), so ``2.9`` % is 29,000 ppm and products stay exact;
* a single amount is rounded to the nearest penny with halves rounded **up** (away from
  zero for negative amounts), using integer arithmetic only (:func:`div_round_half_up`);
* a total is split over shares in proportion to integer weights by the **largest remainder
  (Hamilton) method** (:func:`allocate_largest_remainder`): every share first gets the floor
  of its exact quota ``total * w / sum(w)``; the pence left over (always fewer than the
  number of shares) go one each to the shares with the largest exact remainders, ties to the
  lower position (callers order shares by ``practice_code``, so ties go to the smaller code).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from riskcap.errors import DataError

PPM = 1_000_000  #: parts per million in one whole (a rate of 1.0)
_MAX_EXACT = 2**53  # integers below this are exact in float64
_MAX_WEIGHT_TOTAL = 2**62
#: The largest amount of money riskcap computes with, in pence (about GBP 90 trillion): any
#: total below it is exact in float64, and its products with days (365) or uplifts fit int64.
MAX_PENCE = 2**53
#: The largest product (pence x days, pence x parts per million, weights) held in int64.
MAX_PRODUCT = 2**62


class PenceOverflow(DataError, OverflowError):
    """An amount too large for exact whole-pence arithmetic: refused, never wrapped."""


def gbp(pounds, decimals: int = 0, *, signed: bool = False, symbol: str = "£", compact: bool = False) -> str:
    """Pounds as text for people to read, the one money formatter: ``£1,234`` (``decimals``
    places); "-" when missing; ``signed``: a + before gains. ``compact`` (terminal tables, chart
    axes): ``£512.34m``, ``£698.1k`` (``decimals`` places in millions, one fewer in thousands),
    whole pounds below 10,000. The files keep exact pence; this is display only."""
    if pounds is None or (isinstance(pounds, float) and math.isnan(pounds)):
        return "-"
    sign = "-" if pounds < 0 else "+" if signed and pounds > 0 else ""
    value = abs(pounds)
    if compact and value >= 1e6:
        text = f"{value / 1e6:,.{decimals}f}m"
    elif compact and value >= 1e4:
        text = f"{value / 1e3:,.{decimals - 1}f}k"
    else:
        text = f"{value:,.{0 if compact else decimals}f}"
    return sign + symbol + text


def check_pence(amounts, what: str, limit: int = MAX_PENCE) -> None:
    """PenceOverflow naming ``what`` when the sum of ``amounts`` (absolute values) reaches ``limit``.

    The check is on float64 values, whose relative error is far below the margin between
    ``limit`` and int64's largest value, so nothing that passes can have wrapped.
    """
    values = np.abs(np.asarray(amounts, dtype=np.float64))
    total = float(values.sum()) if values.size else 0.0
    if not total < limit:  # NaN and infinity included
        amount = f"{total:,.0f}" if total < 1e21 else f"{total:.3g}"
        raise PenceOverflow(f"{what} reach {amount}, beyond riskcap's exact whole-pence arithmetic "
                            f"(below {limit:,}; {gbp(MAX_PENCE / 100, symbol='GBP ')} as money): check the costs in the data "
                            "(activity cost_gbp, predicted_cost_gbp) and the scenario's envelope and rates")


def checked_product(a: np.ndarray, b, what: str, limit: int = MAX_PRODUCT) -> np.ndarray:
    """``a * b`` in int64 (non-negative integer arrays or scalars), PenceOverflow when the sum of
    the products would reach ``limit`` (so neither a product nor a sum of them can wrap)."""
    a = np.asarray(a, dtype=np.int64)
    check_pence(np.abs(a.astype(np.float64)) * np.abs(np.asarray(b, dtype=np.float64)), what, limit)
    return a * np.asarray(b, dtype=np.int64)


def div_round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, halves away from zero.

    Exact for Python integers of any size; ``denominator`` must be positive.
    """
    numerator, denominator = int(numerator), int(denominator)
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    return sign * ((2 * abs(numerator) + denominator) // (2 * denominator))


def div_round_half_up_array(numerator: np.ndarray, denominator: int) -> np.ndarray:
    """Element-wise :func:`div_round_half_up` for int64 arrays (|numerator| < 2**62), or for
    object arrays of Python integers of any size whose quotients fit int64."""
    numerator = np.asarray(numerator)
    if numerator.dtype != object:
        numerator = numerator.astype(np.int64)
    denominator = int(denominator)
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    magnitude = np.abs(numerator)
    rounded = magnitude // denominator + ((magnitude % denominator) * 2 >= denominator)
    return np.where(numerator < 0, -rounded, rounded).astype(np.int64)


def muldiv(a: np.ndarray, b: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``(a * b) // c`` and ``(a * b) % c`` for non-negative int64 arrays, without overflow.

    ``a * b`` may exceed 64 bits. The quotient is estimated in float64 and corrected with
    wrap-around (mod 2**64) integer arithmetic, which is exact because the true remainder of
    the estimate is small. Needs ``0 < c < 2**62`` and quotients below ``2**53``.
    """
    a = np.atleast_1d(np.asarray(a, dtype=np.int64))
    b = np.atleast_1d(np.asarray(b, dtype=np.int64))
    c = int(c)
    if not 0 < c < _MAX_WEIGHT_TOTAL:
        raise PenceOverflow(f"divisor {c} out of range for exact pence arithmetic")
    if (a < 0).any() or (b < 0).any():
        raise ValueError("muldiv needs non-negative integers")
    estimate = np.floor(a.astype(np.float64) * (b.astype(np.float64) / float(c)))
    if estimate.size and estimate.max() >= _MAX_EXACT:
        raise PenceOverflow("amount too large for exact pence arithmetic (over 2**53 pence, "
                            f"{gbp(MAX_PENCE / 100, symbol='GBP ')})")
    q = estimate.astype(np.int64)
    with np.errstate(over="ignore"):
        r = (a.astype(np.uint64) * b.astype(np.uint64) - q.astype(np.uint64) * np.uint64(c)).view(np.int64)
    # the float estimate is within a few units of the truth: step it into [0, c)
    for _ in range(64):
        low, high = r < 0, r >= c
        if not (low.any() or high.any()):
            break
        q = q - low + high
        r = r + c * low.astype(np.int64) - c * high.astype(np.int64)
    else:  # pragma: no cover - would mean the float estimate was wildly off
        raise ArithmeticError("muldiv failed to converge")
    return q, r


def allocate_largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` pence over shares in proportion to non-negative integer ``weights``.

    Hamilton's method: share ``i`` gets ``floor(total * w_i / W)`` (``W = sum(w)``), then
    the ``total - sum(floors)`` pence left over go one each to the shares with the largest
    exact remainders ``(total * w_i) mod W``; equal remainders go to the lower index. The
    result sums to ``total`` exactly and a zero weight always gets zero.

    Parameters
    ----------
    total
        Non-negative whole pence to split.
    weights
        Non-negative integer weights (int64), in tie-break order (e.g. by practice_code).

    Returns
    -------
    numpy.ndarray
        int64 pence per share, summing to ``total``.
    """
    weights = np.asarray(weights)
    if weights.dtype.kind not in "iu":
        raise TypeError("weights must be integers (pence, pence-days or similar)")
    weights = weights.astype(np.int64)
    total = int(total)
    if total < 0:
        raise ValueError(f"cannot allocate a negative total ({total} pence)")
    if (weights < 0).any():
        raise ValueError("weights must be non-negative")
    if weights.size and float(weights.sum(dtype=np.float64)) >= 2**61:
        raise PenceOverflow("weights too large for exact allocation")
    weight_total = int(weights.sum())  # exact: below 2**61 by the check above
    if weight_total == 0:
        if total == 0:
            return np.zeros(weights.shape, dtype=np.int64)
        raise ValueError(f"cannot allocate {total} pence: every weight is zero")
    if weight_total >= _MAX_WEIGHT_TOTAL:
        raise PenceOverflow(f"weights sum to {weight_total}, too large for exact allocation")
    floors, remainders = muldiv(np.full(weights.shape, total, dtype=np.int64), weights, weight_total)
    left_over = total - int(floors.sum())
    if left_over:
        order = np.lexsort((np.arange(weights.size), -remainders))
        floors[order[:left_over]] += 1
    return floors


def gbp_to_pence(amount) -> int:
    """A GBP amount (number or decimal string) as whole pence, halves rounded up."""
    exact = Fraction(str(amount)) * 100
    return div_round_half_up(exact.numerator, exact.denominator)
