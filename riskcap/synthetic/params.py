"""Parameters of the synthetic population model, with where each number comes from.

Targets are from DOMAIN.md section 3 (England: QOF 2019/20 prevalence, registered age
structure, emergency-admission rates, unit costs). Shapes by age are approximate public
figures; the ``offset`` of each condition and the intercepts of the activity models were
fitted once by simulation (``docs/synthetic.md`` says how) so the generated population
hits the targets in ``calibration.json``.
"""
from __future__ import annotations

import numpy as np

from riskcap.schema import CONDITION_CODES, SETTING_CODES

# --- Practices -------------------------------------------------------------------------

#: England's registered list sizes (DOMAIN.md): lognormal fitted to median 7,866, mean 8,981.
LIST_SIZE_MEDIAN = 7866.0
LIST_SIZE_SIGMA = 0.55
LIST_SIZE_MIN = 1000
LIST_SIZE_MAX = 85000
#: Need index (weighted / registered population) in the 2024/25 allocation file:
#: median 1.0 and list-weighted standard deviation of its log 0.157.
NEED_LOG_SD = 0.157
#: Population-weighted mean log need index in that file (need is standardised around it).
NEED_LOG_CENTRE = -0.0118
#: Primary Care Networks serve about 30,000 to 50,000 patients (Network Contract DES), about five
#: practices each (some 1,250 PCNs for 6,500 practices); synthetic PCNs (when the practices file
#: has no PCN_Code) group neighbouring practices until either is reached.
PCN_PEOPLE = 40_000
PCN_PRACTICES = 5

# --- Practice variation no register records (docs/synthetic.md, "Practice variation") ---------

#: Channels of practice effects (log multipliers of a rate or unit cost) and the standard
#: deviation of each between PCNs (shared hospital and locality behaviour), between practices
#: of a PCN (persistent) and from year to year (an AR(1) with PRACTICE_EFFECT_RHO). Effects are
#: centred so the mean multiplier is 1. Sizes fitted so that a demographic-plus-morbidity formula
#: explains practice outturn as NHS England's person-based formula did (calibration.json).
PRACTICE_EFFECT_SD: dict[str, tuple[float, float, float]] = {
    "admissions": (0.051, 0.068, 0.034),          # emergency admission propensity (thresholds, local hospital)
    "gp": (0.043, 0.187, 0.051),                  # appointments per person (access, staffing)
    "referrals": (0.068, 0.119, 0.043),           # outpatient, elective and day-case referral thresholds
    "ae": (0.085, 0.085, 0.043),                  # A&E use (distance, access to same-day care)
    "community": (0.128, 0.085, 0.043),           # community nursing provision
    "prescribing_items": (0.034, 0.085, 0.025),   # items per regular medicine (repeat habits)
    "prescribing_cost": (0.034, 0.068, 0.025),    # cost per item (generic prescribing, formulary)
    "hospital_cost": (0.043, 0.017, 0.017),       # unit costs of the local hospitals (market forces)
}
PRACTICE_EFFECT_RHO = 0.5
#: Coding habits: a register entry is recorded with probability Phi(CODING_PROBIT + delta), delta
#: ~ N(0, CODING_SD) per practice (QOF registers are incomplete; completeness about 80-97%). A share
#: CODING_PERSON_SHARE of the chance is the person's own (people seldom seen have several gaps).
CODING_PROBIT = 1.4
CODING_SD = 0.30
CODING_PERSON_SHARE = 0.8
#: Coding up (optional, ``coding_up_practices``): from the start of the second-last simulated year
#: a practice records its backlog of unrecorded conditions and borderline cases, so its register
#: entries grow by this share of its recorded entries in a year while morbidity does not.
CODING_UP_UPLIFT = 0.10
#: Registers coded up (all disease registers and frailty but cancer and learning disability).
CODING_UP_EXCLUDED = ("cancer", "learning_disability", "palliative")

#: Practices opening, closing (list dispersed) and merging (list moved to another practice) per
#: practice and year. England fell from 8,044 practices in 2013 to 6,419 in 2023 (about 160 a
#: year, mostly mergers of small practices; Jeffers et al., BMJ Open 2024;14:e081535).
OPEN_RATE = 0.004
CLOSE_RATE = 0.006
MERGE_RATE = 0.018
#: An ICB with at least this many practices always has one of each.
EVENTS_MIN_PRACTICES = 8
#: People of a closed practice who take a while to re-register, and the mean wait in days.
DISPERSAL_GAP_SHARE = 0.10
DISPERSAL_GAP_MEAN_DAYS = 60.0
#: A new practice's list: this many times its nominal list size join in the two years after it
#: opens (new housing), on top of births and movers.
OPENING_INTAKE = 0.7

# --- People --------------------------------------------------------------------------

