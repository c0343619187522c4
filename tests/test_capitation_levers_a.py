"""Issue 19 levers 1 (stop-loss with a pound attachment point), 2 (risk pooling, size-aware
corridors) and 7 (outcome withhold earned per practice): arithmetic pinned on hand-checkable
cases (direction and amount), validation, sums to the penny, sweeps."""
from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskcap.capitation import pooling
from riskcap.capitation.engine import evaluate
from riskcap.capitation.money import PPM
from riskcap.capitation.population import Population
from riskcap.capitation.scenario import HEALTH_SETTINGS, load_scenario, parse_scenario
from riskcap.capitation.scheme import load_scheme, parse_scheme
from riskcap.capitation.sweep import parse_axis, run_sweep
from riskcap.errors import ConfigError, DataError
from reference.fabricated import make_features

ONE_GROUP = parse_scheme({"name": "one", "groups": [{"id": "all", "rules": [[]]}]})
ACA = {"overspend": [{"from_pct": 0, "to_pct": 3, "payer_share_pct": 0},
                     {"from_pct": 3, "to_pct": 8, "payer_share_pct": 50},
                     {"from_pct": 8, "payer_share_pct": 80}], "underspend": "mirror"}


def round_half_up(x: Fraction) -> int:
    return int(x + Fraction(1, 2)) if x >= 0 else -int(-x + Fraction(1, 2))


def four_people(outlier_gbp: float = 80_000.0) -> Population:
    """Four people in one group (base-year pricing: 365 days each); the outlier is at practice B."""
    frame = pd.DataFrame({"person_id": [1, 2, 3, 4], "practice_code": ["A", "A", "B", "B"],
                          "age": np.array([30, 40, 50, 60], np.int32), "list_days_next_12": [365, 365, 365, 365],
                          "cost_gp_0_12": [100.0, 200.0, 300.0, outlier_gbp],
                          "cost_next_12m_gp": [50.0, 0.0, 0.0, 120_000.0]})
    return Population.from_features(frame, ONE_GROUP, ["gp"])


def stop_loss_scenario(uplift: float = 0, **stop_loss) -> object:
    return parse_scenario({"name": "sl", "settings": ["gp"], "tariff": {"cost_uplift_pct": uplift},
                           "stop_loss": {"attachment_gbp": 50_000, "pool_share_pct": 80, **stop_loss}})


# --- lever 1: stop-loss ----------------------------------------------------------------

def test_stop_loss_by_hand():
    pop = four_people()
    plain = evaluate(pop, parse_scenario({"name": "plain", "settings": ["gp"]}))
    result = evaluate(pop, stop_loss_scenario(practice_cap_gbp=10_000))
    t = result.tariffs
    # tariff year: 30,000 GBP above the attachment leaves the tariff base; practices' 20 % comes back flat
    assert t.excess_pence.tolist() == [3_000_000]
    assert t.stop_loss_loading_pence == 150_000  # 20 % x 3,000,000 x 365 / (4 x 365)
    assert t.tariff_pence.tolist() == [1_265_000 + 150_000]  # (100 + 200 + 300 + 50,000) / 4 GBP + loading
    assert plain.tariffs.tariff_pence.tolist() == [2_015_000]  # the outlier moved it by 600,000 pence
    assert t.pool_funding_pence == 2_400_000  # 80 % of the excess
    # outcome year: B's person costs 120,000 GBP: 70,000 above; the pool pays 80 % = 56,000, then
    # B's retained 14,000 passes its 10,000 cap, so the pool pays 4,000 more
    stop = result.stop_loss
    assert stop.excess.tolist() == [0, 7_000_000]
    assert stop.pool.tolist() == [0, 6_000_000]
    assert stop.cap_reached.tolist() == [False, True]
    assert result.pool_outturn_pence == 6_000_000
    assert result.settlement.actual_pence.tolist() == [5_000, 12_000_000 - 6_000_000]
    assert plain.settlement.actual_pence.tolist() == [5_000, 12_000_000]
    frame = result.lever_frames()["stop_loss"]
    assert frame["practice_retained_pence"].tolist() == [0, 1_000_000]
    assert (frame["pool_paid_pence"] + frame["practice_retained_pence"] == frame["excess_above_attachment_pence"]).all()
    assert (frame["charged_pence"] - frame["pool_paid_pence"] == frame["actual_pence"]).all()
    s = result.summary()
    assert s["stop_loss_pool_paid_pence"] == 6_000_000 and s["stop_loss_practices_capped"] == 1
    assert int(result.budgets.budget_pence.sum()) == result.budgets.envelope_pence


