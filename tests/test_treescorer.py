"""riskcap's tree scorer against lightgbm.Booster.predict and the slow reference walk.

Raw scores must be bit-for-bit LightGBM's (the kernels add tree outputs in LightGBM's
order); transformed outputs may differ in the last bit of exp.
"""
from __future__ import annotations

import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskcap.errors import DataError
from riskcap.models import _tree_kernels as kernels
from riskcap.models.treescorer import K_ZERO_THRESHOLD, ModelFormatError, TreeEnsemble
from reference import treescorer as naive

pytestmark = pytest.mark.unit

SPECIAL_VALUES = np.array([
    np.nan, 0.0, -0.0, np.inf, -np.inf,
    K_ZERO_THRESHOLD, -K_ZERO_THRESHOLD, 1e-36, -1e-36,  # read as zero by Booster.predict
    np.nextafter(K_ZERO_THRESHOLD, 1.0), -np.nextafter(K_ZERO_THRESHOLD, 1.0),  # the smallest non-zeros
    1e300, -1e300, -0.5, -1.0, 2.0**31, 5e9, 3.7,  # categorical edge cases: truncation, int overflow
])


def make_data(rng, n=2000, p=6, nan_share=0.15, zero_share=0.15, categorical=(), decimals=1):
    X = rng.normal(size=(n, p))
    if decimals is not None:
        X = X.round(decimals)  # repeated values, so thresholds land on data values
    X[rng.random((n, p)) < zero_share] = 0.0
    X[rng.random((n, p)) < nan_share] = np.nan
    for j, n_categories in categorical:
        X[:, j] = rng.integers(0, n_categories, n)
        X[rng.random(n) < nan_share, j] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.isnan(X[:, 1]) + (X[:, 2] == 0) + np.nan_to_num(X[:, 3]) ** 2
         + 0.5 * rng.normal(size=n))
    return X, y


def probe_rows(model: TreeEnsemble, X, rng):
    """X, rows of special values, and rows holding each split's threshold and its neighbours."""
    specials = rng.choice(SPECIAL_VALUES, size=(300, X.shape[1]))
    at_threshold = []
    for tree in model._trees:
        for node in range(tree.num_leaves - 1):
            if tree.decision_type[node] & 1:  # categorical: the bitset's categories are in X already
                continue
            thr = tree.threshold[node]
            for value in (thr, np.nextafter(thr, -np.inf), np.nextafter(thr, np.inf)):
                row = X[rng.integers(len(X))].copy()
                row[tree.split_feature[node]] = value
                at_threshold.append(row)
    return np.vstack([X, specials] + ([np.array(at_threshold)] if at_threshold else []))


def train(params, X, y, rounds, categorical=()):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = lgb.Dataset(X, y, categorical_feature=list(categorical) or "auto",
                           params={"verbose": -1, "min_data_per_group": 5, "cat_smooth": 1.0,
                                   **{k: params[k] for k in ("max_bin", "zero_as_missing", "use_missing")
                                      if k in params}})
        return lgb.train({"verbose": -1, "num_threads": 1, "deterministic": True, **params}, data, rounds)


def path_kernel_raw(model: TreeEnsemble, X, block_rows=kernels.BLOCK_ROWS):
    forest = kernels.compile_forest(model._trees, model.feature_names, block_rows=block_rows, kernel="path")
    raw = kernels.predict_raw(np.ascontiguousarray(X, dtype=np.float64), forest, 0, len(model._trees),
                              model.num_class)
    return raw[:, 0] if model.num_class == 1 else raw


def assert_matches_lightgbm(booster, model, X):
    """Raw scores identical to LightGBM (kernel, path kernel and reference); outputs within 1e-12."""
    expected_raw = booster.predict(X, raw_score=True)
    np.testing.assert_array_equal(model.predict(X, raw_score=True), expected_raw)
    np.testing.assert_array_equal(naive.predict_raw(model, X), expected_raw)
    np.testing.assert_array_equal(path_kernel_raw(model, X), expected_raw)
    expected = booster.predict(X)
    got = model.predict(X)
    assert got.shape == expected.shape
    assert np.nanmax(np.abs(got - expected)) <= 1e-12 * max(1.0, np.nanmax(np.abs(expected)))


