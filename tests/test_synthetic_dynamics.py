"""The generator starts where years of its own dynamics would have left it (issue 18: a start-up
transient made every need group cheaper per day from one year to the next)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcap.synthetic import params as P
from riskcap.synthetic.population import palliative_steady_share, survivor_frailty

pytestmark = pytest.mark.unit


def _age_rate(s):
    return np.exp(np.interp(s, P.DEATH_AGES, P.DEATH_AGE_LOG))


@given(st.floats(0.0, 104.0), st.floats(1e-5, 0.5))
@settings(max_examples=60, deadline=None)
def test_palliative_share_is_the_steady_state_of_joining_and_dying(age, h_death):
    """Against the two-state equations integrated over the person's life: off the register
    ``A' = -(1 + a) h A``, on it ``B' = a h A - e^DEATH_PALLIATIVE h B``, ``h`` today's hazard
    carried back by the age curve; the share is ``B / (A + B)`` at ``age``."""
    a, fast = P.PALLIATIVE_PER_DEATH_HAZARD, np.exp(P.DEATH_PALLIATIVE)
    steps = 20_000
    s = np.linspace(0.0, age, steps + 1)
    h = h_death * _age_rate(s) / _age_rate(age)
    off, on = 1.0, 0.0
    for k in range(steps):  # exact exponential steps for a piecewise constant hazard
        dt, hk = s[k + 1] - s[k], 0.5 * (h[k] + h[k + 1])
        stay_off = np.exp(-(1 + a) * hk * dt)
        stay_on = np.exp(-fast * hk * dt)
        joined = off * a * (stay_off - stay_on) / (fast - 1 - a)
        off, on = off * stay_off, on * stay_on + joined
    want = on / (off + on)
    got = float(palliative_steady_share(np.array([age]), np.array([h_death]))[0])
    assert got == pytest.approx(want, rel=2e-3, abs=1e-9)


@given(st.floats(0.0, 104.0), st.floats(-0.6, 0.6))
@settings(max_examples=40, deadline=None)
def test_survivor_frailty_follows_the_deaths_it_drives(age, morbidity):
    """The quantile map gives the distribution a weighted reference gives: newborns' N(0, 1)
    draws weighted by their chance of surviving to ``age``, ``exp(-H exp(DEATH_HEALTH SIGMA_FRAILTY F))``."""
    z = np.random.default_rng(7).standard_normal(200_000)
    frailty = survivor_frailty(z, np.full(z.size, age), morbidity)
    s = np.linspace(0.0, age, 4001)
    rate = _age_rate(s)
    cum = float(np.sum(0.5 * (rate[1:] + rate[:-1]) * np.diff(s)))
    hazard = np.exp(P.DEATH_INTERCEPT + P.DEATH_HEALTH * morbidity + 0.5 * (P.DEATH_HEALTH * P.SIGMA_STATE) ** 2) * cum
    w = np.exp(-hazard * np.exp(P.DEATH_HEALTH * P.SIGMA_FRAILTY * z))
    mean = np.sum(w * z) / w.sum()
    sd = np.sqrt(np.sum(w * (z - mean) ** 2) / w.sum())
    assert frailty.mean() == pytest.approx(mean, abs=0.01)
    assert frailty.std() == pytest.approx(sd, abs=0.01)
    assert np.all(np.diff(frailty[np.argsort(z)]) >= 0)  # quantile to quantile: the ranks of the draws are kept


def test_the_old_are_less_frail_and_newborns_are_not_selected():
    z = np.linspace(-3, 3, 61)
    assert np.abs(survivor_frailty(z, np.zeros(z.size), 0.0) - z).max() < 0.02
    means = [survivor_frailty(np.random.default_rng(1).standard_normal(50_000), np.full(50_000, a), 0.0).mean()
             for a in (40, 70, 85, 95)]
    assert means[0] > -0.02 and all(np.diff(means) < 0) and means[-1] < -0.2
