"""The report's sections: figures with a one-line plain-English reading, and tables.

Each ``*_section`` function turns :class:`~riskcap.report.outputs.RunOutputs` into a
:class:`Section`. Readings are computed from the same numbers as the figure (nothing is
boilerplate); a section whose inputs were not produced by the run says "not run" and why.
"""
from __future__ import annotations

import numpy as np

from riskcap.capitation.money import gbp
from riskcap.report import plots
from riskcap.report.html import Figure, Section, Table, missing, num, pct
from riskcap.report.levers import lever_tables
from riskcap.report.outputs import (ENGLAND_SHARE_18_PLUS, ENGLAND_SHARE_65_PLUS, MODEL_KINDS, RISK_KINDS,
                                    RunOutputs)
from riskcap.tiers import percent_label

#: Section ids, in report order (the HTML anchors; the rendering test checks every one).
SECTION_IDS: tuple[str, ...] = ("population", "models", "subgroups", "risk-pyramid", "need-groups", "budgets",
                                "distance-from-target", "settlement", "accuracy")
#: Practices within this fraction of their target / outturn count as "close".
BAND = 0.10
#: Per-practice tables in the HTML show at most this many practices (the files have them all).
MAX_TABLE_PRACTICES = 50


def _of(part: float, whole: float) -> str:
    """``part`` as a percentage of ``whole`` ("-" when ``whole`` is zero)."""
    return pct(part / whole) if whole else "-"


# --- Population ------------------------------------------------------------------------

def population_section(run: RunOutputs) -> Section:
    s = Section("population", "Population")
    pop = run.population
    if pop is None:
        s.not_run = run.missing.get("data", "no population data")
        return s
    date = run.index_date_text
    s.intro = (f"People registered with a practice and alive on {date} (the evaluation index date, "
               f"from {run.index_date_source}).")
    s.figures.append(Figure(
        "population-pyramid", "Registered population by age and sex",
        plots.population_pyramid(pop.pyramid["band"].tolist(), pop.pyramid["female"].to_numpy(),
                                 pop.pyramid["male"].to_numpy()),
        f"{pop.people:,} people are registered in {pop.practices:,} practice{'s' if pop.practices != 1 else ''} on "
        f"{date}; {pct(pop.share_65_plus)} are aged 65 or over (England {pct(ENGLAND_SHARE_65_PLUS)}) and "
        f"{pct(pop.share_under_18)} are under 18 (England {pct(1 - ENGLAND_SHARE_18_PLUS)})."))
    prev = pop.prevalence
    top = prev.sort_values(["prevalence", "condition"], ascending=[False, True], kind="stable").iloc[0]
    multi = pop.adults_2plus_ltc / pop.adults if pop.adults else float("nan")
    eng = f", England {pct(top['england'])}" if not missing(top["england"]) else ""
    s.figures.append(Figure(
        "ltc-prevalence", "Long-term conditions: recorded prevalence",
        plots.ltc_prevalence(prev["name"].tolist(), prev["prevalence"].to_numpy(), prev["england"].to_numpy()),
        f"{str(top['name'])[0].upper() + str(top['name'])[1:]} is the most commonly recorded condition "
        f"({pct(top['prevalence'])}{eng}); {pct(multi, 0)} of adults are on two or more disease registers."))
    s.tables.append(Table(
        "Recorded prevalence (denominator: people at or above the register's minimum age)",
        ["condition", "minimum age", "denominator", "on register", "prevalence", "England (QOF 2019/20)"],
        [[r.name, str(r.min_age), f"{r.denominator:,}", f"{r.registered:,}", pct(r.prevalence, 2), pct(r.england, 2)]
         for r in prev.itertuples()],
        [False, True, True, True, True, True]))
    return s


# --- Models ----------------------------------------------------------------------------

def gains_points(metrics: dict) -> tuple[np.ndarray, np.ndarray]:
    """(share of people enrolled, share of admitted people reached), highest risk first:
    the top fractions' sensitivity plus cumulative deciles from the top."""
    n, events = metrics["n"], metrics["events"]
    points = {}
    for key, k in metrics["top_n"].items():
        if metrics["sensitivity_at"].get(key) is not None:
            points[k / n] = metrics["sensitivity_at"][key]
    deciles = sorted(metrics["calibration_by_decile"], key=lambda d: -d["decile"])
    people = admitted = 0
    for d in deciles:
        people += d["n"]
        admitted += d["observed"]
        if events:
            points[people / n] = admitted / events
    xs = np.array(sorted(points))
    return xs, np.array([points[x] for x in xs])


