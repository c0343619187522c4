"""How many people to list and in what order: the top k%, the top N, or a score threshold.

The order (practice, score, probability, then ``person_id``) breaks every tie the same way,
so the same scores always give the same lists.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from riskcap.errors import ConfigError

@dataclass(frozen=True)
class SelectionRule:
    """How many people to list: the top k%, the top N, or everyone at or above a score.

    Exactly one of ``top_percent``, ``top_n`` and ``min_score`` is set. ``within`` is
    ``"practice"`` (the rule applies to each practice's eligible list) or ``"population"``
    (to everyone eligible, then split by practice).
    """

    top_percent: Fraction | None = None
    top_n: int | None = None
    min_score: int | None = None
    within: str = "practice"

    @classmethod
    def parse(cls, top: str | float | None = None, top_n: int | None = None, min_score: int | None = None,
              within: str = "practice") -> "SelectionRule":
        """Build a rule from command-line values; default top 2% per practice.

        ``top`` may be written ``"2%"``, ``"2"`` or ``"0.5%"``; it is kept as an exact
        fraction so ``ceil(k% x n)`` has no float error.
        """
        given = [name for name, v in (("--top", top), ("--top-n", top_n), ("--min-score", min_score)) if v is not None]
        if len(given) > 1:
            raise ConfigError(f"give only one of --top, --top-n, --min-score (got {', '.join(given)})")
        if within not in ("practice", "population"):
            raise ConfigError(f"within must be 'practice' or 'population', got {within!r}")
        if top_n is not None:
            if isinstance(top_n, bool) or int(top_n) != top_n or top_n < 1:
                raise ConfigError(f"--top-n must be a whole number >= 1, got {top_n!r}")
            return cls(top_n=int(top_n), within=within)
        if min_score is not None:
            if isinstance(min_score, bool) or int(min_score) != min_score or not 0 <= min_score <= 100:
                raise ConfigError(f"--min-score must be a whole number from 0 to 100, got {min_score!r}")
            return cls(min_score=int(min_score), within=within)
        text = "2" if top is None else str(top).strip().rstrip("%").strip()
        try:
            percent = Fraction(text)
        except (ValueError, ZeroDivisionError) as exc:
            raise ConfigError(f"--top must be a percentage such as 2% or 0.5%, got {top!r}") from exc
        if not 0 < percent <= 100:
            raise ConfigError(f"--top must be more than 0% and at most 100%, got {top!r}")
        return cls(top_percent=percent, within=within)

    def count(self, n_eligible: int, scores_desc: np.ndarray | None = None) -> int:
        """How many of ``n_eligible`` people (in risk order, ``scores_desc``) are listed."""
        if self.top_percent is not None:
            return min(n_eligible, math.ceil(self.top_percent * n_eligible / 100))
        if self.top_n is not None:
            return min(n_eligible, self.top_n)
        assert scores_desc is not None, "a score threshold needs the scores"
        return int((np.asarray(scores_desc) >= self.min_score).sum())

    def describe(self) -> str:
        """The rule in plain English, e.g. ``"top 2% of each practice's eligible list"``."""
        scope = "each practice's eligible list" if self.within == "practice" else "the whole eligible population"
        if self.top_percent is not None:
            return f"top {_fraction_text(self.top_percent)}% of {scope} (rounded up to a whole person)"
        if self.top_n is not None:
            return f"top {self.top_n} of {scope}"
        return f"everyone eligible with a score of {self.min_score} or more"

    def as_dict(self) -> dict:
        if self.top_percent is not None:
            rule, value = "top_percent", float(self.top_percent)
        elif self.top_n is not None:
            rule, value = "top_n", self.top_n
        else:
            rule, value = "min_score", self.min_score
        return {"rule": rule, "value": value, "within": self.within, "description": self.describe()}


def _fraction_text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"


def risk_order(practice_code, score, probability, person_id) -> np.ndarray:
    """Row order of a case-finding list: practice code, then score (high first), then
    probability (high first), then ``person_id`` (low first), so ties are broken the same
    way every run."""
    codes, _ = pd.factorize(np.asarray(practice_code, dtype=object), sort=True)
    return np.lexsort((np.asarray(person_id, dtype=np.int64), -np.asarray(probability, dtype=np.float64),
                       -np.asarray(score, dtype=np.int64), codes))


def select(eligible: pd.DataFrame, rule: SelectionRule) -> pd.DataFrame:
    """Pick the people to list from the eligible ones.

    Parameters
    ----------
    eligible : DataFrame
        One row per eligible person with ``practice_code``, ``person_id``, ``score`` and
        ``probability`` (other columns are carried along).
    rule : SelectionRule

    Returns
    -------
    DataFrame
        The listed rows in list order (practice code, then rank), with ``rank``: the
        person's position in the practice's eligible list in :func:`risk_order` (1 = highest
        risk). Each practice's listed people are ranks 1..k.
    """
    order = risk_order(eligible["practice_code"], eligible["score"], eligible["probability"], eligible["person_id"])
    ranked = eligible.iloc[order].reset_index(drop=True)
    code = ranked["practice_code"].astype("str").to_numpy(dtype=object)
    n = len(ranked)
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if n else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes) + 1
    score = ranked["score"].to_numpy(dtype=np.int64)
    keep = np.zeros(n, dtype=bool)
    if rule.within == "practice":
        for start, size in zip(starts.tolist(), sizes.tolist()):
            k = rule.count(size, score[start:start + size])
            keep[start:start + k] = True
    else:
        population = np.lexsort((ranked["person_id"].to_numpy(dtype=np.int64),
                                 -ranked["probability"].to_numpy(dtype=np.float64), -score))
        k = rule.count(n, score[population])
        keep[population[:k]] = True
    listed = ranked.loc[keep].copy()
    listed.insert(0, "rank", rank[keep].astype(np.int64))
    return listed.reset_index(drop=True)
