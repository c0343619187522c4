"""Simulate one practice: its people, their conditions, a latent health state, and activity.

Everything is vectorised over the practice's people; one practice is the unit of
randomness (its own seed), so a population does not depend on how practices are batched
into partitions. Dates are int32 day numbers (:mod:`riskcap.synthetic.calendar`).

The model, in brief (``docs/synthetic.md`` has the full story):

* people: age from England's registered age pyramid tilted by the practice's need index,
  deprivation correlated within the practice, registrations (births, movers) and
  deregistrations each year, deaths;
* conditions: a liability per person and register = general multimorbidity factor ``F``
  + a cluster factor + noise + sex/deprivation shifts; the register starts at the age where
  the age-prevalence curve reaches the person's liability quantile, so conditions arise
  during the simulation as people age and cluster as in real data;
* health: a yearly AR(1) state ``e`` (``rho`` = 0.6) plus ``F`` and the conditions drive
  every kind of activity and death, so prior use predicts admissions while this year's
  high users partly regress to the mean;
* truth: each person's probability of one or more emergency admissions in the year,
  given the state at the start of the year (integrating over the year's innovation).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

from riskcap.schema import CONDITION_CODES, SETTING_CODES, is_acs
from riskcap.synthetic import params as P
from riskcap.synthetic.calendar import Calendar
from riskcap.synthetic.kernels import CARE_HOME, CARE_NONE, CARE_RESIDENTIAL, emit_activity

NEVER = np.iinfo(np.int32).max  # "no date" inside the generator
DAYS_PER_YEAR = 365.25
N_COND = len(CONDITION_CODES)
COND_INDEX = {c: j for j, c in enumerate(CONDITION_CODES)}
CHRONIC_INDEX = np.array([COND_INDEX[c] for c in P.CHRONIC_CODES])
LTC_INDEX = np.array([COND_INDEX[c] for c in P.LTC_CODES])
PALLIATIVE = COND_INDEX["palliative"]
SETTING_INDEX = {s: k for k, s in enumerate(SETTING_CODES)}
#: Rank of each setting in alphabetical order: activity is sorted by (person, start_date, setting).
SETTING_RANK = np.argsort(np.argsort(np.array(SETTING_CODES))).astype(np.int64)
POINT_SETTING_INDEX = np.array([SETTING_INDEX[s] for s in P.POINT_SETTINGS])
DIAGNOSIS_CODES = P.all_diagnosis_codes()
_DIAG = {c: k for k, c in enumerate(DIAGNOSIS_CODES)}
_ACS_DIAGNOSIS = np.array([is_acs(c) for c in DIAGNOSIS_CODES])
_ELECTIVE = np.array([_DIAG[c] for c in P.ELECTIVE_CODES])
_DAY_CASE = np.array([_DIAG[c] for c in P.DAY_CASE_CODES])
ACS_MASK = sum(1 << COND_INDEX[c] for c in P.ACS_CONDITIONS)
#: AUROC histograms bin the truth on the logit scale.
AUROC_BINS = 1 << 14
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(12)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()


def _age_weights() -> np.ndarray:
    """Single-year age weights 0..104 matching the targets for 18+ and 65+."""
    band = np.repeat(P.AGE_BAND_PERCENT / 5.0, 5)  # ages 0..104
    ages = np.arange(len(band))
    under18, over65 = ages < 18, ages >= 65
    mid = ~under18 & ~over65
    w = band.copy()
    w[under18] *= (1 - P.SHARE_18_PLUS) / band[under18].sum()
    w[over65] *= P.SHARE_65_PLUS / band[over65].sum()
    w[mid] *= (P.SHARE_18_PLUS - P.SHARE_65_PLUS) / band[mid].sum()
    return w / w.sum()


AGE_WEIGHTS = _age_weights()
MOVER_WEIGHTS = AGE_WEIGHTS * np.interp(np.arange(len(AGE_WEIGHTS)), P.MOVER_AGE_KNOTS, P.MOVER_AGE_WEIGHT)
MOVER_WEIGHTS /= MOVER_WEIGHTS.sum()
_PREV_CURVES = {c: np.asarray(P.PREV_SHAPE[c]) + 1e-9 * np.arange(len(P.PREV_AGES)) for c in P.CHRONIC_CODES}
_CLUSTER = {name: k for k, name in enumerate(P.CLUSTERS)}
_BETA = np.array([P.CONDITION_EFFECT[c] for c in CONDITION_CODES])
_ACT_AGE = {k: np.asarray(v[5], dtype=float) for k, v in P.ACTIVITY_MODEL.items()}


@dataclass(frozen=True)
class PracticeSpec:
    """One practice to simulate: code, people registered at the start, need index."""

    practice_code: str
    list_size: int
    need_index: float = float("nan")


@dataclass
class PracticeResult:
    """Columns (numpy arrays) of one simulated practice; ``person`` is a local 0-based index."""

    n_persons: int
    persons: dict[str, np.ndarray]
    conditions: dict[str, np.ndarray]
    activity: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    stats: dict[str, np.ndarray | float] = field(default_factory=dict)


def need_z(need_index: float) -> float:
    """Standardised log need index (0 when missing or not positive), clipped to +/-4."""
    if not np.isfinite(need_index) or need_index <= 0:
        return 0.0
    return float(np.clip((np.log(need_index) - P.NEED_LOG_CENTRE) / P.NEED_LOG_SD, -4, 4))


def _sample_ages(rng, weights: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    whole = np.searchsorted(cdf, rng.random(n), side="right")
    return np.minimum(whole, len(weights) - 1) + rng.random(n)


def _lognormal(rng, n: int, sd: float) -> np.ndarray:
    """Multiplicative noise with mean 1."""
    return np.exp(rng.normal(-0.5 * sd * sd, sd, n))


def simulate_practice(spec: PracticeSpec, calendar: Calendar, seed_seq: np.random.SeedSequence) -> PracticeResult:
    """Simulate the registered population of one practice over the calendar.

    Parameters
    ----------
    spec : PracticeSpec
        The practice; ``list_size`` people are registered on the first simulated day and
        births and movers join over the years.
    calendar : Calendar
        Simulated financial years.
    seed_seq : numpy.random.SeedSequence
        The practice's own seed.

    Returns
    -------
    PracticeResult
    """
    rng = np.random.default_rng(seed_seq)
    ys = calendar.year_starts.astype(np.int64)
    T = calendar.years
    start, end = int(ys[0]), int(ys[-1])
    nz = need_z(spec.need_index)
    n0 = max(int(spec.list_size), 0)

    # --- practice mix from need ------------------------------------------------------
    age_tilt = P.PRACTICE_AGE_TILT_FROM_NEED * nz + 0.04 * rng.normal()
    r = P.PRACTICE_DEPRIVATION_FROM_NEED
    practice_dep = r * nz + np.sqrt(1 - r * r) * rng.normal()
    morbidity = P.PRACTICE_MORBIDITY_FROM_NEED * nz
    ages_grid = np.arange(len(AGE_WEIGHTS))
    tilt = np.exp(age_tilt * (ages_grid - 40) / 25.0)

    # --- people: start cohort, then births and movers in each year -------------------
    age0 = _sample_ages(rng, AGE_WEIGHTS * tilt, n0)
    birth = start - np.floor(age0 * DAYS_PER_YEAR).astype(np.int64)
    reg_from = start - np.floor(rng.exponential(P.MEAN_YEARS_REGISTERED, n0) * DAYS_PER_YEAR).astype(np.int64)
    reg_from = np.maximum(reg_from, birth)
    births, regs = [birth], [reg_from]
    for t in range(T):
        length = ys[t + 1] - ys[t]
        nb = rng.poisson(P.BIRTH_RATE * n0)
        b_birth = ys[t] + np.floor(rng.random(nb) * length).astype(np.int64)
        b_reg = b_birth + 14 + rng.integers(0, 60, nb)
        keep = b_reg < end
        births += [b_birth[keep]]
        regs += [b_reg[keep]]
        nm = rng.poisson(P.MOVE_IN_RATE * n0)
        m_reg = ys[t] + np.floor(rng.random(nm) * length).astype(np.int64)
        m_age = _sample_ages(rng, MOVER_WEIGHTS * tilt, nm)
        births += [m_reg - np.floor(m_age * DAYS_PER_YEAR).astype(np.int64)]
        regs += [m_reg]
    birth = np.concatenate(births)
    reg_from = np.concatenate(regs)
    if len(birth) > n0:  # entrants in order of registration
        order = np.concatenate([np.arange(n0), n0 + np.argsort(reg_from[n0:], kind="stable")])
        birth, reg_from = birth[order], reg_from[order]
    n = len(birth)
    entry = np.maximum(reg_from, start)
    age_entry = (entry - birth) / DAYS_PER_YEAR
    male = rng.random(n) < np.interp(age_entry, P.MALE_SHARE_AGES, P.MALE_SHARE)
    s = P.IMD_PRACTICE_SHARE
    dep_latent = np.sqrt(s) * practice_dep + np.sqrt(1 - s) * rng.normal(size=n)
    imd = (10 - np.floor(10 * ndtr(dep_latent))).clip(1, 10).astype(np.int64)
    dep = (5.5 - imd) / 4.5  # +1 most deprived, -1 least

    # --- latent factors and condition onsets -------------------------------------------
    frailty = rng.normal(size=n)
    cluster = rng.normal(size=(n, len(P.CLUSTERS)))
    onset = np.full((n, N_COND), NEVER, dtype=np.int64)
    sex_sign = np.where(male, 0.5, -0.5)
    for code in P.CHRONIC_CODES:
        a, cl, b = P.LIABILITY[code]
        noise = rng.normal(size=n)
        liability = (a * frailty + b * cluster[:, _CLUSTER[cl]] + np.sqrt(1 - a * a - b * b) * noise
                     + P.SEX_EFFECT[code] * sex_sign + P.DEPRIVATION_EFFECT[code] * dep + morbidity
                     + P.CONDITION_OFFSET[code])
        q = ndtr(-liability)
        curve = _PREV_CURVES[code]
        age_at = np.interp(q, curve, P.PREV_AGES)
        day = birth + np.floor(age_at * DAYS_PER_YEAR).astype(np.int64)
        onset[:, COND_INDEX[code]] = np.where(q <= curve[-1], day, NEVER)

    j_dem, j_frail = COND_INDEX["dementia"], COND_INDEX["frailty"]
    care_logit = (P.CARE_HOME_INTERCEPT + P.CARE_HOME_AGE * (age_entry - 85)
                  + P.CARE_HOME_DEMENTIA * (onset[:, j_dem] <= entry) + P.CARE_HOME_FRAILTY * (onset[:, j_frail] <= entry))
    care_home = rng.random(n) < 1 / (1 + np.exp(-care_logit))
    opted_out = rng.random(n) < P.OPT_OUT_RATE

    # --- yearly simulation -------------------------------------------------------------
    e_prev = rng.normal(size=n)
    exit_day = np.full(n, NEVER, dtype=np.int64)
    died = np.zeros(n, dtype=bool)
    rho, sig_e = P.STATE_RHO, P.SIGMA_STATE
    innov = np.sqrt(1 - rho * rho)
    S = len(P.POINT_SETTINGS)
    counts = np.zeros((n, T, S), dtype=np.int64)
    win_a = np.zeros((n, T), dtype=np.int64)
    win_b = np.zeros((n, T), dtype=np.int64)
    age_t = np.zeros((n, T))
    cond_mask = np.zeros((n, T), dtype=np.int64)
    rx_q = np.zeros((n, T))
    rx_mu = np.zeros((n, T))
    care_kind = np.zeros((n, T), dtype=np.int8)
    care_hours = np.zeros((n, T))
    bits = np.int64(1) << np.arange(N_COND, dtype=np.int64)
    truth_rows = []
    female = ~male
    for t in range(T):
        s0, s1 = ys[t], ys[t + 1]
        a_t = np.maximum(s0, reg_from)
        b_t = np.minimum(s1, exit_day)
        active = a_t < b_t
        age = np.maximum((a_t - birth) / DAYS_PER_YEAR, 0.0)
        present = onset <= a_t[:, None]
        ltc = present[:, LTC_INDEX].sum(axis=1)
        h_cond = P.CONDITION_SATURATION * -np.expm1(-(present @ _BETA) / P.CONDITION_SATURATION)
        h_static = h_cond + P.SIGMA_FRAILTY * frailty + morbidity
        e_t = rho * e_prev + innov * rng.normal(size=n)
        base = (P.EMERGENCY_INTERCEPT + np.interp(age, P.EMERGENCY_AGES, P.EMERGENCY_AGE_LOG)
                + P.EMERGENCY_DEPRIVATION * dep + P.EMERGENCY_MALE * male + P.EMERGENCY_CARE_HOME * care_home)
        death_age = P.DEATH_INTERCEPT + np.interp(age, P.DEATH_AGES, P.DEATH_AGE_LOG)
        dereg_rate = np.interp(age, P.DEREG_AGES, P.DEREG_RATE)

        # truth at the year start, for people registered and alive on that day
        at_start = active & (a_t == s0)
        if at_start.any():
            eta0 = base[at_start] + h_static[at_start] + sig_e * rho * e_prev[at_start]
            h_d = np.exp(death_age[at_start] + P.DEATH_HEALTH * (h_static[at_start] + sig_e * rho * e_prev[at_start])
                         + P.DEATH_PALLIATIVE * present[at_start, PALLIATIVE])
            exposure = 1 - 0.5 * (1 - np.exp(-h_d)) - 0.5 * dereg_rate[at_start]
            lam = np.exp(eta0[:, None] + sig_e * innov * _GH_NODES[None, :])
            p = 1 - (np.exp(-exposure[:, None] * lam) @ _GH_WEIGHTS)
            truth_rows.append((np.flatnonzero(at_start), np.full(at_start.sum(), t), p,
                               frailty[at_start], e_prev[at_start],
                               (lam @ _GH_WEIGHTS) * exposure * (1 + P.READMISSION_MEAN)))

        h = h_static + sig_e * e_t
        latent = h - h_cond
        frac = np.where(active, (b_t - a_t) / DAYS_PER_YEAR, 0.0)
        # palliative register: joins at a rate proportional to the death hazard
        h_death0 = np.exp(death_age + P.DEATH_HEALTH * h)
        not_pal = active & ~present[:, PALLIATIVE]
        if t == 0:  # already on the register at the start
            prior = not_pal & (reg_from < s0) & (rng.random(n) < 1 - np.exp(-0.6 * P.PALLIATIVE_PER_DEATH_HAZARD * h_death0))
            onset[prior, PALLIATIVE] = prior_palliative_onset(rng, s0, birth[prior])
            not_pal &= ~prior
        joins = not_pal & (rng.random(n) < 1 - np.exp(-P.PALLIATIVE_PER_DEATH_HAZARD * h_death0 * frac))
        onset[joins, PALLIATIVE] = a_t[joins] + np.floor(rng.random(joins.sum()) * (b_t - a_t)[joins]).astype(np.int64)
        on_pal = onset[:, PALLIATIVE] < b_t
        # deaths and deregistrations
        h_death = h_death0 * np.exp(P.DEATH_PALLIATIVE * on_pal)
        dies = active & (rng.random(n) < 1 - np.exp(-h_death * frac))
        leaves = active & (rng.random(n) < 1 - np.exp(-dereg_rate * frac))
        span = (b_t - a_t).clip(1)
        d_day = np.where(dies, a_t + 1 + np.floor(rng.random(n) * (span - 1)).astype(np.int64), NEVER)
        l_day = np.where(leaves, a_t + 1 + np.floor(rng.random(n) * (span - 1)).astype(np.int64), NEVER)
        after_pal = dies & on_pal & (d_day <= onset[:, PALLIATIVE])
        d_day[after_pal] = onset[after_pal, PALLIATIVE] + 1
        d_day[d_day >= s1] = NEVER
        first = np.minimum(d_day, l_day)
        ended = active & (first < NEVER)
        exit_day[ended] = first[ended]
        died[ended] = d_day[ended] <= l_day[ended]
        b_t = np.minimum(s1, exit_day)
        frac = np.where(active, (b_t - a_t) / DAYS_PER_YEAR, 0.0)
        win_a[:, t], win_b[:, t], age_t[:, t] = a_t, b_t, age
        present_now = present.copy()
        present_now[:, PALLIATIVE] = on_pal
        cond_mask[:, t] = (present_now * bits).sum(axis=1)

        # point events: emergency admissions and other activity
        index_admissions = rng.poisson(frac * np.exp(base + h))
        counts[:, t, 0] = index_admissions + rng.poisson(P.READMISSION_MEAN * index_admissions)
        for k, setting in enumerate(P.POINT_SETTINGS[1:], start=1):
            icpt, w_latent, w_cond, fem, depw, _ = P.ACTIVITY_MODEL[setting]
            log_rate = (icpt + np.interp(age, P.ACTIVITY_AGES, _ACT_AGE[setting]) + w_latent * latent + w_cond * h_cond
                        + fem * female + depw * dep + P.PER_LTC_PLANNED.get(setting, 0.0) * np.minimum(ltc, 2))
            if setting == "mental_health":
                for code, boost in P.MENTAL_HEALTH_CONDITIONS.items():
                    log_rate = log_rate + boost * present[:, COND_INDEX[code]]
            elif setting == "community":
                log_rate = log_rate + 1.0 * care_home + 0.8 * on_pal
            counts[:, t, k] = rng.poisson(frac * np.exp(log_rate))

        # monthly rows (prescribing, social care): their parameters for the kernel
        mu = np.exp(P.PRESCRIBING_INTERCEPT + np.interp(age, P.PRESCRIBING_AGES, P.PRESCRIBING_AGE_LOG)
                    + P.PRESCRIBING_PER_LTC * ltc + P.PRESCRIBING_LATENT * latent
                    + P.PRESCRIBING_CONDITIONS * h_cond)
        rx_mu[:, t] = mu
        rx_q[:, t] = np.where(active, 1 - np.exp(-mu), 0.0)
        hc_logit = (P.HOME_CARE_INTERCEPT + P.HOME_CARE_AGE * (age - 18) + P.HOME_CARE_FRAILTY * present[:, j_frail]
                    + P.HOME_CARE_DEMENTIA * present[:, j_dem] + P.HOME_CARE_HEALTH * h)
        home = active & (age >= 18) & ~care_home & (rng.random(n) < 1 / (1 + np.exp(-hc_logit)))
        care_kind[:, t] = np.where(active & care_home, CARE_RESIDENTIAL, np.where(home, CARE_HOME, CARE_NONE))
        care_hours[:, t] = P.HOME_CARE_HOURS * np.exp(0.3 * h)
        e_prev = e_t

    # --- per-event attributes of point events (in the kernel's traversal order) -----------
    per_setting = counts.sum(axis=(0, 1))
    pe_offset = np.concatenate([[0], np.cumsum(per_setting)[:-1]]).astype(np.int64)
    n_ev = int(per_setting.sum())
    pe_u = rng.random(n_ev)
    pe_los = np.full(n_ev, -1, dtype=np.int64)
    pe_cost = np.zeros(n_ev, dtype=np.int64)
    pe_diag = np.full(n_ev, -1, dtype=np.int64)
    pe_via = np.zeros(n_ev, dtype=np.bool_)
    via_cost = np.zeros(n_ev, dtype=np.int64)
    for k, setting in enumerate(P.POINT_SETTINGS):
        lo, m = pe_offset[k], int(per_setting[k])
        sl = slice(lo, lo + m)
        if m == 0:
            continue
        if setting == "emergency_inpatient":
            flat = counts[:, :, 0].reshape(-1)
            cell = np.repeat(np.arange(flat.size), flat)
            em_person, em_t = cell // T, cell % T
            zero = rng.random(m) < P.ZERO_DAY_SHARE
            mean_los = np.interp(age_t[em_person, em_t], P.EMERGENCY_LOS_AGES, P.EMERGENCY_LOS_MEAN)
            los = np.where(zero, 0, rng.geometric(1 / mean_los))
            pe_los[sl] = los
            pe_cost[sl] = np.round(np.where(zero, P.EMERGENCY_COST_ZERO_DAY, P.EMERGENCY_COST_BASE
                                            + P.EMERGENCY_COST_PER_DAY * los) * _lognormal(rng, m, 0.2))
            pe_diag[sl] = _emergency_diagnoses(rng, cond_mask[em_person, em_t], age_t[em_person, em_t])
            pe_via[sl] = rng.random(m) < P.EMERGENCY_VIA_AE
            via_cost[sl] = np.round(P.UNIT_COST["ae"] * _lognormal(rng, m, P.COST_LOG_SD["ae"]))
        elif setting == "elective_inpatient":
            pe_los[sl] = rng.geometric(1 / P.ELECTIVE_LOS_MEAN, m)
            pe_cost[sl] = np.round(P.ELECTIVE_COST * _lognormal(rng, m, P.COST_LOG_SD[setting]))
            pe_diag[sl] = _ELECTIVE[rng.integers(0, len(_ELECTIVE), m)]
        elif setting == "day_case":
            pe_los[sl] = 0
            pe_cost[sl] = np.round(P.DAY_CASE_COST * _lognormal(rng, m, P.COST_LOG_SD[setting]))
            pe_diag[sl] = _DAY_CASE[rng.integers(0, len(_DAY_CASE), m)]
        elif setting in P.COST_LOG_SD:
            pe_cost[sl] = np.round(P.UNIT_COST[setting] * _lognormal(rng, m, P.COST_LOG_SD[setting]))
        else:
            pe_cost[sl] = P.UNIT_COST[setting]
    rx_unit = P.UNIT_COST["prescribing"] * _lognormal(rng, n, P.COST_LOG_SD["prescribing"])
    month_u = rng.random((n, T, 12, 3), dtype=np.float32)
    last_day = np.minimum(exit_day, end - 1)
    (a_person, a_setting, a_start, a_end, a_qty, a_cost, a_diag, last_cost) = emit_activity(
        counts, win_a, win_b, last_day, pe_offset, pe_u, pe_los, pe_cost, pe_diag, pe_via, via_cost,
        rx_q, rx_mu, rx_unit, care_kind, care_hours, month_u, calendar.month_starts.astype(np.int64),
        POINT_SETTING_INDEX, SETTING_RANK, SETTING_INDEX["prescribing"], SETTING_INDEX["social_care"],
        SETTING_INDEX["ae"], P.UNIT_COST["home_care_hour"], P.UNIT_COST["residential_day"])
    activity = {"person": a_person, "setting": a_setting, "start": a_start, "end": a_end,
                "quantity": a_qty, "cost_pence": a_cost, "diagnosis": a_diag}

    # --- conditions recorded while registered (diagnosed before leaving / the end) -------
    known_until = np.minimum(exit_day, end)
    recorded = onset < known_until[:, None]
    c_person, c_code = np.nonzero(recorded)
    conditions = {"person": c_person.astype(np.int32), "condition": c_code.astype(np.int8),
                  "diagnosed_on": onset[c_person, c_code].astype(np.int32)}

    persons = {
        "birth": birth.astype(np.int32), "male": male, "imd": imd, "reg_from": reg_from.astype(np.int32),
        "reg_to": exit_day.astype(np.int32), "died_on": np.where(died, exit_day, NEVER).astype(np.int32),
        "care_home": care_home, "opted_out": opted_out,
    }
    if truth_rows:
        tr = [np.concatenate(parts) for parts in zip(*truth_rows)]
        order_t = np.lexsort((tr[1], tr[0]))
        truth = {"person": tr[0][order_t].astype(np.int32), "year": tr[1][order_t].astype(np.int32),
                 "p_emergency": tr[2][order_t], "frailty": tr[3][order_t], "state": tr[4][order_t],
                 "expected_admissions": tr[5][order_t]}
    else:
        truth = {"person": np.zeros(0, np.int32), "year": np.zeros(0, np.int32),
                 **{k: np.zeros(0) for k in ("p_emergency", "frailty", "state", "expected_admissions")}}

    em = slice(pe_offset[0], pe_offset[0] + per_setting[0])
    em_year = em_t if per_setting[0] else np.zeros(0, dtype=np.int64)
    stats = _practice_stats(calendar, birth, reg_from, exit_day, died, onset, counts, truth, last_cost,
                            (pe_diag[em], pe_los[em], pe_cost[em], em_year))
    return PracticeResult(n, persons, conditions, activity, truth, stats)


def prior_palliative_onset(rng, start: int, birth: np.ndarray) -> np.ndarray:
    """Onset days for people already on the palliative register at ``start``: 1 to 299
    days before it, but never before birth (babies born just before ``start``)."""
    return np.maximum(start - rng.integers(1, 300, birth.size), birth)


# --- emergency diagnoses -------------------------------------------------------------------

def _code_table() -> tuple[np.ndarray, np.ndarray]:
    width = max(len(v) for v in P.CONDITION_ADMISSION_CODES.values())
    table = np.full((N_COND, width), -1, dtype=np.int64)
    lengths = np.zeros(N_COND, dtype=np.int64)
    for code, icds in P.CONDITION_ADMISSION_CODES.items():
        j = COND_INDEX[code]
        table[j, :len(icds)] = [_DIAG[c] for c in icds]
        lengths[j] = len(icds)
    return table, lengths


_CODE_TABLE, _CODE_LEN = _code_table()
_HAS_CODES = sum(1 << j for j in range(N_COND) if _CODE_LEN[j] > 0)
_GENERAL = [np.array([_DIAG[c] for c in group]) for group in P.GENERAL_EMERGENCY_CODES]


def _pick_bit(rng, mask: np.ndarray) -> np.ndarray:
    """A uniformly chosen set bit of each (non-zero) mask."""
    count = np.zeros(len(mask), dtype=np.int64)
    for j in range(N_COND):
        count += (mask >> j) & 1
    target = np.floor(rng.random(len(mask)) * count).astype(np.int64)
    chosen = np.full(len(mask), -1, dtype=np.int64)
    seen = np.zeros(len(mask), dtype=np.int64)
    for j in range(N_COND):
        has = ((mask >> j) & 1).astype(bool)
        hit = has & (seen == target) & (chosen < 0)
        chosen[hit] = j
        seen += has
    return chosen


def _emergency_diagnoses(rng, mask: np.ndarray, age: np.ndarray) -> np.ndarray:
    """ICD-10 index per emergency admission, consistent with the person's registers.

    With an ACS-relevant register, an admission is for it with probability
    ``ACS_ADMISSION_SHARE`` (an ACS code); with other registers, 25% are for one of them;
    the rest are infections, injuries and pain typical of the age group.
    """
    m = len(mask)
    out = np.empty(m, dtype=np.int64)
    group = np.where(age < 18, 0, np.where(age < 65, 1, 2))
    for g, codes in enumerate(_GENERAL):
        sel = group == g
        out[sel] = codes[rng.integers(0, len(codes), sel.sum())]
    u = rng.random(m)
    acs = mask & ACS_MASK
    use_acs = (acs != 0) & (u < P.ACS_ADMISSION_SHARE)
    other = mask & _HAS_CODES & ~ACS_MASK
    use_other = ~use_acs & (other != 0) & (rng.random(m) < 0.25)
    for sel, source in ((use_acs, acs), (use_other, other)):
        if sel.any():
            j = _pick_bit(rng, source[sel])
            pick = np.floor(rng.random(sel.sum()) * _CODE_LEN[j]).astype(np.int64)
            out[sel] = _CODE_TABLE[j, pick]
    return out


# --- calibration statistics of one practice -----------------------------------------------

AGE_BANDS = ((0, 50), (50, 60), (60, 70), (70, 80), (80, 200))
COST_GROUPS = 4  # LTC count 0, 1, 2, 3+


def _practice_stats(calendar, birth, reg_from, exit_day, died, onset, counts, truth, person_cost, emergency):
    """Additive counters for calibration.json, measured in the last simulated year."""
    ys = calendar.year_starts.astype(np.int64)
    T = calendar.years
    t = T - 1
    s0, s1 = ys[t], ys[t + 1]
    active = (reg_from <= s0) & (exit_day > s0)
    age = (s0 - birth) / DAYS_PER_YEAR
    present = onset <= s0
    ltc = present[:, LTC_INDEX].sum(axis=1)
    emerg = counts[:, t, 0]
    out: dict[str, np.ndarray | float] = {}
    out["people"] = float(active.sum())
    out["age_18_plus"] = float((active & (age >= 18)).sum())
    out["age_65_plus"] = float((active & (age >= 65)).sum())
    mins = np.array([P.PREVALENCE_TARGET[c][1] for c in CONDITION_CODES])
    denom = active[:, None] & (age[:, None] >= mins[None, :])
    out["prev_num"] = (present & denom).sum(axis=0).astype(float)
    out["prev_den"] = denom.sum(axis=0).astype(float)
    adult = active & (age >= 18)
    out["adults"] = float(adult.sum())
    out["adult_ltc_hist"] = np.bincount(np.minimum(ltc[adult], 10), minlength=11).astype(float)
    out["adult_prev_num"] = present[adult][:, LTC_INDEX].sum(axis=0).astype(float)
    out["adult_all_registers_hist"] = np.bincount(np.minimum(present[adult].sum(axis=1), 10), minlength=11).astype(float)
    out["admitted"] = float((active & (emerg > 0)).sum())
    out["admissions"] = float(emerg[active].sum())
    out["admitted_once"] = float((active & (emerg == 1)).sum())
    band = np.zeros(len(age), dtype=np.int64)
    for k, (lo, hi) in enumerate(AGE_BANDS):
        band[(age >= lo) & (age < hi)] = k
    out["band_people"] = np.bincount(band[active], minlength=len(AGE_BANDS)).astype(float)
    out["band_admitted"] = np.bincount(band[active & (emerg > 0)], minlength=len(AGE_BANDS)).astype(float)
    out["deaths"] = float((active & died & (exit_day < s1)).sum())
    # cost in the year by LTC count at its start
    group = np.minimum(ltc, COST_GROUPS - 1)
    out["cost_sum"] = np.bincount(group[active], weights=person_cost[active], minlength=COST_GROUPS) / 100.0
    out["cost_people"] = np.bincount(group[active], minlength=COST_GROUPS).astype(float)
    out["cost_total"] = float(person_cost[active].sum() / 100.0)
    out["cost_ltc_people"] = float(person_cost[active & (ltc > 0)].sum() / 100.0)
    out["ltc_people"] = float((active & (ltc > 0)).sum())
    diag, los, cost, ev_t = emergency
    last = ev_t == t
    out["emergency_spells"] = float(last.sum())
    out["zero_day_spells"] = float((los[last] == 0).sum())
    out["emergency_cost"] = float(cost[last].sum() / 100.0)
    out["acs_spells"] = float(_ACS_DIAGNOSIS[diag[last]].sum())
    # truth vs outcome, per year (AUROC histograms)
    y = counts[truth["person"].astype(np.int64), truth["year"].astype(np.int64), 0] > 0
    p = np.clip(truth["p_emergency"], 1e-12, 1 - 1e-12)
    logit = np.log(p) - np.log1p(-p)
    b = np.clip(((logit + 16.0) / 24.0 * AUROC_BINS).astype(np.int64), 0, AUROC_BINS - 1)
    key = truth["year"].astype(np.int64) * AUROC_BINS + b
    out["auroc_pos"] = np.bincount(key[y], minlength=T * AUROC_BINS).astype(float)
    out["auroc_neg"] = np.bincount(key[~y], minlength=T * AUROC_BINS).astype(float)
    out["truth_p_sum"] = np.bincount(truth["year"].astype(np.int64), weights=truth["p_emergency"], minlength=T)
    out["truth_y_sum"] = np.bincount(truth["year"].astype(np.int64), weights=y.astype(float), minlength=T)
    out["truth_n"] = np.bincount(truth["year"].astype(np.int64), minlength=T).astype(float)
    return out

