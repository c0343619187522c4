"""Fabricated person-feature frames for the capitation engine's tests and benchmarks.

Not a population model (``riskcap.synthetic`` is): just fast, seeded frames with the
column names and types of :func:`riskcap.features.build_features` that the capitation
engine reads, with plausible shapes (costs rising with LTC count, a few very high-cost
people, part-year registrations) so budgets, caps and corridors are exercised.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from riskcap.schema import CONDITION_CODES, SETTING_CODES

_PREVALENCE = {  # rough, rising with age via the multiplier below
    "hypertension": 0.14, "depression": 0.10, "obesity": 0.09, "diabetes": 0.07, "asthma": 0.065,
    "ckd": 0.04, "cancer": 0.03, "chd": 0.03, "af": 0.02, "copd": 0.02, "stroke_tia": 0.018,
    "heart_failure": 0.009, "smi": 0.009, "epilepsy": 0.008, "dementia": 0.008,
    "rheumatoid_arthritis": 0.008, "osteoporosis": 0.008, "pad": 0.006, "learning_disability": 0.005,
    "palliative": 0.005, "frailty": 0.03,
}
_MEAN_COST = {  # GBP per person-year at 0 LTCs, scaled up with LTC count
    "emergency_inpatient": 120, "elective_inpatient": 90, "day_case": 40, "outpatient": 60, "ae": 25,
    "gp": 80, "community": 30, "mental_health": 20, "social_care": 60, "prescribing": 70,
}


def make_features(n_people: int, n_practices: int = 20, seed: int = 0, n_icbs: int = 2,
                  with_scores: bool = False, settings=SETTING_CODES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random features frame and its practices table (practice_code, icb_code, list_size).

    Parameters
    ----------
    n_people, n_practices, seed
        Size and seed; the same arguments give the same frames.
    with_scores
        Also add risk_tier (0-4), risk_score, risk_percentile and predicted_cost_gbp.
    settings
        Settings to make cost columns for (base year and outcome year).
    """
    rng = np.random.default_rng(seed)
    n_practices = max(1, min(n_practices, max(n_people, 1)))
    codes = np.array([f"P{i:05d}" for i in range(n_practices)], dtype=object)
    sizes = rng.dirichlet(np.full(n_practices, 3.0)) * n_people
    practice = np.repeat(np.arange(n_practices), np.diff(np.round(np.concatenate([[0], np.cumsum(sizes)])).astype(int)))
    practice = np.concatenate([practice, np.full(n_people - practice.size, n_practices - 1)])[:n_people]
    age = np.minimum(rng.gamma(2.2, 18.0, n_people), 104).astype(np.int64)
    df = {"person_id": np.arange(1, n_people + 1, dtype=np.int64),
          "practice_code": pd.array(codes[practice], dtype="str"),
          "age": age, "male": rng.integers(0, 2, n_people).astype(np.uint8),
          "imd_decile": rng.integers(1, 11, n_people).astype(np.int64),
          "care_home": rng.random(n_people) < np.where(age >= 80, 0.08, 0.002)}
    old = np.clip(age / 60.0, 0.05, 3.0)
    count = np.zeros(n_people, dtype=np.int64)
    for code in CONDITION_CODES:
        flag = (rng.random(n_people) < _PREVALENCE.get(code, 0.01) * old).astype(np.uint8)
        df[f"ltc_{code}"] = flag
        if code not in ("frailty", "palliative"):
            count += flag
    df["ltc_count"] = count
    df["social_care_0_12"] = np.where(rng.random(n_people) < 0.02 * old, np.round(rng.gamma(2, 20, n_people), 1), 0.0)
    need = (1 + count) ** 1.6 * np.where(df["ltc_palliative"] == 1, 6, 1) * np.where(df["care_home"], 3, 1)
    for setting in settings:
        mean = _MEAN_COST[setting] * need
        for col, scale in ((f"cost_{setting}_0_12", 1.0), (f"cost_next_12m_{setting}", 1.05)):
            used = rng.random(n_people) < np.minimum(0.3 + 0.1 * count, 0.95)
            amount = rng.lognormal(np.log(mean * scale + 1) - 0.5, 1.0) * used
            df[col] = np.round(amount, 2)
    df["list_days_next_12"] = np.where(rng.random(n_people) < 0.9, 365, rng.integers(0, 366, n_people)).astype(np.int64)
    if with_scores:
        pct = rng.random(n_people) * 100
        df["risk_percentile"] = pct
        df["risk_score"] = np.round(pct).astype(np.int64)
        df["risk_tier"] = np.select([pct >= 99.5, pct >= 95, pct >= 80], [4, 3, 2], 1).astype(np.int8)
        df["predicted_cost_gbp"] = np.round(sum(_MEAN_COST.values()) * need * rng.lognormal(0, 0.3, n_people), 2)
    features = pd.DataFrame(df)
    icbs = np.array([f"Q{i:02d}" for i in range(max(1, n_icbs))], dtype=object)
    practices = pd.DataFrame({"practice_code": codes, "icb_code": icbs[np.arange(n_practices) % len(icbs)],
                              "list_size": np.bincount(practice, minlength=n_practices)})
    return features, practices


def run_on_features(features: pd.DataFrame, practices: pd.DataFrame | None, scenarios: list):
    """Scenarios evaluated on one fabricated features frame (base-year tariffs; no data folder, so
    no by-day exposure, joiners or registers): the capitation tables of
    :func:`riskcap.capitation.run.tabulate` for tests of the scenario logic. ``person_groups``:
    each scheme's per-person need groups."""
    from riskcap.capitation.population import PopulationBuilder
    from riskcap.capitation.run import aggregate_partition, need_group_table, plan_run, practice_notes, tabulate
    from riskcap.errors import DataError

    plan = plan_run(scenarios)
    if len(features) == 0:
        raise DataError("no people in the features (nobody registered and alive at the index date?)")
    part = aggregate_partition(features, plan, practices)
    populations = {}
    for key, population_part in part.parts.items():
        builder = PopulationBuilder(plan.schemes[key[0]])
        builder.add(population_part)
        populations[key] = builder.build()
    result = tabulate(plan, scenarios, populations, None if practices is None else practice_notes(practices, None))
    result.person_groups = {s.name: need_group_table(part, plan, w) for w, s in plan.schemes.items()}
    return result
