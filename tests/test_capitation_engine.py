"""Tariffs, budgets, settlement and accuracy: fast path == pandas reference, pence add up exactly."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskcap.capitation import accuracy
from riskcap.capitation.engine import evaluate
from riskcap.capitation.money import PPM
from riskcap.capitation.population import Population, attach_scores
from riskcap.capitation.tails import select_tail
from riskcap.capitation.scenario import HEALTH_SETTINGS, load_scenario, parse_scenario
from riskcap.capitation.scheme import assign_need_groups, load_scheme
from riskcap.capitation.settlement import settle
from riskcap.capitation.tariffs import compute_tariffs
from riskcap.errors import ConfigError, DataError
from reference import capitation as naive
from reference.fabricated import make_features

SCHEME = load_scheme("yoc_illustrative")


@pytest.fixture(scope="module")
def population_frames():
    return make_features(4000, 12, seed=11, with_scores=True)


def population(features, practices, settings=HEALTH_SETTINGS, scheme=SCHEME):
    return Population.from_features(features, scheme, settings, practices)


def round_half_up(x: Fraction) -> int:
    return int(x + Fraction(1, 2)) if x >= 0 else -int(-x + Fraction(1, 2))


# --- fast path == pandas reference -----------------------------------------------------

@pytest.mark.parametrize("name", ["baseline", "cap_p99", "uplift_2_9_eff_1_1", "outcome_withhold_10",
                                  "social_care_pooled", "asymmetric_corridor"])
def test_tariff_budgets_equal_pandas_reference(population_frames, name):
    features, practices = population_frames
    scenario = load_scenario(name)
    result = evaluate(population(features, practices, scenario.settings), scenario)
    ref = naive.tariff_budgets(features, SCHEME, scenario)
    assert result.tariffs.tariff_pence.tolist() == ref["tariffs"].tolist()
    assert result.budgets.budget_pence.tolist() == ref["budgets"]["budget_pence"].tolist()
    assert list(result.population.practice_codes) == ref["budgets"]["practice_code"].tolist()
    assert (result.budgets.gross_pence, result.budgets.contingency_pence, result.budgets.withhold_pence) == \
        (ref["gross"], ref["contingency"], ref["withhold"])


def test_population_aggregates_equal_pandas_groupby(population_frames):
    features, practices = population_frames
    pop = population(features, practices)
    df = pd.DataFrame({"practice": features["practice_code"].astype(str), "group": assign_need_groups(features, SCHEME),
                       "days": features["list_days_next_12"],
                       "base": sum((features[f"cost_{s}_0_12"] * 100).round().astype("int64") for s in HEALTH_SETTINGS),
                       "outcome": sum((features[f"cost_next_12m_{s}"] * 100).round().astype("int64") for s in HEALTH_SETTINGS),
                       "need": (features["predicted_cost_gbp"] * 100).round().astype("int64") * features["list_days_next_12"]})
    sums = df.groupby(["practice", "group"]).agg(people=("days", "size"), days=("days", "sum"), base=("base", "sum"),
                                                 outcome=("outcome", "sum"), need=("need", "sum"))
    codes = list(pop.practice_codes)
    for (practice, group), row in sums.iterrows():
        p = codes.index(practice)
        assert (pop.people[p, group], pop.list_days[p, group], pop.base[p, group], pop.outcome[p, group],
                pop.need_days[p, group]) == tuple(row)
    assert pop.people.sum() == len(features)
    assert list(pop.icb_codes) == practices.set_index("practice_code").loc[codes, "icb_code"].tolist()


def test_tariffs_by_hand():
    # four people in one group: base costs 100, 200, 300 and 10,000 GBP; cap at p75 -> 300 GBP
    frame = pd.DataFrame({"person_id": [1, 2, 3, 4], "practice_code": ["A", "A", "B", "B"],
                          "age": np.array([30, 40, 50, 60], np.int32), "list_days_next_12": [365, 365, 100, 0],
                          "cost_gp_0_12": [100.0, 200.0, 300.0, 10_000.0], "cost_next_12m_gp": [50.0, 0, 0, 20_000.0]})
    scheme_data = {"name": "one", "groups": [{"id": "all", "rules": [[]]}]}
    from riskcap.capitation.scheme import parse_scheme
    scheme = parse_scheme(scheme_data)
    pop = Population.from_features(frame, scheme, ["gp"])
    scenario = parse_scenario({"name": "t", "settings": ["gp"], "tariff": {
        "cap_percentile": 75, "excess": "pool", "demographic_growth_pct": 1, "cost_uplift_pct": 2.9,
        "efficiency_pct": 1.1}, "top_slices": {"contingency_pct": 1.5}})
    uplift = Fraction(101, 100) * Fraction(1029, 1000) * Fraction(989, 1000)
    tariffs = compute_tariffs(pop, scenario)
    assert tariffs.cap_pence == 30_000
    assert tariffs.tariff_pence.tolist() == [round_half_up(Fraction(10_000 + 20_000 + 30_000 + 30_000, 4) * uplift)]
    assert tariffs.pool_funding_pence == round_half_up(Fraction(970_000) * uplift)
    assert tariffs.outcome_threshold_pence == round_half_up(Fraction(30_000) * Fraction(1029, 1000))
    result = evaluate(pop, scenario)
    tariff = int(tariffs.tariff_pence[0])
    gross = round_half_up(Fraction(tariff * (365 + 365 + 100), 365))
    assert result.budgets.gross_pence == gross
    assert result.budgets.contingency_pence == round_half_up(Fraction(gross * 15, 1000))
    assert result.budgets.budget_pence.tolist() == naive.allocate_largest_remainder(
        gross - result.budgets.contingency_pence, [tariff * 730, tariff * 100])
    # practice B's 20,000 GBP person is paid by the pool above the threshold
    assert result.settlement.actual_pence.tolist() == [5_000, tariffs.outcome_threshold_pence]
    assert result.pool_outturn_pence == 2_000_000 - tariffs.outcome_threshold_pence


# --- the exact-sum property over random populations and scenarios ----------------------

@st.composite
def scenarios(draw):
    mode = draw(st.sampled_from(["tariff", "fair_shares", "blend"]))
    pct = lambda lo, hi: draw(st.integers(lo * 100, hi * 100)) / 100  # noqa: E731
    data = {
        "name": "random",
        "settings": draw(st.sampled_from([["gp"], list(HEALTH_SETTINGS), "all", ["emergency_inpatient", "social_care"]])),
        "tariff": {"cap_percentile": draw(st.sampled_from([None, 50, 90, 97.5, 99, 99.9])),
                   "excess": draw(st.sampled_from(["pool", "drop"])),
                   "demographic_growth_pct": pct(-5, 5), "cost_uplift_pct": pct(-5, 10), "efficiency_pct": pct(0, 5)},
        "budget": {"mode": mode, "need": draw(st.sampled_from(["auto", "group_tariff", "predicted_cost"])),
                   "tariff_weight_pct": draw(st.sampled_from([0, 12.5, 50, 100]))},
        "top_slices": {"contingency_pct": pct(0, 5), "outcome_withhold_pct": pct(0, 15),
                       "withhold_earned_pct": pct(0, 100)},
        "corridor": draw(st.sampled_from([None, {"loss_share_pct": 50, "gain_share_pct": 30,
                                                 "payer_exposure_cap_pct": 4},
                                          {"overspend": [{"from_pct": 0, "to_pct": 2, "payer_share_pct": 0},
                                                         {"from_pct": 2, "payer_share_pct": 75}],
                                           "provider_loss_cap_pct": 3, "provider_gain_cap_pct": 1}])),
    }
    if mode != "tariff" and draw(st.booleans()):
        data["budget"]["envelope_gbp"] = draw(st.integers(1, 10**7))
    if draw(st.booleans()):
        data["budget"]["pace_of_change"] = {"step_pct": pct(0, 100), "min_growth_pct": draw(st.sampled_from([None, -50])),
                                            "max_growth_pct": draw(st.sampled_from([None, 300]))}
    return parse_scenario(data, source="random.yaml")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 400), st.integers(1, 15), st.integers(0, 10**6), st.booleans(), scenarios())
def test_budgets_add_up_exactly_to_the_envelope(n_people, n_practices, seed, with_scores, scenario):
    features, practices = make_features(n_people, n_practices, seed=seed, with_scores=with_scores)
    pop = population(features, practices, scenario.settings)
    try:
        result = evaluate(pop, scenario)
    except DataError as exc:  # refused clearly: fair shares by predicted cost without predictions, or
        # a fixed envelope and nobody with any need or days on the list
        message = str(exc)
        assert (scenario.need == "predicted_cost" and not with_scores and "--scores" in message) or \
            (scenario.envelope_pence and "cannot share" in message and "zero" in message), message
        return
    except ConfigError as exc:  # a pace-of-change floor or cap that the envelope cannot meet
        assert "pace_of_change" in str(exc)
        return
    b, s = result.budgets, result.settlement
    assert int(b.budget_pence.sum()) == b.envelope_pence
    assert b.gross_pence == b.envelope_pence + b.contingency_pence + b.withhold_pence
    assert int(b.target_pence.sum()) == b.envelope_pence == int(b.current_pence.sum())
    assert int(b.withhold_by_practice.sum()) == b.withhold_pence
    assert int(b.withhold_earned_by_practice.sum()) == round_half_up(Fraction(b.withhold_pence * scenario.withhold_earned_ppm, PPM))
    assert (b.budget_pence >= 0).all()
    assert (s.payer_share_pence + s.provider_share_pence == s.variance_pence).all()
    assert (s.variance_pence == s.actual_pence - s.basis_pence).all()
    icb = result.settlement_icb_frame()
    assert icb["variance_pence"].sum() == s.variance_pence.sum()
    assert (icb["payer_share_pence"] + icb["provider_share_pence"] == icb["variance_pence"]).all()
    summary = result.summary()
    assert summary["gross_pence"] + summary["pool_funding_pence"] - summary["commissioner_balance_pence"] == (
        summary["envelope_pence"] + summary["withhold_earned_pence"] + summary["payer_share_pence"]
        + summary["pool_outturn_pence"])
    total_outcome = int(pop.outcome.sum())
    assert int(s.actual_pence.sum()) + result.pool_outturn_pence == total_outcome
    if scenario.mode == "tariff" and scenario.pace_of_change is None:
        ref = naive.tariff_budgets(features, SCHEME, scenario)
        assert b.budget_pence.tolist() == ref["budgets"]["budget_pence"].tolist()


# --- fair shares, blend, pace of change ------------------------------------------------

def test_fair_shares_follow_predicted_need(population_frames):
    features, practices = population_frames
    scenario = parse_scenario({"name": "f", "budget": {"mode": "fair_shares", "envelope_gbp": 1_234_567.89}})
    result = evaluate(population(features, practices), scenario)
    need = ((features["predicted_cost_gbp"] * 100).round().astype("int64") * features["list_days_next_12"])
    weights = need.groupby(features["practice_code"].astype(str)).sum().sort_index()
    assert result.budgets.gross_pence == 123_456_789
    assert result.budgets.budget_pence.tolist() == naive.allocate_largest_remainder(123_456_789, weights.tolist())
    assert result.budgets.mode_label == "fair shares (need = predicted cost)"


def test_fair_shares_without_predictions_refuse_or_fall_back_with_a_label(population_frames):
    features, practices = population_frames
    plain = features.drop(columns=["predicted_cost_gbp"])
    strict = parse_scenario({"name": "s", "budget": {"mode": "fair_shares", "need": "predicted_cost"}}, source="s.yaml")
    with pytest.raises(DataError, match=r"'s' \(s\.yaml\).*predicted_cost_gbp.*group_tariff"):
        evaluate(population(plain, practices), strict)
    auto = parse_scenario({"name": "a", "budget": {"mode": "fair_shares"}})
    result = evaluate(population(plain, practices), auto)
    assert result.budgets.mode_label == "fair shares (need = group tariff (fallback: no predicted costs))"
    tariff_mode = evaluate(population(plain, practices), parse_scenario({"name": "t"}))
    assert result.budgets.budget_pence.tolist() == tariff_mode.budgets.budget_pence.tolist()


def test_blend_weights_the_two_allocations(population_frames):
    features, practices = population_frames
    pop = population(features, practices)
    tariff = evaluate(pop, parse_scenario({"name": "t"})).budgets.budget_pence
    fair = evaluate(pop, parse_scenario({"name": "f", "budget": {"mode": "fair_shares"}})).budgets.budget_pence
    blend = evaluate(pop, parse_scenario({"name": "b", "budget": {"mode": "blend", "tariff_weight_pct": 25}}))
    expected = naive.allocate_largest_remainder(int(tariff.sum()), (tariff + 3 * fair).tolist())
    assert blend.budgets.budget_pence.tolist() == expected


def test_pace_of_change_moves_part_way_within_limits(population_frames):
    features, practices = population_frames
    pop = population(features, practices)
    full = evaluate(pop, parse_scenario({"name": "t"})).budgets
    none = evaluate(pop, parse_scenario({"name": "p0", "budget": {"pace_of_change": {"step_pct": 0}}})).budgets
    assert none.budget_pence.tolist() == full.current_pence.tolist()
    half = evaluate(pop, parse_scenario({"name": "p", "budget": {"pace_of_change": {
        "step_pct": 50, "min_growth_pct": -1, "max_growth_pct": 2}}})).budgets
    assert int(half.budget_pence.sum()) == half.envelope_pence
    current = half.current_pence.astype(float)
    assert (half.budget_pence >= np.floor(current * 0.99) - 1).all()
    assert (half.budget_pence <= np.ceil(current * 1.02) + 1).all()
    unlimited = evaluate(pop, parse_scenario({"name": "u", "budget": {"pace_of_change": {"step_pct": 50}}})).budgets
    midway = (full.current_pence + full.target_pence) / 2
    assert np.abs(unlimited.budget_pence - midway).max() <= 1
    path = evaluate(pop, parse_scenario({"name": "y", "budget": {"pace_of_change": {"step_pct": 50, "years": 4}}}))
    years = path.budgets.pace_path
    assert years.shape == (4, len(pop.practice_codes)) and years[0].tolist() == path.budgets.budget_pence.tolist()
    assert (years.sum(axis=1) == path.budgets.envelope_pence).all()
    gap = (full.target_pence - full.current_pence).astype(float)
    for year in range(4):  # half the remaining distance each year, to within a few pence
        assert np.abs(full.target_pence - years[year] - gap / 2 ** (year + 1)).max() <= 2
    frame = path.pace_path_frame()
    assert len(frame) == 4 * len(pop.practice_codes) and frame["year"].max() == 4
    with pytest.raises(ConfigError, match="min_growth_pct.*lower the floor"):
        evaluate(pop, parse_scenario({"name": "x", "budget": {"pace_of_change": {"min_growth_pct": 10}}}))


# --- the individual cap ----------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=3000), st.floats(0, 1), st.integers(10, 500))
def test_select_tail_is_exact(values, q, sample_above):
    arr = np.array(values, dtype=np.int64)
    k = 1 + int(q * (arr.size - 1))
    assert select_tail(arr, k, sample_above=sample_above)[0] == int(np.sort(arr)[k - 1])


@pytest.mark.parametrize("sample_above", [10**9, 100])  # numpy.partition, and the sampled tail
def test_cap_is_the_nearest_rank_percentile_and_excess_is_per_cell(population_frames, monkeypatch, sample_above):
    from riskcap.capitation import tails

    monkeypatch.setattr(tails, "SAMPLE_ABOVE", sample_above)
    features, practices = population_frames
    pop = population(features, practices)
    ordered = np.sort(pop.person_base)
    for p in (50, 90, 97.5, 99, 99.9):
        rank = -(-Fraction(str(p)) * len(ordered) // 100)  # exact ceil: 99.9% of 4000 is rank 3996
        assert pop.cap_value(p) == ordered[rank - 1]
    pop = population(features, practices)
    for threshold in (pop.cap_value(99.9), pop.cap_value(90), pop.cap_value(99), 0):  # the tail cache widens, is reused
        over = np.maximum(pop.person_base - threshold, 0)
        expected = np.bincount(pop.person_cell, weights=over, minlength=pop.people.size).reshape(pop.shape)
        np.testing.assert_array_equal(pop.excess("base", threshold), expected.astype(np.int64))


# --- settlement ------------------------------------------------------------------------

def test_aca_corridor_worked_example():
    corridor = load_scenario("baseline").corridor
    # 10% over a GBP 10,000 budget: payer 0% of the first 3%, 50% of 3-8%, 80% of 8-10% = 4.1% of budget
    s = settle(np.array([1_000_000, 1_000_000, 1_000_000]), np.array([1_100_000, 1_020_000, 900_000]), corridor)
    assert s.payer_share_pence.tolist() == [41_000, 0, -41_000]
    assert s.provider_share_pence.tolist() == [59_000, 20_000, -59_000]


def settle_reference(basis: int, actual: int, corridor) -> tuple[int, int]:
    """One practice, plain Python: the documented rules step by step."""
    variance = actual - basis
    x, over = abs(variance), variance > 0
    tiers = corridor.overspend if over else corridor.underspend
    numerator = 0
    for t in tiers:
        lo = basis * t.from_ppm // PPM
        hi = basis * t.to_ppm // PPM if t.to_ppm is not None else None
        part = max(0, (x if hi is None else min(x, hi)) - lo)
        numerator += part * t.payer_share_ppm
    payer = round_half_up(Fraction(numerator, PPM))
    provider = x - payer
    if over and corridor.provider_loss_cap_ppm is not None:
        cap = basis * corridor.provider_loss_cap_ppm // PPM
        if provider > cap:
            payer, provider = payer + provider - cap, cap
    if not over and corridor.provider_gain_cap_ppm is not None:
        cap = basis * corridor.provider_gain_cap_ppm // PPM
        if provider > cap:
            payer, provider = payer + provider - cap, cap
    if over and corridor.payer_exposure_cap_ppm is not None:
        cap = basis * corridor.payer_exposure_cap_ppm // PPM
        if payer > cap:
            payer, provider = cap, provider + payer - cap
    sign = -1 if variance < 0 else 1
    return sign * payer, sign * provider


@st.composite
def corridors(draw):
    def tiers():
        bounds = sorted(set(draw(st.lists(st.integers(1, 3000), max_size=3))))
        edges = [0, *[b / 100 for b in bounds]]
        out = []
        for i, lo in enumerate(edges):
            tier = {"from_pct": lo, "payer_share_pct": draw(st.integers(0, 100))}
            if i + 1 < len(edges):
                tier["to_pct"] = edges[i + 1]
            out.append(tier)
        return out
    data = {"overspend": tiers(), "underspend": draw(st.sampled_from(["mirror", None])) or tiers()}
    for key in ("provider_loss_cap_pct", "provider_gain_cap_pct", "payer_exposure_cap_pct"):
        data[key] = draw(st.sampled_from([None, 0, 2.5, 10]))
    return parse_scenario({"name": "c", "corridor": data}).corridor


@settings(max_examples=200, deadline=None)
@given(corridors(), st.lists(st.tuples(st.integers(0, 10**10), st.integers(0, 10**10)), min_size=1, max_size=20))
def test_settlement_matches_the_step_by_step_reference(corridor, practices):
    s, basis, actual = _settled_as_the_reference(corridor, practices)
    assert (s.payer_share_pence + s.provider_share_pence == actual - basis).all()


def _settled_as_the_reference(corridor, practices):
    """settle() of (basis, actual) pence pairs, checked against settle_reference pair by pair."""
    basis = np.array([p[0] for p in practices], dtype=np.int64)
    actual = np.array([p[1] for p in practices], dtype=np.int64)
    s = settle(basis, actual, corridor)
    for b, a, payer, provider in zip(basis.tolist(), actual.tolist(), s.payer_share_pence.tolist(),
                                     s.provider_share_pence.tolist()):
        assert (payer, provider) == settle_reference(b, a, corridor)
    return s, basis, actual


@settings(max_examples=100, deadline=None)
@given(corridors(), st.lists(st.tuples(st.integers(0, 2**49), st.integers(0, 2**49)), min_size=1, max_size=8))
def test_settlement_of_huge_budgets_is_exact_not_wrapped(corridor, practices):
    """Pence x parts per million pass int64 for budgets of billions of pounds: still exact (issue 23)."""
    s, _, _ = _settled_as_the_reference(corridor, practices)
    assert s.payer_share_pence.dtype == np.int64


# --- accuracy --------------------------------------------------------------------------

def test_accuracy_statistics():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(3)
    actual, budget = rng.integers(1, 10**6, 50), rng.integers(1, 10**6, 50)
    assert accuracy.r_squared(actual, budget) == pytest.approx(r2_score(actual, budget))
    assert accuracy.share_within(np.array([109, 111, 90, 89, 100]), np.array([100] * 5)) == pytest.approx(0.6)
    assert np.isnan(accuracy.predictive_ratio(np.array([5]), np.array([0]))[0])


def test_group_accuracy_divides_practice_budgets_over_groups(population_frames):
    features, practices = population_frames
    result = evaluate(population(features, practices), load_scenario("baseline"))
    table = result.accuracy_frame()
    groups = table[table["level"] == "need_group"]
    assert groups["allocated_pence"].sum() == pytest.approx(result.settlement.basis_pence.sum(), abs=len(groups))
    assert groups["actual_pence"].sum() == result.settlement.actual_pence.sum()
    # in tariff mode a group's allocation is its tariff x list days / 365, scaled to the envelope
    tariffs = result.tariffs.tariff_pence * result.population.list_days.sum(axis=0) / 365
    expected = tariffs * result.settlement.basis_pence.sum() / tariffs.sum()
    np.testing.assert_allclose(groups["allocated_pence"], expected, atol=1)
    overall = table[table["level"] == "all"].iloc[0]
    assert overall["practice_r_squared"] == pytest.approx(result.summary()["r_squared"])


def test_attach_scores_maps_tiers_and_costs(population_frames):
    features, _ = population_frames
    base = features.drop(columns=["risk_tier", "risk_score", "risk_percentile", "predicted_cost_gbp"])
    scores = pd.DataFrame({"person_id": base["person_id"].iloc[:3], "tier": ["very high", "low", "rising"],
                           "score": [90, 3, 40], "percentile": [99.9, 10.0, 85.0], "model": "gbm"})
    out = attach_scores(base, scores)
    assert out["risk_tier"].iloc[:4].tolist() == [4, 1, 2, 0]
    costs = pd.DataFrame({"person_id": base["person_id"], "expected_cost_gbp": 100.0, "percentile": 50.0, "model": "cost"})
    out = attach_scores(out, costs)
    assert (out["predicted_cost_gbp"] == 100.0).all() and out["risk_percentile"].iloc[0] == 99.9
    with pytest.raises(DataError, match="unknown value"):
        attach_scores(base, scores.assign(tier=["very high", "low", "medium"]))
    with pytest.raises(DataError, match="duplicate person_id"):
        attach_scores(base, pd.concat([scores, scores]))


def test_results_do_not_depend_on_threads(population_frames, monkeypatch):
    from riskcap.stream import threads

    features, practices = population_frames
    scenario = load_scenario("cap_p99")
    monkeypatch.setattr(threads, "PARALLEL_MIN", 10**12)
    single = evaluate(population(features, practices), scenario)
    monkeypatch.setattr(threads, "PARALLEL_MIN", 0)
    import numba

    before = numba.get_num_threads()
    parallel = evaluate(population(features, practices), scenario)
    assert numba.get_num_threads() == before
    assert single.budgets.budget_pence.tolist() == parallel.budgets.budget_pence.tolist()
    assert single.settlement.actual_pence.tolist() == parallel.settlement.actual_pence.tolist()
    np.testing.assert_array_equal(single.population.person_base, parallel.population.person_base)
    assert single.tariffs.cap_pence == parallel.tariffs.cap_pence


@pytest.mark.parametrize("kind", ["sorted", "unsorted", "object", "chunked"])
def test_practice_index_matches_factorize(kind):
    import pyarrow as pa

    from riskcap.capitation.population import practice_index_of

    codes = ["A1", "A1", "B2", "B2", "B2", "C3", "C3"]
    if kind == "unsorted":
        codes = ["B2", "A1", "B2", "C3", "A1", "B2", "C3"]
    if kind == "object":
        series = pd.Series(codes, dtype=object)
    elif kind == "chunked":  # a run split across arrow chunks
        array = pd.arrays.ArrowStringArray(pa.chunked_array([codes[:3], codes[3:]], type=pa.large_string()))
        series = pd.Series(array)
    else:
        series = pd.Series(pd.array(codes, dtype="str"))
    index, uniques = practice_index_of(series)
    expected_index, expected_uniques = pd.factorize(pd.Series(codes), sort=True)
    assert index.tolist() == expected_index.tolist() and list(uniques) == list(expected_uniques)


@pytest.mark.parametrize("name", ["yoc_illustrative", "ltc_count_age", "risk_segments"])
@pytest.mark.parametrize("block", [1, 7, 1000, 1 << 20])
def test_need_groups_in_stacked_blocks_equal_reference(monkeypatch, name, block):
    """The kernel grouping people a block at a time (columns stacked per block) gives the reference groups."""
    from riskcap.capitation import scheme as S

    monkeypatch.setattr(S, "_STACK_PEOPLE", block)
    features, _ = make_features(2500, 7, seed=13, with_scores=True)
    scheme = load_scheme(name)
    np.testing.assert_array_equal(S.assign_need_groups(features, scheme),
                                  naive.assign_need_groups(features, scheme))