#: Registered population by 5-year age band (0-4 ... 100-104), percent: England's GP
#: registrations. The start cohort is rescaled to the shares below, chosen so that after
#: ageing, births, moves and deaths the last simulated year has 18+ 79.7% and 65+ 17.5% (DOMAIN.md).
AGE_BAND_PERCENT = np.array([
    5.3, 5.9, 6.1, 5.8, 6.1, 6.8, 7.2, 7.2, 6.8, 6.2, 6.5, 6.5, 5.8,
    4.9, 4.5, 3.8, 2.4, 1.4, 0.6, 0.15, 0.02,
])
SHARE_18_PLUS = 0.797
SHARE_65_PLUS = 0.152
#: Share male by age (knots): equal until late life, then women outlive men.
MALE_SHARE_AGES = np.array([0, 20, 60, 70, 80, 90, 105], dtype=float)
MALE_SHARE = np.array([0.512, 0.503, 0.495, 0.475, 0.44, 0.36, 0.25])

#: Registration flows per year, as a share of the practice's starting list. People moving in
#: from outside the ICB are MOVE_IN_RATE less the inflow from the ICB's own practices (moves and
#: returns below), so lists stay about level.
BIRTH_RATE = 0.0105
MOVE_IN_RATE = 0.055
#: Deregistration (moving away) hazard per year by age knot.
DEREG_AGES = np.array([0, 15, 20, 25, 35, 45, 65, 80, 105], dtype=float)
DEREG_RATE = np.array([0.05, 0.04, 0.10, 0.12, 0.07, 0.04, 0.025, 0.02, 0.02])
#: Mean years registered at the practice for people already on the list at the start.
MEAN_YEARS_REGISTERED = 9.0
#: What a deregistration is (approx.; about 4 in 10 house moves in England are within the same
#: local authority): a move to another practice in the ICB the same day, leaving and coming back
#: after a gap (registered nowhere meanwhile), or leaving the ICB for good.
INTERNAL_MOVE_SHARE = 0.35
RETURN_SHARE = 0.08
GAP_MEAN_DAYS = 240.0
#: Movers choose a practice in their own PCN with this chance (else anywhere in the ICB), in
#: proportion to list size.
SAME_PCN_SHARE = 0.5
#: Hospital settings seen while registered nowhere: in a gap between lists (still living locally)
#: at GAP_ACTIVITY x the usual rate; after leaving the ICB, for an exponential tail of
#: TAIL_MEAN_DAYS at TAIL_ACTIVITY x (follow-ups, attendances at the old local hospital).
UNREGISTERED_SETTINGS = ("emergency_inpatient", "elective_inpatient", "day_case", "outpatient", "ae", "mental_health")
GAP_ACTIVITY = 1.0
TAIL_ACTIVITY = 0.5
TAIL_MEAN_DAYS = 120.0
#: Ages of people moving into a practice: the age pyramid re-weighted towards young adults.
MOVER_AGE_KNOTS = np.array([0, 10, 18, 22, 30, 40, 55, 70, 105], dtype=float)
MOVER_AGE_WEIGHT = np.array([1.0, 0.7, 1.2, 2.6, 2.2, 1.1, 0.6, 0.5, 0.6])

#: National data opt-out rate (about 3% of registered people in England).
OPT_OUT_RATE = 0.03
#: How a practice's mix follows NHS England's component need indices (log weighted / registered
#: population, standardised by England's spread): the age tilt from community services (the
#: most age-driven component), deprivation from health inequalities, mental-health liability
#: from mental health (beyond deprivation), births from maternity. The morbidity shift then
#: makes the practice's expected need follow its overall index (``Final WP / pop``), using
#: NEED_SENSITIVITY (fitted by ``python -m riskcap.synthetic.fit --need``).
PRACTICE_AGE_TILT = 0.30
PRACTICE_DEPRIVATION = 0.75
PRACTICE_MENTAL_HEALTH = 0.08
#: Registers the mental-health shift applies to.
PRACTICE_MENTAL_HEALTH_CODES = ("depression", "smi")
PRACTICE_BIRTHS = 0.6
#: Log need per head per unit of (age tilt, practice deprivation, mental-health shift, morbidity shift).
NEED_SENSITIVITY = {"age_tilt": 0.649, "deprivation": 0.113, "mental_health": 0.17, "morbidity": 0.866}
MORBIDITY_RANGE = (-0.6, 0.6)
#: England's component indices (2024/25 file, practices with 500+ people and a maternity weight):
#: list-weighted centre and standard deviation of the log index, and their correlations, for synthetic practices (which have only a
#: need index): components are drawn given the need index from this joint normal.
COMPONENTS = ("need", "community", "health_inequalities", "mental_health", "maternity")
COMPONENT_CENTRE = np.array([-0.0118, -0.0620, -0.0695, -0.0457, -0.0323])
COMPONENT_SD = np.array([0.157, 0.367, 0.355, 0.299, 0.280])
COMPONENT_CORR = np.array([
    [1.00, 0.69, 0.45, 0.44, -0.07],
    [0.69, 1.00, -0.04, -0.14, -0.37],
    [0.45, -0.04, 1.00, 0.67, 0.40],
    [0.44, -0.14, 0.67, 1.00, 0.22],
    [-0.07, -0.37, 0.40, 0.22, 1.00],
])
#: Within-practice correlation of people's deprivation (share of variance between practices).
IMD_PRACTICE_SHARE = 0.55

