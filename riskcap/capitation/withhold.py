"""Outcome withhold earned per practice from a measured outcome (issue 19, lever 7).

Each practice earns back a share of its withhold set by its observed / expected emergency
admissions (expected at the population's rate in each need group), all at or below
``full_at_ratio``, none at or above ``none_at_ratio`` (``docs/capitation.md``, "Outcome withhold
earned per practice").
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from riskcap.capitation.money import div_round_half_up
from riskcap.capitation.population import Population
from riskcap.capitation.scenario import Scenario
from riskcap.errors import DataError


@dataclass(frozen=True)
class OutcomeEarned:
    """Per practice: observed and expected outcome, their ratio, the share and pence earned."""

    observed: np.ndarray
    expected: list[Fraction]
    share: list[Fraction]
    earned_pence: np.ndarray

    @property
    def ratio(self) -> np.ndarray:
        return np.array([float(o / e) if e else np.nan for o, e in zip(self.observed.tolist(), self.expected)])


def earned_by_outcome(population: Population, scenario: Scenario, withhold_pence: np.ndarray) -> OutcomeEarned:
    """Each practice's withhold earned by its observed / expected outcome (see the module docstring)."""
    rule = scenario.withhold_by_outcome
    if population.emergency is None:
        raise DataError(f"scenario '{scenario.name}' ({scenario.source}) earns the withhold by emergency admissions "
                        "(top_slices.withhold_earned_by) but the features have no complete 'y_emergency_12m' "
                        "column: run from a data folder whose outcome year is complete, or use withhold_earned_pct")
    people, observed_cells = population.people, population.emergency
    n_g, o_g = people.sum(axis=0).tolist(), observed_cells.sum(axis=0).tolist()
    rates = [Fraction(o, n) if n else Fraction(0) for o, n in zip(o_g, n_g)]
    expected = [sum((Fraction(n) * r for n, r in zip(row, rates) if n), Fraction(0)) for row in people.tolist()]
    observed = observed_cells.sum(axis=1)
    width = rule.none_at - rule.full_at
    share = [min(Fraction(1), max(Fraction(0), (rule.none_at - Fraction(o) / e) / width)) if e else Fraction(1)
             for o, e in zip(observed.tolist(), expected)]
    earned = np.array([div_round_half_up(w * f.numerator, f.denominator)
                       for w, f in zip(np.asarray(withhold_pence).tolist(), share)], dtype=np.int64)
    return OutcomeEarned(observed, expected, share, earned)


def practice_frame(scenario: Scenario, population: Population, withhold_pence: np.ndarray,
                   outcome: OutcomeEarned) -> pd.DataFrame:
    """Per practice: the measure, observed, expected, ratio, share earned and pence."""
    return pd.DataFrame({
        "scenario": scenario.name,
        "practice_code": population.practice_codes.astype(str),
        "measure": scenario.withhold_by_outcome.measure,
        "people": population.people.sum(axis=1),
        "observed": outcome.observed,
        "expected": np.round([float(e) for e in outcome.expected], 4),
        "observed_over_expected": np.round(outcome.ratio, 6),
        "earned_share": np.round([float(f) for f in outcome.share], 6),
        "withhold_pence": withhold_pence,
        "withhold_earned_pence": outcome.earned_pence,
    })