MODEL_CASES = {
    "binary": ({"objective": "binary", "num_leaves": 15}, lambda y: y > 1, ()),
    "binary zero_as_missing": ({"objective": "binary", "zero_as_missing": True}, lambda y: y > 1, ()),
    "binary use_missing=False": ({"objective": "binary", "use_missing": False}, lambda y: y > 1, ()),
    "binary sigmoid=0.7": ({"objective": "binary", "sigmoid": 0.7}, lambda y: y > 1, ()),
    "regression": ({"objective": "regression"}, None, ()),
    "regression reg_sqrt": ({"objective": "regression", "reg_sqrt": True}, None, ()),
    "huber": ({"objective": "huber"}, None, ()),
    "quantile": ({"objective": "quantile", "alpha": 0.8}, None, ()),
    "poisson": ({"objective": "poisson"}, lambda y: np.abs(y).round(), ()),
    "gamma": ({"objective": "gamma"}, lambda y: np.abs(y) + 0.1, ()),
    "tweedie": ({"objective": "tweedie"}, lambda y: np.abs(y), ()),
    "cross_entropy": ({"objective": "cross_entropy"}, lambda y: 1 / (1 + np.exp(-y)), ()),
    "cross_entropy_lambda": ({"objective": "cross_entropy_lambda"}, lambda y: 1 / (1 + np.exp(-y)), ()),
    "multiclass": ({"objective": "multiclass", "num_class": 3}, lambda y: np.digitize(y, [0.3, 1.5]), ()),
    "multiclassova": ({"objective": "multiclassova", "num_class": 3}, lambda y: np.digitize(y, [0.3, 1.5]), ()),
    "random forest": ({"objective": "binary", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.6},
                      lambda y: y > 1, ()),
    "dart": ({"objective": "binary", "boosting": "dart"}, lambda y: y > 1, ()),
    "categorical": ({"objective": "binary", "max_cat_to_onehot": 4}, lambda y: y > 1, (0, 4)),
    "categorical zero_as_missing": ({"objective": "regression", "zero_as_missing": True}, None, (0, 4)),
    "63 leaves (64-bit leaf masks)": ({"objective": "binary", "num_leaves": 63, "min_data_in_leaf": 3},
                                      lambda y: y > 1, ()),
    "200 leaves (path kernel)": ({"objective": "binary", "num_leaves": 200, "min_data_in_leaf": 2},
                                 lambda y: y > 1, ()),
    "max_bin 1000 (uint16 codes)": ({"objective": "regression", "max_bin": 1000, "num_leaves": 31,
                                     "min_data_in_leaf": 2}, None, ()),
    "max_bin 1000, 200 leaves (uint16 codes, path kernel)": (
        {"objective": "regression", "max_bin": 1000, "num_leaves": 200, "min_data_in_leaf": 2}, None, ()),
}
FINE_DATA = {"p": 4, "decimals": None}  # continuous values: more distinct thresholds than uint8 codes hold


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_every_split_type_and_objective_matches_lightgbm(case):
    params, label, categorical = MODEL_CASES[case]
    rng = np.random.default_rng(7)
    uint16 = "uint16" in case
    X, y = make_data(rng, categorical=[(j, 40 if j == 0 else 6) for j in categorical], **(FINE_DATA if uint16 else {}))
    rounds = (100 if params["num_leaves"] < 100 else 25) if uint16 else 12
    booster = train(params, X, label(y) if label else y, rounds=rounds, categorical=categorical)
    model = TreeEnsemble.from_booster(booster)
    if uint16:
        assert model._forest.code_dtype == np.uint16
    assert model._forest.kernel == ("path" if "path kernel" in case else "bitvector")
    if "64-bit" in case:
        assert model._forest.node_mask.dtype == np.uint64
    assert_matches_lightgbm(booster, model, probe_rows(model, X, rng))