# --- Conditions ------------------------------------------------------------------------

#: Codes whose onset follows the liability model (all but palliative, which follows mortality).
CHRONIC_CODES: tuple[str, ...] = tuple(c for c in CONDITION_CODES if c != "palliative")
#: Disease registers counted in the LTC count (features.ltc_count): all but frailty and palliative.
LTC_CODES: tuple[str, ...] = tuple(c for c in CONDITION_CODES if c not in ("frailty", "palliative"))

#: Target prevalence (DOMAIN.md, QOF 2019/20): code -> (prevalence, minimum age of denominator).
#: Frailty is not in QOF: moderate or severe electronic frailty is about 15% of people 65+,
#: about 2.6% of the list (approx.).
PREVALENCE_TARGET: dict[str, tuple[float, int]] = {
    "hypertension": (0.141, 0), "depression": (0.116, 18), "obesity": (0.105, 18),
    "diabetes": (0.071, 17), "asthma": (0.065, 0), "ckd": (0.041, 18), "cancer": (0.031, 0),
    "chd": (0.031, 0), "af": (0.021, 0), "copd": (0.019, 0), "stroke_tia": (0.018, 0),
    "heart_failure": (0.0090, 0), "smi": (0.0093, 0), "epilepsy": (0.0080, 18),
    "dementia": (0.0078, 0), "rheumatoid_arthritis": (0.0077, 16), "osteoporosis": (0.0085, 50),
    "pad": (0.0060, 0), "learning_disability": (0.0051, 0), "palliative": (0.0048, 0),
    "frailty": (0.026, 0),
}

#: Ages at which the prevalence shapes below are given.
PREV_AGES = np.array([0, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 105], dtype=float)
#: Cumulative (ever-diagnosed) prevalence by age for the reference group: the shape only;
#: the level is set by ``CONDITION_OFFSET``. Non-decreasing, so onset ages are defined.
PREV_SHAPE: dict[str, list[float]] = {
    "hypertension": [0, 0, 0, 0.001, 0.004, 0.02, 0.06, 0.14, 0.27, 0.42, 0.55, 0.60, 0.62],
    "depression": [0, 0, 0, 0.02, 0.08, 0.12, 0.14, 0.16, 0.17, 0.17, 0.18, 0.19, 0.19],
    "obesity": [0, 0, 0, 0.02, 0.06, 0.10, 0.12, 0.14, 0.15, 0.15, 0.15, 0.15, 0.15],
    "diabetes": [0, 0, 0.001, 0.003, 0.005, 0.015, 0.04, 0.08, 0.14, 0.19, 0.22, 0.22, 0.22],
    "asthma": [0, 0.03, 0.06, 0.065, 0.068, 0.07, 0.072, 0.075, 0.078, 0.08, 0.08, 0.08, 0.08],
    "ckd": [0, 0, 0, 0, 0.0005, 0.002, 0.005, 0.015, 0.04, 0.10, 0.22, 0.35, 0.40],
    "cancer": [0, 0.0005, 0.001, 0.0015, 0.002, 0.005, 0.012, 0.03, 0.06, 0.10, 0.14, 0.15, 0.15],
    "chd": [0, 0, 0, 0, 0, 0.001, 0.005, 0.02, 0.05, 0.10, 0.16, 0.20, 0.21],
    "af": [0, 0, 0, 0, 0, 0.0005, 0.002, 0.006, 0.02, 0.06, 0.13, 0.18, 0.19],
    "copd": [0, 0, 0, 0, 0, 0.001, 0.004, 0.015, 0.04, 0.07, 0.09, 0.09, 0.09],
    "stroke_tia": [0, 0, 0, 0, 0, 0.001, 0.004, 0.01, 0.03, 0.06, 0.10, 0.13, 0.14],
    "heart_failure": [0, 0, 0, 0, 0, 0, 0.001, 0.003, 0.008, 0.02, 0.05, 0.09, 0.10],
    "smi": [0, 0, 0, 0.002, 0.006, 0.010, 0.012, 0.013, 0.013, 0.013, 0.013, 0.013, 0.013],
    "epilepsy": [0, 0.002, 0.005, 0.007, 0.008, 0.009, 0.009, 0.009, 0.0095, 0.01, 0.01, 0.01, 0.01],
    "dementia": [0, 0, 0, 0, 0, 0, 0, 0.001, 0.004, 0.015, 0.07, 0.20, 0.30],
    "rheumatoid_arthritis": [0, 0, 0, 0, 0.001, 0.003, 0.006, 0.01, 0.015, 0.02, 0.02, 0.02, 0.02],
    "osteoporosis": [0, 0, 0, 0, 0, 0, 0, 0.002, 0.008, 0.02, 0.04, 0.06, 0.07],
    "pad": [0, 0, 0, 0, 0, 0, 0.001, 0.003, 0.01, 0.02, 0.035, 0.04, 0.04],
    "learning_disability": [0, 0.002, 0.006, 0.0065, 0.0065, 0.0065, 0.0065, 0.0065, 0.0065, 0.0065, 0.0065, 0.0065, 0.0065],
    "frailty": [0, 0, 0, 0, 0, 0, 0.001, 0.003, 0.01, 0.04, 0.12, 0.28, 0.40],
}

