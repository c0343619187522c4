"""The practices a synthetic population lives in: drawn like England's, or read from NHS England's file."""
from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtri

from riskcap.data.read import coerce, read_raw
from riskcap.errors import DataError
from riskcap.schema import PRACTICES
from riskcap.synthetic import params as P

#: Columns needed from NHS England's practice-level weighted populations file.
NHSE_COLUMNS = ("Practice_Code", "ICS22", "ICS22name", "pop 2022/23", "Final WP")
#: Optional columns of that file that shape each practice: column -> name in the plan (component
#: weighted populations become indices, weighted / registered population).
NHSE_COMPONENTS = {"CS WP": "community", "Health Ineq WP": "health_inequalities", "MH WP": "mental_health",
                   "Mat WP": "maternity"}
#: Extra columns :func:`read_nhse_practices` returns with ``extras=True``.
EXTRA_COLUMNS = ("pcn_code", "latitude", "longitude", *NHSE_COMPONENTS.values())
SYNTHETIC_ICB_CODE = "QSY"
SYNTHETIC_ICB_NAME = "Synthetic ICB"
#: Synthetic England is split into ICBs of about this many people.
PEOPLE_PER_SYNTHETIC_ICB = 1_500_000


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Non-negative integers proportional to ``weights`` that add up to ``total`` exactly."""
    weights = np.asarray(weights, dtype=float)
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    exact = weights / weights.sum() * total
    out = np.floor(exact).astype(np.int64)
    short = total - int(out.sum())
    if short:
        out[np.argsort(-(exact - out), kind="stable")[:short]] += 1
    return out


def synthetic_practices(people: int, seed: int, n_practices: int | None = None,
                        icb_code: str | None = None, icb_name: str | None = None) -> pd.DataFrame:
    """Synthetic practices whose list sizes follow England's distribution and add up to ``people``.

    Parameters
    ----------
    people : int
        Total registered at the start of the simulation.
    seed : int
        Seed (practices use their own stream, so the people do not change their draws).
    n_practices : int, optional
        Number of practices; by default as many as England's list sizes imply.
    icb_code, icb_name : str, optional
        ICB of every practice; by default ``QSY`` "Synthetic ICB" (and ``QS01``, ``QS02``
        ... when the population is larger than one ICB).

    Returns
    -------
    pandas.DataFrame
        The ``practices`` contract table, sorted by practice_code.
    """
    if people < 1:
        raise ValueError(f"people must be at least 1, got {people}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x50524143]))
    if n_practices is None:
        sizes = []
        total = 0
        while total < people:
            size = int(np.clip(rng.lognormal(np.log(P.LIST_SIZE_MEDIAN), P.LIST_SIZE_SIGMA), P.LIST_SIZE_MIN, P.LIST_SIZE_MAX))
            sizes.append(size)
            total += size
        n_practices = len(sizes)
        weights = np.array(sizes, dtype=float)
    else:
        n_practices = int(max(1, min(n_practices, people)))
        weights = np.clip(rng.lognormal(np.log(P.LIST_SIZE_MEDIAN), P.LIST_SIZE_SIGMA, n_practices), P.LIST_SIZE_MIN, P.LIST_SIZE_MAX)
    list_size = largest_remainder(weights, people)
    # need indices at evenly spaced normal quantiles (shuffled), centred so that the
    # population-weighted mean log need is 0: a synthetic ICB is England-average overall
    z = ndtri((rng.permutation(n_practices) + 0.5) / n_practices)
    z -= (z * list_size).sum() / max(list_size.sum(), 1)
    need = np.exp(P.NEED_LOG_CENTRE + P.NEED_LOG_SD * z)
    n_icb = max(1, int(np.ceil(people / PEOPLE_PER_SYNTHETIC_ICB))) if icb_code is None else 1
    if icb_code is None and n_icb > 1:
        icb = np.array([f"QS{k + 1:02d}" for k in range(n_icb)])[np.arange(n_practices) * n_icb // n_practices]
    else:
        icb = np.full(n_practices, icb_code or SYNTHETIC_ICB_CODE)
    width = max(5, len(str(n_practices)))
    codes = [f"Y{k + 1:0{width}d}" for k in range(n_practices)]
    names = [f"{icb_name or SYNTHETIC_ICB_NAME} practice {k + 1}" for k in range(n_practices)]
    return pd.DataFrame({
        "practice_code": pd.array(codes, dtype="string"), "icb_code": pd.array(icb, dtype="string"),
        "list_size": list_size.astype(np.int64), "need_index": np.round(need, 4),
        "practice_name": pd.array(names, dtype="string"),
    })


def read_nhse_practices(path: str | Path, icb: str | None = None, people: int | None = None,
                        extras: bool = False) -> pd.DataFrame:
    """Practices from NHS England's practice-level weighted populations file (or a ``practices`` table).

    Parameters
    ----------
    path : str or Path
        CSV (or parquet) in NHS England's published format (columns Practice_Code, ICS22,
        ICS22name, ``pop 2022/23``, ``Final WP``), or a table in the contract's ``practices`` format.
    icb : str, optional
        Keep one ICB: its ICS22 code (e.g. ``QE1``) or name (e.g. "Lancashire and South
        Cumbria"), case-insensitive; a unique part of the name is enough.
    people : int, optional
        Scale list sizes to add up to this many people; by default the real sizes, rounded.
    extras : bool
        Also return :data:`EXTRA_COLUMNS` (null where the file has none): ``pcn_code``
        (``PCN_Code``), ``latitude``, ``longitude`` and the component need indices (``CS WP``,
        ``Health Ineq WP``, ``MH WP``, ``Mat WP`` over ``pop 2022/23``), which shape the
        synthetic population.

    Returns
    -------
    pandas.DataFrame
        The ``practices`` contract table, sorted by practice_code. ``need_index`` is
        ``Final WP / pop 2022/23`` (null where the list is empty).

    Raises
    ------
    DataError
        Unreadable file, missing columns, or an unknown ICB (with the closest names).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: practices file not found")
    raw = read_raw(path).to_pandas()
    if all(c in raw.columns for c in NHSE_COLUMNS):
        pop = pd.to_numeric(raw["pop 2022/23"], errors="coerce")
        wp = pd.to_numeric(raw["Final WP"], errors="coerce")
        bad = pop.isna() | (pop < 0)
        if bad.any():
            examples = ", ".join(raw.loc[bad, "Practice_Code"].astype(str).head(5))
            raise DataError(f"{path}: column 'pop 2022/23': {int(bad.sum())} row(s) are not a list size >= 0; practices: {examples}")
        need = (wp / pop).where(pop >= 1)
        df = pd.DataFrame({
            "practice_code": raw["Practice_Code"].astype("string").str.strip(),
            "icb_code": raw["ICS22"].astype("string").str.strip(),
            "list_size": pop.to_numpy(),
            "need_index": need.to_numpy(dtype=float),
            "practice_name": raw["GP_Practice_Name"].astype("string") if "GP_Practice_Name" in raw else pd.NA,
        })
        df["pcn_code"] = raw["PCN_Code"].astype("string").str.strip() if "PCN_Code" in raw else pd.NA
        for column, name in (("Latitude", "latitude"), ("Longitude", "longitude")):
            df[name] = pd.to_numeric(raw[column], errors="coerce").to_numpy(dtype=float) if column in raw else np.nan
        for column, name in NHSE_COMPONENTS.items():
            wp = pd.to_numeric(raw[column], errors="coerce") if column in raw else pd.Series(np.nan, index=raw.index)
            df[name] = (wp / pop).where((pop >= 1) & (wp > 0)).to_numpy(dtype=float)
        icb_names = raw["ICS22name"].astype("string").str.strip()
    elif all(c in raw.columns for c in PRACTICES.required):
        df = coerce(read_raw(path), "practices", path)
        df["list_size"] = df["list_size"].astype(float)
        for col in ("need_index", "practice_name", *EXTRA_COLUMNS):
            if col not in df.columns:
                df[col] = pd.NA if col in ("practice_name", "pcn_code") else np.nan
        icb_names = df["icb_code"]
    else:
        missing = [c for c in NHSE_COLUMNS if c not in raw.columns]
        raise DataError(
            f"{path}: not NHS England's practice file (missing columns {', '.join(missing)}) "
            f"nor a practices table (needs {', '.join(PRACTICES.required)})"
        )
    dup = df["practice_code"].duplicated()
    if dup.any():
        raise DataError(f"{path}: column 'practice_code': {int(dup.sum())} duplicated code(s); examples: "
                        + ", ".join(df.loc[dup, "practice_code"].head(5)))
    if icb is not None:
        keep = _select_icb(icb, df["icb_code"], icb_names, path)
        df = df[keep.to_numpy()]
    if people is not None:
        df["list_size"] = largest_remainder(df["list_size"].to_numpy(dtype=float), int(people))
    else:
        df["list_size"] = np.round(df["list_size"].to_numpy(dtype=float)).astype(np.int64)
    df = df.sort_values("practice_code", kind="stable").reset_index(drop=True)
    columns = PRACTICES.names + (list(EXTRA_COLUMNS) if extras else [])
    return df[columns].astype({"list_size": np.int64, "need_index": float})


def _select_icb(query: str, codes: pd.Series, names: pd.Series, path) -> pd.Series:
    q = query.strip().lower()
    codes_l, names_l = codes.str.lower(), names.str.lower()
    for keep in (codes_l == q, names_l == q, names_l == f"nhs {q} icb"):
        if keep.any():
            return keep.fillna(False)
    part = names_l.str.contains(q, regex=False).fillna(False)
    matched = sorted(set(names[part]))
    if len(matched) == 1:
        return part
    pairs = sorted(set(zip(codes, names)))
    labels = [f"{c} {n}" for c, n in pairs]
    if len(matched) > 1:
        raise DataError(f"{path}: ICB '{query}' matches {len(matched)} ICBs: {'; '.join(matched)}; give the ICS22 code")
    candidates = {lab.lower(): lab for lab in labels}
    candidates.update({n.lower(): f"{c} {n}" for c, n in pairs})
    close = difflib.get_close_matches(q, list(candidates), n=5, cutoff=0.3)
    hint = "; ".join(dict.fromkeys(candidates[c] for c in close)) if close else "; ".join(labels[:8]) + " ..."
    raise DataError(f"{path}: unknown ICB '{query}' (ICS22 code or name). Closest: {hint}")