def test_stop_loss_without_a_practice_cap_and_with_an_uplift():
    pop = four_people()
    result = evaluate(pop, stop_loss_scenario(uplift=2.9))
    u = Fraction(1029, 1000)
    attachment0 = round_half_up(Fraction(5_000_000) / u)  # 50,000 GBP in tariff-year prices
    assert result.tariffs.cap_pence == attachment0 == 4_859_086
    excess = 8_000_000 - attachment0
    loading = round_half_up(Fraction(excess * 2, 10) * u * 365 / (4 * 365))
    assert result.tariffs.stop_loss_loading_pence == loading
    assert result.tariffs.tariff_pence.tolist() == [
        round_half_up(Fraction(10_000 + 20_000 + 30_000 + attachment0, 4) * u) + loading]
    assert result.tariffs.pool_funding_pence == round_half_up(Fraction(excess * 8, 10) * u)
    assert result.stop_loss.pool.tolist() == [0, 5_600_000]  # 80 % of 70,000 GBP: no cap
    assert result.settlement.actual_pence.tolist() == [5_000, 12_000_000 - 5_600_000]


def test_an_outlier_cannot_move_its_groups_tariff_when_the_pool_pays_all_above_the_attachment():
    tariffs = [evaluate(four_people(cost), stop_loss_scenario(pool_share_pct=100)).tariffs.tariff_pence.tolist()
               for cost in (80_000.0, 5_000_000.0)]
    assert tariffs[0] == tariffs[1] == [1_265_000]


# --- lever 2: risk pooling and size-aware corridors --------------------------------------

def three_practices(pcn=("P1", "P1", None), people=(20_000, 20_000, 10_000)):
    return SimpleNamespace(practice_codes=np.array(["A", "B", "C"], dtype=object),
                           icb_codes=np.array(["I", "I", "I"], dtype=object),
                           pcn_codes=np.array([p or "" for p in pcn], dtype=object),
                           people=np.array(people, dtype=np.int64)[:, None])


def corridor_scenario(**risk_pool):
    return parse_scenario({"name": "pooled", "corridor": ACA, "risk_pool": risk_pool})


BASIS = np.array([1_000_000, 1_000_000, 1_000_000])  # GBP 10,000 each
ACTUAL = np.array([1_100_000, 900_000, 1_100_000])  # A and C 10 % over, B 10 % under


def test_pcn_pooling_by_hand():
    pooled = pooling.settle_pooled(three_practices(), BASIS, ACTUAL, corridor_scenario(level="pcn"))
    s = pooled.settlement
    # alone, A's 10 % overspend costs the payer 0 + 50 % x 5 % + 80 % x 2 % = GBP 410 (B gets -410)
    # pooled, A and B's network is exactly on budget: the payer pays nothing to either
    assert s.payer_share_pence.tolist() == [0, 0, 41_000]
    assert s.provider_share_pence.tolist() == [100_000, -100_000, 59_000]
    assert pooled.pooled_provider.tolist() == [0, 0, 59_000]  # the network's result, shared by basis
    assert (s.payer_share_pence + s.provider_share_pence == s.variance_pence).all()
    frame = pooling.pool_frame(corridor_scenario(level="pcn"), three_practices(), pooled)
    assert frame["pool_code"].tolist() == ["P1", "P1", "C"]  # C has no PCN: settles alone
    assert frame["pool_transfer_pence"].tolist() == [100_000, -100_000, 0]  # B carried A's overspend
    alone = pooling.settle_pooled(three_practices(), BASIS, ACTUAL, corridor_scenario(level="icb"))
    # the ICB pools all three: +1,000 GBP on 30,000 (3.33 %): the payer bears 50 % of the 0.33 % = GBP 50
    assert alone.settlement.payer_share_pence.tolist() == [1_667, 1_667, 1_666]