#: Clusters of co-occurring conditions: each shares a latent factor.
CLUSTERS = ("metabolic", "vascular", "respiratory", "mental", "neurodevelopmental", "musculoskeletal", "none")
#: code -> (loading on the general multimorbidity/frailty factor, cluster, loading on the cluster factor).
LIABILITY: dict[str, tuple[float, str, float]] = {
    "hypertension": (0.11, "metabolic", 0.50), "diabetes": (0.10, "metabolic", 0.60),
    "obesity": (0.09, "metabolic", 0.60), "ckd": (0.14, "metabolic", 0.35),
    "chd": (0.12, "vascular", 0.45), "af": (0.10, "vascular", 0.30), "stroke_tia": (0.12, "vascular", 0.40),
    "heart_failure": (0.14, "vascular", 0.40), "pad": (0.14, "vascular", 0.45),
    "asthma": (0.07, "respiratory", 0.42), "copd": (0.14, "respiratory", 0.34),
    "depression": (0.10, "mental", 0.47), "smi": (0.10, "mental", 0.42), "dementia": (0.12, "mental", 0.17),
    "learning_disability": (0.07, "neurodevelopmental", 0.42), "epilepsy": (0.08, "neurodevelopmental", 0.42),
    "rheumatoid_arthritis": (0.08, "musculoskeletal", 0.34), "osteoporosis": (0.10, "musculoskeletal", 0.34),
    "cancer": (0.08, "none", 0.00), "frailty": (0.17, "musculoskeletal", 0.21),
}
#: Shift of the liability per unit of deprivation (+1 = decile 1, -1 = decile 10), probit scale.
DEPRIVATION_EFFECT: dict[str, float] = {
    "hypertension": 0.10, "depression": 0.20, "obesity": 0.25, "diabetes": 0.25, "asthma": 0.10,
    "ckd": 0.10, "cancer": 0.0, "chd": 0.20, "af": -0.05, "copd": 0.40, "stroke_tia": 0.15,
    "heart_failure": 0.20, "smi": 0.30, "epilepsy": 0.15, "dementia": 0.05,
    "rheumatoid_arthritis": 0.10, "osteoporosis": 0.05, "pad": 0.25, "learning_disability": 0.10,
    "frailty": 0.25,
}
#: Liability difference men minus women (probit scale); half is added for men, half taken for women.
SEX_EFFECT: dict[str, float] = {
    "hypertension": 0.05, "depression": -0.45, "obesity": -0.05, "diabetes": 0.15, "asthma": -0.10,
    "ckd": -0.15, "cancer": 0.0, "chd": 0.45, "af": 0.30, "copd": 0.05, "stroke_tia": 0.10,
    "heart_failure": 0.30, "smi": 0.0, "epilepsy": 0.05, "dementia": -0.10,
    "rheumatoid_arthritis": -0.40, "osteoporosis": -0.90, "pad": 0.25, "learning_disability": 0.15,
    "frailty": -0.20,
}
#: Level of each condition (probit shift added to the liability), fitted so prevalence hits target.
CONDITION_OFFSET: dict[str, float] = {
    "hypertension": 0.04, "depression": -0.123, "obesity": -0.062, "diabetes": -0.08, "asthma": 0.007,
    "ckd": -0.027, "cancer": 0.002, "chd": 0.003, "af": 0.068, "copd": -0.043, "stroke_tia": -0.001,
    "heart_failure": 0.084, "smi": -0.023, "epilepsy": -0.035, "dementia": -0.097,
    "rheumatoid_arthritis": -0.117, "osteoporosis": -0.495, "pad": -0.01, "learning_disability": -0.056,
    "frailty": 0.238,
}

# --- Latent health state and emergency admissions -----------------------------------------

