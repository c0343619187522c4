"""Integer-pence arithmetic: exact rounding, overflow-free muldiv, largest-remainder allocation."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcap.capitation import money
from reference import capitation as naive

pytestmark = pytest.mark.unit


@given(st.integers(-10**30, 10**30), st.integers(1, 10**20))
def test_div_round_half_up_matches_fractions(num, den):
    exact = Fraction(num, den)
    expected = int(abs(exact) + Fraction(1, 2)) * (1 if exact >= 0 else -1)
    assert money.div_round_half_up(num, den) == expected


@given(st.lists(st.integers(-(2**60), 2**60), min_size=1, max_size=50), st.integers(1, 10**12))
def test_div_round_half_up_array_matches_scalar(nums, den):
    out = money.div_round_half_up_array(np.array(nums, dtype=np.int64), den)
    assert out.tolist() == [money.div_round_half_up(n, den) for n in nums]


def test_halves_round_away_from_zero():
    assert [money.div_round_half_up(n, 2) for n in (1, 3, -1, -3)] == [1, 2, -1, -2]


@given(st.lists(st.tuples(st.integers(0, 2**62), st.integers(0, 2**62)), min_size=1, max_size=30),
       st.integers(1, 2**62 - 1))
def test_muldiv_is_exact(pairs, c):
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([min(p[1], c) for p in pairs], dtype=np.int64)  # quotient a*b/c <= a
    if (a.astype(float) * b / c).max() >= 2**53:
        with pytest.raises(OverflowError):
            money.muldiv(a, b, c)
        return
    q, r = money.muldiv(a, b, c)
    for ai, bi, qi, ri in zip(a.tolist(), b.tolist(), q.tolist(), r.tolist()):
        assert (qi, ri) == divmod(ai * bi, c)


weights = st.lists(st.integers(0, 10**12), min_size=1, max_size=60)


@settings(max_examples=300)
@given(st.integers(0, 10**13), weights)
def test_allocation_matches_fraction_reference_and_adds_up(total, w):
    if sum(w) == 0:
        w[0] = 1
    got = money.allocate_largest_remainder(total, np.array(w, dtype=np.int64))
    assert int(got.sum()) == total
    assert got.tolist() == naive.allocate_largest_remainder(total, w)
    assert all(g == 0 for g, wi in zip(got.tolist(), w) if wi == 0)
    for g, wi in zip(got.tolist(), w):  # every share is within a penny of its exact quota
        assert abs(Fraction(g) - Fraction(total * wi, sum(w))) < 1


def test_ties_go_to_the_lower_position():
    # 10 pence over three equal weights: quotas 3.33 each; the spare penny goes to position 0
    assert money.allocate_largest_remainder(10, np.array([1, 1, 1])).tolist() == [4, 3, 3]
    assert money.allocate_largest_remainder(11, np.array([1, 1, 1])).tolist() == [4, 4, 3]


def test_allocation_refuses_bad_input():
    with pytest.raises(ValueError):
        money.allocate_largest_remainder(5, np.array([0, 0]))
    with pytest.raises(ValueError):
        money.allocate_largest_remainder(-1, np.array([1]))
    with pytest.raises(TypeError):
        money.allocate_largest_remainder(5, np.array([0.5, 1.0]))
    assert money.allocate_largest_remainder(0, np.array([0, 0])).tolist() == [0, 0]


def test_gbp_to_pence_rounds_half_up():
    assert money.gbp_to_pence("1234.565") == 123457
    assert money.gbp_to_pence(0.1) == 10
    assert money.gbp_to_pence(1_234_567.89) == 123_456_789


def test_gbp_formats_pounds_for_people():
    """The one money formatter: the report's, the terminal's and the charts' pounds."""
    assert [money.gbp(v) for v in (1234.5, -1234.4, 0.0, None, float("nan"))] == ["£1,234", "-£1,234", "£0", "-", "-"]
    assert money.gbp(1234.567, 2, signed=True) == "+£1,234.57" and money.gbp(-5, signed=True) == "-£5"
    assert money.gbp(2**53 / 100, symbol="GBP ") == "GBP 90,071,992,547,410"
    compact = [money.gbp(v, 2, symbol="", compact=True) for v in (512_340_000, 698_149, 9_999.4, -10_000)]
    assert compact == ["512.34m", "698.1k", "9,999", "-10.0k"]
    assert [money.gbp(v, 1, compact=True) for v in (1_250_000, 45_600, 950)] == ["£1.2m", "£46k", "£950"]
