"""What is decided about the practices before anyone is simulated.

:func:`build_plan` turns a practices table into a :class:`PracticePlan`: each practice's
Primary Care Network, whether it opens, closes or merges inside the simulated window (and
into which practice), its population mix (age, deprivation, morbidity, mental health, births)
from NHS England's need indices, its effects on care that no register records (admission
thresholds, access, referral and prescribing habits, local hospital prices, coding habits)
and whether it codes up. Every draw comes from a seed of (run seed, practice, PCN or ICB
code), so a practice's plan does not depend on which other practices are simulated with it;
only an ICB of synthetic practices (no component indices) has its practices' drawn mix and
persistent effects centred over the ICB, so that, like its need indices, it is England-average.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import ndtr

from riskcap.errors import ConfigError
from riskcap.synthetic import params as P
from riskcap.synthetic.calendar import Calendar, to_date
from riskcap.synthetic.practices import largest_remainder
from riskcap.synthetic.registration import NEVER, Destinations

#: Practice effect channels, in the order of :attr:`PracticePlan.effects`' last axis.
CHANNELS: tuple[str, ...] = tuple(P.PRACTICE_EFFECT_SD)
CHANNEL = {name: k for k, name in enumerate(CHANNELS)}
#: NHS England component columns read with ``--practices`` (weighted population / list size).
COMPONENT_COLUMNS = ("community", "health_inequalities", "mental_health", "maternity")
_TAG_EVENTS, _TAG_PCN, _TAG_PRACTICE, _TAG_CODING = 0x45564E54, 0x50434E, 0x50524143, 0x434F4445


def _seq(seed: int, *keys: int | str) -> np.random.SeedSequence:
    parts = [int(seed) & 0xFFFFFFFF, int(seed) >> 32]
    parts += [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.SeedSequence(parts)


@dataclass(frozen=True)
class PracticeSpec:
    """One practice to simulate (see :class:`PracticePlan`); it takes new patients on days
    ``opened_day <= d < closed_day``; ``local`` is its index in its ICB."""

    practice_code: str
    list_size: int
    nominal_size: int = 0
    opened_day: int = -NEVER
    closed_day: int = NEVER
    local: int = 0
    age_tilt: float = 0.0
    deprivation: float = 0.0
    morbidity: float = 0.0
    mental_health: float = 0.0
    births: float = 1.0
    need_index: float = float("nan")


@dataclass
class IcbPlan:
    """The practices of one ICB as the simulation of any of them needs them."""

    codes: np.ndarray  # practice codes, local order
    rows: np.ndarray  # their rows in the plan
    destinations: Destinations
    effects: np.ndarray  # (m, years, channels) log multipliers
    coding_delta: np.ndarray  # (m,) probit shift of recording completeness
    coding_up_day: np.ndarray  # (m,) day coding up starts (NEVER: never)
    coding_up_uplift: np.ndarray  # (m,)


@dataclass
class PracticePlan:
    """Practices of a population and everything decided about them (one row per practice)."""

    frame: pd.DataFrame
    effects: np.ndarray
    calendar: Calendar
    _icbs: dict = field(default_factory=dict, repr=False)

    @property
    def practices(self) -> pd.DataFrame:
        """The written ``practices`` table: the contract's columns plus ``opened_on`` and ``pcn_code``."""
        f = self.frame
        opened = [to_date(d) if d > self.calendar.start_day else None for d in f["opened_day"]]
        return pd.DataFrame({
            "practice_code": f["practice_code"], "icb_code": f["icb_code"], "list_size": f["list_size"],
            "need_index": f["need_index"], "practice_name": f["practice_name"],
            "opened_on": pd.array(opened, dtype="object"), "pcn_code": f["pcn_code"],
        })

    @property
    def changes(self) -> pd.DataFrame:
        """The ``practice_changes`` table: practices that close or merge, sorted by practice_code."""
        f = self.frame[self.frame["change"] != ""]
        into = [self.frame["practice_code"].iloc[s] if s >= 0 else None for s in f["successor"]]
        return pd.DataFrame({
            "practice_code": f["practice_code"].to_numpy(dtype=object), "change": f["change"].to_numpy(dtype=object),
            "effective_on": pd.Series([to_date(d) for d in f["closed_day"]], dtype=object),
            "into_practice_code": pd.Series(into, dtype=object),
        })

    @property
    def truth(self) -> pd.DataFrame:
        """Per practice, what no model may see: its mix, effects and coding (for evaluation only)."""
        f = self.frame
        out = {"practice_code": f["practice_code"].to_numpy(dtype=object), "pcn_code": f["pcn_code"].to_numpy(dtype=object)}
        for col in ("age_tilt", "deprivation", "morbidity", "mental_health", "births"):
            out[col] = f[col].to_numpy(dtype=float)
        persistent = self.effects.mean(axis=1)
        for name, k in CHANNEL.items():
            out[f"effect_{name}"] = persistent[:, k]
        out["coding_completeness"] = ndtr(P.CODING_PROBIT + f["coding_delta"].to_numpy(dtype=float))
        out["coding_up_from"] = [to_date(d) if d < NEVER else None for d in f["coding_up_day"]]
        out["coding_up_uplift"] = f["coding_up_uplift"].to_numpy(dtype=float)
        return pd.DataFrame(out)

    def spec(self, row: int) -> PracticeSpec:
        r = self.frame.iloc[row]
        return PracticeSpec(str(r["practice_code"]), int(r["list_size"]), int(r["nominal_size"]), int(r["opened_day"]),
                            int(r["closed_day"]), int(r["local"]), float(r["age_tilt"]), float(r["deprivation"]), float(r["morbidity"]),
                            float(r["mental_health"]), float(r["births"]), float(r["need_index"]))

    def icb(self, icb_code: str) -> IcbPlan:
        """The ICB's practices in local order (cached)."""
        if icb_code not in self._icbs:
            rows = np.flatnonzero(self.frame["icb_code"].to_numpy(dtype=object) == icb_code)
            f = self.frame.iloc[rows]
            local_of = np.full(len(self.frame), -1, dtype=np.int64)
            local_of[rows] = np.arange(len(rows))
            successor = np.where(f["successor"].to_numpy() >= 0, local_of[np.maximum(f["successor"].to_numpy(), 0)], -1)
            weight = np.where(f["nominal_size"].to_numpy() > 0, f["nominal_size"].to_numpy(), 0).astype(float)
            pcn_codes, pcn = np.unique(f["pcn_code"].to_numpy(dtype=object).astype(str), return_inverse=True)
            dest = Destinations.build(f["opened_day"].to_numpy(), f["closed_day"].to_numpy(), successor, weight, pcn)
            self._icbs[icb_code] = IcbPlan(f["practice_code"].to_numpy(dtype=object), rows, dest, self.effects[rows],
                                           f["coding_delta"].to_numpy(dtype=float), f["coding_up_day"].to_numpy(),
                                           f["coding_up_uplift"].to_numpy(dtype=float))
        return self._icbs[icb_code]