def _calibration(metrics: dict) -> tuple[np.ndarray, np.ndarray]:
    deciles = sorted(metrics["calibration_by_decile"], key=lambda d: d["decile"])
    return (np.array([d["mean_predicted"] for d in deciles]), np.array([d["observed_rate"] for d in deciles]))


def models_section(run: RunOutputs) -> Section:
    s = Section("models", "Risk model: discrimination and calibration")
    primary = run.primary_model
    for kind in MODEL_KINDS:
        if kind not in run.metrics:
            s.notes.append(f"{kind} model: not run ({run.missing.get(f'evaluation:{kind}', 'no metrics')}).")
    if primary is None:
        s.not_run = "no risk model was evaluated (" + run.missing.get("evaluation:gbm", "no metrics") + ")"
        if "cost" in run.metrics:
            s.not_run = None
            s.tables.append(_cost_table(run.metrics["cost"]))
        return s
    m = run.metrics[primary]
    risk = {k: run.metrics[k] for k in RISK_KINDS if k in run.metrics}
    s.intro = (f"Probability of one or more emergency admissions in the 12 months after "
               f"{m.get('evaluation_index_date', run.index_date_text)}, for models trained at "
               f"{m.get('training_index_date', '?')}"
               + (" (temporal validation: the evaluation year was never seen in training)."
                  if m.get("temporal_validation") else ".")
               + f" The report leads with the {primary} model.")

    top = max(m["calibration_by_decile"], key=lambda d: d["decile"])
    oe = m.get("observed_expected")
    direction = ("under-predicts" if oe and oe > 1.05 else "over-predicts" if oe and oe < 0.95
                 else "predicts about right")
    s.figures.append(Figure(
        "calibration", "Calibration by risk decile",
        plots.calibration_curve({k: _calibration(v) for k, v in risk.items()}),
        f"In the highest-risk tenth the {primary} model predicted {pct(top['mean_predicted'])} would be admitted "
        f"and {pct(top['observed_rate'])} were; overall observed admissions were {num(oe, 2)} times those predicted, "
        f"so it {direction} (calibration slope {num(m.get('calibration_slope'), 2)})."))

    gains = {k: gains_points(v) for k, v in risk.items()}
    x, y = gains[primary]

    def reach(share: float) -> float:
        return float(np.interp(share, x, y))

    s.figures.append(Figure(
        "gains", "Gains curve", plots.gains_curve(gains),
        f"Enrolling the top 10% of people by {primary} risk reaches {pct(reach(0.1), 0)} of the people admitted "
        f"in the next year, and the top 20% reaches {pct(reach(0.2), 0)} (random enrolment: 10% and 20%)."))

    keys = list(m["ppv_at"])
    fractions = [float(k) for k in keys]
    pick = min(keys, key=lambda k: abs(float(k) - 0.02))
    pick_label = percent_label(100 * float(pick))
    s.figures.append(Figure(
        "ppv", "PPV and sensitivity at the top of the list",
        plots.ppv_at_top([percent_label(100 * f) for f in fractions], np.array([m["ppv_at"][k] or 0 for k in keys]),
                         np.array([m["sensitivity_at"][k] or 0 for k in keys]), m["prevalence"]),
        f"The top {pick_label} of people by risk ({m['top_n'][pick]:,} people) include "
        f"{pct(m['sensitivity_at'][pick], 0)} of those with an emergency admission in the next year; "
        f"{pct(m['ppv_at'][pick], 0)} of them were admitted, against {pct(m['prevalence'])} of everyone."))

    rows = []
    for kind, v in risk.items():
        rows.append([kind, f"{v['n']:,}", pct(v["prevalence"]), num(v["auroc"]), num(v.get("oracle_auroc")),
                     num(v["auprc"]), num(v["brier"], 4), num(v.get("calibration_slope"), 2),
                     num(v.get("calibration_intercept"), 2), num(v.get("observed_expected"), 2),
                     pct(v["ppv_at"].get(pick)), pct(v["sensitivity_at"].get(pick))])
    s.tables.append(Table(
        "Model comparison (evaluation year)",
        ["model", "people", "admitted", "AUROC", "oracle AUROC", "AUPRC", "Brier", "cal. slope", "cal. intercept",
         "obs / exp", f"PPV top {pick_label}", f"sensitivity top {pick_label}"],
        rows, [False] + [True] * 11,
        "oracle AUROC: the synthetic population's true probabilities on the same people (the best any model "
        "could do); '-' on real data."))
    s.tables.append(Table(
        f"Top of the {primary} risk list",
        ["top", "people", "PPV", "sensitivity", "enrol per admitted person reached"],
        [[percent_label(100 * float(k)), f"{m['top_n'][k]:,}", pct(m["ppv_at"][k]), pct(m["sensitivity_at"][k]),
          num(m["number_to_enrol_per_admission"].get(k), 1)] for k in keys],
        [False, True, True, True, True]))
    if "cost" in run.metrics:
        s.tables.append(_cost_table(run.metrics["cost"]))
    return s


