"""Calibration targets of the synthetic population and how close a generated one came.

Statistics are integer counters per practice (:func:`riskcap.synthetic.population._practice_stats`)
measured in the last simulated year among people present (registered, or between lists) and
alive at its start; they are summed over partitions (maxima for tails, per-practice entries
by practice code) and turned into ``calibration.json`` here. Integer sums do not depend on
the order of addition, so the report does not depend on the partition size.
"""
from __future__ import annotations

import numpy as np

from riskcap.schema import CONDITION_CODES, SETTING_CODES
from riskcap.synthetic import params as P
from riskcap.synthetic.population import AGE_BANDS, AUROC_BINS, FORMULA_TERMS, P_SCALE, QTY_EDGES

#: Emergency admission: share of people with 1+ in a year by age band (DOMAIN.md); None = no target.
AGE_GRADIENT_TARGET = {"0-49": 0.045, "50-59": None, "60-69": 0.10, "70-79": 0.17, "80+": 0.30}
AGE_GRADIENT_TOLERANCE = 0.30  # relative
PREVALENCE_TOLERANCE = 0.15  # relative, the target
COST_TARGET = {"1": 1000.0, "2": 3000.0, "3+": 8000.0}
COST_TOLERANCE = 0.30  # relative ("about")


def merge_stats(total: dict, part: dict) -> dict:
    """Add one practice's (or partition's) counters into ``total`` (in place) and return it.

    Counters add up, ``max_*`` counters keep the maximum, and ``practices`` (per practice code)
    merge entry by entry.
    """
    for key, value in part.items():
        if isinstance(value, dict):
            merge_stats(total.setdefault(key, {}), value)
        elif key not in total:
            total[key] = np.array(value, copy=True) if np.ndim(value) else value
        elif key.startswith("max_"):
            total[key] = np.maximum(total[key], value)
        else:
            total[key] = total[key] + value
    return total