def build_plan(practices: pd.DataFrame, calendar: Calendar, seed: int, people: int | None = None,
               coding_up_practices: int = 0, coding_up_uplift: float = P.CODING_UP_UPLIFT) -> PracticePlan:
    """The plan of a population's practices.

    Parameters
    ----------
    practices : pandas.DataFrame
        The practices (contract columns; optionally ``pcn_code``, ``latitude``/``longitude`` and
        NHS England's component indices :data:`COMPONENT_COLUMNS`), sorted by practice_code.
    calendar : Calendar
        The simulated years.
    seed : int
        The run's seed.
    people : int, optional
        When given, list sizes at the start add up to it (practices that open later start empty,
        so their share goes to the others).
    coding_up_practices : int
        How many practices code up (see ``params.CODING_UP_UPLIFT``); ``coding_up_uplift`` sets
        by how much.
    """
    f = practices.reset_index(drop=True).copy()
    n = len(f)
    f["practice_name"] = f["practice_name"] if "practice_name" in f else pd.NA
    f["nominal_size"] = f["list_size"].to_numpy(dtype=np.int64)
    f["pcn_code"] = _pcn_codes(f)
    f["local"] = f.groupby("icb_code", sort=False).cumcount().to_numpy()
    opened = np.full(n, -NEVER, dtype=np.int64)
    closed = np.full(n, NEVER, dtype=np.int64)
    successor = np.full(n, -1, dtype=np.int64)
    change = np.full(n, "", dtype=object)
    for icb, rows in f.groupby("icb_code", sort=True).indices.items():
        _practice_events(f, rows, calendar, seed, str(icb), opened, closed, successor, change)
    f["opened_day"], f["closed_day"], f["successor"], f["change"] = opened, closed, successor, change
    start_size = np.where(opened > calendar.start_day, 0, f["nominal_size"].to_numpy(dtype=np.int64))
    if people is not None and start_size.sum() != people:
        start_size = largest_remainder(start_size.astype(float), int(people))
    f["list_size"] = start_size
    f["nominal_size"] = np.where(opened > calendar.start_day, f["nominal_size"], start_size)
    effects, coding_delta = _effects(f, calendar, seed)
    f["coding_delta"] = coding_delta
    day, uplift = _coding_up(f, calendar, seed, coding_up_practices, coding_up_uplift)
    f["coding_up_day"], f["coding_up_uplift"] = day, uplift
    for col, values in _shapes(f, seed).items():
        f[col] = values
    return PracticePlan(f, effects, calendar)


