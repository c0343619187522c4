"""Costs of imported activity: pounds as read, in whole pence; missing costs priced per unit.

The unit-cost table (``configs/unit_costs.yaml``, or the analyst's own copy) gives pounds per
unit (spell, attendance, consultation, contact, hour, item) for each contract setting, with
outpatient attendances priced as first or follow-up when the extract says which. Every row
priced from it is counted per price in the report, so priced costs are never mistaken for
recorded ones.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from riskcap.config import load_yaml, resolve_config
from riskcap.data.write import sha256_file
from riskcap.errors import ConfigError
from riskcap.schema import SETTING_CODES

#: The prices the table must give: every setting, outpatients also as first and follow-up.
PRICE_KEYS: tuple[str, ...] = (*SETTING_CODES, "outpatient_first", "outpatient_follow_up")


def default_unit_costs() -> Path:
    return resolve_config("unit_costs")


@dataclass(frozen=True)
class UnitCosts:
    """Pence per unit for each of :data:`PRICE_KEYS`, from ``path``."""

    path: Path
    pence: dict[str, int]
    per: dict[str, str]
    sha256: str

    def as_dict(self) -> dict:
        return {"file": str(self.path), "sha256": self.sha256,
                "prices": {k: {"per": self.per[k], "gbp": self.pence[k] / 100} for k in PRICE_KEYS}}


def load_unit_costs(path: str | Path | None = None) -> UnitCosts:
    """Read and check a unit-cost table (default: the shipped one); ConfigError naming the key."""
    path = resolve_config(path, "") if path is not None else default_unit_costs()
    data = load_yaml(path)
    prices = data.get("prices")
    if not isinstance(prices, dict):
        raise ConfigError(f"{path}: expected a 'prices' mapping of setting -> {{per: unit, gbp: pounds}}")
    unknown = sorted(set(prices) - set(PRICE_KEYS))
    missing = [k for k in PRICE_KEYS if k not in prices]
    if unknown or missing:
        raise ConfigError(f"{path}: prices: " + "; ".join(
            ([f"unknown key(s) {', '.join(unknown)}"] if unknown else []) +
            ([f"missing {', '.join(missing)}"] if missing else [])) + f"; allowed: {', '.join(PRICE_KEYS)}")
    pence, per = {}, {}
    for key in PRICE_KEYS:
        entry = prices[key]
        if not isinstance(entry, dict) or set(entry) != {"per", "gbp"}:
            raise ConfigError(f"{path}: prices.{key}: expected {{per: <unit>, gbp: <pounds>}}, got {entry!r}")
        gbp = entry["gbp"]
        if isinstance(gbp, bool) or not isinstance(gbp, (int, float)) or not np.isfinite(gbp) or gbp < 0:
            raise ConfigError(f"{path}: prices.{key}.gbp: must be a number of pounds >= 0, got {gbp!r}")
        p = round(gbp * 100)
        if abs(gbp * 100 - p) > 1e-6:
            raise ConfigError(f"{path}: prices.{key}.gbp: {gbp!r} is not a whole number of pence")
        pence[key], per[key] = int(p), str(entry["per"])
    return UnitCosts(Path(path), pence, per, sha256_file(path))


@dataclass
class Pricing:
    """Prices missing costs and counts what it priced (rows and pence per price), and costs
    rounded to the penny."""

    unit_costs: UnitCosts
    priced_rows: Counter = field(default_factory=Counter)
    priced_pence: Counter = field(default_factory=Counter)
    rounded_rows: int = 0

    def pence(self, cost_gbp: np.ndarray, missing: np.ndarray, keys: np.ndarray | str,
              units: np.ndarray | int = 1) -> np.ndarray:
        """Whole pence of each row: the cost given, or ``units`` x the price of its key.

        ``keys``: one price key for every row, or an array of keys (per row).
        """
        given = cost_gbp * 100  # NaN where missing
        rounded = np.rint(given)
        self.rounded_rows += int((np.abs(given - rounded) > 1e-6).sum())  # NaN compares false
        pence = np.nan_to_num(rounded, nan=0.0).astype(np.int64)
        if missing.any():
            units = np.broadcast_to(np.asarray(units, dtype=np.int64), missing.shape)
            where = np.flatnonzero(missing)
            if isinstance(keys, str):
                groups = [(keys, where)]
            else:
                names, inverse = np.unique(np.asarray(keys, dtype=object)[where], return_inverse=True)
                groups = [(name, where[inverse == k]) for k, name in enumerate(names)]
            for key, rows in groups:
                price = units[rows] * self.unit_costs.pence[key]
                pence[rows] = price
                self.priced_rows[key] += len(rows)
                self.priced_pence[key] += int(price.sum())
        return pence

    def add(self, other: "Pricing") -> None:
        self.priced_rows.update(other.priced_rows)
        self.priced_pence.update(other.priced_pence)
        self.rounded_rows += other.rounded_rows