def test_size_widening_by_hand():
    # protects the practice (default): C (10,000 people) against a 40,000 reference has its bounds
    # divided by sqrt(4) = 2 -> tiers 0-1.5 %, 1.5-4 %, 4 %+: at +10 % the payer pays
    # 50 % x 2.5 % + 80 % x 6 % = 6.05 % of GBP 10,000 = GBP 605 (was GBP 410 unscaled)
    pooled = pooling.settle_pooled(three_practices(), BASIS, ACTUAL,
                                   corridor_scenario(widen_by_size={"reference_list_size": 40_000}))
    assert pooled.widen_ppm.tolist() == [707_107, 707_107, 500_000]
    assert pooled.settlement.payer_share_pence[2] == 60_500
    # A (20,000): x 0.707107 -> 3 % -> 2.1213 %, 8 % -> 5.6568 % (floored to whole ppm):
    # 50 % x 3.5355 % + 80 % x 4.3432 % = 5.24228 % = GBP 524.23
    assert pooled.settlement.payer_share_pence[:2].tolist() == [52_423, -52_423]
    # protects the payer (CMS's minimum savings rate): bounds x 2 -> tiers 0-6 %, 6-16 %, 16 %+
    payer = pooling.settle_pooled(three_practices(), BASIS, ACTUAL, corridor_scenario(
        widen_by_size={"reference_list_size": 40_000, "protects": "payer"}))
    assert payer.widen_ppm.tolist() == [1_414_214, 1_414_214, 2_000_000]
    assert payer.settlement.payer_share_pence[2] == 20_000  # 50 % x 4 % of GBP 10,000
    # A: x 1.414214 -> tiers 0-4.2426 %, 4.2426-11.3137 %: payer 50 % of (10 % - 4.2426 %) = GBP 287.87
    assert payer.settlement.payer_share_pence[:2].tolist() == [28_787, -28_787]
    capped = pooling.settle_pooled(three_practices(people=(20_000, 20_000, 100)), BASIS, ACTUAL, corridor_scenario(
        widen_by_size={"reference_list_size": 40_000, "max_factor": 3, "protects": "payer"}))
    assert capped.widen_ppm[2] == 3_000_000  # sqrt(400) = 20, held at the maximum factor


def test_practice_level_without_widening_is_the_plain_settlement():
    assert corridor_scenario().risk_pool.is_default
    assert corridor_scenario(level="practice", widen_by_size=None).risk_pool.is_default


# --- lever 7: outcome withhold earned per practice ---------------------------------------

def eight_people() -> Population:
    """Practices A and B, two old and two young people each; emergency admissions: A 1 old,
    B 2 old and 1 young. Group rates: old 3/4, young 1/4, so each practice expects 2."""
    frame = pd.DataFrame({"person_id": range(1, 9), "practice_code": ["A"] * 4 + ["B"] * 4,
                          "age": np.array([70, 80, 30, 40] * 2, np.int32), "list_days_next_12": [365] * 8,
                          "cost_gp_0_12": [1_000.0] * 8, "cost_next_12m_gp": [1_000.0] * 8,
                          "y_emergency_12m": np.array([1, 0, 0, 0, 1, 1, 1, 0], np.int8)})
    scheme = parse_scheme({"name": "two", "groups": [{"id": "old", "rules": [["age >= 65"]]},
                                                     {"id": "young", "rules": [[]]}]})
    return Population.from_features(frame, scheme, ["gp"])