def test_missing_value_splits_of_every_kind_are_present():
    """The cases above really exercise none-, zero- and NaN-type splits (both default directions)."""
    rng = np.random.default_rng(7)
    X, y = make_data(rng)
    seen = set()
    for params in ({"objective": "regression"}, {"objective": "regression", "zero_as_missing": True},
                   {"objective": "regression", "use_missing": False}):
        booster = train(params, X, y, rounds=12)
        for tree in TreeEnsemble.from_booster(booster)._trees:
            seen.update(((int(d) >> 2) & 3, bool(int(d) & 2)) for d in tree.decision_type)
    assert {(1, True), (1, False), (2, True), (2, False)} <= seen and any(kind == 0 for kind, _ in seen)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(40, 400),
    n_features=st.integers(1, 8),
    num_leaves=st.integers(2, 40),
    rounds=st.integers(1, 6),
    max_bin=st.sampled_from([3, 15, 255, 400]),
    missing=st.sampled_from(["nan", "zero", "off"]),
    objective=st.sampled_from(["binary", "regression", "multiclass"]),
    categorical=st.booleans(),
)
def test_random_models_match_lightgbm_and_the_reference(seed, n_rows, n_features, num_leaves, rounds, max_bin,
                                                        missing, objective, categorical):
    rng = np.random.default_rng(seed)
    X, y = make_data(rng, n=n_rows, p=max(n_features, 4), nan_share=rng.uniform(0, 0.4),
                     zero_share=rng.uniform(0, 0.4), categorical=[(0, 30)] if categorical else [])
    X = X[:, :max(n_features, 4)]
    label = {"binary": y > np.median(y), "regression": y, "multiclass": np.digitize(y, np.quantile(y, [0.3, 0.7]))}
    params = {"objective": objective, "num_leaves": num_leaves, "min_data_in_leaf": 2, "max_bin": max_bin,
              "zero_as_missing": missing == "zero", "use_missing": missing != "off", "seed": seed % 1000}
    if objective == "multiclass":
        params["num_class"] = 3
    booster = train(params, X, label[objective], rounds, categorical=(0,) if categorical else ())
    model = TreeEnsemble.from_booster(booster)
    assert_matches_lightgbm(booster, model, probe_rows(model, X, rng))


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(allow_nan=False, width=64), max_size=300, unique=True),
       probes=st.lists(st.floats(allow_nan=False), min_size=1, max_size=30))
def test_eytzinger_walk_counts_values_below(values, probes):
    ordered = np.array(sorted(values), dtype=np.float64)
    layout, steps = kernels._eytzinger(ordered)
    for x in np.concatenate([probes, ordered]):
        k = 1
        for _ in range(steps):
            k = 2 * k + int(layout[k] < x)
        assert k - (1 << steps) == np.searchsorted(ordered, x, side="left")


def test_block_boundaries_and_thread_counts_do_not_change_results():
    rng = np.random.default_rng(3)
    X, y = make_data(rng, n=1500)
    booster = train({"objective": "binary", "num_leaves": 12}, X, y > 1, rounds=8)
    model = TreeEnsemble.from_booster(booster)
    expected = booster.predict(X, raw_score=True)
    for n in (1, 3, 63, 64, 65, 511, 512, 513, 1500):
        np.testing.assert_array_equal(model.predict(X[:n], raw_score=True), expected[:n])
    for block_rows in (64, 128):  # many blocks, and a partial last one, in both kernels
        for kernel in ("bitvector", "path"):
            forest = kernels.compile_forest(model._trees, model.feature_names, block_rows=block_rows, kernel=kernel)
            raw = kernels.predict_raw(X[:1000], forest, 0, len(model._trees), 1, n_threads=2)
            np.testing.assert_array_equal(raw[:, 0], expected[:1000])
    np.testing.assert_array_equal(model.predict(X, n_threads=1), model.predict(X, n_threads=2))
    assert model.predict(X[:0]).shape == (0,)