#: AR(1) coefficient of the yearly health state (regression to the mean when < 1).
STATE_RHO = 0.6
#: Weight of the persistent multimorbidity/frailty factor and of the yearly state in log-rates.
SIGMA_FRAILTY = 0.9
SIGMA_STATE = 0.5
#: Emergency admission log-rate: intercept and age curve (knots, log multipliers). The 15-69
#: knots lift the admitted shares under 50 and at 60-69 off the low edge of DOMAIN.md's age
#: profile (which, with England's age mix, implies more than the 6% admitted overall).
EMERGENCY_INTERCEPT = np.log(0.0074)
EMERGENCY_AGES = np.array([0, 1, 5, 15, 20, 30, 40, 50, 60, 70, 80, 90, 105], dtype=float)
EMERGENCY_AGE_LOG = np.array([1.95, 1.35, 0.85, 1.1, 1.25, 1.25, 1.15, 0.9, 0.95, 1.05, 1.65, 2.2, 2.4])
#: Deprivation x age: the deprivation gradient of emergency admissions is steepest in middle
#: age (premature multimorbidity) and flattens in old age (log-rate per unit of deprivation).
EMERGENCY_DEPRIVATION_AGES = np.array([0, 20, 45, 65, 85, 105], dtype=float)
EMERGENCY_DEPRIVATION = np.array([0.35, 0.55, 0.85, 0.65, 0.25, 0.2])
#: Readmissions: each emergency admission brings Poisson(this) more in the same year. They do
#: not change who has one or more (so not the truth), only how many admitted people have: with
#: the emergency rate ceiling they give DOMAIN.md's shape (about 1.5 admissions per admitted
#: person, about 71% exactly one) rather than a few people with very many.
READMISSION_MEAN = 0.07
#: Sex x age: men's log-rate minus women's by age (boys more, young women more through
#: obstetric, gynaecological and self-harm admissions, older men more).
EMERGENCY_MALE_AGES = np.array([0, 15, 20, 35, 50, 65, 80, 95], dtype=float)
EMERGENCY_MALE = np.array([0.15, -0.05, -0.35, -0.2, 0.1, 0.25, 0.2, 0.1])
EMERGENCY_CARE_HOME = 0.3
#: Log-rate effect of each condition on emergency admissions (and, scaled, other use).
CONDITION_EFFECT: dict[str, float] = {
    "hypertension": 0.09, "depression": 0.26, "obesity": 0.09, "diabetes": 0.45, "asthma": 0.26,
    "ckd": 0.54, "cancer": 0.71, "chd": 0.54, "af": 0.45, "copd": 1.08, "stroke_tia": 0.54,
    "heart_failure": 1.08, "smi": 0.71, "epilepsy": 0.71, "dementia": 0.71,
    "rheumatoid_arthritis": 0.26, "osteoporosis": 0.26, "pad": 0.54, "learning_disability": 0.54,
    "palliative": 1.62, "frailty": 0.90,
}

#: Condition effects add up sub-additively: the summed effect x becomes
#: CONDITION_SATURATION * (1 - exp(-x / CONDITION_SATURATION)), so many registers do not
#: multiply rates without bound.
CONDITION_SATURATION = 1.8

# --- Deaths, palliative care, care homes ---------------------------------------------------

DEATH_INTERCEPT = np.log(0.00018)
DEATH_AGES = np.array([0, 1, 5, 20, 40, 60, 70, 80, 90, 100, 105], dtype=float)
DEATH_AGE_LOG = np.array([1.5, -0.5, -1.0, 0.0, 1.0, 2.8, 3.8, 4.9, 6.0, 6.9, 7.1])
DEATH_HEALTH = 0.5  # multiplier of the health index in the death log-hazard
DEATH_PALLIATIVE = 1.8
#: Chance per year of joining the palliative register, as a multiple of the death hazard.
PALLIATIVE_PER_DEATH_HAZARD = 0.175
CARE_HOME_INTERCEPT = -6.2
CARE_HOME_AGE = 0.10  # per year of age over 85 (logit)
CARE_HOME_DEMENTIA = 1.8
CARE_HOME_FRAILTY = 1.2

# --- Other activity: log-rate = intercept + age curve + weight x health index ----------------

#: setting -> (intercept (log events per year), weight of the health index, female effect, deprivation effect)
POINT_SETTINGS = ("emergency_inpatient", "elective_inpatient", "day_case", "outpatient", "ae", "gp",
                  "community", "mental_health")