def withhold_scenario(**by):
    return parse_scenario({"name": "w", "settings": ["gp"], "top_slices": {
        "outcome_withhold_pct": 10, **({"withhold_earned_by": by} if by else {})}})


def test_withhold_earned_by_outcome_by_hand():
    pop = eight_people()
    result = evaluate(pop, withhold_scenario(full_at_ratio=0.5, none_at_ratio=2))
    b = result.budgets
    assert b.withhold_pence == 80_000 and b.withhold_by_practice.tolist() == [40_000, 40_000]  # 10 % of GBP 8,000
    out = b.withhold_outcome
    assert out.observed.tolist() == [1, 3] and out.expected == [2, 2]
    # A: 1 / 2 = 0.5 -> all earned; B: 3 / 2 = 1.5 -> (2 - 1.5) / (2 - 0.5) = 1/3 earned
    assert out.share == [1, Fraction(1, 3)]
    assert b.withhold_earned_by_practice.tolist() == [40_000, 13_333]
    assert result.settlement.basis_pence.tolist() == [360_000 + 40_000, 360_000 + 13_333]
    same = evaluate(pop, withhold_scenario()).budgets  # the old way: 100 % earned everywhere
    assert same.withhold_earned_by_practice.tolist() == [40_000, 40_000]
    s = result.summary()
    assert (s["withhold_earned_pence"], s["withhold_practices_earning_all"], s["withhold_practices_earning_none"]) \
        == (53_333, 1, 0)
    frame = result.lever_frames()["withhold_outcome"]
    assert frame["observed_over_expected"].tolist() == [0.5, 1.5]
    assert frame["withhold_earned_pence"].sum() == s["withhold_earned_pence"]


def test_withhold_by_outcome_needs_the_outcome_column():
    features, practices = make_features(200, 3, seed=1)
    pop = Population.from_features(features, load_scheme("yoc_illustrative"), HEALTH_SETTINGS, practices)
    with pytest.raises(DataError, match="y_emergency_12m"):
        evaluate(pop, parse_scenario({"name": "w", "top_slices": {"outcome_withhold_pct": 5,
                                                                   "withhold_earned_by": {}}}))


# --- validation --------------------------------------------------------------------------

