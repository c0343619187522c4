"""Simulate one practice: its people, their registrations, conditions, a latent health state, and activity.

Everything is vectorised over the people who first register with the practice; one practice
is the unit of randomness (its own seed), so a population does not depend on how practices
are batched into partitions. Dates are int32 day numbers (:mod:`riskcap.synthetic.calendar`).

The model, in brief (``docs/synthetic.md`` has the full story):

* people: age from England's registered age pyramid tilted by the practice's mix,
  deprivation correlated within the practice, births and people moving in each year;
* registrations: periods at practices of the ICB (moves, lists closing or merging), gaps
  registered nowhere, leaving the ICB (:mod:`riskcap.synthetic.registration`), deaths;
* conditions: a liability per person and register = general multimorbidity factor ``F``
  + a cluster factor + noise + sex/deprivation shifts; the condition starts at the age where
  the age-prevalence curve reaches the person's liability quantile, and is *recorded* on the
  register unless the practice's coding misses it (or later, when a practice codes up);
* health: a yearly AR(1) state ``e`` (``rho`` = 0.6) plus ``F`` and the conditions drive every
  kind of activity and death; emergency admissions add interactions (frailty after an
  admission, conditions weighing more with age, mental illness in deprived areas) and the
  practice's admission propensity; every setting has practice effects on its rate or cost;
* truth: each person's probability of one or more emergency admissions in the year, given
  the state at the start of the year (integrating over the year's innovation).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

from riskcap.schema import CONDITION_CODES, SETTING_CODES, is_acs
from riskcap.synthetic import params as P
from riskcap.synthetic.calendar import Calendar
from riskcap.synthetic.kernels import (
    CARE_HOME, CARE_NONE, CARE_RESIDENTIAL, N_SETTINGS, emit_activity, poisson_quantiles,
)
from riskcap.synthetic.plan import CHANNEL, IcbPlan, PracticeSpec
from riskcap.synthetic.registration import GAP, TAIL, U_PER_YEAR, registration_segments

NEVER = np.iinfo(np.int32).max  # "no date" inside the generator
DAYS_PER_YEAR = 365.25
N_COND = len(CONDITION_CODES)
COND_INDEX = {c: j for j, c in enumerate(CONDITION_CODES)}
CHRONIC_INDEX = np.array([COND_INDEX[c] for c in P.CHRONIC_CODES])
LTC_INDEX = np.array([COND_INDEX[c] for c in P.LTC_CODES])
PALLIATIVE = COND_INDEX["palliative"]
CODING_UP_INDEX = np.array([COND_INDEX[c] for c in P.CHRONIC_CODES if c not in P.CODING_UP_EXCLUDED])
SETTING_INDEX = {s: k for k, s in enumerate(SETTING_CODES)}
#: Rank of each setting in alphabetical order: activity is sorted by (person, start_date, setting).
SETTING_RANK = np.argsort(np.argsort(np.array(SETTING_CODES))).astype(np.int64)
POINT_SETTING_INDEX = np.array([SETTING_INDEX[s] for s in P.POINT_SETTINGS])
#: Practice-effect channel of each point setting (-1: none).
POINT_CHANNEL = np.array([CHANNEL.get({"emergency_inpatient": "admissions", "elective_inpatient": "referrals",
                                       "day_case": "referrals", "outpatient": "referrals", "ae": "ae", "gp": "gp",
                                       "community": "community"}.get(s, ""), -1) for s in P.POINT_SETTINGS])
UNREGISTERED = np.array([s in P.UNREGISTERED_SETTINGS for s in P.POINT_SETTINGS])
HOSPITAL_COST_SETTINGS = ("emergency_inpatient", "elective_inpatient", "day_case", "outpatient", "ae")
DIAGNOSIS_CODES = P.all_diagnosis_codes()
_DIAG = {c: k for k, c in enumerate(DIAGNOSIS_CODES)}
_ACS_DIAGNOSIS = np.array([is_acs(c) for c in DIAGNOSIS_CODES])
_ELECTIVE = np.array([_DIAG[c] for c in P.ELECTIVE_CODES])
_DAY_CASE = np.array([_DIAG[c] for c in P.DAY_CASE_CODES])
ACS_MASK = sum(1 << COND_INDEX[c] for c in P.ACS_CONDITIONS)
#: AUROC histograms bin the truth on the logit scale.
AUROC_BINS = 1 << 14
#: Truth probabilities are summed in fixed point (exact, so sums do not depend on the order of partitions).
P_SCALE = 1 << 32
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
_MEDS = np.array([P.MEDS_PER_REGISTER[c] for c in CONDITION_CODES])
_ACT_AGE = {k: np.asarray(v[5], dtype=float) for k, v in P.ACTIVITY_MODEL.items()}
_CEILING = np.array([P.RATE_CEILING[s] for s in P.POINT_SETTINGS])
#: Share of a leaver's remaining year whose emergency admissions are still seen (truth's exposure).
_SEEN_AFTER_LEAVING = (P.INTERNAL_MOVE_SHARE + P.RETURN_SHARE * P.GAP_ACTIVITY
                       + (1 - P.INTERNAL_MOVE_SHARE - P.RETURN_SHARE) * P.TAIL_ACTIVITY
                       * min(1.0, P.TAIL_MEAN_DAYS / (DAYS_PER_YEAR / 2)))
#: People moving in from outside the ICB: the inflow from its own practices is the rest.
MOVE_IN_EXTERNAL = P.MOVE_IN_RATE * (1 - P.INTERNAL_MOVE_SHARE - P.RETURN_SHARE)


@dataclass
class PracticeResult:
    """Columns (numpy arrays) of one simulated practice; ``person`` is a local 0-based index.

    ``segments`` are the registration history (person, kind = ICB practice index / GAP / TAIL,
    start, stop); ``persons['practice']`` is the ICB index of each person's last practice.
    """

    n_persons: int
    persons: dict[str, np.ndarray]
    segments: dict[str, np.ndarray]
    conditions: dict[str, np.ndarray]
    activity: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    stats: dict = field(default_factory=dict)


def _sample_ages(rng, weights: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    whole = np.searchsorted(cdf, rng.random(n), side="right")
    return np.minimum(whole, len(weights) - 1) + rng.random(n)


def _lognormal(rng, n: int, sd: float) -> np.ndarray:
    """Multiplicative noise with mean 1."""
    return np.exp(rng.normal(-0.5 * sd * sd, sd, n))


def _ceiling(rate: np.ndarray, ceiling: float) -> np.ndarray:
    """C (1 - exp(-rate / C)): the rate, bent below the ceiling C."""
    return -ceiling * np.expm1(-rate / ceiling)


def _entrants(rng, spec: PracticeSpec, ys: np.ndarray, tilt: np.ndarray):
    """Births, people moving in and (for a new practice) its first intake, while the practice takes
    new patients: (birth day, registration day)."""
    T = len(ys) - 1
    end = min(int(ys[-1]), int(spec.closed_day))
    size = spec.nominal_size
    opened = max(int(spec.opened_day), int(ys[0]))
    births, regs = [], []
    for t in range(T):
        lo, hi = max(int(ys[t]), opened), min(int(ys[t + 1]), end)
        if lo >= hi:
            continue
        frac = (hi - lo) / (ys[t + 1] - ys[t])
        nb = rng.poisson(P.BIRTH_RATE * spec.births * size * frac)
        b_birth = lo + np.floor(rng.random(nb) * (hi - lo)).astype(np.int64)
        b_reg = b_birth + 14 + rng.integers(0, 60, nb)
        keep = b_reg < end
        births += [b_birth[keep]]
        regs += [b_reg[keep]]
        nm = rng.poisson(MOVE_IN_EXTERNAL * size * frac)
        m_reg = lo + np.floor(rng.random(nm) * (hi - lo)).astype(np.int64)  # before ``end``
        births += [m_reg - np.floor(_sample_ages(rng, MOVER_WEIGHTS * tilt, nm) * DAYS_PER_YEAR).astype(np.int64)]
        regs += [m_reg]
    if spec.opened_day > ys[0]:
        k = rng.poisson(P.OPENING_INTAKE * size)
        reg = spec.opened_day + np.floor(730 * rng.random(k) ** 2).astype(np.int64)
        reg = reg[reg < end]
        births += [reg - np.floor(_sample_ages(rng, AGE_WEIGHTS * tilt, len(reg)) * DAYS_PER_YEAR).astype(np.int64)]
        regs += [reg]
    if not births:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(births), np.concatenate(regs)


def simulate_practice(spec: PracticeSpec, icb: IcbPlan, calendar: Calendar, seed_seq: np.random.SeedSequence) -> PracticeResult:
    """Simulate the people who first register with one practice, over the calendar.

    Parameters
    ----------
    spec : PracticeSpec
        The practice; ``list_size`` people are registered on the first simulated day and
        births and movers join over the years (from ``opened_day`` for a new practice).
    icb : IcbPlan
        The practices of its ICB: where people move, practice effects, coding habits.
    calendar : Calendar
        Simulated financial years.
    seed_seq : numpy.random.SeedSequence
        The practice's own seed.

    Returns
    -------
    PracticeResult
    """
    rng, coding_rng = (np.random.default_rng(s) for s in seed_seq.spawn(2))
    ys = calendar.year_starts.astype(np.int64)
    T = calendar.years
    start, end = int(ys[0]), int(ys[-1])
    n0 = max(int(spec.list_size), 0)
    morbidity = spec.morbidity
    ages_grid = np.arange(len(AGE_WEIGHTS))
    tilt = np.exp(spec.age_tilt * (ages_grid - 40) / 25.0)

    # --- people: start cohort, then births and movers ------------------------------------
    age0 = _sample_ages(rng, AGE_WEIGHTS * tilt, n0)
    birth = start - np.floor(age0 * DAYS_PER_YEAR).astype(np.int64)
    reg_from = start - np.floor(rng.exponential(P.MEAN_YEARS_REGISTERED, n0) * DAYS_PER_YEAR).astype(np.int64)
    reg_from = np.maximum(reg_from, birth)
    e_birth, e_reg = _entrants(rng, spec, ys, tilt)
    order = np.argsort(e_reg, kind="stable")  # entrants in order of registration
    birth = np.concatenate([birth, e_birth[order]])
    reg_from = np.concatenate([reg_from, e_reg[order]])
    n = len(birth)

    # --- registration histories ------------------------------------------------------------
    age_at = (np.maximum(ys[None, :-1], reg_from[:, None]) - birth[:, None]) / DAYS_PER_YEAR
    leave_rate = np.interp(age_at, P.DEREG_AGES, P.DEREG_RATE)
    seg_person, seg_kind, seg_start, seg_stop = registration_segments(
        reg_from, np.full(n, spec.local, dtype=np.int64), leave_rate, rng.random((n, T, U_PER_YEAR)), rng.random(n),
        ys, icb.destinations, P.INTERNAL_MOVE_SHARE, P.RETURN_SHARE, P.GAP_MEAN_DAYS, P.SAME_PCN_SHARE,
        P.DISPERSAL_GAP_SHARE, P.DISPERSAL_GAP_MEAN_DAYS, P.TAIL_MEAN_DAYS)
    seg_offset = np.searchsorted(seg_person, np.arange(n + 1)).astype(np.int64)
    last_seg = seg_offset[1:] - 1
    gone = seg_kind[last_seg] == TAIL
    present_end = np.where(gone, seg_start[last_seg], NEVER).astype(np.int64)  # leaves the ICB for good

    entry = reg_from
    age_entry = (np.maximum(entry, start) - birth) / DAYS_PER_YEAR
    male = rng.random(n) < np.interp(age_entry, P.MALE_SHARE_AGES, P.MALE_SHARE)
    s = P.IMD_PRACTICE_SHARE
    dep_latent = np.sqrt(s) * spec.deprivation + np.sqrt(1 - s) * rng.normal(size=n)
    imd = (10 - np.floor(10 * ndtr(dep_latent))).clip(1, 10).astype(np.int64)
    dep = (5.5 - imd) / 4.5  # +1 most deprived, -1 least

    # --- latent factors, condition onsets and what the registers record ------------------------
    frailty = survivor_frailty(rng.normal(size=n), age_entry, morbidity)
    cluster = rng.normal(size=(n, len(P.CLUSTERS)))
    onset = np.full((n, N_COND), NEVER, dtype=np.int64)
    quantile = np.ones((n, N_COND))
    sex_sign = np.where(male, 0.5, -0.5)
    for code in P.CHRONIC_CODES:
        a, cl, b = P.LIABILITY[code]
        noise = rng.normal(size=n)
        liability = (a * frailty + b * cluster[:, _CLUSTER[cl]] + np.sqrt(1 - a * a - b * b) * noise
                     + P.SEX_EFFECT[code] * sex_sign + P.DEPRIVATION_EFFECT[code] * dep + morbidity
                     + P.CONDITION_OFFSET[code] + (spec.mental_health if code in P.PRACTICE_MENTAL_HEALTH_CODES else 0.0))
        q = ndtr(-liability)
        curve = _PREV_CURVES[code]
        day = birth + np.floor(np.interp(q, curve, P.PREV_AGES) * DAYS_PER_YEAR).astype(np.int64)
        j = COND_INDEX[code]
        onset[:, j] = np.where(q <= curve[-1], day, NEVER)
        quantile[:, j] = q
    recorded = _recorded(rng, coding_rng, onset, quantile, birth, spec, icb, seg_person, seg_kind, seg_start, seg_stop, n)

    j_dem, j_frail, j_ckd = COND_INDEX["dementia"], COND_INDEX["frailty"], COND_INDEX["ckd"]
    mental = np.array([COND_INDEX[c] for c in P.MENTAL_CODES])
    care_logit = (P.CARE_HOME_INTERCEPT + P.CARE_HOME_AGE * (age_entry - 85)
                  + P.CARE_HOME_DEMENTIA * (onset[:, j_dem] <= entry) + P.CARE_HOME_FRAILTY * (onset[:, j_frail] <= entry))
    care_home = rng.random(n) < 1 / (1 + np.exp(-care_logit))
    opted_out = rng.random(n) < P.OPT_OUT_RATE
    meds_u = rng.random(n)
    dialysis_u = rng.random(n)
    rx_offset = rng.integers(0, P.REPEAT_INTERVAL_DAYS * 7, n).astype(np.int64)

    # --- segments' practices and effects ---------------------------------------------------
    n_seg = len(seg_person)
    registered_seg = seg_kind >= 0
    seg_p = np.maximum(seg_kind, 0)
    seg_effect = np.where(registered_seg[:, None, None], icb.effects[seg_p], 0.0)  # (segments, years, channels)
    unreg_mult = np.where(seg_kind == GAP, P.GAP_ACTIVITY, P.TAIL_ACTIVITY)

    # --- yearly simulation -------------------------------------------------------------------
    e_prev = rng.normal(size=n)
    x_prev = rng.normal(size=n)  # exacerbation state (counts only on the registers it belongs to)
    x_innov = np.sqrt(1 - P.EXACERBATION_RHO ** 2)
    cardioresp = np.array([COND_INDEX[c] for c in P.EXACERBATION_CARDIORESPIRATORY])
    death_day = np.full(n, NEVER, dtype=np.int64)
    rho, sig_e = P.STATE_RHO, P.SIGMA_STATE
    innov = np.sqrt(1 - rho * rho)
    S = len(P.POINT_SETTINGS)
    counts = np.zeros((n_seg, T, S), dtype=np.int64)
    win_a = np.zeros((n_seg, T), dtype=np.int64)
    win_b = np.zeros((n_seg, T), dtype=np.int64)
    age_t = np.zeros((n, T))
    cond_mask = np.zeros((n, T), dtype=np.int64)
    rx_meds = np.zeros((n, T), dtype=np.int64)
    rx_interval = np.full((n_seg, T), P.REPEAT_INTERVAL_DAYS, dtype=np.int64)
    rx_acute = np.zeros((n_seg, T))
    care_kind = np.zeros((n, T), dtype=np.int8)
    care_hours = np.zeros((n, T))
    weekly = np.zeros(n, dtype=bool)
    bits = np.int64(1) << np.arange(N_COND, dtype=np.int64)
    truth_rows = []
    female = ~male
    prev_admitted = np.zeros(n, dtype=bool)
    practice_at = np.full((n, T), -1, dtype=np.int64)
    for t in range(T):
        s0, s1 = ys[t], ys[t + 1]
        a_t = np.maximum(s0, entry)
        b_t = np.minimum(np.minimum(s1, present_end), death_day)
        active = a_t < b_t
        age = np.maximum((a_t - birth) / DAYS_PER_YEAR, 0.0)
        present = onset <= a_t[:, None]
        ltc = present[:, LTC_INDEX].sum(axis=1)
        h_cond = P.CONDITION_SATURATION * -np.expm1(-(present @ _BETA) / P.CONDITION_SATURATION)
        h_static = h_cond + P.SIGMA_FRAILTY * frailty + morbidity
        latent_scale = np.interp(age, P.LATENT_AGES, P.LATENT_SCALE)
        covers = registered_seg & (seg_start <= s0) & (s0 < seg_stop)
        practice_at[seg_person[covers], t] = seg_kind[covers]
        here = practice_at[:, t]
        practice_adm = np.where(here >= 0, icb.effects[np.maximum(here, 0), t, CHANNEL["admissions"]], 0.0)
        e_t = rho * e_prev + innov * rng.normal(size=n)
        x_t = P.EXACERBATION_RHO * x_prev + x_innov * rng.normal(size=n)
        groups = {"cardiorespiratory": present[:, cardioresp].any(axis=1), "mental": present[:, mental].any(axis=1)}
        flare = groups["cardiorespiratory"] | groups["mental"]
        older = np.clip((age - 50) / 30, 0, 1) - P.AFTER_ADMISSION_CENTRE
        after_admission = prev_admitted * (P.AFTER_ADMISSION_OLDER * older + P.FRAIL_AFTER_ADMISSION * present[:, j_frail])
        # exacerbations keep the mean rate of the people they concern
        mean_keeping = -0.5 * flare * P.EXACERBATION_ADMISSIONS ** 2
        interaction = (after_admission + mean_keeping
                       + P.DEPRIVED_MENTAL * dep * groups["mental"]
                       + h_cond * (np.interp(age, P.CONDITION_AGE_KNOTS, P.CONDITION_AGE_SCALE) - 1)
                       + (latent_scale - 1) * (P.SIGMA_FRAILTY * frailty + morbidity))
        base = (P.EMERGENCY_INTERCEPT + np.interp(age, P.EMERGENCY_AGES, P.EMERGENCY_AGE_LOG)
                + np.interp(age, P.EMERGENCY_DEPRIVATION_AGES, P.EMERGENCY_DEPRIVATION) * dep
                + np.interp(age, P.EMERGENCY_MALE_AGES, P.EMERGENCY_MALE) * male + P.EMERGENCY_CARE_HOME * care_home
                + interaction)
        death_age = P.DEATH_INTERCEPT + np.interp(age, P.DEATH_AGES, P.DEATH_AGE_LOG)
        dereg_rate = np.interp(age, P.DEREG_AGES, P.DEREG_RATE)

        # truth at the year start, for people present (registered or between lists) and alive
        at_start = active & (a_t == s0)
        if at_start.any():
            scale0 = latent_scale[at_start]
            flare0 = flare[at_start]
            eta0 = (base[at_start] + h_static[at_start] + practice_adm[at_start] + scale0 * sig_e * rho * e_prev[at_start]
                    + flare0 * P.EXACERBATION_ADMISSIONS * P.EXACERBATION_RHO * x_prev[at_start])
            sd0 = np.sqrt((scale0 * sig_e * innov) ** 2 + flare0 * (P.EXACERBATION_ADMISSIONS * x_innov) ** 2)
            h_d = np.exp(death_age[at_start] + P.DEATH_HEALTH * (h_static[at_start] + sig_e * rho * e_prev[at_start])
                         + P.DEATH_PALLIATIVE * present[at_start, PALLIATIVE])
            exposure = 1 - 0.5 * (1 - np.exp(-h_d)) - 0.5 * dereg_rate[at_start] * (1 - _SEEN_AFTER_LEAVING)
            # the practice's admission effect scales incidental admissions too, as the simulation's rate does
            incidental = np.interp(age[at_start], P.INCIDENTAL_AGES, P.INCIDENTAL_RATE) * np.exp(practice_adm[at_start])
            lam = _ceiling(np.exp(eta0[:, None] + sd0[:, None] * _GH_NODES[None, :]) + incidental[:, None], _CEILING[0])
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
            prior = not_pal & (entry < s0) & (rng.random(n) < palliative_steady_share(age, h_death0))
            onset[prior, PALLIATIVE] = prior_palliative_onset(rng, s0, birth[prior])
            not_pal &= ~prior
        joins = not_pal & (rng.random(n) < 1 - np.exp(-P.PALLIATIVE_PER_DEATH_HAZARD * h_death0 * frac))
        onset[joins, PALLIATIVE] = a_t[joins] + np.floor(rng.random(joins.sum()) * (b_t - a_t)[joins]).astype(np.int64)
        recorded[:, PALLIATIVE] = onset[:, PALLIATIVE]
        on_pal = onset[:, PALLIATIVE] < b_t
        # deaths, while present in the ICB
        h_death = h_death0 * np.exp(P.DEATH_PALLIATIVE * on_pal)
        dies = active & (rng.random(n) < 1 - np.exp(-h_death * frac))
        span = (b_t - a_t).clip(1)
        d_day = a_t + 1 + np.floor(rng.random(n) * (span - 1)).astype(np.int64)
        after_pal = dies & on_pal & (d_day <= onset[:, PALLIATIVE])
        d_day[after_pal] = onset[after_pal, PALLIATIVE] + 1
        dies &= (d_day < b_t) & (span > 1)
        death_day[dies] = d_day[dies]
        b_t = np.minimum(b_t, death_day)
        age_t[:, t] = age
        cond_mask[:, t] = ((recorded <= a_t[:, None]) * bits).sum(axis=1)

        # each segment's window this year (deaths end them; the tail after leaving is not cut)
        seg_a = np.maximum(seg_start, s0)
        seg_b = np.minimum(seg_stop, s1)
        seg_b = np.where(seg_kind == TAIL, np.where(death_day[seg_person] < seg_start, seg_a, seg_b),
                         np.minimum(seg_b, death_day[seg_person]))
        seg_b = np.maximum(seg_b, seg_a)
        win_a[:, t], win_b[:, t] = seg_a, seg_b
        exposure_seg = (seg_b - seg_a) / DAYS_PER_YEAR

        # point events: person rates x segment multipliers (practice effects; between lists, hospital only)
        rates = np.empty((n, S))
        rates[:, 0] = (np.exp(base + h + (latent_scale - 1) * sig_e * e_t + flare * P.EXACERBATION_ADMISSIONS * x_t)
                       + np.interp(age, P.INCIDENTAL_AGES, P.INCIDENTAL_RATE))
        signal = {k: sum(weights.get(k, 0.0) * groups[g] for g, weights in P.EXACERBATION_SIGNAL.items()) * x_t
                  for k in ("ae", "gp", "mental_health", "acute_items")}
        for k, setting in enumerate(P.POINT_SETTINGS[1:], start=1):
            icpt, w_latent, w_cond, fem, depw, _ = P.ACTIVITY_MODEL[setting]
            log_rate = (icpt + np.interp(age, P.ACTIVITY_AGES, _ACT_AGE[setting]) + w_latent * latent + w_cond * h_cond
                        + fem * female + depw * dep + P.PER_LTC_PLANNED.get(setting, 0.0) * np.minimum(ltc, P.PER_LTC_PLANNED_MAX))
            if setting == "mental_health":
                for code, boost in P.MENTAL_HEALTH_CONDITIONS.items():
                    log_rate = log_rate + boost * present[:, COND_INDEX[code]]
            elif setting == "community":
                log_rate = log_rate + 1.0 * care_home + 0.8 * on_pal
            elif setting == "gp":
                log_rate = log_rate + female * np.interp(age, P.GP_WOMEN_AGES, P.GP_WOMEN_EXTRA)
            rates[:, k] = np.exp(log_rate + signal.get(setting, 0.0))
        mult = np.where(POINT_CHANNEL[None, :] >= 0, np.exp(seg_effect[:, t, np.maximum(POINT_CHANNEL, 0)]), 1.0)
        mult = np.where(registered_seg[:, None], mult, np.where(UNREGISTERED[None, :], unreg_mult[:, None], 0.0))
        seg_rates = _ceiling(rates[seg_person] * mult, _CEILING[None, :])
        k_op = P.POINT_SETTINGS.index("outpatient")
        on_dialysis = ((dialysis_u < P.DIALYSIS_SHARE) & present[:, j_ckd] & (age >= P.DIALYSIS_AGES[0])
                       & (age < P.DIALYSIS_AGES[1]))
        seg_rates[:, k_op] += P.DIALYSIS_SESSIONS * on_dialysis[seg_person] * (registered_seg | (seg_kind == GAP))
        index_admissions = rng.poisson(exposure_seg * seg_rates[:, 0])
        counts[:, t, 0] = index_admissions + rng.poisson(P.READMISSION_MEAN * index_admissions)
        counts[:, t, 1:] = rng.poisson(exposure_seg[:, None] * seg_rates[:, 1:])
        prev_admitted = np.bincount(seg_person, weights=counts[:, t, 0], minlength=n) > 0

        # monthly rows: regular medicines and acute items, social care
        meds_mean = ((np.interp(age, P.MEDS_AGES, P.MEDS_BASE) + present.astype(float) @ _MEDS)
                     * np.exp(P.MEDS_LATENT * latent))
        rx_meds[:, t] = np.where(active, np.minimum(poisson_quantiles(meds_mean, meds_u), P.MEDS_MAX), 0)
        if t == 0:
            w_logit = (P.WEEKLY_INTERCEPT + P.WEEKLY_CARE_HOME * care_home + P.WEEKLY_DEMENTIA * present[:, j_dem]
                       + P.WEEKLY_SMI * present[:, COND_INDEX["smi"]] + P.WEEKLY_PER_MED * rx_meds[:, t])
            weekly = rng.random(n) < 1 / (1 + np.exp(-w_logit))
        items_effect = seg_effect[:, t, CHANNEL["prescribing_items"]]
        repeat = np.clip(np.round(P.REPEAT_INTERVAL_DAYS * np.exp(-items_effect)), 14, 56).astype(np.int64)
        rx_interval[:, t] = np.where(weekly[seg_person], 7, repeat)
        acute = np.minimum(np.exp(np.log(np.interp(age, P.ACTIVITY_AGES, P.ACUTE_ITEMS)) + P.ACUTE_LATENT * latent
                                  + signal["acute_items"]), P.ACUTE_MAX)
        rx_acute[:, t] = acute[seg_person] * np.exp(items_effect)
        hc_logit = (P.HOME_CARE_INTERCEPT + P.HOME_CARE_AGE * (age - 18) + P.HOME_CARE_FRAILTY * present[:, j_frail]
                    + P.HOME_CARE_DEMENTIA * present[:, j_dem] + P.HOME_CARE_HEALTH * h)
        home = active & (age >= 18) & ~care_home & (rng.random(n) < 1 / (1 + np.exp(-hc_logit)))
        care_kind[:, t] = np.where(active & care_home, CARE_RESIDENTIAL, np.where(home, CARE_HOME, CARE_NONE))
        care_hours[:, t] = P.HOME_CARE_HOURS * np.exp(0.3 * h)
        e_prev, x_prev = e_t, x_t

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
    hospital_cost = np.exp(seg_effect[:, :, CHANNEL["hospital_cost"]])  # (segments, years)
    em_person = em_t = np.zeros(0, dtype=np.int64)
    for k, setting in enumerate(P.POINT_SETTINGS):
        lo, m = pe_offset[k], int(per_setting[k])
        sl = slice(lo, lo + m)
        if m == 0:
            continue
        flat = counts[:, :, k].reshape(-1)
        cell = np.repeat(np.arange(flat.size), flat)
        ev_seg, ev_t = cell // T, cell % T
        price = hospital_cost[ev_seg, ev_t] if setting in HOSPITAL_COST_SETTINGS else 1.0
        if setting == "emergency_inpatient":
            em_person, em_t = seg_person[ev_seg], ev_t
            zero = rng.random(m) < P.ZERO_DAY_SHARE
            mean_los = np.interp(age_t[em_person, em_t], P.EMERGENCY_LOS_AGES, P.EMERGENCY_LOS_MEAN)
            los = np.where(zero, 0, rng.geometric(1 / mean_los))
            pe_los[sl] = los
            pe_cost[sl] = np.round(np.where(zero, P.EMERGENCY_COST_ZERO_DAY, P.EMERGENCY_COST_BASE
                                            + P.EMERGENCY_COST_PER_DAY * los) * _lognormal(rng, m, 0.2) * price)
            pe_diag[sl] = _emergency_diagnoses(rng, cond_mask[em_person, em_t], age_t[em_person, em_t])
            pe_via[sl] = rng.random(m) < P.EMERGENCY_VIA_AE
            via_cost[sl] = np.round(P.UNIT_COST["ae"] * _lognormal(rng, m, P.COST_LOG_SD["ae"]) * price)
        elif setting == "elective_inpatient":
            pe_los[sl] = rng.geometric(1 / P.ELECTIVE_LOS_MEAN, m)
            pe_cost[sl] = np.round(P.ELECTIVE_COST * _lognormal(rng, m, P.COST_LOG_SD[setting]) * price)
            pe_diag[sl] = _ELECTIVE[rng.integers(0, len(_ELECTIVE), m)]
        elif setting == "day_case":
            pe_los[sl] = 0
            pe_cost[sl] = np.round(P.DAY_CASE_COST * _lognormal(rng, m, P.COST_LOG_SD[setting]) * price)
            pe_diag[sl] = _DAY_CASE[rng.integers(0, len(_DAY_CASE), m)]
        elif setting == "gp":
            pe_cost[sl] = np.where(rng.random(m) < P.GP_APPOINTMENT_GP_SHARE, *P.GP_APPOINTMENT_COST)
        elif setting in P.COST_LOG_SD:
            pe_cost[sl] = np.round(P.UNIT_COST[setting] * _lognormal(rng, m, P.COST_LOG_SD[setting]) * price)
        else:
            pe_cost[sl] = P.UNIT_COST[setting]
    rx_cost = np.exp(icb.effects[seg_p, :, CHANNEL["prescribing_cost"]].mean(axis=1))
    rx_unit = (P.UNIT_COST["prescribing"] * _lognormal(rng, n, P.COST_LOG_SD["prescribing"]))[seg_person] * rx_cost
    month_u = rng.random((n_seg, T, 12, 2), dtype=np.float32)
    last_day = np.minimum(death_day, end - 1)
    (a_person, a_setting, a_start, a_end, a_qty, a_cost, a_diag, last_cost, last_qty) = emit_activity(
        seg_offset, registered_seg, counts, win_a, win_b, last_day, pe_offset, pe_u, pe_los, pe_cost, pe_diag, pe_via,
        via_cost, rx_meds, rx_interval, rx_offset, rx_acute, rx_unit, care_kind, care_hours, month_u,
        calendar.month_starts.astype(np.int64), POINT_SETTING_INDEX, SETTING_RANK, SETTING_INDEX["prescribing"],
        SETTING_INDEX["social_care"], SETTING_INDEX["ae"], P.UNIT_COST["home_care_hour"], P.UNIT_COST["residential_day"])
    activity = {"person": a_person, "setting": a_setting, "start": a_start, "end": a_end,
                "quantity": a_qty, "cost_pence": a_cost, "diagnosis": a_diag}

    # --- registration periods, cut short by death ------------------------------------------
    alive_seg = seg_start < death_day[seg_person]
    seg_stop = np.where(seg_kind == TAIL, seg_stop, np.minimum(seg_stop, death_day[seg_person]))
    periods = alive_seg & registered_seg
    segments = {"person": seg_person[periods], "practice": seg_kind[periods], "start": seg_start[periods],
                "stop": seg_stop[periods]}
    first = np.searchsorted(segments["person"], np.arange(n))
    last = np.searchsorted(segments["person"], np.arange(n), side="right") - 1
    reg_to = segments["stop"][last]

    # --- conditions as the registers hold them (recorded while registered) ------------------
    recorded = _while_registered(recorded, seg_person, seg_kind, seg_start, seg_stop, alive_seg)
    known_until = np.minimum(reg_to, end)
    c_person, c_code = np.nonzero(recorded < known_until[:, None])
    conditions = {"person": c_person.astype(np.int32), "condition": c_code.astype(np.int8),
                  "diagnosed_on": recorded[c_person, c_code].astype(np.int32)}

    persons = {
        "birth": birth.astype(np.int32), "male": male, "imd": imd, "reg_from": segments["start"][first].astype(np.int32),
        "reg_to": reg_to.astype(np.int32), "died_on": death_day.astype(np.int32), "care_home": care_home,
        "opted_out": opted_out, "practice": segments["practice"][last],
    }
    if truth_rows:  # people within their registration span at the year start (as persons says)
        tr = [np.concatenate(parts) for parts in zip(*truth_rows)]
        day = ys[tr[1]]
        within = (persons["reg_from"][tr[0]] <= day) & (day < reg_to[tr[0]])
        tr = [part[within] for part in tr]
        order_t = np.lexsort((tr[1], tr[0]))
        truth = {"person": tr[0][order_t].astype(np.int32), "year": tr[1][order_t].astype(np.int32),
                 "p_emergency": tr[2][order_t], "frailty": tr[3][order_t], "state": tr[4][order_t],
                 "expected_admissions": tr[5][order_t]}
    else:
        truth = {"person": np.zeros(0, np.int32), "year": np.zeros(0, np.int32),
                 **{k: np.zeros(0) for k in ("p_emergency", "frailty", "state", "expected_admissions")}}

    person_counts = np.zeros((n, T), dtype=np.int64)
    np.add.at(person_counts, seg_person, counts[:, :, 0])
    stats = _practice_stats(calendar, icb, birth, male, imd, care_home, persons["reg_from"], reg_to, death_day, onset, recorded,
                            person_counts, practice_at, truth, last_cost, last_qty, segments,
                            (pe_diag[pe_offset[0]:pe_offset[0] + per_setting[0]],
                             pe_los[pe_offset[0]:pe_offset[0] + per_setting[0]],
                             pe_cost[pe_offset[0]:pe_offset[0] + per_setting[0]], em_t))
    return PracticeResult(n, persons, segments, conditions, activity, truth, stats)


def _recorded(rng, coding_rng, onset, quantile, birth, spec, icb, seg_person, seg_kind, seg_start, seg_stop, n) -> np.ndarray:
    """The day each condition is recorded on the register (``NEVER``: never).

    A condition is recorded at onset with the completeness of the practice's coding
    (``Phi(CODING_PROBIT + delta)``, the practice first registered with), through a standard
    normal propensity that is partly the person's own (``CODING_PERSON_SHARE``). A practice that
    codes up, from its start day and over a year, records its registered people's unrecorded
    conditions and, up to ``uplift`` x its recorded entries of each register, the borderline
    cases nearest the threshold (people whose liability would reach it soonest), whose
    morbidity does not change. Coding up draws from its own ``coding_rng``, so it changes
    nothing but the registers.
    """
    w = np.sqrt(P.CODING_PERSON_SHARE)
    propensity = w * rng.normal(size=(len(onset), 1)) + np.sqrt(1 - w * w) * rng.normal(size=onset.shape)
    recorded = np.where(propensity < P.CODING_PROBIT + icb.coding_delta[spec.local], onset, NEVER)
    recorded[:, PALLIATIVE] = onset[:, PALLIATIVE]
    coding = np.flatnonzero(icb.coding_up_day < NEVER)
    for q in coding:
        c = int(icb.coding_up_day[q])
        there = (seg_kind == q) & (seg_start <= c) & (c < seg_stop)
        people = np.unique(seg_person[there])
        if not len(people):
            continue
        when = c + np.floor(coding_rng.random((len(people), N_COND)) * DAYS_PER_YEAR).astype(np.int64)
        age_c = (c - birth[people]) / DAYS_PER_YEAR
        for j in CODING_UP_INDEX:
            rec, ons = recorded[people, j], onset[people, j]
            backlog = (ons <= c) & (rec > c)
            recorded[people[backlog], j] = when[backlog, j]
            extra = int(round(icb.coding_up_uplift[q] * (rec <= c).sum())) - int(backlog.sum())
            if extra <= 0:
                continue
            curve = _PREV_CURVES[CONDITION_CODES[j]]
            margin = quantile[people, j] - np.interp(age_c, P.PREV_AGES, curve)
            candidates = np.flatnonzero((rec > c) & (ons > c) & (age_c >= 16))
            nearest = candidates[np.argsort(margin[candidates], kind="stable")[:extra]]
            recorded[people[nearest], j] = np.maximum(when[nearest, j], birth[people[nearest]])
    return recorded


def _while_registered(recorded, seg_person, seg_kind, seg_start, seg_stop, alive_seg) -> np.ndarray:
    """Recording days moved out of gaps between lists: to the next registration (never for a gap
    that lasts to the end), since nobody updates the register of an unregistered person."""
    gaps = np.flatnonzero((seg_kind == GAP) & alive_seg)
    if not len(gaps):
        return recorded
    out = recorded.copy()
    who, g0, g1 = seg_person[gaps], seg_start[gaps], seg_stop[gaps]
    inside = (out[who] >= g0[:, None]) & (out[who] < g1[:, None])
    rows, cols = np.nonzero(inside)
    out[who[rows], cols] = g1[rows]
    return out


def _cumulative_death_age(age: np.ndarray) -> np.ndarray:
    """The integral of ``exp(DEATH_AGE_LOG)`` (linear between its knots, flat beyond) from birth
    to ``age``, exactly: on each piece the integrand is one exponential."""
    knots, logs = P.DEATH_AGES, P.DEATH_AGE_LOG
    slope = np.diff(logs) / np.diff(knots)
    pieces = np.where(slope != 0, np.expm1(slope * np.diff(knots)) / np.where(slope != 0, slope, 1), np.diff(knots))
    at_knot = np.concatenate([[0.0], np.cumsum(np.exp(logs[:-1]) * pieces)])
    a = np.clip(age, knots[0], knots[-1])
    k = np.clip(np.searchsorted(knots, a, side="right") - 1, 0, len(knots) - 2)
    x = a - knots[k]
    g = slope[k]
    part = np.where(g != 0, np.expm1(g * x) / np.where(g != 0, g, 1), x)
    return at_knot[k] + np.exp(logs[k]) * part + np.exp(logs[-1]) * np.maximum(age - knots[-1], 0.0)


_FRAILTY_GRID = np.linspace(-7.0, 7.0, 1401)
_HAZARD_GRID = np.concatenate([[0.0], np.geomspace(1e-4, 50.0, 96)])


def _survivor_cdf() -> np.ndarray:
    """CDF over :data:`_FRAILTY_GRID` of frailty among survivors, per cumulative hazard of :data:`_HAZARD_GRID`."""
    c = P.DEATH_HEALTH * P.SIGMA_FRAILTY
    log_w = -0.5 * _FRAILTY_GRID[None, :] ** 2 - _HAZARD_GRID[:, None] * np.exp(c * _FRAILTY_GRID)[None, :]
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    cdf = np.cumsum(w, axis=1)
    return cdf / cdf[:, -1:]


_SURVIVOR_CDF = _survivor_cdf()


def survivor_frailty(z: np.ndarray, age: np.ndarray, morbidity: float) -> np.ndarray:
    """The frailty ``F`` of people alive at ``age``, from standard normal draws ``z``.

    ``F`` is standard normal at birth; the frail die first, so among people alive at ``age``
    its density is ``phi(F) exp(-H exp(DEATH_HEALTH SIGMA_FRAILTY F))``, ``H`` the cumulative
    death hazard to ``age`` at ``F = 0`` (age curve, the practice's morbidity, the yearly state
    averaged; conditions left out). Drawing the people present at the start (and people moving
    in) from it, rather than from the newborns' ``N(0, 1)``, starts the simulation where years
    of deaths would have left it: the frailty of the old no longer drifts down year after year
    (which made every need group cheaper per day each year). ``z`` is mapped through the CDFs
    (quantile to quantile), so the random stream is unchanged.
    """
    hazard = (np.exp(P.DEATH_INTERCEPT + P.DEATH_HEALTH * morbidity + 0.5 * (P.DEATH_HEALTH * P.SIGMA_STATE) ** 2)
              * _cumulative_death_age(age))
    u = ndtr(z)
    k = np.clip(np.searchsorted(_HAZARD_GRID, hazard, side="right") - 1, 0, len(_HAZARD_GRID) - 2)
    t = np.clip((hazard - _HAZARD_GRID[k]) / (_HAZARD_GRID[k + 1] - _HAZARD_GRID[k]), 0.0, 1.0)
    out = np.empty(len(z))
    for j in np.unique(k):
        sel = k == j
        lo = np.interp(u[sel], _SURVIVOR_CDF[j], _FRAILTY_GRID)
        hi = np.interp(u[sel], _SURVIVOR_CDF[j + 1], _FRAILTY_GRID)
        out[sel] = (1 - t[sel]) * lo + t[sel] * hi
    return out


def palliative_steady_share(age: np.ndarray, h_death: np.ndarray) -> np.ndarray:
    """Share of people alive at ``age`` who are on the palliative register, in the steady state
    of the yearly dynamics (joining at ``PALLIATIVE_PER_DEATH_HAZARD`` x the death hazard, dying
    ``exp(DEATH_PALLIATIVE)`` times faster once on it), with today's death hazard ``h_death``
    carried back over the person's life by the age curve.

    With ``H`` the cumulative death hazard to ``age``, ``a`` the joining rate per unit hazard and
    ``k = exp(DEATH_PALLIATIVE) - 1 - a``: on / off the register = ``a (1 - exp(-k H)) / k``. The
    register starts as full as years of joining leave it, so it no longer fills up over the
    simulated years (its prevalence rising, the end-of-life group getting cheaper per day).
    """
    a = P.PALLIATIVE_PER_DEATH_HAZARD
    k = np.exp(P.DEATH_PALLIATIVE) - 1 - a
    cum = h_death * _cumulative_death_age(age) / np.exp(np.interp(age, P.DEATH_AGES, P.DEATH_AGE_LOG))
    odds = a * -np.expm1(-k * cum) / k
    return odds / (1 + odds)


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
#: Age-sex bands of the demographic-plus-morbidity formula (lower bounds, years).
FORMULA_AGES = (0, 5, 15, 25, 35, 45, 55, 65, 75, 85)
FORMULA_TERMS: tuple[str, ...] = (
    tuple(f"{sex}_{lo}" for sex in "FM" for lo in FORMULA_AGES) + tuple(f"imd_quintile_{q}" for q in range(1, 5))
    + ("care_home",) + tuple(CONDITION_CODES))
#: Per-person quantity histograms (tails): bin k holds quantities in [QTY_EDGES[k], QTY_EDGES[k + 1]).
QTY_EDGES = np.unique(np.round(np.concatenate([[0], np.logspace(0, 4, 61)]))).astype(np.int64)


def formula_terms(age, male, imd, care_home, registers) -> np.ndarray:
    """The formula's design matrix (0/1 int64): age-sex bands, IMD quintiles 1-4, care home, registers."""
    band = np.searchsorted(np.array(FORMULA_AGES), age, side="right") - 1
    k = len(FORMULA_AGES)
    x = np.zeros((len(age), len(FORMULA_TERMS)), dtype=np.int64)
    x[np.arange(len(age)), band + k * male.astype(np.int64)] = 1
    quintile = (imd + 1) // 2
    for q in range(1, 5):
        x[:, 2 * k + q - 1] = quintile == q
    x[:, 2 * k + 4] = care_home
    x[:, 2 * k + 5:] = registers
    return x


