"""Twins of :mod:`riskcap.capitation`'s fast paths: need groups, tariffs, budgets, allocation.

:func:`assign_need_groups` tries each person against each rule in Python. The rest is a
straightforward pandas implementation of grouping + tariffs + tariff-mode budgets, which
the fast path (numba kernels + per-cell aggregates) is tested and benchmarked against:
boolean masks and ``np.select`` for need groups, ``groupby`` for tariffs and practice sums,
Python fractions for uplifts and top-slices, and :func:`allocate_largest_remainder` with
Python fractions. It must give the same pence.
"""
from __future__ import annotations

import operator
from fractions import Fraction

import numpy as np
import pandas as pd

from riskcap.capitation.money import PPM
from riskcap.capitation.scenario import Scenario
from riskcap.capitation.scheme import Condition, NeedGroupScheme, _check_all_matched, feature_column

_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _round_half_up(x: Fraction) -> int:
    return int((x + Fraction(1, 2)) // 1) if x >= 0 else -int((-x + Fraction(1, 2)) // 1)


def condition_matches(condition: Condition, x: float) -> bool:
    """Whether ``x`` passes ``condition``: missing values (NaN) fail every test except != and not in."""
    op, v = condition.op, condition.values[0]
    if op == "==":
        return x == v
    if op == "!=":
        return x != v
    if op == "<":
        return x < v
    if op == "<=":
        return x <= v
    if op == ">":
        return x > v
    if op == ">=":
        return x >= v
    hit = any(x == value for value in condition.values)
    return hit if op == "in" else not hit


def assign_need_groups(features: pd.DataFrame, scheme: NeedGroupScheme) -> np.ndarray:
    """:func:`riskcap.capitation.scheme.assign_need_groups` one person and one rule at a time."""
    columns = {f: [float(x) for x in feature_column(features, f, scheme).tolist()] for f in scheme.features}
    out = np.empty(len(features), dtype=np.int16)
    for i in range(len(features)):
        out[i] = -1
        for rule in scheme.rules:
            if all(condition_matches(c, columns[c.feature][i]) for c in rule.conditions):
                out[i] = rule.group_index
                break
    _check_all_matched(out, features, scheme)
    return out


def allocate_largest_remainder(total: int, weights) -> list[int]:
    """:func:`riskcap.capitation.money.allocate_largest_remainder` with Python fractions."""
    weights = [int(w) for w in weights]
    weight_total = sum(weights)
    if weight_total == 0:
        if total == 0:
            return [0] * len(weights)
        raise ValueError("every weight is zero")
    quotas = [Fraction(total * w, weight_total) for w in weights]
    floors = [q.numerator // q.denominator for q in quotas]
    left_over = total - sum(floors)
    ranked = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in ranked[:left_over]:
        floors[i] += 1
    return floors


def groups_by_masks(features: pd.DataFrame, scheme: NeedGroupScheme) -> np.ndarray:
    """Need group index per row with pandas masks and ``np.select`` (first rule wins)."""
    masks = []
    for rule in scheme.rules:
        mask = pd.Series(True, index=features.index)
        for c in rule.conditions:
            column = features[c.feature].astype("float64")
            if c.op in ("in", "not in"):
                hit = column.isin(list(c.values))
                mask &= hit if c.op == "in" else ~hit
            else:
                mask &= _OPS[c.op](column, c.values[0])
        masks.append(mask.to_numpy())
    return np.select(masks, [r.group_index for r in scheme.rules], default=-1).astype(np.int16)


def tariff_budgets(features: pd.DataFrame, scheme: NeedGroupScheme, scenario: Scenario) -> dict:
    """Tariffs and practice budgets of a tariff-mode scenario, the plain pandas way.

    Returns a dict with ``tariffs`` (Series of pence by group id), ``budgets`` (frame of
    practice_code, budget_pence), ``gross``, ``contingency`` and ``withhold`` (pence).
    """
    if scenario.mode != "tariff" or scenario.pace_of_change is not None:
        raise ValueError("the reference covers tariff-mode scenarios without pace of change")
    df = pd.DataFrame({"practice_code": features["practice_code"].astype(str),
                       "list_days": features["list_days_next_12"].astype("int64")})
    df["need_group"] = groups_by_masks(features, scheme)
    df["cost"] = sum((features[f"cost_{s}_0_12"] * 100).round().astype("int64") for s in scenario.settings)
    if scenario.cap_percentile is not None:
        ordered = np.sort(df["cost"].to_numpy())
        rank = max(1, -(-Fraction(str(scenario.cap_percentile)) * len(ordered) // 100))
        df["cost"] = df["cost"].clip(upper=int(ordered[int(rank) - 1]))
    uplift = (Fraction(PPM + scenario.demographic_growth_ppm, PPM) * Fraction(PPM + scenario.cost_uplift_ppm, PPM)
              * Fraction(PPM - scenario.efficiency_ppm, PPM))
    by_group = df.groupby("need_group")["cost"].agg(["sum", "count"])
    tariffs = pd.Series(0, index=range(len(scheme.groups)), dtype="int64")
    for g, row in by_group.iterrows():
        tariffs[g] = _round_half_up(Fraction(int(row["sum"]), int(row["count"])) * uplift)
    days = df.groupby(["practice_code", "need_group"])["list_days"].sum().reset_index()
    days["weight"] = days["list_days"] * days["need_group"].map(tariffs)
    weights = days.groupby("practice_code")["weight"].sum().sort_index()
    gross = _round_half_up(Fraction(int(weights.sum()), 365))
    contingency = _round_half_up(Fraction(gross * scenario.contingency_ppm, PPM))
    withhold = _round_half_up(Fraction(gross * scenario.outcome_withhold_ppm, PPM))
    budgets = allocate_largest_remainder(gross - contingency - withhold, weights.tolist())
    tariffs.index = scheme.group_ids
    return {
        "tariffs": tariffs,
        "budgets": pd.DataFrame({"practice_code": weights.index.to_numpy(), "budget_pence": budgets}),
        "gross": gross, "contingency": contingency, "withhold": withhold,
    }


def spread_sums(group: np.ndarray, pence: np.ndarray, days: np.ndarray, n_groups: int) -> np.ndarray:
    """:func:`riskcap.capitation.accuracy.spread_sums` with ``numpy.add.at`` per statistic."""
    x = np.array([(int(p) + 50) // 100 for p in pence], dtype=np.int64)
    d = np.asarray(days, dtype=np.int64)
    out = np.zeros((n_groups, 5), dtype=np.int64)
    for k, values in enumerate((x, d, x * x, x * d, d * d)):
        np.add.at(out[:, k], group, values)
    return out
