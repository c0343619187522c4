"""Models: logistic JSON scorer vs scikit-learn, gbm vs LightGBM, artefacts, metrics, reasons, scoring."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from riskcap.errors import DataError
from riskcap.features import COST_LABEL, LABEL, MODEL_FEATURES, build_features
from riskcap.models import evaluate as E
from riskcap.models.base import check_features, feature_matrix
from riskcap.models.explain import reasons_for, top_reasons
from riskcap.models.persist import load_model, read_model_files, save_model
from riskcap.models.score import SCORE_COLUMNS, score_frame, score_population
from riskcap.models.train import evaluate_model, train_model
from riskcap.synthetic import EVAL_INDEX_DATE, TRAIN_INDEX_DATE, SynthConfig, generate_tables, write_population
from reference import explain as naive_explain
from reference import logistic as naive_logistic


@pytest.fixture(scope="module")
def population():
    tables, truth = generate_tables(SynthConfig(people=6000, seed=11))
    return tables, truth


@pytest.fixture(scope="module")
def frames(population):
    tables, _ = population
    return build_features(tables, TRAIN_INDEX_DATE), build_features(tables, EVAL_INDEX_DATE)


@pytest.fixture(scope="module")
def logistic(frames):
    return train_model("logistic", frames[0], TRAIN_INDEX_DATE)


@pytest.fixture(scope="module")
def gbm(frames):
    return train_model("gbm", frames[0], TRAIN_INDEX_DATE, seed=3)


# --- logistic ------------------------------------------------------------------------

def test_logistic_json_scorer_reproduces_sklearn(frames):
    from riskcap.models.logistic import LogisticModel, fit_pipeline

    train, test = frames
    pipeline = fit_pipeline(train)
    model = LogisticModel(json.loads(json.dumps(LogisticModel.from_pipeline(pipeline).params)))
    want = pipeline.predict_proba(feature_matrix(test, MODEL_FEATURES))[:, 1]
    got = model.predict_uncalibrated(test)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # contributions are coefficient x centred value and add up to the linear predictor
    lp = model.raw_linear_predictor(test)
    np.testing.assert_allclose(model.contributions(test).sum(axis=1) + model.intercept, lp, atol=1e-9)
    # cost-by-setting inputs are left out of the regression and contribute nothing
    omitted = [j for j, t in enumerate(model.spec) if t["kind"] == "omit"]
    assert omitted and not model.contributions(test)[:, omitted].any()


def test_logistic_recalibration_is_monotone_and_applied(logistic, frames):
    from scipy.special import expit

    from riskcap.models.calibrate import apply_recalibration

    test = frames[1]
    cal = logistic.params["calibration"]
    raw = logistic.raw_linear_predictor(test)
    np.testing.assert_allclose(logistic.predict(test), expit(apply_recalibration(raw, cal)), rtol=1e-12)
    order = np.argsort(raw, kind="stable")
    assert (np.diff(logistic.predict(test)[order]) >= 0).all()  # ranking unchanged


def test_logistic_coefficients_are_inspectable(logistic):
    table = logistic.coefficients()
    used = {t["feature"] for t in logistic.spec if t["kind"] != "omit"}
    assert set(table["feature"]) == used and "cost_total_0_12" in used and "cost_gp_0_12" not in used
    assert len(table) == len(logistic.params["terms"]) == len(logistic.coef)
    assert table["coef_per_sd"].abs().is_monotonic_decreasing
    # age enters as a spline: several terms, one feature
    assert (table["feature"] == "age").sum() > 1


# --- gbm and cost --------------------------------------------------------------------

def test_gbm_matches_lightgbm_and_is_calibrated(gbm, frames):
    from scipy.special import expit

    from riskcap.models.calibrate import apply_recalibration

    train, test = frames
    X = feature_matrix(test, gbm.features)
    raw = gbm.booster.predict(X, raw_score=True)
    np.testing.assert_array_equal(gbm.raw(test), raw)  # numba tree scorer: bit-for-bit
    np.testing.assert_allclose(gbm.predict(test), expit(apply_recalibration(raw, gbm.calibration)), rtol=1e-12)
    fit = gbm.metadata["fit"]
    assert fit["best_iteration"] >= 1 and fit["rounds_run"] >= fit["best_iteration"]
    assert fit["validation_rows"] > 0 and fit["train_rows"] + fit["validation_rows"] == len(train)
    # TreeSHAP contributions plus the expected value give the raw log-odds
    contrib = gbm.booster.predict(X, pred_contrib=True)
    np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-9)
    np.testing.assert_allclose(gbm.contributions(test), contrib[:, :-1], atol=1e-12)


def test_cost_model_predicts_pounds(frames):
    train, test = frames
    model = train_model("cost", train, TRAIN_INDEX_DATE)
    pred = model.predict(test)
    assert (pred > 0).all()
    ratio = pred.sum() / test[COST_LABEL].sum()
    assert 0.7 < ratio < 1.3, ratio
    metrics = evaluate_model(model, test, EVAL_INDEX_DATE)
    assert metrics["r2"] > 0.1 and metrics["practices"] == test["practice_code"].nunique()


def test_unknown_kind_and_single_class(frames):
    with pytest.raises(DataError, match="unknown model kind"):
        train_model("forest", frames[0], TRAIN_INDEX_DATE)
    one_class = frames[0].assign(**{LABEL: 0})
    with pytest.raises(DataError, match="only one value"):
        train_model("logistic", one_class, TRAIN_INDEX_DATE)


# --- artefacts -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_save_load_roundtrip_without_pickle(kind, logistic, gbm, frames, tmp_path):
    model = {"logistic": logistic, "gbm": gbm}[kind]
    save_model(model, tmp_path)
    meta = json.loads((tmp_path / "metadata.json").read_text())
    for key in ("features", "training_index_date", "data", "metrics", "versions", "files", "kind"):
        assert key in meta
    assert meta["features"] == MODEL_FEATURES and meta["training_index_date"] == str(TRAIN_INDEX_DATE)
    for path in tmp_path.iterdir():  # every file is text: JSON, CSV or LightGBM's model text
        path.read_text(encoding="utf-8")
    loaded = load_model(tmp_path)
    test = frames[1]
    np.testing.assert_array_equal(loaded.predict(test), model.predict(test))
    # saving twice gives byte-identical files
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    save_model(loaded, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first


def test_load_rejects_tampering_and_mismatched_features(logistic, frames, tmp_path):
    save_model(logistic, tmp_path)
    test = frames[1]
    with pytest.raises(DataError, match="missing from the data: ltc_heart_failure"):
        load_model(tmp_path).predict(test.drop(columns=["ltc_heart_failure"]))
    # a model trained without a feature this version builds is a mismatch too, named
    with pytest.raises(DataError, match="not in the model's training features: acs_admissions_0_12"):
        check_features(test, MODEL_FEATURES[:-1])
    check_features(test.assign(some_other_column=1), MODEL_FEATURES)  # non-feature columns are fine
    path = tmp_path / "model.json"
    path.write_text(path.read_text().replace('"intercept": ', '"intercept": 1 + '))
    with pytest.raises(DataError, match="SHA-256"):
        load_model(tmp_path)
    with pytest.raises(DataError, match="not a riskcap model directory"):
        load_model(tmp_path / "nowhere")


# --- metrics -------------------------------------------------------------------------

def _brute_top(y, p, fraction):
    n = len(y)
    k = max(1, int(round(fraction * n)))
    ranked = sorted(range(n), key=lambda i: (-p[i], i))[:k]
    hits = sum(y[i] for i in ranked)
    return hits / k, hits / sum(y)


def test_risk_metrics_against_references():
    rng = np.random.default_rng(5)
    n = 40_000
    p = rng.beta(0.6, 7, n)
    y = (rng.random(n) < p).astype(int)
    frame = pd.DataFrame({"age_band": rng.choice(["0-17", "80+"], n), "sex": rng.choice(["F", "M"], n),
                          "imd_quintile": rng.integers(1, 6, n)})
    m = E.risk_metrics(y, p, frame, truth_p=p)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["auprc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    # perfectly calibrated by construction: slope ~1, intercept ~0
    assert m["calibration_slope"] == pytest.approx(1, abs=0.05)
    assert m["calibration_intercept"] == pytest.approx(0, abs=0.05)
    for f in E.TOP_FRACTIONS:
        ppv, sens = _brute_top(y, p, f)
        assert m["ppv_at"][E.fraction_key(f)] == pytest.approx(ppv)
        assert m["sensitivity_at"][E.fraction_key(f)] == pytest.approx(sens)
        assert m["number_to_enrol_per_admission"][E.fraction_key(f)] == pytest.approx(1 / ppv)
    assert set(m["ppv_at"]) == {"0.005", "0.01", "0.02", "0.05", "0.1"}
    deciles = m["calibration_by_decile"]
    assert [d["decile"] for d in deciles] == list(range(1, 11))
    assert sum(d["observed"] for d in deciles) == y.sum()
    assert sum(d["expected"] for d in deciles) == pytest.approx(p.sum())
    assert all(abs(d["observed"] - d["expected"]) < 4 * np.sqrt(d["expected"]) for d in deciles)
    assert [d["mean_predicted"] for d in deciles] == sorted(d["mean_predicted"] for d in deciles)
    by_sex = {g["group"]: g for g in m["subgroups"]["sex"]}
    mask = frame["sex"].to_numpy() == "F"
    assert by_sex["F"]["auroc"] == pytest.approx(roc_auc_score(y[mask], p[mask]))
    assert by_sex["F"]["n"] == mask.sum()
    assert [g["group"] for g in m["subgroups"]["imd_quintile"]] == [1, 2, 3, 4, 5]
    assert m["oracle_auroc"] == pytest.approx(m["auroc"]) and m["oracle_gap"] == pytest.approx(0)
    json.dumps(m)  # JSON-able as it stands


def test_recalibration_recovers_known_slope_and_intercept():
    rng = np.random.default_rng(9)
    lp = rng.normal(-2.5, 1.0, 200_000)
    y = (rng.random(len(lp)) < 1 / (1 + np.exp(-(0.3 + 0.7 * lp)))).astype(float)
    a, b = E.recalibration(lp, y)
    assert a == pytest.approx(0.3, abs=0.05) and b == pytest.approx(0.7, abs=0.03)
    from sklearn.linear_model import LogisticRegression

    ref = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(lp[:, None], y)
    assert a == pytest.approx(ref.intercept_[0], abs=1e-5) and b == pytest.approx(ref.coef_[0, 0], abs=1e-5)


def test_evaluate_model_reports_temporal_validation(logistic, frames, population):
    _, truth = population
    test = frames[1]
    t = truth[truth["year_start"] == pd.Timestamp(EVAL_INDEX_DATE)].set_index("person_id")["p_emergency"]
    truth_p = t.reindex(test["person_id"]).to_numpy()
    m = evaluate_model(logistic, test, EVAL_INDEX_DATE, truth_p)
    assert m["temporal_validation"] and "warning" not in m
    assert m["oracle_auroc"] == pytest.approx(roc_auc_score(test[LABEL], truth_p))
    same_year = evaluate_model(logistic, frames[0], TRAIN_INDEX_DATE)
    assert not same_year["temporal_validation"] and "not temporal validation" in same_year["warning"]


# --- reasons -------------------------------------------------------------------------

def test_reasons_plain_english_positive_present_and_deterministic():
    features = ["age", "male", "ltc_heart_failure", "years_since_heart_failure", "emergency_admissions_0_12",
                "ae_12_24", "days_since_emergency", "cost_total_0_12"]
    frame = pd.DataFrame({
        "age": [87, 40, 60], "male": [1, 0, 1], "ltc_heart_failure": [1, 0, 1],
        "years_since_heart_failure": [3.2, np.nan, 1.0], "emergency_admissions_0_12": [3, 0, 1],
        "ae_12_24": [1, 0, 2], "days_since_emergency": [40, 1461, 200], "cost_total_0_12": [12345.0, 0.0, 640.0]})
    contrib = np.array([
        [0.5, 0.1, 0.3, 0.2, 0.9, 0.05, 0.2, 0.0],  # HF = 0.3 + 0.2 ties with age 0.5 -> age (earlier) first
        [0.2, 0.0, 0.4, 0.0, 0.6, 0.3, 0.7, 0.0],  # absent HF / no admissions / none since: not reasons
        [-0.1, 0.2, 0.2, 0.0, 0.2, 0.2, 0.1, 0.2],  # four-way tie at 0.2: feature order decides
    ])
    r1, r2, r3 = top_reasons(frame, contrib, features)
    assert (r1[0], r2[0], r3[0]) == ("3 emergency admissions in the last 12 months", "aged 87", "heart failure")
    assert (r1[1], r2[1], r3[1]) == ("aged 40", "", "")
    assert (r1[2], r2[2], r3[2]) == ("male", "heart failure", "1 emergency admission in the last 12 months")
    assert {r.name for r in reasons_for(features)} == {
        "age", "male", "ltc_heart_failure", "emergency_admissions_0_12", "ae_12_24", "days_since_emergency",
        "cost_total_0_12"}
    phrases = {r.name: r for r in reasons_for(features)}
    assert phrases["days_since_emergency"].phrase(40) == "last emergency admission 40 days ago"
    assert phrases["ae_12_24"].phrase(2) == "2 A&E attendances 12 to 24 months ago"
    assert phrases["cost_total_0_12"].phrase(12300.0) == "£12,300 of care in the last 12 months"


def test_every_model_feature_has_a_reason():
    reasons = reasons_for(MODEL_FEATURES)
    covered = [f for r in reasons for f in r.features]
    assert sorted(covered) == sorted(MODEL_FEATURES)
    for r in reasons:  # no fallback phrases made of raw column names
        assert "_" not in r.phrase(2.0), r.name


# --- scoring -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def score(logistic, tmp_path_factory):
    """``score(name, **options)``: the population, written to a data folder, scored by
    :func:`score_population` with the logistic model into ``name`` and read back."""
    root = tmp_path_factory.mktemp("scoring")
    write_population(root / "data", SynthConfig(people=6000, seed=11, partition_people=1000))
    save_model(logistic, root / "model")

    def run(name: str, **options) -> pd.DataFrame:
        score_population(read_model_files(root / "model"), root / "data", EVAL_INDEX_DATE, root / name, **options)
        return pd.read_parquet(root / name)

    return run


def test_scores_partitions_and_columns(score):
    whole = score("whole.parquet", people=10**9)
    parts = score("parts.parquet", people=1000)
    assert score("top_parts.parquet", people=1000, reasons_for=30).equals(
        score("top_whole.parquet", people=10**9, reasons_for=30))
    pd.testing.assert_frame_equal(whole, parts, check_exact=True)
    assert list(whole.columns) == SCORE_COLUMNS
    assert whole["person_id"].is_monotonic_increasing
    assert (whole["score"] == np.rint(100 * whole["probability"])).all()
    assert whole["percentile"].max() == 100
    top = whole.nlargest(max(1, int(0.005 * len(whole))), "probability")
    assert (top["tier"] == "very high").all()
    assert set(whole["tier"]) == {"very high", "high", "rising", "low"}
    assert (whole["reason_1"] != "").mean() > 0.9
    assert (whole["model"] == "logistic").all()


def test_score_frame_gbm_reasons(gbm, frames):
    out = score_frame(gbm, frames[1].head(500))
    assert (out["reason_1"] != "").mean() > 0.9
    assert out["probability"].between(0, 1).all()


def test_reasons_for_the_top_share_only(score):
    everyone = score("everyone.parquet", people=2000)
    top = score("top.parquet", people=2000, reasons_for=5)
    chosen = top["percentile"] > 95
    assert chosen.any() and (~chosen).any()
    for col in ("reason_1", "reason_2", "reason_3"):
        assert (top.loc[chosen, col].astype(str) == everyone.loc[chosen, col].astype(str)).all()
        assert (top.loc[~chosen, col].astype(str) == "").all()
    assert (top["probability"] == everyone["probability"]).all()
    nobody = score("nobody.parquet", reasons_for=0)
    assert (nobody["reason_1"].astype(str) == "").all()
    with pytest.raises(ValueError, match="percent"):
        score("bad.parquet", reasons_for=120)


# --- recalibration map ---------------------------------------------------------------

def test_spline_recalibration_recovers_a_bent_curve_and_stays_monotone():
    from riskcap.models.calibrate import apply_recalibration, fit_recalibration

    rng = np.random.default_rng(2)
    lp = rng.normal(-3, 1.2, 300_000)
    true_logit = np.where(lp < -3, -3 + 0.6 * (lp + 3), -3 + 1.2 * (lp + 3))  # flat at the low end
    y = (rng.random(len(lp)) < 1 / (1 + np.exp(-true_logit))).astype(float)
    cal = fit_recalibration(lp, y)
    grid = np.linspace(-5, -1, 41)
    want = np.where(grid < -3, -3 + 0.6 * (grid + 3), -3 + 1.2 * (grid + 3))
    assert np.abs(apply_recalibration(grid, cal) - want).max() < 0.15
    assert (np.diff(apply_recalibration(grid, cal)) > 0).all()
    # no signal at all: the map is still increasing (knots dropped as needed)
    noise = fit_recalibration(lp, (rng.random(len(lp)) < 0.05).astype(float))
    assert (np.diff(apply_recalibration(np.sort(lp), noise)) >= 0).all()
    json.dumps(cal)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 12), st.integers(0, 40), st.integers(1, 4))
def test_reason_picks_kernel_matches_reference(seed, n_features, n_people, k):
    from riskcap.models.explain import reason_picks

    rng = np.random.default_rng(seed)
    # contributions from a few values so that totals tie often; some features belong to no reason
    contrib = rng.choice([-0.5, 0.0, 0.1, 0.2, 0.3], size=(n_people, n_features))
    noisy = rng.random(contrib.shape) < 0.3
    contrib[noisy] = rng.normal(size=int(noisy.sum()))
    n_reasons = max(1, n_features - 2)
    reason_of = rng.integers(-1, n_reasons, n_features)
    present = rng.random((n_reasons, n_people)) < 0.8
    np.testing.assert_array_equal(reason_picks(contrib, reason_of, present, k),
                                  naive_explain.reason_picks(contrib, reason_of, present, k))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(0, 50))
def test_logistic_kernel_matches_numpy_reference(logistic, frames, seed, n):
    """Random inputs (NaN, negatives, huge counts, ages beyond the knots) through both paths."""
    rng = np.random.default_rng(seed)
    base = frames[1].sample(n, replace=True, random_state=seed).reset_index(drop=True) if n else frames[1].head(0)
    frame = base.copy()
    for col in rng.choice(MODEL_FEATURES, size=min(10, len(MODEL_FEATURES)), replace=False):
        values = rng.choice([np.nan, -3.0, 0.0, 0.5, 1.0, 7.0, 1e6, 120.0], size=n)
        frame[col] = values
    contrib = naive_logistic.contributions(logistic, frame)
    np.testing.assert_allclose(logistic.contributions(frame), contrib, rtol=1e-12, atol=1e-12)
    # sums of different orders: equal to rounding, relative to the size of what is summed
    scale = 1 + np.abs(contrib).sum(axis=1)
    diff = np.abs(logistic.raw_linear_predictor(frame) - naive_logistic.raw_linear_predictor(logistic, frame))
    assert (diff <= 1e-13 * scale).all()