def _practice_stats(calendar, icb, birth, male, imd, care_home, reg_from, reg_to, death_day, onset, recorded,
                    person_counts, practice_at, truth, person_cost, person_qty, segments, emergency):
    """Counters for calibration.json, measured in the last simulated year among people within
    their registration span (registered, or between lists) and alive at its start. Every counter
    is an integer (money in pence or pounds, probabilities in fixed point), so sums do not depend
    on partitioning."""
    ys = calendar.year_starts.astype(np.int64)
    T = calendar.years
    t = T - 1
    s0, s1 = ys[t], ys[t + 1]
    active = (reg_from <= s0) & (np.minimum(reg_to, death_day) > s0)
    age = (s0 - birth) / DAYS_PER_YEAR
    rec = recorded <= s0
    ltc = rec[:, LTC_INDEX].sum(axis=1)
    emerg = person_counts[:, t]
    out: dict = {}

    def count(mask):
        return np.int64(np.count_nonzero(mask))

    out["people"] = count(active)
    out["age_18_plus"] = count(active & (age >= 18))
    out["age_65_plus"] = count(active & (age >= 65))
    mins = np.array([P.PREVALENCE_TARGET[c][1] for c in CONDITION_CODES])
    denom = active[:, None] & (age[:, None] >= mins[None, :])
    out["prev_num"] = (rec & denom).sum(axis=0).astype(np.int64)
    out["prev_den"] = denom.sum(axis=0).astype(np.int64)
    out["true_prev_num"] = ((onset <= s0) & denom).sum(axis=0).astype(np.int64)
    adult = active & (age >= 18)
    out["adults"] = count(adult)
    out["adult_ltc_hist"] = np.bincount(np.minimum(ltc[adult], 10), minlength=11).astype(np.int64)
    out["adult_prev_num"] = rec[adult][:, LTC_INDEX].sum(axis=0).astype(np.int64)
    out["adult_all_registers_hist"] = np.bincount(np.minimum(rec[adult].sum(axis=1), 10), minlength=11).astype(np.int64)
    out["admitted"] = count(active & (emerg > 0))
    out["admissions"] = np.int64(emerg[active].sum())
    out["admitted_once"] = count(active & (emerg == 1))
    band = np.zeros(len(age), dtype=np.int64)
    for k, (lo, hi) in enumerate(AGE_BANDS):
        band[(age >= lo) & (age < hi)] = k
    out["band_people"] = np.bincount(band[active], minlength=len(AGE_BANDS)).astype(np.int64)
    out["band_admitted"] = np.bincount(band[active & (emerg > 0)], minlength=len(AGE_BANDS)).astype(np.int64)
    out["deaths"] = count(active & (death_day < s1))
    # cost in the year (pence) by LTC count at its start
    group = np.minimum(ltc, COST_GROUPS - 1)
    out["cost_sum"] = np.bincount(group[active], weights=person_cost[active], minlength=COST_GROUPS).astype(np.int64)
    out["cost_people"] = np.bincount(group[active], minlength=COST_GROUPS).astype(np.int64)
    out["cost_total"] = np.int64(person_cost[active].sum())
    out["cost_ltc_people"] = np.int64(person_cost[active & (ltc > 0)].sum())
    out["ltc_people"] = count(active & (ltc > 0))
    diag, los, cost, ev_t = emergency
    last = ev_t == t
    out["emergency_spells"] = count(last)
    out["zero_day_spells"] = count(los[last] == 0)
    out["emergency_cost"] = np.int64(cost[last].sum())
    out["acs_spells"] = count(_ACS_DIAGNOSIS[diag[last]])
    # volumes and tails: everyone's activity in the year over registered person-years
    days = np.minimum(segments["stop"], s1) - np.maximum(segments["start"], s0)
    out["registered_days"] = np.int64(np.maximum(days, 0).sum())
    out["quantity"] = person_qty.sum(axis=0).astype(np.int64)
    out["max_quantity"] = person_qty.max(axis=0, initial=0).astype(np.int64)
    out["quantity_hist"] = np.stack([np.bincount(np.searchsorted(QTY_EDGES, person_qty[:, k], side="right") - 1,
                                                 minlength=len(QTY_EDGES)) for k in range(N_SETTINGS)]).astype(np.int64)
    # registration histories
    periods = np.bincount(segments["person"], minlength=len(birth))
    out["people_ever"] = np.int64(len(birth))
    out["people_moved"] = count(periods >= 2)
    out["periods"] = np.int64(len(segments["person"]))
    # the demographic-plus-morbidity formula: sums for a person-level OLS, per practice at the year start
    here = practice_at[:, t]
    measured = active & (here >= 0)
    x = formula_terms(age[measured], male[measured], imd[measured], care_home[measured], rec[measured])
    y = np.floor(person_cost[measured] / 100).astype(np.int64)  # pounds
    # einsum's own loops (no BLAS threads, 3x faster than an int64 product); whole sums far below 2**53 are exact
    xf = x.astype(np.float64)
    out["formula_xtx"] = np.rint(np.einsum("ij,ik->jk", xf, xf)).astype(np.int64)
    out["formula_xty"] = np.rint(np.einsum("ij,i->j", xf, y.astype(np.float64))).astype(np.int64)
    out["formula_yy"] = np.int64((y * y).sum())
    out["formula_n"] = np.int64(len(y))
    practices = {}
    where = here[measured]
    for q in np.unique(where):
        sel = where == q
        practices[str(icb.codes[q])] = {"n": np.int64(sel.sum()), "x": x[sel].sum(axis=0), "y": np.int64(y[sel].sum())}
    # registers and morbidity per practice and year start (coding up)
    # register entries and true conditions of each practice's stayers (registered there at the
    # start of a year and of the next, alive), at both dates: coding up shows as register growth
    # without morbidity growth, free of the turnover of the list
    m = len(icb.codes)
    cohort = np.zeros((5, m, max(T - 1, 0)), dtype=np.int64)
    for yr in range(T - 1):
        at = practice_at[:, yr]
        stay = (at >= 0) & (practice_at[:, yr + 1] == at) & (death_day > ys[yr + 1])
        where = at[stay]
        cohort[0, :, yr] = np.bincount(where, minlength=m)
        for k, (days, day) in enumerate(((recorded, ys[yr]), (recorded, ys[yr + 1]), (onset, ys[yr]), (onset, ys[yr + 1])), 1):
            cohort[k, :, yr] = np.bincount(where, weights=(days[stay][:, CODING_UP_INDEX] <= day).sum(axis=1), minlength=m)
    for q in np.flatnonzero(cohort[0].any(axis=1)):
        practices.setdefault(str(icb.codes[q]), {}).update(
            stayers_t=cohort[0, q], registers_from_t=cohort[1, q], registers_to_t=cohort[2, q],
            conditions_from_t=cohort[3, q], conditions_to_t=cohort[4, q])
    out["practices"] = practices
    # truth vs outcome, per year (AUROC histograms)
    y_adm = person_counts[truth["person"].astype(np.int64), truth["year"].astype(np.int64)] > 0
    p = np.clip(truth["p_emergency"], 1e-12, 1 - 1e-12)
    logit = np.log(p) - np.log1p(-p)
    b = np.clip(((logit + 16.0) / 24.0 * AUROC_BINS).astype(np.int64), 0, AUROC_BINS - 1)
    year = truth["year"].astype(np.int64)
    key = year * AUROC_BINS + b
    out["auroc_pos"] = np.bincount(key[y_adm], minlength=T * AUROC_BINS).astype(np.int64)
    out["auroc_neg"] = np.bincount(key[~y_adm], minlength=T * AUROC_BINS).astype(np.int64)
    fixed = np.round(truth["p_emergency"] * P_SCALE).astype(np.int64)
    out["truth_p_sum"] = np.array([fixed[year == k].sum() for k in range(T)], dtype=np.int64)
    out["truth_y_sum"] = np.bincount(year, weights=y_adm, minlength=T).astype(np.int64)
    out["truth_n"] = np.bincount(year, minlength=T).astype(np.int64)
    return out