BAD = {
    "stop-loss unknown key": ({"stop_loss": {"attachment": 5}}, "key 'stop_loss.attachment'", "attachment_gbp"),
    "attachment not a number": ({"stop_loss": {"attachment_gbp": "big"}}, "key 'stop_loss.attachment_gbp'",
                                "(0, 1e+09]"),
    "attachment zero": ({"stop_loss": {"attachment_gbp": 0}}, "key 'stop_loss.attachment_gbp'", "(0, 1e+09]"),
    "share over 100": ({"stop_loss": {"attachment_gbp": 5, "pool_share_pct": 101}},
                       "key 'stop_loss.pool_share_pct'", "[0, 100]"),
    "practice cap negative": ({"stop_loss": {"attachment_gbp": 5, "practice_cap_gbp": -1}},
                              "key 'stop_loss.practice_cap_gbp'", "[0, 1e+12]"),
    "practice cap alone": ({"stop_loss": {"practice_cap_gbp": 5}}, "key 'stop_loss.practice_cap_gbp'",
                           "attachment_gbp"),
    "two pools": ({"stop_loss": {"attachment_gbp": 5}, "tariff": {"cap_percentile": 99}},
                  "key 'stop_loss.attachment_gbp'", "cap_percentile: null"),
    "pool level": ({"risk_pool": {"level": "region"}}, "key 'risk_pool.level'", "practice, pcn, icb"),
    "pool unknown key": ({"risk_pool": {"size": 1}}, "key 'risk_pool.size'", "level, widen_by_size"),
    "reference missing": ({"risk_pool": {"widen_by_size": {"max_factor": 2}}},
                          "key 'risk_pool.widen_by_size.reference_list_size'", "a number is required"),
    "reference fractional": ({"risk_pool": {"widen_by_size": {"reference_list_size": 10.5}}},
                             "key 'risk_pool.widen_by_size.reference_list_size'", "whole number"),
    "withhold both ways": ({"top_slices": {"withhold_earned_pct": 70, "withhold_earned_by": {}}},
                           "key 'top_slices.withhold_earned_pct'", "not both"),
    "withhold ratios": ({"top_slices": {"withhold_earned_by": {"full_at_ratio": 1.2, "none_at_ratio": 1.1}}},
                        "key 'top_slices.withhold_earned_by.none_at_ratio'", "above full_at_ratio"),
    "withhold measure": ({"top_slices": {"withhold_earned_by": {"measure": "deaths"}}},
                         "key 'top_slices.withhold_earned_by.measure'", "emergency_admissions"),
    "protects unknown": ({"risk_pool": {"widen_by_size": {"reference_list_size": 10, "protects": "both"}}},
                         "key 'risk_pool.widen_by_size.protects'", "practice, payer"),
    "factor below 1": ({"risk_pool": {"widen_by_size": {"reference_list_size": 10, "max_factor": 0.5}}},
                       "key 'risk_pool.widen_by_size.max_factor'", "[1, 10]"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_lever_options_name_file_key_and_allowed_values(case):
    extra, key, allowed = BAD[case]
    with pytest.raises(ConfigError) as err:
        parse_scenario({"name": "x", **extra}, source="scenarios/bad.yaml")
    message = str(err.value)
    assert message.startswith("scenarios/bad.yaml: ") and key in message and allowed in message, message


def test_shipped_lever_scenarios():
    sl = load_scenario("stop_loss_50k").stop_loss
    assert (sl.attachment_pence, sl.pool_share_ppm, sl.practice_cap_pence) == (5_000_000, 800_000, 2_500_000)
    rp = load_scenario("pcn_pooled").risk_pool
    assert (rp.level, rp.reference_list_size, rp.max_factor_ppm) == ("pcn", 30_000, 3 * PPM)
    assert load_scenario("baseline").stop_loss is None and load_scenario("baseline").risk_pool.is_default
    off = load_scenario("stop_loss_50k").with_overrides({"stop_loss.attachment_gbp": None,
                                                         "stop_loss.practice_cap_gbp": None})
    assert off.stop_loss is None  # a sweep can turn it off
    w = load_scenario("withhold_by_admissions").withhold_by_outcome
    assert (w.measure, w.full_at, w.none_at) == ("emergency_admissions", Fraction(95, 100), Fraction(110, 100))


# --- sums to the penny, on random populations -------------------------------------------

def with_pcns(practices: pd.DataFrame) -> pd.DataFrame:
    out = practices.copy()
    out["pcn_code"] = [None if i % 4 == 3 else f"N{i // 3}" for i in range(len(out))]
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 400), st.integers(1, 12), st.integers(0, 10**6),
       st.sampled_from([None, 1, 500, 3_000, 50_000]), st.sampled_from([0, 37.5, 80, 100]),
       st.sampled_from([None, 0, 250]), st.sampled_from(["practice", "pcn", "icb"]),
       st.sampled_from([None, {"reference_list_size": 60}, {"reference_list_size": 500, "max_factor": 1.5}]),
       st.sampled_from(["tariff", "fair_shares"]), st.booleans())
