"""Parameter sweeps: a grid of scenario variants on one grouped population.

People are grouped and costed once (:class:`~riskcap.capitation.population.Population`);
each combination then works on per-practice x need-group aggregates. Only a new individual
cost cap touches people again, and then only those above the lowest threshold asked for
(cached), so 1,000 combinations of uplift x cap percentile x corridor cost little more than
one scenario. Keys that would need regrouping (``need_groups``, ``settings``) cannot vary.

A grid axis is ``KEY=VALUES``: ``KEY`` a dotted scenario key (``tariff.cost_uplift_pct``,
``corridor.overspend.1.payer_share_pct``); ``VALUES`` a comma list (``0,1.5,2.9``, YAML
scalars, ``null`` for none), a range ``start:stop:count`` (``count`` evenly spaced values,
both ends included, rounded to 4 decimals), or ``@scenario`` items taking the key's value
from another scenario file (``corridor=@baseline,@asymmetric_corridor``; a key the file
does not set gives null, i.e. the default).
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from riskcap.capitation import stoploss
from riskcap.capitation.engine import evaluate
from riskcap.capitation.population import Population
from riskcap.capitation.scenario import Scenario
from riskcap.capitation.tariffs import compute_outcome_threshold
from riskcap.config import load_yaml, parse_yaml, resolve_config
from riskcap.errors import ConfigError

FIXED_KEYS = ("name", "need_groups", "settings")
#: Most combinations a sweep runs (and most values one axis takes): each is a scenario evaluated
#: in turn, so a bigger grid would run for hours and hold every variant in memory.
MAX_COMBINATIONS = 100_000
SUMMARY_COLUMNS = (
    "gross_pence", "contingency_pence", "withhold_pence", "envelope_pence", "envelope_per_head_gbp", "cap_pence",
    "pool_funding_pence", "pool_outturn_pence", "actual_pence", "variance_pence", "payer_share_pence",
    "provider_share_pence", "commissioner_balance_pence", "predictive_ratio", "practices_within_10pct", "r_squared",
    "mean_abs_distance_from_target",
)


def parse_axis(spec: str) -> tuple[str, list]:
    """``"tariff.cost_uplift_pct=0,1,2.9"`` -> (key, values); see the module docstring."""
    if "=" not in spec:
        raise ConfigError(f"--vary '{spec}': expected KEY=VALUES, e.g. tariff.cost_uplift_pct=0,1.5,2.9")
    key, _, text = spec.partition("=")
    key, text = key.strip(), text.strip()
    if not key or not text:
        raise ConfigError(f"--vary '{spec}': expected KEY=VALUES, e.g. tariff.cost_uplift_pct=0,1.5,2.9")
    if key.split(".")[0] in FIXED_KEYS:
        raise ConfigError(f"--vary '{spec}': key '{key}' cannot vary in a sweep (people are grouped and costed "
                          f"once); run separate sweeps or use 'riskcap capitation run'")
    parts = text.split(":")
    if len(parts) == 3 and not text.startswith("@"):
        try:
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ConfigError(f"--vary '{spec}': a range is start:stop:count, e.g. 0:5:11") from None
        if not 1 <= count <= MAX_COMBINATIONS:
            raise ConfigError(f"--vary '{spec}': count must be from 1 to {MAX_COMBINATIONS:,}")
        values = [round(float(v), 4) for v in np.linspace(start, stop, count)]
        return key, [int(v) if v.is_integer() else v for v in values]
    items = text.split(",")
    if len(items) > MAX_COMBINATIONS:
        raise ConfigError(f"--vary '{key}=...': {len(items):,} values; at most {MAX_COMBINATIONS:,} are allowed")
    values = []
    for item in items:
        item = item.strip()
        if item.startswith("@"):
            values.append(item)
            continue
        try:
            values.append(parse_yaml(item))
        except ConfigError:
            raise ConfigError(f"--vary '{spec}': cannot read value '{item}'") from None
    return key, values


def parse_axes(specs) -> list[tuple[str, list]]:
    """Every ``--vary`` axis (:func:`parse_axis`), the grid they make checked (:func:`check_grid`)."""
    axes = [parse_axis(spec) for spec in specs]
    check_grid(axes)
    return axes


def check_grid(axes: list[tuple[str, list]]) -> None:
    """ConfigError when the axes make more than :data:`MAX_COMBINATIONS` combinations."""
    combinations = 1
    for _, values in axes:
        combinations *= len(values)
    if combinations > MAX_COMBINATIONS:
        sizes = " x ".join(f"{len(v):,}" for _, v in axes)
        raise ConfigError(f"--vary: the grid has {sizes} = {combinations:,} combinations; at most "
                          f"{MAX_COMBINATIONS:,} are allowed: use fewer values, or run several sweeps")


def _get_dotted(raw, key: str):
    node = raw
    for part in key.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _resolve(key: str, value):
    if isinstance(value, str) and value.startswith("@"):
        return _get_dotted(load_yaml(resolve_config(value[1:], folder="scenarios")), key)
    return value


def _gather_tails_once(population: Population, scenarios: list[Scenario]) -> None:
    """Find every cap first (widest first), then gather outcome costs above the lowest pool
    threshold, so no combination has to read the whole population again."""
    caps = sorted({s.cap_percentile for s in scenarios if s.cap_percentile is not None})
    for percentile in caps:
        population.cap_value(percentile)
    thresholds = [compute_outcome_threshold(population.cap_value(s.cap_percentile), s)
                  for s in scenarios if s.cap_percentile is not None and s.excess == "pool"]
    if thresholds:
        population.excess("outcome", min(thresholds))
    stop_losses = [s for s in scenarios if s.stop_loss is not None]
    if stop_losses:  # the lowest attachment points, in each year's prices
        population.excess("tariff", min(stoploss.tariff_attachment(s) for s in stop_losses))
        population.excess("outcome", min(s.stop_loss.attachment_pence for s in stop_losses))


def run_sweep(population: Population, base: Scenario, axes: list[tuple[str, list]],
              components: dict | None = None) -> pd.DataFrame:
    """Evaluate every combination of ``axes`` on ``base``; one row per combination.

    Columns: ``combination`` (0-based), one per axis key (the value as given), the headline
    numbers of :meth:`~riskcap.capitation.engine.ScenarioResult.summary` (with the lines of the
    levers a combination sets: :meth:`~riskcap.capitation.engine.ScenarioResult.lever_summary`)
    and ``tariff_<group>_pence`` per need group; with component budgets ``component_<name>_envelope_pence``,
    with the inequalities adjustment ``inequalities_moved_pence``. ``components``: the populations
    of the base scenario's components by settings (component settings cannot vary: each needs
    its own costing of the people).
    """
    if not axes:
        raise ConfigError("a sweep needs at least one --vary KEY=VALUES axis")
    keys = [k for k, _ in axes]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"--vary: key '{next(k for k in keys if keys.count(k) > 1)}' is given twice")
    check_grid(axes)
    resolved = [[_resolve(k, v) for v in values] for k, values in axes]
    combos = list(itertools.product(*(range(len(v)) for _, v in axes)))
    scenarios = [base.with_overrides({k: resolved[a][j] for a, (k, j) in enumerate(zip(keys, combo))},
                                     label=f"sweep combination {i}: " + ", ".join(
                                         f"{k}={axes[a][1][j]}" for a, (k, j) in enumerate(zip(keys, combo))))
                 for i, combo in enumerate(combos)]
    components = components or {}
    for scenario in scenarios:
        missing = [c.name for c in scenario.components if c.settings not in components]
        if missing:
            raise ConfigError(f"{scenario.source}: key 'budget.components.{missing[0]}.settings': component settings "
                              "cannot vary in a sweep (each component's people are costed once); vary need instead")
    _gather_tails_once(population, scenarios)
    rows = []
    for i, (combo, scenario) in enumerate(zip(combos, scenarios)):
        result = evaluate(population, scenario, components)
        summary = result.summary()
        row = {"combination": i}
        for a, (k, j) in enumerate(zip(keys, combo)):
            row[k] = axes[a][1][j]
        row.update({c: summary[c] for c in SUMMARY_COLUMNS})
        levers = result.lever_summary()  # issue 19 levers' lines, only where a combination sets them
        row.update({k: v for k, v in levers.items() if not isinstance(v, (dict, list))})
        row.update({f"tariff_{g}_pence": int(t) for g, t in zip(population.scheme.group_ids, result.tariffs.tariff_pence)})
        row.update(_lever_columns(levers))  # the nested ones, flattened
        rows.append(row)
    frame = pd.DataFrame(rows)
    for k in keys:  # mixed types (numbers, null, @names) are written as text
        if frame[k].map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all():
            frame[k] = frame[k].astype("float64")
        else:
            frame[k] = frame[k].map(lambda v: "null" if v is None else str(v)).astype("str")
    return frame


def _lever_columns(summary: dict) -> dict:
    """Sweep columns of issue 19's levers B, only for combinations that use them."""
    out = {f"component_{c['component']}_envelope_pence": c["envelope_pence"] for c in summary.get("components", ())}
    if "inequalities" in summary:
        out["inequalities_moved_pence"] = summary["inequalities"]["moved_pence"]
    if "coding_intensity" in summary:
        out["coding_flagged"] = len(summary["coding_intensity"]["flagged"])
        out["coding_moved_pence"] = summary["coding_intensity"]["moved_pence"]
    return out