def _cost_table(c: dict) -> Table:
    return Table(
        "Next-year cost model (fair-shares need)",
        ["people", "R² (person)", "R² (practice)", "predicted / observed", "mean observed", "mean predicted",
         "practices >10% off"],
        [[f"{c['n']:,}", num(c.get("r2")), num(c.get("practice_r2")), num(c.get("predicted_observed"), 2),
          gbp(c.get("mean_observed")), gbp(c.get("mean_predicted")),
          "-" if c.get("practices_10pct_off") is None else f"{c['practices_10pct_off']:,} of {c.get('practices', 0):,}"]],
        [True] * 7)


_SUBGROUP_LABEL = {"age_band": "age band", "sex": "sex", "imd_quintile": "deprivation quintile"}


def _group_label(kind: str, group) -> str:
    if kind == "sex":
        return {"F": "women", "M": "men"}.get(str(group), str(group))
    if kind == "imd_quintile":
        extra = ", most deprived" if str(group) == "1" else ", least deprived" if str(group) == "5" else ""
        return f"IMD Q{group}{extra}"
    return str(group)


def subgroups_section(run: RunOutputs) -> Section:
    s = Section("subgroups", "Subgroups: is the model fair across age, sex and deprivation?")
    primary = run.primary_model
    if primary is None or not run.metrics[primary].get("subgroups"):
        s.not_run = "no risk model was evaluated with subgroups" if primary is None else \
            f"evaluation/{primary}/metrics.json has no subgroups"
        return s
    m = run.metrics[primary]
    groups, rows = [], []
    for kind, items in m["subgroups"].items():
        for g in items:
            label = _group_label(kind, g["group"])
            if g.get("observed_expected") is not None:
                groups.append((_SUBGROUP_LABEL.get(kind, kind), label, g["observed_expected"]))
            rows.append([_SUBGROUP_LABEL.get(kind, kind), label, f"{g['n']:,}", pct(g["prevalence"]),
                         num(g.get("auroc")), num(g.get("observed_expected"), 2)])
    if not groups:
        s.not_run = f"evaluation/{primary}/metrics.json has no subgroup with admissions"
        return s
    lo = min(groups, key=lambda g: g[2])
    hi = max(groups, key=lambda g: g[2])
    age_auroc = [g["auroc"] for g in m["subgroups"].get("age_band", []) if g.get("auroc") is not None]
    within = (f"; AUROC within age bands is {min(age_auroc):.2f} to {max(age_auroc):.2f} against "
              f"{m['auroc']:.2f} overall" if age_auroc and m.get("auroc") is not None else "")
    s.intro = ("Observed / expected above 1 means the model under-predicts admissions for that group "
               "(people in it would be under-served by a risk threshold); below 1, over-predicts.")
    s.figures.append(Figure(
        "subgroup-calibration", "Observed / expected admissions by subgroup", plots.subgroup_ratios(groups),
        f"Observed / expected ranges from {lo[2]:.2f} ({lo[1]}) to {hi[2]:.2f} ({hi[1]}){within}."))
    s.tables.append(Table(f"Subgroups ({primary} model)", ["subgroup", "group", "people", "admitted", "AUROC",
                                                           "obs / exp"], rows, [False, False, True, True, True, True]))
    return s


