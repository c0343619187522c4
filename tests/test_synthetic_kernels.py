"""The generator's numba kernels agree with their slow references."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from riskcap.schema import nhs_number_valid
from riskcap.synthetic.calendar import Calendar
from riskcap.synthetic.calibration import auroc_from_histograms
from riskcap.synthetic.kernels import emit_activity, nhs_numbers, poisson_quantiles
from riskcap.synthetic.registration import GAP, NEVER, TAIL, U_PER_YEAR, Destinations, registration_segments
from reference import synthetic as naive

pytestmark = pytest.mark.unit


def _inputs(seed: int, n: int, years: int, rate: float):
    """Random inputs of emit_activity: each person a run of 1-3 segments in time order."""
    rng = np.random.default_rng(seed)
    cal = Calendar(years)
    ys = cal.year_starts.astype(np.int64)
    S = 8
    per_person = rng.integers(1, 4, n)
    seg_offset = np.concatenate([[0], np.cumsum(per_person)]).astype(np.int64)
    n_seg = int(seg_offset[-1])
    seg_start = np.empty(n_seg, dtype=np.int64)
    seg_stop = np.empty(n_seg, dtype=np.int64)
    for i in range(n):
        cuts = np.sort(rng.integers(ys[0] - 400, ys[-1] + 100, per_person[i] + 1))
        seg_start[seg_offset[i]:seg_offset[i + 1]] = cuts[:-1]
        seg_stop[seg_offset[i]:seg_offset[i + 1]] = np.where(rng.random(per_person[i]) < 0.2, np.iinfo(np.int32).max, cuts[1:])
        seg_stop[seg_offset[i]:seg_offset[i + 1] - 1] = cuts[1:-1]  # only the last may be open
    win_a = np.maximum(ys[None, :-1], seg_start[:, None])
    win_b = np.maximum(np.minimum(ys[None, 1:], seg_stop[:, None]), win_a)
    counts = rng.poisson(rate, size=(n_seg, years, S)).astype(np.int64)
    counts[win_a >= win_b] = 0  # no events outside the window, as the simulator guarantees
    per_setting = counts.sum(axis=(0, 1))
    pe_offset = np.concatenate([[0], np.cumsum(per_setting)[:-1]]).astype(np.int64)
    m = int(per_setting.sum())
    pe_los = np.where(rng.random(m) < 0.5, rng.integers(0, 20, m), -1).astype(np.int64)
    return dict(
        seg_offset=seg_offset, seg_registered=rng.random(n_seg) < 0.8, counts=counts, win_a=win_a, win_b=win_b,
        last_day=np.full(n, ys[-1] - 1, dtype=np.int64), pe_offset=pe_offset, pe_u=rng.random(m),
        pe_los=pe_los, pe_cost=rng.integers(0, 500000, m), pe_diag=rng.integers(-1, 50, m),
        pe_via=rng.random(m) < 0.5, via_cost=rng.integers(0, 30000, m),
        rx_meds=rng.integers(0, 12, (n, years)), rx_interval=rng.choice([7, 14, 28, 30], (n_seg, years)),
        rx_offset=rng.integers(0, 200, n), rx_acute=rng.gamma(1.0, 4.0, (n_seg, years)),
        rx_unit=rng.gamma(2.0, 450.0, n_seg), care_kind=rng.integers(0, 3, (n, years)).astype(np.int8),
        care_hours=rng.gamma(2.0, 15.0, (n, years)), month_u=rng.random((n_seg, years, 12, 2), dtype=np.float32),
        month_starts=cal.month_starts.astype(np.int64), point_setting=np.array([4, 3, 2, 7, 0, 5, 1, 6]),
        setting_rank=np.array([4, 3, 2, 7, 0, 5, 1, 6, 8, 9]), rx_setting=9, care_setting=8, ae_setting=4,
        home_hour_pence=2500, residential_day_pence=12857,
    )


OUTPUTS = ("person", "setting", "start", "end", "quantity", "cost", "diagnosis", "last_cost", "last_quantity")


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(0, 12), years=st.integers(1, 4), rate=st.floats(0.0, 3.0))
def test_emit_activity_matches_reference(seed, n, years, rate):
    args = _inputs(seed, n, years, rate)
    fast = emit_activity(**args)
    slow = naive.emit_activity(**args)
    for name, a, b in zip(OUTPUTS, fast, slow):
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert a.dtype == b.dtype, name


def test_emit_activity_rows_sorted_and_inside_windows():
    args = _inputs(7, 200, 3, 1.5)
    person, setting, start, end, qty, cost, diag, _, _ = emit_activity(**args)
    key = person.astype(np.int64) * 10**8 + start.astype(np.int64) * 16 + args["setting_rank"][setting]
    assert np.all(np.diff(key) >= 0)
    # every row falls in a window of one of the person's segments (registered ones for monthly rows)
    off, a, b = args["seg_offset"], args["win_a"], args["win_b"]
    for i, day, s_ in zip(person[::7], start[::7], setting[::7]):
        segs = range(off[i], off[i + 1])
        monthly = s_ in (8, 9)
        assert any((a[k] <= day).any() and ((a[k] <= day) & (day < b[k])).any()
                   and (args["seg_registered"][k] or not monthly) for k in segs)
    has_end = end != np.iinfo(np.int32).max
    assert np.all(end[has_end] >= start[has_end])
    assert np.all(qty >= 1) and np.all(cost >= 0)


def test_prescribing_items_follow_the_dispensing_cycle():
    """Four regular medicines dispensed every 28 days and no acute items: 52 items a year in
    13 dispensings, never more than 8 in a month."""
    args = _inputs(3, 1, 1, 0.0)
    cal = Calendar(1)
    ys = cal.year_starts.astype(np.int64)
    args.update(seg_offset=np.array([0, 1]), seg_registered=np.array([True]), win_a=np.array([[ys[0]]]),
                win_b=np.array([[ys[1]]]), counts=np.zeros((1, 1, 8), np.int64), rx_meds=np.array([[4]]),
                rx_interval=np.array([[28]]), rx_acute=np.zeros((1, 1)), care_kind=np.zeros((1, 1), np.int8),
                month_u=np.full((1, 1, 12, 2), 0.5, np.float32), rx_unit=np.array([900.0]),
                pe_offset=np.zeros(8, np.int64), pe_u=np.zeros(0), pe_los=np.zeros(0, np.int64),
                pe_cost=np.zeros(0, np.int64), pe_diag=np.zeros(0, np.int64), pe_via=np.zeros(0, bool),
                via_cost=np.zeros(0, np.int64), rx_offset=np.array([5]), last_day=np.array([ys[1] - 1]))
    person, setting, start, end, qty, cost, diag, last_cost, last_qty = emit_activity(**args)
    assert qty.sum() in (52, 56) and qty.max() <= 8 and (qty % 4 == 0).all()
    assert (cost == qty * 900).all() and last_qty[0, 9] == qty.sum()


def test_poisson_quantiles_match_scipy():
    from scipy.stats import poisson

    rng = np.random.default_rng(5)
    mu = rng.gamma(1.0, 5.0, (40, 3))
    u = rng.random((40, 3))
    np.testing.assert_array_equal(poisson_quantiles(mu, u), poisson.ppf(u, mu).astype(np.int64))


def _registration_inputs(seed, n, years, m, events):
    rng = np.random.default_rng(seed)
    ys = Calendar(years).year_starts.astype(np.int64)
    open_day = np.full(m, -NEVER, dtype=np.int64)
    close_day = np.full(m, NEVER, dtype=np.int64)
    successor = np.full(m, -1, dtype=np.int64)
    if events and m >= 3:
        close_day[0] = rng.integers(ys[0] + 30, ys[-1] - 30)
        successor[0] = m - 1
        close_day[1] = rng.integers(ys[0] + 30, ys[-1] - 30)
        open_day[2] = rng.integers(ys[0] + 30, ys[-1] - 30)
    weight = rng.integers(0, 3000, m).astype(float)
    weight[: min(m, 2)] = np.maximum(weight[: min(m, 2)], 1.0)
    dest = Destinations.build(open_day, close_day, successor, weight, rng.integers(0, max(m // 2, 1), m))
    entry = np.where(rng.random(n) < 0.7, ys[0] - rng.integers(1, 4000, n), rng.integers(ys[0], ys[-1], n))
    home = rng.integers(0, m, n)
    home = np.where(open_day[home] > entry, 0, home)  # nobody joins a practice before it opens
    return (entry, home, rng.random((n, years)) * 0.4, rng.random((n, years, U_PER_YEAR)), rng.random(n), ys, dest,
            0.35, 0.1, 240.0, 0.5, 0.1, 60.0, 120.0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(0, 60), years=st.integers(1, 5), m=st.integers(1, 7),
       events=st.booleans())
def test_registration_segments_match_reference(seed, n, years, m, events):
    args = _registration_inputs(seed, n, years, m, events)
    fast = registration_segments(*args)
    slow = naive.registration_segments(*args)
    for name, a, b in zip(("person", "kind", "start", "stop"), fast, slow):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_registration_segments_are_a_history():
    """Segments run in time order without overlapping, periods are at practices open then, the
    last may be open; everyone starts with a period; a closed practice holds nobody after it closes."""
    args = _registration_inputs(11, 3000, 5, 6, True)
    person, kind, start, stop = registration_segments(*args)
    dest = args[6]
    assert np.array_equal(np.unique(person), np.arange(3000))
    first = np.r_[True, person[1:] != person[:-1]]
    assert (kind[first] >= 0).all() and (start[first] == args[0]).all()
    same = person[1:] == person[:-1]
    assert (stop[:-1][same] == start[1:][same]).all()  # each segment ends where the next begins
    assert (stop > start).all()
    periods = kind >= 0
    assert (start[periods] >= dest.open_day[kind[periods]]).all()
    assert (np.minimum(stop[periods], NEVER) <= dest.close_day[kind[periods]]).all()
    last = np.r_[~same, True]
    assert ((stop == NEVER) <= last).all()  # only a person's last segment is open
    assert set(np.unique(kind)) >= {GAP, TAIL, 0, 5}


def test_nhs_numbers_valid_and_unique():
    ids = np.concatenate([np.arange(0, 20000), np.random.default_rng(1).integers(0, 90_000_000, 20000)])
    ids = np.unique(ids)
    numbers = nhs_numbers(ids).astype(str)
    assert all(len(x) == 10 and x[0] == "9" for x in numbers)
    assert all(nhs_number_valid(x) for x in numbers)
    assert len(set(numbers)) == len(ids)
    with pytest.raises(ValueError):
        nhs_numbers(np.array([90_000_000]))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), bins=st.integers(2, 20))
def test_auroc_from_histograms_matches_sklearn(seed, bins):
    rng = np.random.default_rng(seed)
    score = rng.integers(0, bins, 300)
    y = rng.random(300) < 0.2 + 0.6 * score / bins
    if y.all() or not y.any():
        return
    pos = np.bincount(score[y], minlength=bins)
    neg = np.bincount(score[~y], minlength=bins)
    assert auroc_from_histograms(pos, neg) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


@given(st.integers(0, 2**32 - 1), st.integers(1, 400))
@settings(max_examples=50, deadline=None)
def test_prior_palliative_onset_never_before_birth(seed, days_old):
    """People on the palliative register at the start were diagnosed 1-299 days before it,
    but a baby born ``days_old`` days before the start cannot be diagnosed before birth
    (found at 3M people: 3 conditions dated before birth, rejected by the validator)."""
    from riskcap.synthetic.population import prior_palliative_onset

    start = 18_353
    birth = np.full(200, start - days_old, dtype=np.int64)
    onset = prior_palliative_onset(np.random.default_rng(seed), start, birth)
    assert (onset >= birth).all() and (onset < start).all()
    assert (onset <= start - 1).all() and (onset >= np.minimum(start - 299, birth)).all()