def test_levers_keep_every_penny(n_people, n_practices, seed, attachment, share, practice_cap, level, widen, mode,
                                 by_outcome):
    features, practices = make_features(n_people, n_practices, seed=seed, with_scores=True)
    features["y_emergency_12m"] = (np.random.default_rng(seed).random(len(features)) < 0.1).astype(np.int8)
    pop = Population.from_features(features, load_scheme("yoc_illustrative"), HEALTH_SETTINGS, with_pcns(practices))
    data = {"name": "random", "budget": {"mode": mode}, "corridor": ACA,
            "top_slices": {"outcome_withhold_pct": 5, "contingency_pct": 1},
            "risk_pool": {"level": level, "widen_by_size": widen}}
    if by_outcome:
        data["top_slices"]["withhold_earned_by"] = {"full_at_ratio": 0.9, "none_at_ratio": 1.2}
    if attachment is not None:
        data["stop_loss"] = {"attachment_gbp": attachment, "pool_share_pct": share, "practice_cap_gbp": practice_cap}
    try:
        result = evaluate(pop, parse_scenario(data))
    except DataError as exc:  # nobody with any need or days: refused clearly
        assert "cannot share" in str(exc)
        return
    b, s = result.budgets, result.settlement
    assert int(b.budget_pence.sum()) == b.envelope_pence
    assert (s.payer_share_pence + s.provider_share_pence == s.variance_pence).all()
    assert int(s.actual_pence.sum()) + result.pool_outturn_pence == int(pop.outcome.sum())
    summary = result.summary()
    assert summary["gross_pence"] + summary["pool_funding_pence"] - summary["commissioner_balance_pence"] == (
        summary["envelope_pence"] + summary["withhold_earned_pence"] + summary["payer_share_pence"]
        + summary["pool_outturn_pence"])
    frames = result.lever_frames()
    if by_outcome:
        earned = frames["withhold_outcome"]
        assert (earned["withhold_earned_pence"] <= earned["withhold_pence"]).all()
        assert (earned["withhold_earned_pence"] >= 0).all()
        assert earned["withhold_earned_pence"].sum() == summary["withhold_earned_pence"]
    if attachment is not None:
        stop = frames["stop_loss"]
        assert (stop["pool_paid_pence"] >= 0).all() and (stop["practice_retained_pence"] >= 0).all()
        if practice_cap is not None:
            assert (stop["practice_retained_pence"] <= practice_cap * 100).all()
    if "risk_pools" in frames:
        pools = frames["risk_pools"]
        assert (pools.groupby("pool_code")["pool_transfer_pence"].sum() == 0).all()
        assert (pools.groupby("pool_code")["payer_share_pence"].sum()
                == pools.groupby("pool_code")["pool_payer_share_pence"].first()).all()
        assert (pools.groupby("pool_code")["pooled_provider_share_pence"].sum()
                == pools.groupby("pool_code")["pool_provider_share_pence"].first()).all()
    else:
        assert level == "practice" and widen is None


def test_sweep_varies_the_lever_parameters():
    features, practices = make_features(3000, 9, seed=5)
    pop = Population.from_features(features, load_scheme("yoc_illustrative"), HEALTH_SETTINGS, with_pcns(practices))
    base = load_scenario("baseline")
    axes = [parse_axis("stop_loss.attachment_gbp=null,2000,20000"), parse_axis("stop_loss.pool_share_pct=50,100"),
            parse_axis("risk_pool.level=practice,pcn,icb")]
    frame = run_sweep(pop, base, axes)
    assert len(frame) == 18
    for _, row in frame.sample(6, random_state=1).iterrows():
        attachment = None if row["stop_loss.attachment_gbp"] != row["stop_loss.attachment_gbp"] else \
            row["stop_loss.attachment_gbp"]
        direct = evaluate(pop, base.with_overrides({"stop_loss.attachment_gbp": attachment,
                                                    "stop_loss.pool_share_pct": row["stop_loss.pool_share_pct"],
                                                    "risk_pool.level": row["risk_pool.level"]})).summary()
        for key in ("pool_funding_pence", "pool_outturn_pence", "payer_share_pence", "envelope_pence"):
            assert row[key] == direct[key], key
        assert (row.get("stop_loss_pool_paid_pence") == direct.get("stop_loss_pool_paid_pence")
                or (attachment is None and row["stop_loss_pool_paid_pence"] != row["stop_loss_pool_paid_pence"]))
    lowered = frame[frame["stop_loss.attachment_gbp"] == 2000]
    assert (lowered["pool_outturn_pence"] > 0).all()
