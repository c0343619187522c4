"""Component budgets: the envelope split into components (acute, community, mental health,
prescribing, primary care, or any a scenario names), each a set of settings with its own
tariffs and need basis.

Component envelopes are shared by the components' tariff totals and each is shared over
practices by its own need basis; a practice's budget is divided over components in proportion
to its component targets (``docs/capitation.md``, "Component budgets").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskcap.capitation.money import allocate_largest_remainder, check_pence, checked_product
from riskcap.capitation.population import Population
from riskcap.capitation.scenario import Scenario
from riskcap.capitation.tariffs import compute_tariffs
from riskcap.errors import DataError


@dataclass(frozen=True)
class ComponentSplit:
    """One scenario's component budgets; per-component arrays in the scenario's component order."""

    names: tuple[str, ...]
    settings: tuple[tuple[str, ...], ...]
    needs: tuple[str, ...]
    tariff_pence: np.ndarray  # (components, groups) component tariffs per registered year
    tariff_totals: np.ndarray  # (components,) T_c, pence-days
    envelope_pence: np.ndarray  # (components,) E_c, summing to the envelope
    target_pence: np.ndarray  # (components, practices)
    actual_pence: np.ndarray  # (components, practices) outcome-year cost in the component's settings
    budget_pence: np.ndarray | None = None  # (components, practices), set by :meth:`with_budgets`

    @property
    def target(self) -> np.ndarray:
        """Each practice's target: the sum of its component targets."""
        return self.target_pence.sum(axis=0)

    def cell_shares(self, cells: list[np.ndarray]) -> np.ndarray:
        """How each practice's budget divides over need groups: its component targets' shares."""
        out = np.zeros(cells[0].shape, dtype=np.float64)
        total = self.target.astype(np.float64)
        for target, c in zip(self.target_pence, cells):
            rows = c.sum(axis=1, keepdims=True).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                out += np.where((rows > 0) & (total[:, None] > 0), c / rows * (target / total)[:, None], 0.0)
        return out

    def with_budgets(self, budget: np.ndarray) -> "ComponentSplit":
        """Component budgets once ``budget`` (per practice) is known: the targets when they are the
        budgets, else each practice's budget over its component targets (largest remainder)."""
        if np.array_equal(budget, self.target):
            return dataclasses.replace(self, budget_pence=self.target_pence.copy())
        out = np.zeros_like(self.target_pence)
        for p in np.flatnonzero(budget):
            weights = self.target_pence[:, p]  # a practice with no target at all: its budget split evenly
            out[:, p] = allocate_largest_remainder(int(budget[p]), weights if weights.any() else np.ones_like(weights))
        return dataclasses.replace(self, budget_pence=out)

    def summary(self) -> list[dict]:
        """Per component: settings, need basis, envelope, budgets and outcome-year actual (pence)."""
        budgets = self.target_pence if self.budget_pence is None else self.budget_pence
        return [{"component": n, "settings": list(s), "need": need, "tariff_total_pence_days": int(t),
                 "envelope_pence": int(e), "budget_pence": int(b.sum()), "actual_pence": int(a.sum()),
                 "predictive_ratio": float(a.sum() / b.sum()) if b.sum() else None}
                for n, s, need, t, e, b, a in zip(self.names, self.settings, self.needs, self.tariff_totals,
                                                  self.envelope_pence, budgets, self.actual_pence)]

    def frame(self, scenario: str, practice_codes: np.ndarray) -> pd.DataFrame:
        """Per practice and component: target, budget and outcome-year actual (pence)."""
        budgets = self.target_pence if self.budget_pence is None else self.budget_pence
        k, n = self.target_pence.shape
        return pd.DataFrame({
            "scenario": scenario,
            "component": np.repeat(np.asarray(self.names, dtype=object), n),
            "practice_code": np.tile(practice_codes.astype(str), k),
            "need": np.repeat(np.asarray(self.needs, dtype=object), n),
            "target_pence": self.target_pence.ravel(),
            "budget_pence": budgets.ravel(),
            "actual_pence": self.actual_pence.ravel(),
        })


def split_components(envelope: int, scenario: Scenario, population: Population,
                     populations: dict[tuple, Population]) -> tuple[ComponentSplit, list[np.ndarray]]:
    """The component split of ``envelope`` (see the module docstring) and each component's
    (practices, groups) need cells (for :meth:`ComponentSplit.cell_shares`).

    ``populations`` holds each component's population by its settings (same practices and
    people as ``population``, costed over the component's settings)."""
    uncapped = dataclasses.replace(scenario, cap_percentile=None)
    tariffs, totals, cells, actual = [], [], [], []
    for c in scenario.components:
        pop = populations[c.settings]
        if not np.array_equal(pop.practice_codes, population.practice_codes):
            raise ValueError(f"component '{c.name}' was aggregated over other practices than its scenario")
        tariff = compute_tariffs(pop, uncapped).tariff_pence
        tariff_cells = checked_product(pop.list_days, tariff[None, :], f"component '{c.name}': tariffs x list days")
        check_pence(tariff_cells.sum(axis=1), f"component '{c.name}': tariffs x list days", 2**61)
        if c.need == "group_tariff":
            need = tariff_cells
        elif c.need == "list_size":
            need = pop.list_days
        else:
            if pop.need_days is None:
                raise DataError(f"scenario '{scenario.name}' ({scenario.source}): component '{c.name}' is shared "
                                f"by predicted cost (budget.components.{c.name}.need: predicted_cost) but there are "
                                "no predicted costs: pass --scores with a 'predicted_cost_gbp' column for every "
                                "person, or use need: group_tariff or list_size")
            need = pop.need_days
        tariffs.append(tariff)
        totals.append(int(tariff_cells.sum()))
        cells.append(need)
        actual.append(pop.outcome.sum(axis=1))
    totals = np.array(totals, dtype=np.int64)
    check_pence(totals, f"scenario '{scenario.name}': component tariff totals", 2**61)
    if envelope > 0 and not totals.any():
        raise DataError(f"scenario '{scenario.name}' ({scenario.source}): cannot split GBP {envelope / 100:,.2f} "
                        "over components: every component's tariffs x list days is zero")
    envelopes = allocate_largest_remainder(envelope, totals) if totals.any() else np.zeros(len(totals), np.int64)
    targets = []
    for c, e, need in zip(scenario.components, envelopes, cells):
        weights = need.sum(axis=1)
        if e > 0 and not weights.any():
            raise DataError(f"scenario '{scenario.name}' ({scenario.source}): component '{c.name}' has GBP "
                            f"{e / 100:,.2f} to share but every practice's {c.need} weight is zero")
        targets.append(allocate_largest_remainder(int(e), weights) if weights.any()
                       else np.zeros(len(weights), np.int64))
    split = ComponentSplit(
        names=tuple(c.name for c in scenario.components), settings=tuple(c.settings for c in scenario.components),
        needs=tuple(c.need for c in scenario.components), tariff_pence=np.vstack(tariffs), tariff_totals=totals,
        envelope_pence=envelopes, target_pence=np.vstack(targets), actual_pence=np.vstack(actual))
    return split, cells