MONTHLY_SETTINGS = ("prescribing", "social_care")
ACTIVITY_AGES = np.array([0, 5, 15, 20, 30, 40, 50, 60, 70, 80, 90, 105], dtype=float)
ACTIVITY_MODEL: dict[str, tuple[float, float, float, float, float, list[float]]] = {
    # setting: (intercept, latent weight, condition weight, female, deprivation, age curve at ACTIVITY_AGES)
    # The latent weight multiplies the persistent factor and yearly state (SIGMA_FRAILTY F +
    # SIGMA_STATE e): frequent contacts reveal the latent health that also drives admissions.
    "elective_inpatient": (np.log(0.0091), 0.5, 0.6, 0.0, 0.0, [-1.0, -1.5, -1.0, -0.6, -0.3, 0.0, 0.3, 0.7, 1.0, 1.0, 0.6, 0.3]),
    "day_case": (np.log(0.042), 0.5, 0.6, 0.1, 0.0, [-1.5, -2.0, -1.5, -0.8, -0.4, 0.0, 0.4, 0.8, 1.1, 1.1, 0.7, 0.4]),
    "outpatient": (np.log(0.355), 1.0, 0.55, 0.15, 0.0, [0.0, -0.6, -0.5, -0.3, -0.1, 0.0, 0.2, 0.5, 0.8, 0.9, 0.7, 0.5]),
    "ae": (np.log(0.17), 0.8, 0.5, 0.0, 0.3, [0.6, 0.0, 0.1, 0.3, 0.2, 0.0, 0.0, 0.1, 0.3, 0.7, 1.1, 1.2]),
    "gp": (np.log(2.05), 1.3, 0.15, 0.25, 0.1, [0.6, -0.1, -0.3, -0.2, -0.1, 0.0, 0.15, 0.35, 0.6, 0.8, 0.9, 0.9]),
    "community": (np.log(0.03), 1.0, 1.0, 0.1, 0.1, [-0.5, -2.0, -2.0, -2.0, -1.5, -1.0, -0.5, 0.3, 1.2, 2.3, 3.2, 3.5]),
    "mental_health": (np.log(0.03), 0.6, 0.4, 0.0, 0.2, [-2.0, -1.0, 0.2, 0.3, 0.2, 0.0, -0.2, -0.4, -0.5, -0.3, -0.3, -0.3]),
}
#: Women aged about 16-45 see their practice more for reasons that say nothing about their risk
#: (contraception, pregnancy and postnatal care, screening): extra log-rate of GP appointments
#: by age for women, so the same number of appointments means less for a young woman.
GP_WOMEN_AGES = np.array([0, 14, 18, 25, 38, 46, 55, 105], dtype=float)
GP_WOMEN_EXTRA = np.array([0.0, 0.0, 0.45, 0.6, 0.55, 0.15, 0.0, 0.0])
#: Extra log-rate per disease register (up to PER_LTC_PLANNED_MAX) of planned hospital and community care:
#: people with several conditions have more follow-ups and procedures. Outpatient and elective care
#: are steeper than they were (0.32) around the same level for one register (their intercepts
#: 4% lower), so the cost of 3+ conditions moves towards DOMAIN.md's and that of one does not.
PER_LTC_PLANNED = {"outpatient": 0.36, "elective_inpatient": 0.36, "day_case": 0.28, "community": 0.3}
PER_LTC_PLANNED_MAX = 5
#: Extra log-rate of mental-health contacts for people on these registers.
MENTAL_HEALTH_CONDITIONS = {"smi": 3.0, "depression": 1.6, "dementia": 1.8, "learning_disability": 1.0}
#: Prescribing is built from medicines, not rates: each person takes ``m`` regular medicines
#: (Poisson with mean = an age baseline + medicines per register, x exp(MEDS_LATENT x latent
#: health); a person keeps their quantile across years; at most MEDS_MAX), each dispensed every
#: 28 days (weekly for a few: care homes, dementia, serious mental illness, many medicines;
#: monitored dosage), plus acute items. Weekly dispensing of 15+ medicines is the heaviest
#: plausible use (about 800 items a year); nobody gets twenty items a day.
MEDS_AGES = np.array([0, 10, 18, 30, 45, 60, 70, 80, 90, 105], dtype=float)
MEDS_BASE = np.array([0.03, 0.06, 0.17, 0.25, 0.4, 0.72, 1.1, 1.5, 1.65, 1.65])
MEDS_PER_REGISTER: dict[str, float] = {
    "hypertension": 0.85, "depression": 0.7, "obesity": 0.1, "diabetes": 1.76, "asthma": 1.12, "ckd": 0.64,
    "cancer": 0.64, "chd": 2.08, "af": 1.04, "copd": 1.76, "stroke_tia": 1.6, "heart_failure": 2.4, "smi": 1.2,
    "epilepsy": 1.12, "dementia": 0.8, "rheumatoid_arthritis": 1.12, "osteoporosis": 0.88, "pad": 1.04,
    "learning_disability": 0.8, "palliative": 1.6, "frailty": 0.96,
}
MEDS_LATENT = 0.25
MEDS_MAX = 20
REPEAT_INTERVAL_DAYS = 28
WEEKLY_INTERCEPT = -6.5
WEEKLY_CARE_HOME = 2.0
WEEKLY_DEMENTIA = 1.0
WEEKLY_SMI = 1.5
WEEKLY_PER_MED = 0.2
#: Acute (one-off) items a year by age, x exp(ACUTE_LATENT x latent health), at most ACUTE_MAX.
ACUTE_ITEMS = np.array([2.2, 1.2, 1.0, 1.6, 2.0, 2.2, 2.5, 3.0, 3.6, 4.2, 4.6, 4.6])
ACUTE_LATENT = 0.4
ACUTE_MAX = 40.0
#: Home care (adults): chance of receiving it in a year (logit) and mean hours per month.
HOME_CARE_INTERCEPT = -8.0
HOME_CARE_AGE = 0.07  # per year over 18
HOME_CARE_FRAILTY = 1.5
HOME_CARE_DEMENTIA = 1.2
HOME_CARE_HEALTH = 0.6
HOME_CARE_HOURS = 25.0
#: Share of emergency admissions that arrive through A&E (an A&E row on the same day).
EMERGENCY_VIA_AE = 0.7
#: Ceilings of point-event rates (events a year): a rate r becomes C (1 - exp(-r / C)), so the
#: heaviest users stay physically plausible (weekly GP appointments). Emergency admissions bend
#: from about one a year, so the sickest have several a year (plus readmissions) rather than the
#: dozens a log-linear rate gives their combined conditions, age and frailty.
RATE_CEILING = {"emergency_inpatient": 3.5, "elective_inpatient": 6.0, "day_case": 12.0, "outpatient": 40.0,
                "ae": 30.0, "gp": 52.0, "community": 365.0, "mental_health": 100.0}
