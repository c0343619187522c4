"""The risk pyramid: population percentiles of risk and the tiers they fall in.

:func:`load_pyramid` reads the tiers (``configs/tiers.yaml`` by default: very high = top
0.5%, high = next to 5%, rising = next to 20%, low = the rest); :func:`risk_percentiles`
turns probabilities into population percentiles (100 = highest risk) and
:func:`assign_tiers` places people in tiers. ``riskcap score`` and ``riskcap casefind``
both use this module, so the tier in a scores file and on a case-finding list follow the
same rule.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from riskcap.config import load_yaml, resolve_config
from riskcap.errors import ConfigError

#: Default pyramid file (in the shipped ``configs/`` folder).
DEFAULT_PYRAMID = "tiers.yaml"

# Percentile comparisons are made with this slack (in percentage points) so that float
# rounding of a percentile exactly on a tier boundary cannot move a person across it.
_PERCENT_EPS = 1e-9


@dataclass(frozen=True)
class Tier:
    """One tier of the pyramid.

    Attributes
    ----------
    name : str
        Display name, e.g. ``"very high"``.
    top_percent : float
        Cumulative share of the population at or above the bottom of this tier, in percent
        (0 < top_percent <= 100); the last tier has 100.
    offer : str
        What people in the tier are typically offered (for the notes sheet).
    """

    name: str
    top_percent: float
    offer: str = ""


@dataclass(frozen=True)
class Pyramid:
    """Risk tiers from the top down; the last tier takes everyone else."""

    name: str
    tiers: tuple[Tier, ...]
    description: str = ""
    source: str = ""

    @property
    def names(self) -> list[str]:
        """Tier names from the top (highest risk) down."""
        return [t.name for t in self.tiers]

    def rank_of(self, tier_name: str) -> int:
        """Position of a tier from the top (0 = highest risk); ValueError if unknown."""
        return self.names.index(tier_name)

    def describe(self) -> list[str]:
        """One plain-English line per tier, e.g. ``"high: next to the top 5%"``."""
        lines, previous = [], 0.0
        for tier in self.tiers:
            if previous == 0:
                span = f"top {percent_label(tier.top_percent)}"
            elif tier.top_percent >= 100:
                span = f"everyone below the top {percent_label(previous)}"
            else:
                span = f"next, down to the top {percent_label(tier.top_percent)}"
            lines.append(f"{tier.name}: {span}" + (f" ({tier.offer})" if tier.offer else ""))
            previous = tier.top_percent
        return lines

    def as_dict(self) -> dict:
        return {"name": self.name, "tiers": [{"name": t.name, "top_percent": t.top_percent} for t in self.tiers]}


def percent_label(percent: float) -> str:
    """A share of the population as its label in tier descriptions and the report: 2%, 0.5%."""
    return f"{percent:g}%"


def load_pyramid(path: str | Path | None = None) -> Pyramid:
    """Read and validate a risk pyramid from YAML.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file, or the name of a shipped one in ``configs/``; default ``tiers.yaml``
        (very high = top 0.5%, high = next to 5%, rising = next to 20%, low = the rest).

    Returns
    -------
    Pyramid

    Raises
    ------
    ConfigError
        Naming the file and key when the file is missing, tiers are not a non-empty list,
        a name is missing or repeated, or ``top_percent`` is not increasing in (0, 100]
        with the last tier at 100.
    """
    file = resolve_config(path if path is not None else DEFAULT_PYRAMID)
    data = load_yaml(file)
    tiers_raw = data.get("tiers")
    if not isinstance(tiers_raw, list) or not tiers_raw:
        raise ConfigError(f"{file}: 'tiers' must be a non-empty list of {{name, top_percent}} mappings")
    tiers: list[Tier] = []
    for i, item in enumerate(tiers_raw):
        where = f"{file}: tiers[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping with keys name, top_percent, offer")
        unknown = set(item) - {"name", "top_percent", "offer"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: name, top_percent, offer")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}.name: must be a non-empty string")
        top = item.get("top_percent")
        if isinstance(top, bool) or not isinstance(top, (int, float)) or not 0 < top <= 100:
            raise ConfigError(f"{where}.top_percent: must be a number in (0, 100], got {top!r}")
        if tiers and top <= tiers[-1].top_percent:
            raise ConfigError(
                f"{where}.top_percent: must be greater than the tier above "
                f"({tiers[-1].name}: {tiers[-1].top_percent}); top_percent is cumulative"
            )
        if name.strip() in {t.name for t in tiers}:
            raise ConfigError(f"{where}.name: tier '{name}' is listed twice")
        tiers.append(Tier(name.strip(), float(top), str(item.get("offer") or "")))
    if tiers[-1].top_percent != 100:
        raise ConfigError(
            f"{file}: the last tier ('{tiers[-1].name}') must have top_percent: 100 (everyone else), "
            f"got {tiers[-1].top_percent:g}"
        )
    return Pyramid(str(data.get("name") or file.stem), tuple(tiers), str(data.get("description") or ""), str(file))


def risk_percentiles(probabilities) -> np.ndarray:
    """Population percentile of each person's risk: the percent of people at or below it.

    ``100`` is the highest risk; people with equal probability get equal percentiles (the
    higher one). Equivalently ``100 - percentile`` is the percent of people with strictly
    higher risk.

    Parameters
    ----------
    probabilities : array-like of float
        One probability (or any risk value, higher = riskier) per person; no NaN.

    Returns
    -------
    numpy.ndarray of float64
    """
    values = np.asarray(probabilities, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("probabilities must be one-dimensional")
    if values.size == 0:
        return np.empty(0, dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError(f"probabilities contain {int(np.isnan(values).sum())} NaN value(s)")
    return percentiles_among(np.sort(values), values)


def percentiles_among(population: np.ndarray, values) -> np.ndarray:
    """:func:`risk_percentiles` of ``values`` (some of the population) in a population given as
    its sorted values: a population ranked part by part gets its ranks exactly."""
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")  # sorted keys: each search starts where the last ended
    at_or_below = np.empty(values.size, dtype=np.intp)
    at_or_below[order] = np.searchsorted(population, values[order], side="right")
    return 100.0 * at_or_below / population.size


def tier_codes(percentiles, pyramid: Pyramid) -> np.ndarray:
    """Index of each person's tier from the top (0 = highest), from population percentiles.

    A person is in the first tier whose ``top_percent`` exceeds the percent of the
    population with strictly higher risk (``100 - percentile``).
    """
    pct = np.asarray(percentiles, dtype=np.float64)
    if np.isnan(pct).any() or (pct.size and (pct.min() < 0 or pct.max() > 100 + _PERCENT_EPS)):
        raise ValueError("percentiles must be numbers in [0, 100] (100 = highest risk)")
    above = 100.0 - pct
    bounds = np.array([t.top_percent for t in pyramid.tiers], dtype=np.float64) - _PERCENT_EPS
    # first tier i with above < bounds[i]; the last bound is ~100 and above <= 100, but a
    # percentile of exactly 0 (impossible from risk_percentiles) still lands in the last tier
    return np.minimum(np.searchsorted(bounds, above, side="right"), len(bounds) - 1).astype(np.int8)


def assign_tiers(values, pyramid: Pyramid | None = None, *, basis: str = "percentile") -> np.ndarray:
    """Tier name of each person.

    Parameters
    ----------
    values : array-like of float
        Population percentiles (0-100, 100 = highest risk, as from :func:`risk_percentiles`)
        when ``basis="percentile"``; probabilities of the whole scored population when
        ``basis="probability"`` (percentiles are then computed over ``values``).
    pyramid : Pyramid, optional
        Default :func:`load_pyramid()` (very high / high / rising / low).
    basis : {"percentile", "probability"}

    Returns
    -------
    numpy.ndarray of str (object dtype)
        E.g. ``"very high"``; equal probabilities always share a tier.
    """
    pyramid = pyramid or load_pyramid()
    if basis == "probability":
        percentiles = risk_percentiles(values)
    elif basis == "percentile":
        percentiles = values
    else:
        raise ValueError(f"basis must be 'percentile' or 'probability', got {basis!r}")
    names = np.array(pyramid.names, dtype=object)
    return names[tier_codes(percentiles, pyramid)]
