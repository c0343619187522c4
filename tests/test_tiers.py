"""The risk pyramid: loading, percentiles and tiers (shared with ``riskcap score``)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcap.errors import ConfigError
from riskcap.tiers import Pyramid, Tier, assign_tiers, load_pyramid, percentiles_among, risk_percentiles, tier_codes

pytestmark = pytest.mark.unit


def _reference_percentiles(values):
    """Obviously correct: percent of people at or below each value."""
    n = len(values)
    return [100.0 * sum(1 for w in values if w <= v) / n for v in values]


def _reference_tiers(values, pyramid):
    """Obviously correct: first tier whose top_percent exceeds the percent strictly above."""
    n = len(values)
    out = []
    for v in values:
        above = 100.0 * sum(1 for w in values if w > v) / n
        out.append(next(t.name for t in pyramid.tiers if above < t.top_percent or t.top_percent == 100))
    return out


def test_default_pyramid_matches_the_issue():
    pyramid = load_pyramid()
    assert pyramid.names == ["very high", "high", "rising", "low"]
    assert [t.top_percent for t in pyramid.tiers] == [0.5, 5.0, 20.0, 100.0]
    assert pyramid.rank_of("high") == 1


def test_default_tier_sizes_on_distinct_values():
    values = np.random.default_rng(1).random(10_000)
    tiers = assign_tiers(values, basis="probability")
    counts = {name: int((tiers == name).sum()) for name in load_pyramid().names}
    assert counts == {"very high": 50, "high": 450, "rising": 1500, "low": 8000}
    # the top tier holds the 50 highest values
    assert set(np.argsort(-values)[:50]) == set(np.flatnonzero(tiers == "very high"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=120))
def test_percentiles_and_tiers_match_reference(raw):
    values = [v / 30 for v in raw]  # many ties
    pyramid = load_pyramid()
    np.testing.assert_allclose(risk_percentiles(values), _reference_percentiles(values))
    assert list(assign_tiers(values, pyramid, basis="probability")) == _reference_tiers(values, pyramid)
    # basis="percentile" on the computed percentiles gives the same answer
    assert list(assign_tiers(risk_percentiles(values), pyramid)) == _reference_tiers(values, pyramid)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=120), st.data())
def test_percentiles_part_by_part_are_the_whole_populations(raw, data):
    """A streamed run ranks each partition against everyone's sorted values: the same numbers."""
    values = np.array(raw, dtype=np.float64) / 30  # many ties
    cut = data.draw(st.integers(0, len(values)))
    population = np.sort(values)
    parts = [percentiles_among(population, values[:cut]), percentiles_among(population, values[cut:])]
    assert np.array_equal(np.concatenate(parts), risk_percentiles(values))
    np.testing.assert_allclose(np.concatenate(parts), _reference_percentiles(list(values)))


def test_ties_share_a_tier_and_take_the_higher_one():
    values = np.array([0.9] * 3 + [0.5] * 7 + [0.1] * 990)
    tiers = assign_tiers(values, basis="probability")
    # the 0.5 group has 0.3% above it, so all 7 join "very high" (1% of people, not 0.5%)
    assert list(tiers[:10]) == ["very high"] * 10
    assert set(tiers[10:]) == {"high"}  # 1% strictly above: inside the top 5%
    everyone_equal = assign_tiers(np.full(50, 0.2), basis="probability")
    assert set(everyone_equal) == {"very high"}


def test_boundary_is_exact_despite_float_rounding():
    # n = 3000: the top 0.5% is exactly 15 people, 5% is 150, 20% is 600
    n = 3000
    values = np.arange(n, dtype=float)
    codes = tier_codes(risk_percentiles(values), load_pyramid())
    assert np.bincount(codes).tolist() == [15, 135, 450, 2400]


def test_custom_pyramid_file(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text("name: two\ntiers:\n  - {name: top, top_percent: 2}\n  - {name: rest, top_percent: 100}\n")
    pyramid = load_pyramid(path)
    assert pyramid.names == ["top", "rest"]
    tiers = assign_tiers(np.arange(100.0), pyramid, basis="probability")
    assert list(tiers).count("top") == 2


@pytest.mark.parametrize(
    "body,message",
    [
        ("tiers: []\n", "non-empty list"),
        ("tiers:\n  - {name: a, top_percent: 5}\n  - {name: b, top_percent: 3}\n  - {name: c, top_percent: 100}\n", "greater than"),
        ("tiers:\n  - {name: a, top_percent: 5}\n  - {name: b, top_percent: 50}\n", "must have top_percent: 100"),
        ("tiers:\n  - {name: a, top_percent: 5}\n  - {name: a, top_percent: 100}\n", "listed twice"),
        ("tiers:\n  - {name: a, top_percent: 0}\n  - {name: b, top_percent: 100}\n", "(0, 100]"),
        ("tiers:\n  - {name: a, top_percent: '5'}\n  - {name: b, top_percent: 100}\n", "(0, 100]"),
        ("tiers:\n  - {name: a, top_percnt: 5}\n", "unknown key"),
        ("tiers:\n  - {top_percent: 100}\n", "name"),
    ],
)
def test_bad_pyramid_names_file_and_key(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_pyramid(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_pyramid_file():
    with pytest.raises(ConfigError, match="no shipped config"):
        load_pyramid("no-such-pyramid.yaml")


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="NaN"):
        risk_percentiles([0.1, math.nan])
    with pytest.raises(ValueError, match="percentiles"):
        tier_codes([101.0], load_pyramid())
    with pytest.raises(ValueError, match="basis"):
        assign_tiers([0.5], basis="score")


def test_describe_is_plain_english():
    pyramid = Pyramid("p", (Tier("top", 1), Tier("rest", 100)))
    assert pyramid.describe() == ["top: top 1%", "rest: everyone below the top 1%"]
