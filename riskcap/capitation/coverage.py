"""Exact reachability and coverage checks for need-group rules.

A rule is a conjunction of one-feature conditions, so the people it matches form a *box*:
one set of allowed values per feature (a union of intervals over the reals, or over the
integers for integer-valued features such as age or LTC flags). A rule can never match when
its box, minus the boxes of all earlier rules, is empty; a scheme leaves people unmatched when
the whole feature domain minus every rule's box is not empty. Both are decided exactly by
repeated box subtraction, which stays small for schemes of realistic size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

INF = math.inf


@dataclass(frozen=True)
class Interval:
    """An interval of the real line; bounds may be infinite (then they are open)."""

    lo: float
    hi: float
    lo_closed: bool = True
    hi_closed: bool = True


class ValueSet:
    """A union of disjoint intervals, over the integers when ``integer`` is true.

    Integer sets are kept as closed intervals of whole numbers, so ``age > 74`` and
    ``age >= 75`` are the same set.
    """

    __slots__ = ("intervals", "integer")

    def __init__(self, intervals, integer: bool):
        self.integer = integer
        self.intervals: tuple[Interval, ...] = self._normalise(list(intervals), integer)

    # --- construction ---------------------------------------------------------
    @staticmethod
    def _normalise(intervals: list[Interval], integer: bool) -> tuple[Interval, ...]:
        cleaned = []
        for iv in intervals:
            lo, hi, lc, hc = iv.lo, iv.hi, iv.lo_closed, iv.hi_closed
            if integer:
                lo = lo if math.isinf(lo) else (math.ceil(lo) if (lc or lo != math.floor(lo)) else lo + 1)
                hi = hi if math.isinf(hi) else (math.floor(hi) if (hc or hi != math.ceil(hi)) else hi - 1)
                lc, hc = not math.isinf(lo), not math.isinf(hi)
                if lo > hi:
                    continue
            else:
                lc, hc = lc and not math.isinf(lo), hc and not math.isinf(hi)
                if lo > hi or (lo == hi and not (lc and hc)):
                    continue
            cleaned.append(Interval(lo, hi, lc, hc))
        cleaned.sort(key=lambda iv: (iv.lo, not iv.lo_closed))
        merged: list[Interval] = []
        for iv in cleaned:
            if merged:
                last = merged[-1]
                if integer:
                    touches = iv.lo <= last.hi + 1
                else:
                    touches = iv.lo < last.hi or (iv.lo == last.hi and (iv.lo_closed or last.hi_closed))
                if touches:
                    if (iv.hi, iv.hi_closed) > (last.hi, last.hi_closed):
                        merged[-1] = Interval(last.lo, iv.hi, last.lo_closed, iv.hi_closed)
                    continue
            merged.append(iv)
        return tuple(merged)

    @classmethod
    def between(cls, lo: float, hi: float, integer: bool) -> "ValueSet":
        return cls([Interval(lo, hi, True, True)], integer)

    @classmethod
    def points(cls, values, integer: bool) -> "ValueSet":
        return cls([Interval(v, v, True, True) for v in values], integer)

    @classmethod
    def from_condition(cls, op: str, values: tuple[float, ...], integer: bool) -> "ValueSet":
        """The values of one feature for which ``feature op values`` holds."""
        v = values[0]
        if op == "==":
            return cls.points([v], integer)
        if op == "in":
            return cls.points(values, integer)
        if op in ("!=", "not in"):
            return cls.points(values, integer).complement()
        return cls([{
            "<": Interval(-INF, v, False, False),
            "<=": Interval(-INF, v, False, True),
            ">": Interval(v, INF, False, False),
            ">=": Interval(v, INF, True, False),
        }[op]], integer)

    # --- algebra --------------------------------------------------------------
    def is_empty(self) -> bool:
        return not self.intervals

    def intersect(self, other: "ValueSet") -> "ValueSet":
        out = []
        for a in self.intervals:
            for b in other.intervals:
                lo, lc = max((a.lo, not a.lo_closed), (b.lo, not b.lo_closed))
                hi, hc = min((a.hi, a.hi_closed), (b.hi, b.hi_closed))
                out.append(Interval(lo, hi, not lc, hc))
        return ValueSet(out, self.integer)

    def complement(self) -> "ValueSet":
        out, lo, lc = [], -INF, False
        for iv in self.intervals:
            if self.integer:
                out.append(Interval(lo, iv.lo - 1, True, True))
                lo = iv.hi + 1
            else:
                out.append(Interval(lo, iv.lo, lc, not iv.lo_closed))
                lo, lc = iv.hi, not iv.hi_closed
        out.append(Interval(lo, INF, lc if not self.integer else True, False))
        return ValueSet(out, self.integer)

    def sample(self) -> float:
        """A value in the set (for messages); the set must not be empty."""
        iv = self.intervals[0]
        if self.integer:
            return iv.lo if not math.isinf(iv.lo) else (iv.hi if not math.isinf(iv.hi) else 0)
        if iv.lo_closed:
            return iv.lo
        if iv.hi_closed:
            return iv.hi
        if math.isinf(iv.lo) and math.isinf(iv.hi):
            return 0.0
        if math.isinf(iv.lo):
            return iv.hi - 1
        if math.isinf(iv.hi):
            return iv.lo + 1
        return (iv.lo + iv.hi) / 2

    def __eq__(self, other) -> bool:
        return isinstance(other, ValueSet) and (self.intervals, self.integer) == (other.intervals, other.integer)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"ValueSet({self.intervals}, integer={self.integer})"


Box = dict  # feature name -> ValueSet; a feature not in the box may take any value of its domain


class TooComplex(Exception):
    """Raised when box subtraction grows beyond ``max_boxes``."""


def intersect_boxes(a: Box, b: Box) -> Box | None:
    """The intersection of two boxes, or None when it is empty."""
    out = dict(a)
    for feature, values in b.items():
        out[feature] = out[feature].intersect(values) if feature in out else values
        if out[feature].is_empty():
            return None
    return out


def subtract(box: Box, other: Box, domains: dict[str, ValueSet]) -> list[Box]:
    """``box`` minus ``other`` as a list of disjoint non-empty boxes."""
    if intersect_boxes(box, other) is None:
        return [box]
    pieces, current = [], dict(box)
    for feature in sorted(other):
        own = current.get(feature, domains[feature])
        outside = own.intersect(other[feature].complement())
        if not outside.is_empty():
            piece = dict(current)
            piece[feature] = outside
            pieces.append(piece)
        current[feature] = own.intersect(other[feature])
    return pieces


def uncovered(box: Box, earlier: list[Box], domains: dict[str, ValueSet], max_boxes: int = 50_000) -> list[Box]:
    """The parts of ``box`` that no box in ``earlier`` covers (empty list: fully covered)."""
    remaining = [box]
    for other in earlier:
        remaining = [piece for b in remaining for piece in subtract(b, other, domains)]
        if not remaining:
            return []
        if len(remaining) > max_boxes:
            raise TooComplex(f"more than {max_boxes} regions to check")
    return remaining