def test_iterations_follow_booster_predict():
    rng = np.random.default_rng(4)
    X, y = make_data(rng)
    booster = train({"objective": "multiclass", "num_class": 3, "num_leaves": 7}, X,
                    np.digitize(y, [0.3, 1.5]), rounds=10)
    model = TreeEnsemble.from_booster(booster)
    assert model.n_iterations == 10 and model.num_class == 3
    for start, num in ((0, None), (0, 0), (0, -1), (0, 3), (2, 3), (7, 10), (10, None), (12, 2)):
        for raw_score in (True, False):
            expected = booster.predict(X, start_iteration=start, num_iteration=num, raw_score=raw_score)
            got = model.predict(X, start_iteration=start, num_iteration=num, raw_score=raw_score)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)


def test_from_booster_stops_at_the_best_iteration_like_predict():
    rng = np.random.default_rng(5)
    X, y = make_data(rng, n=3000)
    label = (y + rng.normal(scale=3, size=y.size)) > 1  # noisy, so validation loss turns up early
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_set = lgb.Dataset(X[:2000], label[:2000], params={"verbose": -1})
        valid_set = lgb.Dataset(X[2000:], label[2000:], reference=train_set)
        booster = lgb.train({"objective": "binary", "verbose": -1, "learning_rate": 0.3, "num_leaves": 31},
                            train_set, 200, valid_sets=[valid_set], keep_training_booster=True,
                            callbacks=[lgb.early_stopping(5, verbose=False)])
    assert 0 < booster.best_iteration < booster.current_iteration()
    model = TreeEnsemble.from_booster(booster)
    assert model.n_iterations == booster.best_iteration
    np.testing.assert_array_equal(model.predict(X, raw_score=True), booster.predict(X, raw_score=True))


def test_single_leaf_trees():
    rng = np.random.default_rng(6)
    X, y = make_data(rng, n=50)
    booster = train({"objective": "regression", "min_data_in_leaf": 40}, X, y, rounds=3)  # no split possible
    model = TreeEnsemble.from_booster(booster)
    assert all(t.num_leaves == 1 for t in model._trees)
    assert_matches_lightgbm(booster, model, probe_rows(model, X, rng))