# --- PCNs ----------------------------------------------------------------------------------

def _pcn_codes(f: pd.DataFrame) -> np.ndarray:
    """Each practice's PCN: the file's ``pcn_code`` where given, else neighbouring practices of
    the ICB (by position when there are coordinates, else by practice code) grouped until a
    group has ``PCN_PEOPLE`` people or ``PCN_PRACTICES`` practices, named ``<ICB>-PCNnn``."""
    given = f["pcn_code"].astype("string") if "pcn_code" in f else pd.Series(pd.NA, index=f.index, dtype="string")
    out = given.to_numpy(dtype=object)
    for icb, rows in f.groupby("icb_code", sort=True).indices.items():
        missing = rows[pd.isna(out[rows])]
        if not len(missing):
            continue
        order = missing
        if {"latitude", "longitude"} <= set(f.columns):
            lat = f["latitude"].to_numpy(dtype=float)[missing]
            lon = f["longitude"].to_numpy(dtype=float)[missing]
            if np.isfinite(lat).all() and np.isfinite(lon).all():
                order = missing[np.argsort(_z_order(lat, lon), kind="stable")]
        group, people, members, k = [], 0.0, 0, 0
        for size in f["list_size"].to_numpy(dtype=float)[order]:
            if members and (people >= P.PCN_PEOPLE or members >= P.PCN_PRACTICES):
                k, people, members = k + 1, 0.0, 0
            group.append(k)
            people += size
            members += 1
        out[order] = [f"{icb}-PCN{g + 1:02d}" for g in group]
    return out