# --- Risk pyramid ----------------------------------------------------------------------

def risk_pyramid_section(run: RunOutputs) -> Section:
    s = Section("risk-pyramid", "Risk pyramid by practice and case-finding lists")
    if run.scores is None and run.casefinding is None:
        s.not_run = run.missing.get("scores", "no scores")
        return s
    if run.scores is not None:
        sc = run.scores
        tiers = sc.tiers.index.tolist()
        counts = sc.by_practice
        shares = counts.div(counts.sum(axis=1), axis=0)
        top_tiers = tiers[:max(1, len(tiers) - 2)]
        top_share = shares[top_tiers].sum(axis=1)
        order = top_share.sort_values(ascending=False, kind="stable").index
        overall = float(sc.tiers.loc[top_tiers, "people"].sum() / sc.people)
        lo, hi = top_share.idxmin(), top_share.idxmax()
        s.intro = (f"Tiers of the whole scored population ({sc.people:,} people at {run.index_date_text}, "
                   f"{sc.model or 'risk'} model): each tier is a band of population risk percentiles, so practices "
                   "differ in how many of their people fall in each.")
        s.figures.append(Figure(
            "risk-pyramid", "Risk pyramid by practice",
            plots.risk_pyramid(list(order), tiers, shares.loc[order].to_numpy()),
            f"The share of people in the {' and '.join(top_tiers)} tier{'s' if len(top_tiers) > 1 else ''} ranges "
            f"from {pct(top_share[lo])} at {lo} to {pct(top_share[hi])} at {hi} ({pct(overall)} overall)."))
        s.tables.append(Table(
            "People by tier", ["tier", "people", "share", "lowest probability", "highest probability"],
            [[t, f"{int(r.people):,}", pct(r.people / sc.people), num(r.min_probability, 3), num(r.max_probability, 3)]
             for t, r in zip(tiers, sc.tiers.itertuples())],
            [False, True, True, True, True]))
    else:
        s.notes.append("Risk pyramid: not run (" + run.missing.get("scores", "no scores") + ").")
    cf = run.casefinding
    if cf is None:
        s.notes.append("Case-finding lists: not run (" + run.missing.get("casefinding", "") + ").")
        return s
    listed = cf.get("listed_by_tier", {})
    pyramid = [t["name"] for t in cf.get("pyramid", {}).get("tiers", []) if t.get("name") in listed]
    tiers = pyramid + [t for t in listed if t not in pyramid]  # from the top of the pyramid down
    rows = []
    practices = sorted(cf.get("practices", {}).items())
    shown = practices[:MAX_TABLE_PRACTICES]
    for code, p in shown:
        rows.append([code, f"{p['scored']:,}", f"{p['eligible']:,}", f"{p['listed']:,}",
                     *(f"{p['listed_by_tier'].get(t, 0):,}" for t in tiers), f"{p.get('impactable', 0):,}"])
    rows.append(["all", f"{cf['scored']:,}", f"{cf['eligible']:,}", f"{cf['listed']:,}",
                 *(f"{cf['listed_by_tier'][t]:,}" for t in tiers), f"{cf.get('impactable', 0):,}"])
    excluded = "; ".join(f"{k}: {v:,}" for k, v in cf.get("excluded", {}).items() if v) or "none"
    s.tables.append(Table(
        f"Case-finding lists at {cf.get('list_date', '?')}: {cf.get('selection', {}).get('description', '')}",
        ["practice", "scored", "eligible", "listed", *(f"listed: {t}" for t in tiers), "impactable"],
        rows, [False] + [True] * (4 + len(tiers)),
        f"Excluded before listing (each person once): {excluded}. Lists are in casefinding/practices/"
        + (f"; the table shows the first {len(shown):,} of {len(practices):,} practices (all are in "
           "casefinding/index.csv)." if len(shown) < len(practices) else ".")))
    return s


# --- Capitation ------------------------------------------------------------------------