def test_file_and_dataframe_inputs(tmp_path):
    rng = np.random.default_rng(8)
    X, y = make_data(rng)
    booster = train({"objective": "binary"}, X, y > 1, rounds=5)
    path = tmp_path / "model.txt"
    booster.save_model(str(path))
    model = TreeEnsemble.from_file(path)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["f5"] = frame["f5"].round().astype("Int64")  # nullable integers: <NA> reads as NaN
    expected = booster.predict(frame.astype("float64").to_numpy())
    np.testing.assert_allclose(model.predict(frame), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(model.predict(X.astype(np.float32)), booster.predict(X.astype(np.float32)),
                               rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="column 'f1' has dtype category"):
        model.predict(frame.assign(f1=frame["f1"].astype("category")))
    with pytest.raises(ValueError, match="X has 5 columns but the model expects 6"):
        model.predict(X[:, :5])
    assert "n_trees=5" in repr(model)


def _model_text(rounds=2, **params) -> str:
    rng = np.random.default_rng(9)
    X, y = make_data(rng, n=300)
    return train({"objective": "regression", "num_leaves": 4, **params}, X, y, rounds).model_to_string()


def _edit_tree0(text: str, **fields: str) -> str:
    """Replace (or add) ``key=value`` lines in the first tree of a model text."""
    head, _, rest = text.partition("Tree=0\n")
    block, sep, tail = rest.partition("\n\n")
    lines = block.splitlines()
    for key, value in fields.items():
        at = [i for i, line in enumerate(lines) if line.startswith(f"{key}=")]
        if at:
            lines[at[0]] = f"{key}={value}"
        else:
            lines.append(f"{key}={value}")
    return head + "Tree=0\n" + "\n".join(lines) + sep + tail


@pytest.mark.parametrize("mutate, message", [
    (lambda t: "hello\n" + t, "must start with the line 'tree'"),
    (lambda t: t.split("end of trees")[0], "no 'end of trees' line"),
    (lambda t: t.replace("objective=regression", "objective=spline_magic"), "objective 'spline_magic'"),
    (lambda t: _edit_tree0(t, split_feature="0 99 1"), "feature index 99"),
    (lambda t: _edit_tree0(t, left_child="1 0 -1"), "do not describe a binary tree"),
    (lambda t: _edit_tree0(t, threshold="0.5 nan 1"), "threshold NaN"),
    (lambda t: _edit_tree0(t, leaf_value="1 2"), "'leaf_value' has 2 values, expected 4"),
    (lambda t: _edit_tree0(t, decision_type="12 2 2"), "unknown decision_type=12"),
    (lambda t: _edit_tree0(t, threshold="0.5 zero 1"), "'threshold' is not a list of numbers"),
    (lambda t: _edit_tree0(t, num_leaves="x"), "no valid 'num_leaves'"),
    (lambda t: t.replace("Tree=1\n", "Tree=5\n"), "trees are misnumbered \\(tree 1 is 'Tree=5'\\)"),
])
def test_malformed_model_text_is_refused_clearly(mutate, message):
    text = _model_text()
    TreeEnsemble.from_string(text)  # the unmutated text is fine
    with pytest.raises(ModelFormatError, match=message) as info:
        TreeEnsemble.from_string(mutate(text))
    assert isinstance(info.value, ValueError) and isinstance(info.value, DataError)


def test_unsupported_models_are_refused_naming_the_problem(tmp_path):
    with pytest.raises(ModelFormatError, match="Tree=0 is a linear tree"):
        TreeEnsemble.from_string(_model_text(linear_tree=True))
    # a categorical split on a feature that is also split numerically cannot come from LightGBM
    mixed = _edit_tree0(_model_text(), split_feature="0 0 0", decision_type="1 2 2", threshold="0 0.5 -0.5",
                        num_cat="1", cat_boundaries="0 1", cat_threshold="5")
    with pytest.raises(ModelFormatError, match="feature 'Column_0' is split both as categorical and as numerical"):
        TreeEnsemble.from_string(mixed)
    path = tmp_path / "broken.txt"
    path.write_text("tree\nversion=v4\n")
    with pytest.raises(ModelFormatError, match="broken.txt: LightGBM model text is truncated"):
        TreeEnsemble.from_file(path)


# --------------------------------------------------------------------------- TreeSHAP contributions
def assert_contributions_match_lightgbm(booster, model, X, **iterations):
    """Direct kernel bit-for-bit ``pred_contrib``; the pattern memo within rounding; rows sum to the raw score."""
    from riskcap.models import _shap_kernels

    expected = booster.predict(X, pred_contrib=True, **iterations)
    got = model.contributions(X, **iterations)
    assert got.shape == expected.shape
    scale = max(1.0, np.abs(expected).max())
    assert np.abs(got - expected).max() <= 1e-12 * scale
    first, last, _ = model._trees_used(iterations.get("start_iteration", 0), iterations.get("num_iteration"))
    direct = _shap_kernels.contributions(model._rows(X), model._shap, first, last, model.num_class,
                                         model.n_features, memo=False)
    np.testing.assert_array_equal(direct, expected)
    # decision patterns from raw floats (any model) and from the scorer's integer codes agree exactly
    raw_patterns = _shap_kernels.contributions(model._rows(X), model._shap, first, last, model.num_class,
                                               model.n_features)
    np.testing.assert_array_equal(raw_patterns, got)
    raw = booster.predict(X, raw_score=True, **iterations).reshape(len(X), -1)
    sums = got.reshape(len(X), model.num_class, -1).sum(axis=2)
    assert np.abs(sums - raw).max() <= 1e-9 * scale


@pytest.mark.parametrize("case", [c for c in MODEL_CASES if c != "random forest"])
def test_contributions_match_lightgbm_pred_contrib(case):
    params, label, categorical = MODEL_CASES[case]
    rng = np.random.default_rng(11)
    uint16 = "uint16" in case
    X, y = make_data(rng, categorical=[(j, 40 if j == 0 else 6) for j in categorical], **(FINE_DATA if uint16 else {}))
    booster = train(params, X, label(y) if label else y, rounds=8, categorical=categorical)
    model = TreeEnsemble.from_booster(booster)
    assert_contributions_match_lightgbm(booster, model, probe_rows(model, X, rng))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(40, 400),
    num_leaves=st.integers(2, 40),
    rounds=st.integers(1, 6),
    missing=st.sampled_from(["nan", "zero", "off"]),
    objective=st.sampled_from(["binary", "regression", "multiclass"]),
    categorical=st.booleans(),
)
def test_random_models_contributions_match_lightgbm(seed, n_rows, num_leaves, rounds, missing, objective,
                                                    categorical):
    rng = np.random.default_rng(seed)
    X, y = make_data(rng, n=n_rows, nan_share=rng.uniform(0, 0.4), zero_share=rng.uniform(0, 0.4),
                     categorical=[(0, 30)] if categorical else [])
    label = {"binary": y > np.median(y), "regression": y, "multiclass": np.digitize(y, np.quantile(y, [0.3, 0.7]))}
    params = {"objective": objective, "num_leaves": num_leaves, "min_data_in_leaf": 2,
              "zero_as_missing": missing == "zero", "use_missing": missing != "off", "seed": seed % 1000}
    if objective == "multiclass":
        params["num_class"] = 3
    booster = train(params, X, label[objective], rounds, categorical=(0,) if categorical else ())
    model = TreeEnsemble.from_booster(booster)
    assert_contributions_match_lightgbm(booster, model, probe_rows(model, X, rng))