def _z_order(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Morton (Z-order) key of positions: nearby practices get nearby keys."""
    def scaled(x):
        span = x.max() - x.min()
        return np.zeros(len(x), np.int64) if span <= 0 else np.floor((x - x.min()) / span * 1023).astype(np.int64)
    a, b = scaled(lat), scaled(lon)
    key = np.zeros(len(a), dtype=np.int64)
    for bit in range(10):
        key |= ((a >> bit) & 1) << (2 * bit + 1) | ((b >> bit) & 1) << (2 * bit)
    return key


# --- openings, closures, mergers -----------------------------------------------------------

def _month_days(calendar: Calendar, first_months: int, last_months: int) -> np.ndarray:
    """First days of the months from ``first_months`` after the start to ``last_months`` before the end."""
    days = calendar.month_starts[:, :12].reshape(-1)
    lo, hi = first_months, len(days) - last_months
    return days[lo:hi] if hi > lo else days[:1]


def _practice_events(f, rows, calendar, seed, icb, opened, closed, successor, change) -> None:
    """Choose the ICB's openings, closures and mergers (in place)."""
    rng = np.random.default_rng(_seq(seed, icb, _TAG_EVENTS))
    size = f["nominal_size"].to_numpy(dtype=float)[rows]
    eligible = rows[size > 0]
    if not len(eligible):
        return
    years = calendar.years

    def how_many(rate):
        k = rng.binomial(len(eligible), -np.expm1(-rate * years))
        return max(k, 1) if len(eligible) >= P.EVENTS_MIN_PRACTICES else k

    n_open, n_close, n_merge = how_many(P.OPEN_RATE), how_many(P.CLOSE_RATE), how_many(P.MERGE_RATE)
    if n_open + n_close + n_merge > len(eligible) // 2:
        n_open, n_close, n_merge = (min(k, len(eligible) // 6) for k in (n_open, n_close, n_merge))
    free = list(eligible)

    def take(k, weight_of):
        nonlocal free
        if k <= 0 or not free:
            return []
        w = np.array([weight_of(r) for r in free], dtype=float)
        chosen = rng.choice(len(free), size=min(k, len(free)), replace=False, p=w / w.sum())
        picked = [free[c] for c in sorted(chosen)]
        free = [r for r in free if r not in picked]
        return picked

    nominal = f["nominal_size"].to_numpy(dtype=float)
    opening = take(n_open, lambda r: 1.0)
    closing = take(n_close, lambda r: 1.0 / nominal[r])
    merging = take(n_merge, lambda r: 1.0 / nominal[r])
    open_days = _month_days(calendar, 3, 15 if years > 2 else 3)
    end_days = _month_days(calendar, 6, 3)
    for r in opening:
        opened[r] = rng.choice(open_days)
    for r in closing:
        closed[r], change[r] = rng.choice(end_days), "close"
    pcn = f["pcn_code"].to_numpy(dtype=object)
    for r in merging:
        same = [q for q in free if pcn[q] == pcn[r]] or free
        if not same:
            continue
        w = nominal[same]
        successor[r] = same[rng.choice(len(same), p=w / w.sum())]
        closed[r], change[r] = rng.choice(end_days), "merge"


# --- practice effects and coding ------------------------------------------------------------

def _effects(f: pd.DataFrame, calendar: Calendar, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Log multipliers per practice, year and channel (PCN + practice + yearly AR(1)), centred so
    the mean multiplier is 1; and each practice's coding delta."""
    n, T, C = len(f), calendar.years, len(CHANNELS)
    sd = np.array([P.PRACTICE_EFFECT_SD[c] for c in CHANNELS])
    rho = P.PRACTICE_EFFECT_RHO
    effects = np.zeros((n, T, C))
    persistent = np.zeros((n, C))
    coding = np.zeros(n)
    pcn_draws: dict[str, np.ndarray] = {}
    for i, (code, pcn) in enumerate(zip(f["practice_code"].astype(str), f["pcn_code"].astype(str))):
        if pcn not in pcn_draws:
            pcn_draws[pcn] = np.random.default_rng(_seq(seed, pcn, _TAG_PCN)).normal(size=C)
        rng = np.random.default_rng(_seq(seed, code, _TAG_PRACTICE))
        own = rng.normal(size=C)
        yearly = rng.normal(size=(T, C))
        state = yearly[0]
        for t in range(T):
            if t:
                state = rho * state + np.sqrt(1 - rho * rho) * yearly[t]
            effects[i, t] = sd[:, 2] * state
        persistent[i] = sd[:, 0] * pcn_draws[pcn] + sd[:, 1] * own
        coding[i] = P.CODING_SD * rng.normal()
    effects += _centred_synthetic(f, persistent, keep_spread=False)[:, None, :] - 0.5 * (sd ** 2).sum(axis=1)
    return effects, coding


def _coding_up(f, calendar, seed, k, uplift) -> tuple[np.ndarray, np.ndarray]:
    """Which practices code up (from the start of the second-last year) and by how much."""
    n = len(f)
    day = np.full(n, NEVER, dtype=np.int64)
    amount = np.zeros(n)
    if k <= 0:
        return day, amount
    quiet = (f["change"].to_numpy() == "") & (f["opened_day"].to_numpy() <= calendar.start_day)
    candidates = np.flatnonzero(quiet & (f["list_size"].to_numpy() >= 1000))
    if len(candidates) < k:
        candidates = np.flatnonzero(quiet & (f["list_size"].to_numpy() > 0))
    if len(candidates) < k:
        raise ConfigError(f"coding_up_practices: {k} practices asked to code up, but only {len(candidates)} of the "
                          f"{n} can (open throughout, with patients, not closing or merging); ask for fewer")
    rng = np.random.default_rng(_seq(seed, _TAG_CODING))
    chosen = np.sort(rng.permutation(candidates)[:k])
    starts = calendar.year_starts
    day[chosen] = starts[-3] if calendar.years >= 2 else starts[0]
    amount[chosen] = uplift
    return day, amount


# --- population mix from NHS England's need indices -----------------------------------------

def _shapes(f: pd.DataFrame, seed: int) -> dict[str, np.ndarray]:
    """Each practice's mix: age tilt, deprivation, mental-health and morbidity shifts, births.

    Standardised log component indices come from the practices file where it has them, else
    they are drawn given the practice's need index from England's joint spread
    (``params.COMPONENT_*``). The morbidity shift makes the expected need follow the need index.
    """
    n = len(f)
    need = f["need_index"].to_numpy(dtype=float)
    z = np.zeros((n, len(P.COMPONENTS)))
    ok = np.isfinite(need) & (need > 0)
    z[ok, 0] = np.clip((np.log(need[ok]) - P.COMPONENT_CENTRE[0]) / P.COMPONENT_SD[0], -4, 4)
    corr = P.COMPONENT_CORR
    cond_mean = corr[1:, :1]
    cond_cov = corr[1:, 1:] - cond_mean @ cond_mean.T
    chol = np.linalg.cholesky(cond_cov + 1e-9 * np.eye(len(cond_cov)))
    own = np.zeros((n, len(cond_cov) + 1))  # component residuals, then the practice's own deprivation
    for i, code in enumerate(f["practice_code"].astype(str)):
        rng = np.random.default_rng(_seq(seed, code, _TAG_PRACTICE + 1))
        own[i] = rng.normal(size=own.shape[1])
    own = _centred_synthetic(f, own, keep_spread=True)
    drawn = cond_mean[:, 0] * z[:, :1] + own[:, :-1] @ chol.T
    own_deprivation = own[:, -1]
    for i in range(n):
        for k, col in enumerate(COMPONENT_COLUMNS, start=1):
            value = f[col].iloc[i] if col in f.columns else np.nan
            z[i, k] = (np.clip((np.log(value) - P.COMPONENT_CENTRE[k]) / P.COMPONENT_SD[k], -4, 4)
                       if np.isfinite(value) and value > 0 else drawn[i, k - 1])
    community, inequalities, mental, maternity = z[:, 1], z[:, 2], z[:, 3], z[:, 4]
    r_mh = corr[2, 3]
    age_tilt = P.PRACTICE_AGE_TILT * community
    r = P.PRACTICE_DEPRIVATION  # deprivation keeps unit variance: deciles stay uniform nationally
    deprivation = r * inequalities + np.sqrt(1 - r * r) * own_deprivation
    mental_health = P.PRACTICE_MENTAL_HEALTH * (mental - r_mh * inequalities) / np.sqrt(1 - r_mh * r_mh)
    births = np.exp(np.clip(P.PRACTICE_BIRTHS * P.COMPONENT_SD[4] * maternity, -1.2, 1.2))
    k = P.NEED_SENSITIVITY
    target = P.COMPONENT_SD[0] * z[:, 0]
    morbidity = (target - k["age_tilt"] * age_tilt - k["deprivation"] * deprivation
                 - k["mental_health"] * mental_health) / k["morbidity"]
    morbidity = np.where(ok, np.clip(morbidity, *P.MORBIDITY_RANGE), 0.0)
    return {"age_tilt": age_tilt, "deprivation": deprivation, "mental_health": mental_health, "births": births,
            "morbidity": morbidity}


def _centred_synthetic(f: pd.DataFrame, draws: np.ndarray, keep_spread: bool) -> np.ndarray:
    """``draws`` (one row per practice) with the rows of each ICB of synthetic practices made
    list-weighted zero-mean; with ``keep_spread`` (independent unit-variance draws) rescaled to
    keep their expected spread.

    With few practices, independent draws would make a whole synthetic ICB older, sicker or
    busier than England; practices with NHS England's component indices keep theirs."""
    out = draws.copy()
    present = [c for c in COMPONENT_COLUMNS if c in f.columns]
    has_file = np.isfinite(f[present].to_numpy(dtype=float)).any(axis=1) if present else np.zeros(len(f), bool)
    weight = np.maximum(f["nominal_size"].to_numpy(dtype=float), 0.0)
    for rows in f.groupby("icb_code", sort=False).indices.values():
        rows = rows[~has_file[rows]]
        w = weight[rows] / weight[rows].sum() if len(rows) and weight[rows].sum() > 0 else None
        if w is None or (w ** 2).sum() >= 1:
            continue
        out[rows] = draws[rows] - w @ draws[rows]
        if keep_spread:
            out[rows] /= np.sqrt(1 - (w ** 2).sum())
    return out