def auroc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUROC from counts of positives and negatives per score bin (ties count one half)."""
    pos = np.asarray(pos, dtype=float)
    neg = np.asarray(neg, dtype=float)
    if pos.sum() == 0 or neg.sum() == 0:
        return float("nan")
    neg_below = np.cumsum(neg) - neg
    return float((pos * (neg_below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def _target(name, target, achieved, ok, unit="", note="", source=""):
    entry = {"name": name, "target": target, "achieved": achieved, "pass": bool(ok)}
    if unit:
        entry["unit"] = unit
    if note:
        entry["note"] = note
    if source:
        entry["source"] = source
    return entry


def _rel(value, target, tol):
    return bool(np.isfinite(value) and abs(value / target - 1) <= tol)


def _between(name, low, high, value, digits=4, **kw):
    value = float(value)
    return _target(name, [low, high], float(np.round(value, digits)), low <= value <= high, **kw)


#: Utilisation per registered person-year (activity of everyone in the year, over registered
#: person-years): setting -> (name, low, high, source). docs/synthetic.md gives the arithmetic.
VOLUME_TARGETS = {
    "gp": ("gp_appointments_per_person_year", 5.0, 6.2,
           "NHS England, Appointments in General Practice: 367.4 million appointments in 2024 for 63.7 million "
           "registered, 5.8 a patient (Institute for Government, Performance Tracker 2025); about half with a GP"),
    "prescribing": ("prescription_items_per_person_year", 17.0, 22.0,
                    "NHSBSA Prescription Cost Analysis 2023/24: 1.21 billion items dispensed in the community "
                    "(2024/25: 1.26 billion), about 19 per registered person"),
    "outpatient": ("outpatient_attendances_per_person_year", 1.3, 1.9,
                   "NHS England, Hospital Outpatient Activity (HES): 95.9 million attended appointments in 2022-23 "
                   "(96.4 million in 2019-20), about 1.55 per registered person"),
    "ae": ("ae_attendances_per_person_year", 0.33, 0.50,
           "NHS Digital, Hospital Accident and Emergency Activity (HES): 23.8 million attendances in 2017-18, "
           "24.0 million in 2021-22, about 0.4 per registered person"),
    "emergency_inpatient": ("emergency_admissions_per_person_year", 0.07, 0.11,
                            "about 6.3 million emergency admissions in 2023 (NHS England A&E and emergency "
                            "admissions monthly returns); DOMAIN.md: about 85 per 1,000"),
}
#: Physically plausible ceilings of one person's quantity in a year: setting -> (limit, why).
TAIL_LIMITS = {
    "prescribing": (1200, "weekly dispensing of 20 regular medicines is about 1,040 items; twenty items a day is 7,300"),
    "gp": (150, "about three appointments a week, every week"),
    "outpatient": (220, "in-centre haemodialysis three times a week is 156 sessions"),
    "ae": (120, "the most frequent A&E attenders come about weekly or more"),
    "emergency_inpatient": (40, "frequent admitters have 10-30 admissions a year"),
}
#: NHS England's person-based formula (PBRA; Dixon et al., BMJ 2011;343:d6608, table 1): person-level
#: R-squared 0.12; practice-level 0.61 (age, sex and diagnoses) to 0.77-0.79 (with area needs and
#: PCT effects) on 797 practices; "about a third of practices" 10% or more from outturn.
PBRA_SOURCE = ("Dixon J et al. A person based formula for allocating commissioning funds to general practices "
               "in England. BMJ 2011;343:d6608 (practice-level R-squared 0.77; a third of practices 10%+ off)")
FORMULA_MIN_PEOPLE = 500
#: Practice-level statistics are targets (pass/fail) only with this many practices of
#: FORMULA_MIN_PEOPLE or more: "a third of practices" cannot be measured on 17.
FORMULA_MIN_PRACTICES = 50
NEED_MIN_PRACTICES = 30


def quantile_from_histogram(hist: np.ndarray, q: float) -> float:
    """Lower edge of the histogram bin (``QTY_EDGES``) holding the q-quantile."""
    cum = np.cumsum(hist)
    if cum[-1] == 0:
        return float("nan")
    return float(QTY_EDGES[int(np.searchsorted(cum, q * cum[-1], side="left"))])


def formula_fit(stats: dict) -> dict:
    """The demographic-plus-morbidity formula and how well it explains practice outturn.

    A person-level OLS of next-year cost (pounds, the last simulated year) on
    ``FORMULA_TERMS`` (age-sex bands, IMD quintile, care home, the registers at the year's
    start), fitted on everyone registered at its start; each practice's predicted cost is the
    sum over its people. Practice-level R-squared is list-weighted, on cost per head:
    ``1 - sum n (a - f)^2 / sum n (a - mean a)^2`` with ``a`` actual and ``f`` predicted per head,
    over practices with at least FORMULA_MIN_PEOPLE people; "10% off" means ``|a / f - 1| > 0.1``.
    """
    xtx = np.asarray(stats["formula_xtx"], dtype=float)
    xty = np.asarray(stats["formula_xty"], dtype=float)
    keep = np.diag(xtx) > 0
    beta = np.zeros(len(xty))
    beta[keep] = np.linalg.lstsq(xtx[np.ix_(keep, keep)], xty[keep], rcond=None)[0]
    n = float(stats["formula_n"])
    codes, people, actual, predicted = [], [], [], []
    for code, entry in sorted(stats.get("practices", {}).items()):
        if entry.get("n", 0) >= FORMULA_MIN_PEOPLE:
            codes.append(code)
            people.append(float(entry["n"]))
            actual.append(float(entry["y"]))
            predicted.append(float(np.asarray(entry["x"], dtype=float) @ beta))
    people, actual, predicted = np.array(people), np.array(actual), np.array(predicted)
    out = {"terms": list(FORMULA_TERMS), "coefficients_gbp": [float(np.round(b, 2)) for b in beta], "practices": len(codes)}
    # person level: R-squared from the sums (sum y = the intercept-free fit's mean times n)
    ss_res = float(stats["formula_yy"]) - float(beta @ xty)
    y_sum = sum(float(e["y"]) for e in stats.get("practices", {}).values() if "y" in e)
    ss_tot = float(stats["formula_yy"]) - y_sum * y_sum / max(n, 1)
    out["person_r2"] = 1 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    if len(codes) >= 3:
        a, f = actual / people, predicted / people
        mean_a = (people * a).sum() / people.sum()
        out["practice_r2"] = float(1 - (people * (a - f) ** 2).sum() / (people * (a - mean_a) ** 2).sum())
        off = np.abs(a / f - 1) > 0.10
        out["share_10pct_off"] = float(off.mean())
        out["need_per_head"] = dict(zip(codes, (f / ((people * f).sum() / people.sum())).tolist()))
    return out


def _need_dispersion(fit: dict, practices) -> tuple[float, float, float]:
    """SD of log formula need per head and of log need_index over the same practices, and their ratio."""
    need = fit.get("need_per_head", {})
    if practices is None or "need_index" not in practices or len(need) < 3:
        return float("nan"), float("nan"), float("nan")
    index = dict(zip(practices["practice_code"].astype(str), practices["need_index"].astype(float)))
    pairs = np.array([(need[c], index.get(c, np.nan)) for c in need], dtype=float)
    pairs = pairs[np.isfinite(pairs).all(axis=1) & (pairs > 0).all(axis=1)]
    if len(pairs) < 3:
        return float("nan"), float("nan"), float("nan")
    ours, theirs = np.log(pairs[:, 0]).std(), np.log(pairs[:, 1]).std()
    return float(ours), float(theirs), float(ours / theirs) if theirs > 0 else float("nan")


def coding_up_report(stats: dict, practices, years: int) -> dict:
    """For evaluators: over the coding-up year, growth of register entries and of true conditions
    among each practice's stayers (registered there at its start and a year later), for each
    practice that codes up and for the other practices of its ICB (pooled); and the largest
    excess among practices that do not code up (with FORMULA_MIN_PEOPLE stayers or more)."""
    if practices is None or "coding_up_day" not in practices:
        return {}
    from riskcap.synthetic.calendar import Calendar, to_date
    from riskcap.synthetic.registration import NEVER

    starts = [int(d) for d in Calendar(years).year_starts[:-1]]
    per = stats.get("practices", {})
    frame = practices.assign(code=practices["practice_code"].astype(str)).set_index("code")
    coding = frame[frame["coding_up_day"] < NEVER]
    if coding.empty or int(coding["coding_up_day"].iloc[0]) not in starts[:-1]:
        return {}
    k = starts.index(int(coding["coding_up_day"].iloc[0]))

    def growth(codes):
        keys = ("stayers_t", "registers_from_t", "registers_to_t", "conditions_from_t", "conditions_to_t")
        total = np.zeros(5)
        for c in codes:
            e = per.get(c, {})
            if "stayers_t" in e:
                total += np.array([float(e[key][k]) for key in keys])
        if total[1] <= 0 or total[3] <= 0:
            return float("nan"), float("nan"), int(total[0])
        return total[2] / total[1] - 1, total[4] / total[3] - 1, int(total[0])

    out, excess_others = [], []
    for _, group in frame.groupby("icb_code"):
        others = [c for c in group.index if group.at[c, "coding_up_day"] >= NEVER]
        icb_reg, icb_cond, _ = growth(others)
        for c in group.index:
            reg, cond, stayers = growth([c])
            if group.at[c, "coding_up_day"] < NEVER:
                out.append({"practice_code": c, "from": to_date(int(group.at[c, "coding_up_day"])).isoformat(),
                            "uplift": float(group.at[c, "coding_up_uplift"]), "stayers": stayers,
                            "register_growth": round(reg, 4), "condition_growth": round(cond, 4),
                            "icb_register_growth": round(icb_reg, 4), "icb_condition_growth": round(icb_cond, 4),
                            "excess_register_growth": round(reg - icb_reg, 4)})
            elif np.isfinite(reg) and np.isfinite(icb_reg) and stayers >= FORMULA_MIN_PEOPLE:
                excess_others.append(reg - icb_reg)
    return {"note": "register entries (all disease registers and frailty but cancer and learning disability) and true "
                    "conditions of the people registered with the practice at the start of the coding-up year and a "
                    "year later, growth between the two dates; for evaluation only, never a model input",
            "practices": out,
            "largest_excess_among_others": round(float(max(excess_others)), 4) if excess_others else None}


def summarise(stats: dict, years: int, prevalence_tolerance: float = PREVALENCE_TOLERANCE, practices=None) -> dict:
    """Targets and achieved values from summed counters.

    Parameters
    ----------
    stats : dict
        Merged counters.
    years : int
        Simulated years.
    practices : pandas.DataFrame, optional
        The plan's practices (``need_index``, coding up) for the need-dispersion target and
        the coding-up report.

    Returns
    -------
    dict
        ``{"measured_in": ..., "targets": [{name, target, achieved, pass, ...}], "passed": n, "failed": n, ...}``;
        targets are values (with a relative ``tolerance``) or ``[low, high]`` ranges.
    """
    out = []
    people = float(stats["people"])
    r = lambda v, d=4: float(np.round(v, d))  # noqa: E731
    share18, share65 = stats["age_18_plus"] / people, stats["age_65_plus"] / people
    out.append(_target("age_18_plus_share", [0.787, 0.807], r(share18), 0.787 <= share18 <= 0.807))
    out.append(_target("age_65_plus_share", [0.165, 0.185], r(share65), 0.165 <= share65 <= 0.185))
    for j, code in enumerate(CONDITION_CODES):
        target, min_age = P.PREVALENCE_TARGET[code]
        prev = stats["prev_num"][j] / max(stats["prev_den"][j], 1)
        entry = _target(f"prevalence_{code}", target, r(prev, 5), _rel(prev, target, prevalence_tolerance),
                        note=(f"denominator age {min_age}+" if min_age else "denominator whole list")
                        + f"; recorded on the register (true prevalence {stats['true_prev_num'][j] / max(stats['prev_den'][j], 1):.5f})")
        entry["tolerance_relative"] = prevalence_tolerance
        if code == "frailty":
            entry["note"] += "; target approx. (moderate/severe eFI ~15% of 65+)"
        out.append(entry)
    admitted = stats["admitted"] / people
    out.append(_target("emergency_admitted_share", [0.05, 0.07], r(admitted), 0.05 <= admitted <= 0.07,
                       note="people with 1+ emergency admissions in the year"))
    for k, (lo, hi) in enumerate(AGE_BANDS):
        label = f"{lo}-{hi - 1}" if hi < 200 else f"{lo}+"
        if lo == 0:
            label = "0-49"
        value = stats["band_admitted"][k] / max(stats["band_people"][k], 1)
        target = AGE_GRADIENT_TARGET[label]
        if target is None:
            out.append(_target(f"emergency_admitted_share_age_{label}", None, r(value), True, note="reported only"))
        else:
            entry = _target(f"emergency_admitted_share_age_{label}", target, r(value), _rel(value, target, AGE_GRADIENT_TOLERANCE))
            entry["tolerance_relative"] = AGE_GRADIENT_TOLERANCE
            out.append(entry)
    per_admitted = stats["admissions"] / max(stats["admitted"], 1)
    out.append(_target("admissions_per_admitted_person", [1.35, 1.65], r(per_admitted, 3), 1.35 <= per_admitted <= 1.65))
    once = stats["admitted_once"] / max(stats["admitted"], 1)
    out.append(_target("admitted_exactly_once_share", [0.64, 0.78], r(once, 3), 0.64 <= once <= 0.78))
    per_1000 = 1000 * stats["admissions"] / people
    out.append(_target("emergency_admissions_per_1000", [70, 100], r(per_1000, 1), 70 <= per_1000 <= 100))
    zero = stats["zero_day_spells"] / max(stats["emergency_spells"], 1)
    out.append(_target("zero_day_stay_share", [0.25, 0.40], r(zero, 3), 0.25 <= zero <= 0.40, note="about a third"))
    spell_cost = stats["emergency_cost"] / 100 / max(stats["emergency_spells"], 1)
    out.append(_target("emergency_spell_mean_cost_gbp", [1600, 3000], r(spell_cost, 0), 1600 <= spell_cost <= 3000))
    acs = stats["acs_spells"] / max(stats["emergency_spells"], 1)
    out.append(_target("acs_admission_share", None, r(acs, 3), True, note="reported only"))
    # multimorbidity (recorded registers)
    hist = stats["adult_ltc_hist"]
    adults = max(float(stats["adults"]), 1)
    mm_all = stats["adult_all_registers_hist"][2:].sum() / adults
    out.append(_target("adult_multimorbidity_2plus", [0.20, 0.35], r(mm_all), 0.20 <= mm_all <= 0.35,
                       note="adults with 2+ of the 21 condition codes (disease registers, frailty, palliative)"))
    mm2 = hist[2:].sum() / adults
    out.append(_target("adult_multimorbidity_2plus_disease_registers", None, r(mm2), True,
                       note="reported only: 2+ of the 19 disease registers (ltc_count); with QOF prevalences "
                            "fixed (0.79 registers per adult) this sits near 20%, as QOF-based studies find"))
    p_adult = stats["adult_prev_num"] / adults
    pmf = np.array([1.0])
    for p in p_adult:  # Poisson-binomial: number of registers if they were independent
        pmf = np.convolve(pmf, [1 - p, p])
    obs3, exp3 = hist[3:].sum() / adults, pmf[3:].sum()
    ratio = obs3 / exp3 if exp3 > 0 else float("nan")
    out.append(_target("adult_3plus_observed_over_independent", ">= 2", r(ratio, 2), bool(ratio >= 2),
                       note=f"observed {obs3:.4f} vs {exp3:.4f} if registers were independent"))
    # costs
    labels = ["0", "1", "2", "3+"]
    means = stats["cost_sum"] / 100 / np.maximum(stats["cost_people"], 1)
    out.append(_target("mean_annual_cost_gbp_ltc_0", None, r(means[0], 0), True, note="reported only"))
    for k in (1, 2, 3):
        target = COST_TARGET[labels[k]]
        entry = _target(f"mean_annual_cost_gbp_ltc_{labels[k]}", target, r(means[k], 0), _rel(means[k], target, COST_TOLERANCE))
        entry["tolerance_relative"] = COST_TOLERANCE
        out.append(entry)
    ltc_share = stats["ltc_people"] / people
    spend_share = stats["cost_ltc_people"] / max(stats["cost_total"], 1)
    out.append(_target("ltc_people_share", None, r(ltc_share), True, note="reported only (about 30%)"))
    out.append(_target("ltc_people_spend_share", None, r(spend_share), True, note="reported only (about 70%)"))
    deaths = stats["deaths"] / people
    out.append(_target("deaths_per_person_year", [0.007, 0.012], r(deaths, 5), 0.007 <= deaths <= 0.012))
    # utilisation volumes and their tails
    person_years = float(stats["registered_days"]) / 365.25
    for setting, (name, low, high, source) in VOLUME_TARGETS.items():
        k = SETTING_CODES.index(setting)
        out.append(_between(name, low, high, stats["quantity"][k] / person_years, 3, source=source,
                            note="all activity in the year (rows' quantity) per registered person-year"))
    for setting, (limit, why) in TAIL_LIMITS.items():
        k = SETTING_CODES.index(setting)
        top = int(stats["max_quantity"][k])
        p999 = quantile_from_histogram(stats["quantity_hist"][k], 0.999)
        out.append(_target(f"max_{setting}_per_person_year", f"<= {limit}", top, top <= limit,
                           note=f"{why}; 99.9th centile about {p999:g} (lower bin edge)"))
    # practice variation: the demographic-plus-morbidity formula against outturn
    fit = formula_fit(stats)
    if "practice_r2" in fit:
        enough = fit["practices"] >= FORMULA_MIN_PRACTICES
        few = "" if enough else f"; reported only: fewer than {FORMULA_MIN_PRACTICES} practices to measure it on"
        for name, low, high, value in (("formula_practice_r2", 0.65, 0.88, fit["practice_r2"]),
                                       ("formula_practices_10pct_off_share", 0.2, 0.5, fit["share_10pct_off"])):
            entry = _between(name, low, high, value, 3, source=PBRA_SOURCE,
                             note=f"list-weighted, cost per head, {fit['practices']} practices with "
                                  f"{FORMULA_MIN_PEOPLE}+ people (see formula_fit){few}")
            entry["pass"] = entry["pass"] or not enough
            out.append(entry)
    out.append(_target("formula_person_r2", None, r(fit["person_r2"], 3), True, source=PBRA_SOURCE,
                       note="reported only (PBRA: about 0.12)"))
    ours, theirs, ratio = _need_dispersion(fit, practices)
    if np.isfinite(ratio):
        enough = fit["practices"] >= NEED_MIN_PRACTICES
        entry = _between("need_dispersion_ratio", 0.8, 1.25, ratio, 3,
                         note=f"SD of log formula need per head {ours:.3f} over SD of log need_index {theirs:.3f}, "
                              "same practices" + ("" if enough else f"; reported only: fewer than {NEED_MIN_PRACTICES} practices"))
        entry["pass"] = entry["pass"] or not enough
        out.append(entry)
    # registration histories
    ever = float(stats["people_ever"])
    out.append(_target("people_with_2plus_registrations_share", None, r(stats["people_moved"] / ever), True,
                       note="reported only: people ever registered with two or more periods (moves, returns, lists "
                            "closing or merging)"))
    # truth
    aurocs = []
    for t in range(years):
        sl = slice(t * AUROC_BINS, (t + 1) * AUROC_BINS)
        aurocs.append(auroc_from_histograms(stats["auroc_pos"][sl], stats["auroc_neg"][sl]))
    auc = aurocs[-1]
    out.append(_target("truth_auroc_outcome_year", [0.80, 0.85], r(auc), 0.80 <= auc <= 0.85,
                       note="AUROC of truth.p_emergency at the last year start vs 1+ emergency admissions in that year"))
    expected = stats["truth_p_sum"][-1] / P_SCALE / max(stats["truth_n"][-1], 1)
    observed = stats["truth_y_sum"][-1] / max(stats["truth_n"][-1], 1)
    out.append(_target("truth_observed_over_expected", [0.9, 1.1], r(observed / expected, 3), 0.9 <= observed / expected <= 1.1))
    report = {
        "measured_in": "last simulated year, people present (registered or between lists) and alive at its start",
        "people_measured": int(people),
        "truth_auroc_by_year": [r(a) for a in aurocs],
        "targets": out,
        "passed": sum(t["pass"] for t in out),
        "failed": sum(not t["pass"] for t in out),
        "formula": {k: v for k, v in fit.items() if k != "need_per_head"},
    }
    coding = coding_up_report(stats, practices, years)
    if coding:
        report["coding_up"] = coding
    return report