def test_contributions_do_not_depend_on_blocks_threads_or_iterations(monkeypatch):
    from riskcap.models import _shap_kernels

    rng = np.random.default_rng(12)
    X, y = make_data(rng, n=3000)
    booster = train({"objective": "multiclass", "num_class": 3, "num_leaves": 9}, X, np.digitize(y, [0.3, 1.5]),
                    rounds=10)
    model = TreeEnsemble.from_booster(booster)
    whole = model.contributions(X, n_threads=2)
    monkeypatch.setattr(_shap_kernels, "MEMO_BLOCK_ROWS", 257)  # many blocks, a partial last one
    np.testing.assert_array_equal(model.contributions(X, n_threads=1), whole)
    np.testing.assert_array_equal(model.contributions(X[:1]), whole[:1])
    assert model.contributions(X[:0]).shape == (0, 3 * (X.shape[1] + 1))
    for start, num in ((0, 3), (2, 3), (7, 10), (10, None)):
        assert_contributions_match_lightgbm(booster, model, X[:500], start_iteration=start, num_iteration=num)


def test_contributions_refuse_models_they_cannot_explain():
    rng = np.random.default_rng(13)
    X, y = make_data(rng, n=300)
    forest = train(MODEL_CASES["random forest"][0], X, y > 1, rounds=3)
    with pytest.raises(ModelFormatError, match="random-forest"):
        TreeEnsemble.from_booster(forest).contributions(X)
    text = "\n".join(line for line in _model_text().splitlines() if not line.startswith("leaf_count="))
    model = TreeEnsemble.from_string(text)  # scoring does not need the counts...
    model.predict(X)
    with pytest.raises(ModelFormatError, match="Tree=0 has no leaf_count/internal_count"):
        model.contributions(X)  # ...TreeSHAP does
