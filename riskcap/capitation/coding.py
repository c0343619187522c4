"""Coding-intensity safeguard: practices whose disease registers grow faster than their ICB's.

A practice that codes more gains budget without its people being sicker. Each practice's
age-sex-standardised register growth is compared with its ICB's median practice; practices
above ``flag_threshold_pct`` are flagged and, with ``normalise_pct``, their share weight is
scaled down by their excess. The formulas: ``docs/capitation.md``, "Coding-intensity safeguard".
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from riskcap.errors import DataError

#: Five-year age bands (the last open-ended, 90+) by sex: the standardisation's strata.
AGE_BAND_YEARS = 5
AGE_BANDS = 19
BANDS = 2 * AGE_BANDS
REGISTER_COLUMNS = ["icb_code", "practice_code", "year", "band", "people", "entries"]


def register_cells(features: pd.DataFrame, year: int, practices: pd.DataFrame | None = None) -> pd.DataFrame:
    """People and register entries (``ltc_count``) per practice x age-sex band of one year's
    registered people (``year`` 0 = base, 1 = current); ICB from ``practices``."""
    missing = [c for c in ("practice_code", "age", "male", "ltc_count") if c not in features.columns]
    if missing:
        raise DataError(f"features have no column(s) {', '.join(missing)} needed for the coding-intensity safeguard")
    if not len(features):
        return pd.DataFrame({c: pd.Series(dtype="int64" if c in ("year", "band", "people", "entries") else "object")
                             for c in REGISTER_COLUMNS})
    codes, index = np.unique(features["practice_code"].astype(str).to_numpy(), return_inverse=True)
    age = features["age"].to_numpy(dtype=np.int64, na_value=0).clip(0, None)
    band = np.minimum(age // AGE_BAND_YEARS, AGE_BANDS - 1) + AGE_BANDS * features["male"].to_numpy(dtype=np.int64)
    key = index.astype(np.int64) * BANDS + band
    n = len(codes) * BANDS
    people = np.bincount(key, minlength=n)
    recorded = features["ltc_count"].to_numpy(dtype=np.float64)
    if "ltc_frailty" in features.columns:  # frailty is a register that groups people too (and is coded up)
        recorded = recorded + features["ltc_frailty"].to_numpy(dtype=np.float64)
    entries = np.bincount(key, weights=recorded, minlength=n)
    keep = np.flatnonzero(people)
    icb = {} if practices is None or "icb_code" not in practices.columns else \
        dict(zip(practices["practice_code"].astype(str), practices["icb_code"].astype(str)))
    practice = codes[keep // BANDS]
    return pd.DataFrame({"icb_code": [icb.get(c, "UNKNOWN") for c in practice], "practice_code": practice,
                         "year": year, "band": (keep % BANDS).astype(np.int64),
                         "people": people[keep].astype(np.int64), "entries": np.rint(entries[keep]).astype(np.int64)})


def combine_registers(frames) -> pd.DataFrame:
    """Sums of several partitions' :func:`register_cells` (a practice may straddle partitions)."""
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return pd.DataFrame(columns=REGISTER_COLUMNS)
    return (pd.concat(frames, ignore_index=True).groupby(["icb_code", "practice_code", "year", "band"], sort=True)
            [["people", "entries"]].sum().reset_index())


def coding_growth(registers: pd.DataFrame) -> pd.DataFrame:
    """Per practice: people, observed and expected entries in each year, its standardised register
    growth, its ICB's (the median practice's) and its excess (see the module docstring)."""
    r = registers.copy()
    base = r[r["year"] == 0].groupby(["icb_code", "band"])[["people", "entries"]].sum()
    rate = (base["entries"] / base["people"]).rename("rate")
    r = r.join(rate, on=["icb_code", "band"])
    r["expected"] = r["people"] * r["rate"].fillna(0.0)  # a band the ICB's base year lacks counts nothing
    per = r.pivot_table(index=["icb_code", "practice_code"], columns="year", values=["people", "entries", "expected"],
                        aggfunc="sum", fill_value=0)
    out = pd.DataFrame({"practice_code": per.index.get_level_values("practice_code"),
                        "icb_code": per.index.get_level_values("icb_code")})
    for year, name in ((0, "base"), (1, "current")):
        for measure in ("people", "entries", "expected"):
            values = per[(measure, year)].to_numpy() if (measure, year) in per.columns else np.zeros(len(out))
            out[f"{measure}_{name}"] = values if measure == "expected" else values.astype(np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"sr_{name}"] = np.where(out[f"expected_{name}"] > 0, out[f"entries_{name}"] / out[f"expected_{name}"],
                                         np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["growth"] = np.where(out["sr_base"] > 0, out["sr_current"] / out["sr_base"] - 1, np.nan)
    out["icb_growth"] = out.groupby("icb_code")["growth"].transform("median")
    out["excess_growth"] = (1 + out["growth"]) / (1 + out["icb_growth"]) - 1
    for c in ("expected_base", "expected_current", "sr_base", "sr_current", "growth", "icb_growth", "excess_growth"):
        out[c] = out[c].astype(np.float64).round(6)
    return out.sort_values("practice_code", kind="stable").reset_index(drop=True)


def normalising_factors(growth: pd.DataFrame, practice_codes: np.ndarray, normalise_ppm: int) -> np.ndarray:
    """Per practice (in ``practice_codes`` order): ``1 + k x max(excess, 0)``; 1 where unmeasured."""
    excess = growth.set_index("practice_code")["excess_growth"].reindex(practice_codes.astype(str)).to_numpy()
    excess = np.where(np.isfinite(excess), np.maximum(excess, 0.0), 0.0)
    return 1.0 + normalise_ppm / 1_000_000 * excess