def _not_run_capitation(s: Section, run: RunOutputs) -> Section:
    s.not_run = run.missing.get("capitation", "no capitation output")
    return s


def need_groups_section(run: RunOutputs) -> Section:
    s = Section("need-groups", "Need groups and Year of Care tariffs")
    cap = run.capitation
    if cap is None:
        return _not_run_capitation(s, run)
    base = cap.tariffs[cap.tariffs["scenario"] == cap.baseline].reset_index(drop=True)
    scheme = cap.scenarios[cap.baseline]["summary"].get("need_groups", "")
    people = base["people"].to_numpy(dtype=float)
    money = base["tariff_pence"].to_numpy(dtype=float) * base["list_days"].to_numpy(dtype=float)
    people_share = people / people.sum() if people.sum() else people
    money_share = money / money.sum() if money.sum() else money
    names = base["need_group_name"].tolist()
    s.intro = (f"Need groups of the '{scheme}' scheme (baseline scenario '{cap.baseline}'): each person is placed "
               "in the first group whose rule they meet; a group's tariff is its members' mean base-year in-scope "
               "cost, capped and uplifted as the scenario says.")
    used = base[base["people"] > 0]
    if used.empty:
        s.not_run = f"the baseline scenario '{cap.baseline}' has no one in any need group"
        return s
    big = int(np.argmax(money_share - people_share))
    cheap, dear = used.loc[used["tariff_pence"].idxmin()], used.loc[used["tariff_pence"].idxmax()]
    s.figures.append(Figure(
        "need-group-mix", "Need-group mix and tariffs",
        plots.need_group_mix(names, people_share, money_share, base["tariff_pence"].to_numpy() / 100),
        f"{names[big]} is {pct(people_share[big])} of people but draws {pct(money_share[big])} of the tariff money; "
        f"tariffs run from {gbp(cheap['tariff_pence'] / 100)} ({cheap['need_group_name']}) to "
        f"{gbp(dear['tariff_pence'] / 100)} ({dear['need_group_name']}) per person per year."))
    wide = cap.tariffs.pivot_table(index="need_group", columns="scenario", values="tariff_pence", aggfunc="first",
                                   sort=False)
    order = base["need_group"].tolist()
    scenario_names = [n for n in cap.names if n in wide.columns]
    rows = []
    for code, name, n in zip(order, names, base["people"]):
        rows.append([name, f"{int(n):,}", *(gbp(wide.loc[code, sc] / 100 if code in wide.index else None, 2)
                                            for sc in scenario_names)])
    s.tables.append(Table("Tariff per person per year by scenario (£)", ["need group", "people", *scenario_names],
                          rows, [False] + [True] * (1 + len(scenario_names)),
                          "Scenarios with another need-group scheme show '-' for groups they do not have."))
    return s


def budgets_section(run: RunOutputs) -> Section:
    s = Section("budgets", "Practice budgets per head by scenario")
    cap = run.capitation
    if cap is None:
        return _not_run_capitation(s, run)
    b = cap.budgets
    values = [b.loc[b["scenario"] == n, "budget_per_head_gbp"].to_numpy(dtype=float) for n in cap.names]
    spread = {n: (np.nanmin(v), np.nanmedian(v), np.nanmax(v)) for n, v in zip(cap.names, values) if np.isfinite(v).any()}
    if cap.baseline not in spread:
        s.not_run = f"the baseline scenario '{cap.baseline}' has no practice with registered people"
        return s
    lo, med, hi = spread[cap.baseline]
    # narrowest spread relative to the scenario's median (envelopes differ between scenarios)
    narrow = min(spread, key=lambda n: ((spread[n][2] - spread[n][0]) / spread[n][1] if spread[n][1] else np.inf, n))
    reading = (f"Under {cap.baseline}, practice budgets run from {gbp(lo)} to {gbp(hi)} per registered person "
               f"(median {gbp(med)})")
    if narrow != cap.baseline:
        reading += (f"; {narrow} gives the narrowest spread for its level ({gbp(spread[narrow][0])} to "
                    f"{gbp(spread[narrow][2])}, median {gbp(spread[narrow][1])})")
    s.intro = ("Each practice's budget for the outcome year divided by its registered people at the index date. "
               "Budgets add up to each scenario's envelope to the penny (see the workbook).")
    s.figures.append(Figure("budgets-per-head", "Practice budgets per head",
                            plots.budgets_per_head(cap.names, values), reading + "."))
    rows = []
    for sc in cap.summary["scenarios"]:
        rows.append([sc["scenario"], str(sc["mode"]), gbp(sc["envelope_pence"] / 100, 2),
                     gbp(sc.get("envelope_per_head_gbp"), 2),
                     gbp((sc["envelope_pence"] - cap.scenarios[cap.baseline]["summary"]["envelope_pence"]) / 100,
                         2, signed=True),
                     gbp((sc["contingency_pence"] + sc["withhold_pence"]) / 100, 2),
                     gbp(sc["pool_funding_pence"] / 100, 2)])
    s.tables.append(Table("Scenarios side by side",
                          ["scenario", "budget mode", "envelope", "per head", f"vs {cap.baseline}",
                           "contingency + withhold", "high-cost pool"], rows, [False, False] + [True] * 5))
    s.tables.extend(lever_tables(cap, "budgets"))
    return s