#: In-centre haemodialysis, three sessions a week, for a few people on the CKD register aged
#: 30-85 (about 0.04% of people; recorded here as outpatient attendances).
DIALYSIS_SHARE = 0.012
DIALYSIS_SESSIONS = 156.0
DIALYSIS_AGES = (30.0, 85.0)

# --- Interactions in the risk of emergency admission --------------------------------------

#: Older and frail people admitted in the previous year: deconditioning and delirium after a
#: stay raise the risk beyond the sum of age, frailty and prior use, while a younger person's
#: admission (often incidental) says less about the next year. Log-rate added after an
#: admission: AFTER_ADMISSION_OLDER x (a ramp from 0 at age 50 to 1 at 80, less
#: AFTER_ADMISSION_CENTRE, so negative below about 62), plus FRAIL_AFTER_ADMISSION on the
#: frailty register. The centring keeps the average effect of a prior admission (which a
#: main-effects model learns) near where it was and adds the age interaction around it.
AFTER_ADMISSION_OLDER = 1.0
AFTER_ADMISSION_CENTRE = 0.4
FRAIL_AFTER_ADMISSION = 0.6
#: Incidental emergency admissions (injuries, acute surgery, poisoning) not driven by health,
#: common in young adults: admissions a year by age. Prior admissions therefore say less about
#: the young than about the old.
INCIDENTAL_AGES = np.array([0, 10, 16, 20, 30, 40, 50, 70, 105], dtype=float)
INCIDENTAL_RATE = np.array([0.003, 0.003, 0.007, 0.010, 0.008, 0.006, 0.004, 0.003, 0.003])
#: Frailty x age: the latent health (persistent factor and yearly state) weighs more on
#: emergency admissions at older ages (multiplier of its log-rate effect by age), keeping the
#: mean rate at each age; the same history of use therefore means more risk for an older person.
LATENT_AGES = np.array([0, 30, 50, 70, 85, 105], dtype=float)
LATENT_SCALE = np.array([0.35, 0.45, 0.8, 1.3, 1.65, 1.65])
#: Multimorbidity x older age: the conditions' summed effect is scaled by age.
CONDITION_AGE_KNOTS = np.array([0, 40, 60, 75, 90, 105], dtype=float)
CONDITION_AGE_SCALE = np.array([0.2, 0.4, 1.0, 1.6, 2.0, 2.0])
#: Exacerbations: people with COPD, asthma or heart failure, or with serious mental illness or
#: depression, have their own yearly state (AR(1), EXACERBATION_RHO) of flare-ups and crises that
#: raises emergency admissions (EXACERBATION_ADMISSIONS per SD) and shows first in particular
#: contacts: A&E and rescue (acute) prescriptions for the cardio-respiratory registers, mental
#: health contacts and A&E for the mental ones, GP appointments for both. The same A&E visit or
#: acute item therefore signals more risk for someone on these registers than for anyone else.
EXACERBATION_CARDIORESPIRATORY = ("copd", "asthma", "heart_failure")
EXACERBATION_MENTAL = ("smi", "depression")
EXACERBATION_RHO = 0.8
EXACERBATION_ADMISSIONS = 0.8
EXACERBATION_SIGNAL = {"cardiorespiratory": {"ae": 0.9, "gp": 0.4, "acute_items": 0.8},
                       "mental": {"mental_health": 1.0, "ae": 0.6, "gp": 0.4}}
#: Deprivation x mental illness: SMI or depression weighs more in a deprived area and less in
#: an affluent one (log-rate per unit of deprivation, +1 = decile 1, -1 = decile 10), so the
#: effect is unchanged in the middle.
DEPRIVED_MENTAL = 0.9
MENTAL_CODES = ("smi", "depression")

# --- Lengths of stay and costs (DOMAIN.md section 3; pence) ----------------------------------

