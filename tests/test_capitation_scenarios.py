"""Scenario files: every shipped scenario loads; bad ones name file, key and allowed values."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from riskcap.capitation.money import PPM
from riskcap.capitation.scenario import HEALTH_SETTINGS, load_scenario, parse_scenario
from riskcap.config import shipped_config
from riskcap.errors import ConfigError
from riskcap.schema import SETTING_CODES

pytestmark = pytest.mark.unit

SHIPPED = sorted(p.stem for p in Path(shipped_config("scenarios/baseline.yaml")).parent.glob("*.yaml"))


def test_the_variants_the_issue_asks_for_are_shipped():
    for name in ("baseline", "cap_p99", "social_care_pooled", "uplift_2_9_eff_1_1", "asymmetric_corridor",
                 "outcome_withhold_10", "fair_shares", "blend"):
        assert name in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_load(name):
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.description


def test_shipped_values_mean_what_their_names_say():
    assert load_scenario("cap_p99").cap_percentile == 99
    assert load_scenario("social_care_pooled").settings == SETTING_CODES
    assert load_scenario("baseline").settings == HEALTH_SETTINGS
    up = load_scenario("uplift_2_9_eff_1_1")
    assert (up.cost_uplift_ppm, up.efficiency_ppm) == (29_000, 11_000)
    assert up.uplift.numerator * 10**18 == (PPM + 5_000) * (PPM + 29_000) * (PPM - 11_000) * up.uplift.denominator
    assert load_scenario("outcome_withhold_10").outcome_withhold_ppm == 100_000
    asym = load_scenario("asymmetric_corridor").corridor
    assert asym.overspend != asym.underspend
    base = load_scenario("baseline").corridor
    assert [(t.from_ppm, t.to_ppm, t.payer_share_ppm) for t in base.overspend] == \
        [(0, 30_000, 0), (30_000, 80_000, 500_000), (80_000, None, 800_000)]
    assert base.underspend == base.overspend
    assert load_scenario("fair_shares").mode == "fair_shares"
    assert load_scenario("blend").tariff_weight_ppm == 500_000


def test_minimal_scenario_gets_defaults():
    s = parse_scenario({"name": "mini"})
    assert (s.mode, s.need, s.excess, s.cap_percentile, s.need_groups) == ("tariff", "auto", "pool", None, "yoc_illustrative")
    assert s.corridor.overspend[0].payer_share_ppm == 0  # no corridor: the provider bears everything


BASE = {"name": "x", "tariff": {"cost_uplift_pct": 1}, "budget": {"mode": "tariff"},
        "corridor": {"overspend": [{"from_pct": 0, "to_pct": 3, "payer_share_pct": 0},
                                   {"from_pct": 3, "payer_share_pct": 50}]}}


def with_(path: str, value):
    data = copy.deepcopy(BASE)
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value
    return data


BAD = {
    "unknown top key": (with_("colour", 1), "key 'colour'", "allowed keys"),
    "unknown tariff key": (with_("tariff.uplift", 1), "key 'tariff.uplift'", "cost_uplift_pct"),
    "uplift wrong type": (with_("tariff.cost_uplift_pct", "lots"), "key 'tariff.cost_uplift_pct'", "a number in [-50, 100]"),
    "uplift out of range": (with_("tariff.cost_uplift_pct", 500), "key 'tariff.cost_uplift_pct'", "out of range"),
    "too many decimals": (with_("tariff.efficiency_pct", 1.123456), "key 'tariff.efficiency_pct'", "4 decimal places"),
    "cap at 100": (with_("tariff.cap_percentile", 100), "key 'tariff.cap_percentile'", "[50, 100)"),
    "bad excess": (with_("tariff.excess", "keep"), "key 'tariff.excess'", "pool, drop"),
    "bad mode": (with_("budget.mode", "pbra"), "key 'budget.mode'", "tariff, fair_shares, blend"),
    "bad need": (with_("budget.need", "magic"), "key 'budget.need'", "auto, predicted_cost, group_tariff"),
    "envelope in tariff mode": (with_("budget.envelope_gbp", 1e6), "key 'budget.envelope_gbp'", "fair_shares and blend"),
    "bad setting": (with_("settings", ["gp", "dentist"]), "key 'settings'", "emergency_inpatient"),
    "tier gap": (with_("corridor.overspend.1.from_pct", 4), "key 'corridor.overspend.1.from_pct'", "without gaps"),
    "closed last tier": (with_("corridor.overspend.1.to_pct", 9), "key 'corridor.overspend.1.to_pct'", "open-ended"),
    "share over 100": (with_("corridor.overspend.1.payer_share_pct", 120), "payer_share_pct", "[0, 100]"),
    "tiers and shares": (with_("corridor.loss_share_pct", 50), "corridor.loss_share_pct", "not both"),
    "pace floor above cap": (with_("budget.pace_of_change", {"min_growth_pct": 5, "max_growth_pct": 1}),
                             "min_growth_pct", "max_growth_pct"),
    "bad name": (with_("name", "my scenario!"), "key 'name'", "letters"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_scenarios_name_file_key_and_allowed_values(case):
    data, key, allowed = BAD[case]
    with pytest.raises(ConfigError) as err:
        parse_scenario(data, source="scenarios/bad.yaml")
    message = str(err.value)
    assert message.startswith("scenarios/bad.yaml: ")
    assert key in message and allowed in message, message


def test_load_scenario_names_the_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nbudget:\n  mode: capitated\n")
    with pytest.raises(ConfigError, match=r"s\.yaml: key 'budget\.mode': 'capitated' is not allowed"):
        load_scenario(path)


def test_overrides_are_validated_and_leave_the_original_alone():
    base = parse_scenario(copy.deepcopy(BASE), source="b.yaml")
    varied = base.with_overrides({"tariff.cost_uplift_pct": 2.9, "corridor.overspend.1.payer_share_pct": 80})
    assert varied.cost_uplift_ppm == 29_000 and varied.corridor.overspend[1].payer_share_ppm == 800_000
    assert base.cost_uplift_ppm == 10_000
    with pytest.raises(ConfigError, match=r"b\.yaml \(override\): key 'tariff\.cost_uplift_pct'"):
        base.with_overrides({"tariff.cost_uplift_pct": "x"})
    with pytest.raises(ConfigError, match="not an index"):
        base.with_overrides({"corridor.overspend.5.payer_share_pct": 1})


def test_gain_loss_shares_become_single_tiers():
    s = parse_scenario({"name": "g", "corridor": {"loss_share_pct": 40, "gain_share_pct": 25,
                                                  "provider_loss_cap_pct": 5}})
    assert s.corridor.overspend[0].payer_share_ppm == 600_000
    assert s.corridor.underspend[0].payer_share_ppm == 750_000
    assert s.corridor.provider_loss_cap_ppm == 50_000