def distance_section(run: RunOutputs) -> Section:
    s = Section("distance-from-target", "Distance from target")
    cap = run.capitation
    if cap is None:
        return _not_run_capitation(s, run)
    b = cap.budgets
    base = b[b["scenario"] == cap.baseline]
    d = base["distance_from_target"].to_numpy(dtype=float)
    finite = np.isfinite(d)
    far = int((np.abs(d[finite]) > BAND).sum())
    s.intro = ("Distance from target = (current - target) / target, where current is each practice's base-year "
               "in-scope spend scaled to the envelope and target is its budget before any pace of change. "
               "Positive: the practice spends more than its target today.")
    if finite.any():
        i = int(np.nanargmax(np.abs(d)))
        code = base["practice_code"].iloc[i]
        reading = (f"Under {cap.baseline}, {far:,} of {int(finite.sum()):,} practices are more than {BAND:.0%} from "
                   f"their target; the furthest is {code} at {pct(d[i], 1, signed=True)} "
                   f"({'above' if d[i] > 0 else 'below'} target).")
    else:
        reading = f"Under {cap.baseline}, no practice has a target above zero."
    s.figures.append(Figure("distance-from-target", "Distance from target by practice",
                            plots.distance_from_target(base["practice_code"].tolist(), np.nan_to_num(d), BAND), reading))
    rows = []
    for name in cap.names:
        part = b[b["scenario"] == name]
        dist = part["distance_from_target"].to_numpy(dtype=float)
        target = part["target_pence"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            moved = np.where(target > 0, (part["budget_pence"].to_numpy(dtype=float) - target) / target, np.nan)
        ok = np.isfinite(dist)
        rows.append([name, pct(float(np.mean(np.abs(dist[ok]))) if ok.any() else None),
                     f"{int((np.abs(dist[ok]) > BAND).sum()):,} of {int(ok.sum()):,}",
                     pct(float(np.nanmean(np.abs(moved))) if np.isfinite(moved).any() else None)])
    s.tables.append(Table("Distance from target by scenario",
                          ["scenario", "mean |distance|", f"practices beyond ±{BAND:.0%}", "mean |budget - target| / target"],
                          rows, [False, True, True, True],
                          "The last column is zero unless a pace of change keeps budgets between current and target."))
    return s


def settlement_section(run: RunOutputs) -> Section:
    s = Section("settlement", "Settlement and risk-corridor exposure")
    cap = run.capitation
    if cap is None:
        return _not_run_capitation(s, run)
    base = cap.scenarios[cap.baseline]["summary"]
    basis, actual = base["basis_pence"] / 100, base["actual_pence"] / 100
    payer, provider = base["payer_share_pence"] / 100, base["provider_share_pence"] / 100
    variance = actual - basis
    share = payer / variance if variance else float("nan")
    s.intro = ("Back-test on the outcome year: each practice's actual in-scope cost (less what a high-cost pool pays) "
               "against its budget plus any withhold earned back; the variance is shared between commissioner and "
               "practice by the scenario's risk corridor. Totals are net over practices.")
    if variance > 0:
        reading = (f"Under {cap.baseline}, practices' actual costs were {gbp(variance)} ({_of(variance, basis)}) "
                   f"above budget; the risk corridor passes {gbp(payer)} ({pct(share, 0)}) of that to the "
                   f"commissioner and practices bear {gbp(provider)}.")
    elif variance < 0:
        reading = (f"Under {cap.baseline}, practices' actual costs were {gbp(-variance)} ({_of(-variance, basis)}) "
                   f"below budget; practices keep {gbp(-provider)} and the commissioner recovers {gbp(-payer)}.")
    else:
        reading = f"Under {cap.baseline}, practices' actual costs matched their budgets exactly."
    s.figures.append(Figure(
        "settlement-waterfall", f"Settlement waterfall ({cap.baseline})",
        plots.settlement_waterfall([("budgets\n(incl. withhold earned)", basis), ("borne by\npractices", provider),
                                    ("met by\ncommissioner", payer)], "actual\noutturn"),
        reading))
    c = cap.comparison.set_index("scenario")
    names = [n for n in cap.names if n in c.index]
    payer_by = c.loc[names, "payer_share_gbp"].to_numpy(dtype=float)
    hi, lo = names[int(np.argmax(payer_by))], names[int(np.argmin(payer_by))]
    s.figures.append(Figure(
        "corridor-exposure", "Risk-corridor exposure by scenario",
        plots.corridor_exposure(names, payer_by, c.loc[names, "provider_share_gbp"].to_numpy(dtype=float)),
        f"The commissioner's net share of the variance ranges from {gbp(payer_by.min(), signed=True)} under {lo} to "
        f"{gbp(payer_by.max(), signed=True)} under {hi}; it is {gbp(payer, signed=True)} under {cap.baseline}."))
    rows = []
    for sc in cap.summary["scenarios"]:
        rows.append([sc["scenario"], gbp(sc["basis_pence"] / 100), gbp(sc["actual_pence"] / 100),
                     gbp(sc["variance_pence"] / 100, signed=True), gbp(sc["payer_share_pence"] / 100, signed=True),
                     gbp(sc["provider_share_pence"] / 100, signed=True), gbp(sc["pool_funding_pence"] / 100),
                     gbp(sc["pool_outturn_pence"] / 100), gbp(sc["commissioner_balance_pence"] / 100, signed=True)])
    s.tables.append(Table(
        "Settlement by scenario", ["scenario", "budget basis", "actual", "variance", "commissioner share",
                                   "practices' share", "pool funding", "pool outturn", "commissioner balance"],
        rows, [False] + [True] * 8,
        "Commissioner balance: planned spend (budgets, top-slices and pool funding) minus what it paid out; "
        "negative means it paid more than planned."))
    s.tables.extend(lever_tables(cap, "settlement"))
    return s


def accuracy_section(run: RunOutputs) -> Section:
    s = Section("accuracy", "Accuracy of budgets against outturn")
    cap = run.capitation
    if cap is None:
        return _not_run_capitation(s, run)
    c = cap.comparison.set_index("scenario")
    names = [n for n in cap.names if n in c.index]
    r2 = c.loc[names, "r_squared"].astype(float)
    best = r2.fillna(-np.inf).idxmax() if r2.notna().any() else cap.baseline
    st = cap.settlement
    series = {}
    for name in dict.fromkeys([cap.baseline, best]):
        part = st[st["scenario"] == name]
        series[name] = (part["basis_pence"].to_numpy() / 100, part["actual_pence"].to_numpy() / 100)

    def describe(name: str) -> str:
        return (f"practice R² {num(c.loc[name, 'r_squared'], 2)}, {pct(c.loc[name, 'practices_within_10pct'], 0)} of "
                f"practices within ±{BAND:.0%}")

    reading = (f"{best} budgets track outturn best ({describe(best)})"
               + (f"; {cap.baseline}: {describe(cap.baseline)}." if best != cap.baseline else "."))
    s.intro = ("Predictive ratio = actual / budget (incl. withhold earned); 1 is a perfect match, above 1 the "
               "budget was too small. R² is over practices.")
    base = cap.scenarios.get(cap.baseline, {}).get("summary", {})
    if "tariff_method" in base:
        s.intro += (f" Tariffs: {base['tariff_method']}. Outturn read {gbp(base['outturn_read_pence'] / 100, 2)} = "
                    f"charged to practices {gbp(base['charged_to_practices_pence'] / 100, 2)} + unregistered (ICB) "
                    f"{gbp(base['unregistered_pence'] / 100, 2)}.")
    s.figures.append(Figure("accuracy-scatter", "Budget against outturn per practice",
                            plots.accuracy_scatter(series, BAND), reading))
    acc = cap.accuracy
    groups = acc[(acc["scenario"] == cap.baseline) & (acc["level"] == "need_group")]
    names_by_code = dict(zip(cap.tariffs["need_group"], cap.tariffs["need_group_name"]))
    groups = groups[groups["allocated_pence"] > 0]
    if len(groups):
        ratio = groups["predictive_ratio"].to_numpy(dtype=float)
        labels = [names_by_code.get(u, u) for u in groups["unit"]]
        under, over = int(np.nanargmax(ratio)), int(np.nanargmin(ratio))
        s.figures.append(Figure(
            "need-group-accuracy", f"Predictive ratio by need group ({cap.baseline})",
            plots.predictive_ratios(labels, ratio),
            f"Under {cap.baseline}, {labels[under]} cost {ratio[under]:.2f} times the money allocated to it "
            f"(most under-funded) and {labels[over]} {ratio[over]:.2f} times (most over-funded)."))
    rows = [[n, num(c.loc[n, "predictive_ratio"], 3), pct(c.loc[n, "practices_within_10pct"], 0),
             num(c.loc[n, "r_squared"], 3)] for n in names]
    s.tables.append(Table("Accuracy by scenario", ["scenario", "predictive ratio", f"practices within ±{BAND:.0%}",
                                                   "practice R²"], rows, [False, True, True, True]))
    return s


def build_sections(run: RunOutputs) -> list[Section]:
    """All report sections, in :data:`SECTION_IDS` order."""
    sections = [population_section(run), models_section(run), subgroups_section(run), risk_pyramid_section(run),
                need_groups_section(run), budgets_section(run), distance_section(run), settlement_section(run),
                accuracy_section(run)]
    assert [s.id for s in sections] == list(SECTION_IDS)
    return sections


def headline(run: RunOutputs) -> list[tuple[str, str]]:
    """Key numbers for the top of the report (label, value)."""
    items = [("index date", run.index_date_text)]
    if run.population is not None:
        items.append(("people registered", f"{run.population.people:,}"))
        items.append(("practices", f"{run.population.practices:,}"))
    if run.primary_model:
        m = run.metrics[run.primary_model]
        items.append((f"AUROC ({run.primary_model})", num(m["auroc"])))
    if run.casefinding is not None:
        items.append(("people on case-finding lists", f"{run.casefinding['listed']:,}"))
    if run.capitation is not None:
        cap = run.capitation
        base = cap.scenarios[cap.baseline]["summary"]
        items.append((f"envelope ({cap.baseline})", gbp(base["envelope_pence"] / 100)))
        items.append(("scenarios", f"{len(cap.names)}"))
    return items


def provenance(run: RunOutputs) -> list[tuple[str, str]]:
    """What the report was built from: parts not run, data and model fingerprints."""
    from riskcap import __version__

    items = [("riskcap", __version__), ("index date from", run.index_date_source)]
    digest = run.fingerprints.get("data_digest")
    if digest:
        items.append(("data fingerprint", f"{digest} (SHA-256 over the contract tables; every file's SHA-256 is "
                                          "in the workbook's Assumptions sheet)"))
    for kind, meta in run.fingerprints.get("models", {}).items():
        trained_on = meta.get("data_fingerprint") or "?"
        same = "" if not digest or trained_on == "?" else \
            " (this run's data)" if trained_on == digest else " (NOT this run's data)"
        items.append((f"{kind} model", f"trained at {meta.get('training_index_date') or '?'} on data "
                                       f"{trained_on}{same}"))
    for part, why in run.missing.items():
        items.append((f"not run: {part}", why))
    return items