ZERO_DAY_SHARE = 0.33
#: Mean length (days) of non-zero emergency stays: grows with age.
EMERGENCY_LOS_AGES = np.array([0, 20, 50, 70, 85, 105], dtype=float)
EMERGENCY_LOS_MEAN = np.array([2.5, 3.0, 4.5, 7.0, 10.0, 11.0])
EMERGENCY_COST_ZERO_DAY = 60000
EMERGENCY_COST_BASE = 110000
EMERGENCY_COST_PER_DAY = 35000
ELECTIVE_COST = 350000
ELECTIVE_LOS_MEAN = 2.5
DAY_CASE_COST = 80000
UNIT_COST = {  # pence per event / unit, before per-row variation
    "outpatient": 13000, "ae": 16000, "gp": 4000, "community": 6000, "mental_health": 11000,
    "prescribing": 900, "home_care_hour": 2500, "residential_day": 12857,
}
#: General-practice appointments (setting ``gp``) are with any clinical staff: about half with a
#: GP (about GBP 42 for a 9-minute consultation), the rest with nurses and other staff (about GBP 16).
GP_APPOINTMENT_GP_SHARE = 0.5
GP_APPOINTMENT_COST = (4200, 1600)
#: Per-row cost variation (sd of log multiplier) for hospital rows and prescribing items.
COST_LOG_SD = {"elective_inpatient": 0.35, "day_case": 0.3, "outpatient": 0.2, "ae": 0.3,
               "prescribing": 0.5, "mental_health": 0.2}

# --- ICD-10 primary diagnoses of inpatient spells ---------------------------------------------

#: Chance that an emergency admission of a person with an ACS-relevant register is for it.
ACS_ADMISSION_SHARE = 0.35
#: register -> ICD-10 codes of admissions caused by it (first ones are ACS where the register is).
CONDITION_ADMISSION_CODES: dict[str, tuple[str, ...]] = {
    "asthma": ("J45.9", "J46"), "copd": ("J44.1", "J44.0"), "heart_failure": ("I50.0", "I50.9", "I11.0"),
    "chd": ("I20.9", "I25.1", "I20.0"), "diabetes": ("E11.6", "E11.5", "E10.1", "E11.1"),
    "hypertension": ("I10",), "epilepsy": ("G40.9", "R56.8", "G41.9"), "dementia": ("F03", "F01.9"),
    "ckd": ("N17.9", "N18.4"), "cancer": ("C34.9", "C18.9", "C50.9", "C61"), "af": ("I48.9",),
    "stroke_tia": ("I63.9", "G45.9"), "pad": ("I70.2",), "smi": ("F20.9", "F31.9"),
    "depression": ("F32.9", "T42.4"), "osteoporosis": ("S72.0", "S32.0"), "frailty": ("R54", "R29.6"),
    "rheumatoid_arthritis": ("M06.9",), "learning_disability": ("J69.0", "G40.9"), "obesity": ("E66.9",),
}
#: Registers with ambulatory-care-sensitive admissions (DOMAIN.md section 2).
ACS_CONDITIONS = ("asthma", "copd", "heart_failure", "chd", "diabetes", "hypertension", "epilepsy", "dementia")
#: Other emergency diagnoses by age group (children, adults, older people): infections, injuries, pain.
GENERAL_EMERGENCY_CODES: tuple[tuple[str, ...], ...] = (
    ("J06.9", "J21.9", "A09.9", "R50.9", "S06.0", "K35.8", "B34.9", "J18.9"),
    ("R07.4", "R10.4", "J18.9", "N39.0", "L03.1", "K80.2", "S52.5", "F10.0", "O03.9", "T39.1", "K35.8", "A41.9"),
    ("J18.9", "N39.0", "A41.9", "S72.0", "R07.4", "J22", "L03.1", "K56.6", "E87.1", "D50.9"),
)
ELECTIVE_CODES = ("H25.9", "M17.1", "M16.1", "K40.9", "N40", "K80.2", "Z51.1", "C50.9", "M51.1", "N81.2")
DAY_CASE_CODES = ("H25.9", "K63.5", "Z51.1", "D12.6", "M65.3", "N20.0", "L82", "K21.9", "H26.9", "G56.0")


def all_diagnosis_codes() -> tuple[str, ...]:
    """Every ICD-10 code the generator can emit, sorted: the dictionary of the diagnosis column."""
    codes = set(ELECTIVE_CODES) | set(DAY_CASE_CODES)
    for group in GENERAL_EMERGENCY_CODES:
        codes |= set(group)
    for group in CONDITION_ADMISSION_CODES.values():
        codes |= set(group)
    return tuple(sorted(codes))


def _check() -> None:
    assert set(PREV_SHAPE) == set(CHRONIC_CODES) == set(LIABILITY)
    assert set(PREVALENCE_TARGET) == set(CONDITION_CODES) == set(CONDITION_EFFECT)
    assert set(POINT_SETTINGS) | set(MONTHLY_SETTINGS) == set(SETTING_CODES)
    for shape in PREV_SHAPE.values():
        assert len(shape) == len(PREV_AGES) and np.all(np.diff(shape) >= 0)


_check()
