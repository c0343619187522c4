"""LightGBM models: the calibrated emergency-admission classifier and shared training.

Training holds out a random validation split of the training people (by person, seeded)
for early stopping. The classifier's log-odds are then recalibrated on that held-out split
with a monotone spline (:mod:`riskcap.models.calibrate`: Platt scaling with bends at the
quartiles), so ranking and AUROC are unchanged and observed/expected holds along the risk
range: boosted trees over-predict their lowest-risk people. Three bends, not five: a split
of 20% holds few admissions at the low end, and more bends there chase noise (measured in
``docs/models.md``). The artefact is LightGBM's own text format (``model.txt``) plus
``calibration.json``; loading parses text, never unpickles. Scoring and the per-feature
contributions for reasons (TreeSHAP, in log-odds) use riskcap's numba tree scorer
(:mod:`riskcap.models.treescorer`), which agrees with LightGBM's ``predict`` and
``pred_contrib``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from riskcap.data.write import write_json
from riskcap.errors import DataError
from riskcap.features import LABEL, MODEL_FEATURES
from riskcap.models.base import check_features, feature_matrix, finite_json

MODEL_TEXT = "model.txt"
CALIBRATION_FILE = "calibration.json"
VALIDATION_FRACTION = 0.2

#: LightGBM parameters shared by the classifier and the cost model.
BASE_PARAMS: dict = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": "auto",  # see leaf_size()
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "max_bin": 255,
    # One thread: on a busy 2-core machine LightGBM's OpenMP threads spin-wait for each other
    # and training with two was measured 3-6x slower than with one; results also stay
    # reproducible whatever the machine.
    "num_threads": 1,
    "deterministic": True,
    "force_col_wise": True,
    "verbosity": -1,
}
CLASSIFIER_PARAMS: dict = {**BASE_PARAMS, "objective": "binary", "metric": "binary_logloss"}
MAX_ROUNDS = 2000
#: Knots of the recalibration map (quantiles of the validation split's log-odds).
CALIBRATION_KNOTS: tuple[float, ...] = (0.25, 0.5, 0.75)
EARLY_STOPPING_ROUNDS = 50


def validation_split(n: int, seed: int, fraction: float = VALIDATION_FRACTION) -> np.ndarray:
    """Boolean mask of the validation rows: a seeded random ``fraction`` of people."""
    return np.random.default_rng(seed).random(n) < fraction


#: People per leaf, as a share of the training rows, and its bounds.
LEAF_SHARE, LEAF_MIN, LEAF_MAX = 1 / 400, 20, 1000


def leaf_size(train_rows: int) -> int:
    """Minimum people per leaf: 0.25% of the training rows, between 20 and 1,000.

    Coarse leaves keep the trees from chasing noise in low-risk groups, where a leaf of a
    few hundred people holds a handful of admissions.
    """
    return int(min(LEAF_MAX, max(LEAF_MIN, train_rows * LEAF_SHARE)))


def train_booster(X: np.ndarray, y: np.ndarray, params: dict, seed: int, valid: np.ndarray,
                  max_rounds: int = MAX_ROUNDS, early_stopping_rounds: int = EARLY_STOPPING_ROUNDS):
    """Train LightGBM on the rows outside ``valid``, stopping early on the rows inside it.

    Returns (booster, details) where details records rounds and the validation metric.
    """
    import lightgbm as lgb

    params = {**params, "seed": seed}
    if params.get("min_data_in_leaf") == "auto":
        params["min_data_in_leaf"] = leaf_size(int((~valid).sum()))
    train = lgb.Dataset(X[~valid], y[~valid], feature_name=list(MODEL_FEATURES), free_raw_data=True)
    check = lgb.Dataset(X[valid], y[valid], reference=train)
    evals: dict = {}
    booster = lgb.train(params, train, num_boost_round=max_rounds, valid_sets=[check], valid_names=["validation"],
                        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False),
                                   lgb.record_evaluation(evals)])
    metric = params["metric"]
    history = evals["validation"][metric]
    details = {"best_iteration": int(booster.best_iteration), "rounds_run": len(history),
               "validation_metric": metric, "validation_score": float(history[booster.best_iteration - 1]),
               "train_rows": int((~valid).sum()), "validation_rows": int(valid.sum()), "params": params}
    return booster, details


class LightGBMModel:
    """Shared loading, scoring and contributions for models stored as LightGBM text."""

    kind = ""

    def __init__(self, model_text: str, metadata: dict | None = None):
        from riskcap.models.treescorer import TreeEnsemble

        self.model_text = model_text
        try:
            self.ensemble = TreeEnsemble.from_string(model_text)
        except ValueError as exc:
            raise DataError(f"{self.kind} model: {exc}") from exc
        self.features: list[str] = list(self.ensemble.feature_names)
        self.metadata = metadata or {}
        self._booster = None

    @property
    def booster(self):
        """The LightGBM booster, parsed from the model text on first use."""
        if self._booster is None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.model_text)
        return self._booster

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        check_features(frame, self.features)
        return feature_matrix(frame, self.features)

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Summed tree outputs (log-odds for the classifier, log of the mean for the cost model)."""
        return self._raw(self.matrix(frame))

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Per-feature TreeSHAP contributions to the raw score: shape (n, len(features))."""
        return self._contributions(self.matrix(frame))

    def _raw(self, X: np.ndarray) -> np.ndarray:
        return self.ensemble.predict(X, raw_score=True)

    def _contributions(self, X: np.ndarray) -> np.ndarray:
        return self.ensemble.contributions(X)[:, : len(self.features)]

    def from_raw(self, raw: np.ndarray) -> np.ndarray:
        """Predictions from :meth:`raw` scores (the subclass's scale)."""
        raise NotImplementedError

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predictions for a features frame: :meth:`from_raw` of :meth:`raw`."""
        return self.from_raw(self.raw(frame))

    def predict_with_contributions(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and contributions from one feature matrix (the tree scorer, then TreeSHAP)."""
        X = self.matrix(frame)
        return self.from_raw(self._raw(X)), self._contributions(X)

    def save(self, model_dir: str | Path) -> list[Path]:
        from riskcap.data.write import write_file

        return [write_file(self.model_text, Path(model_dir) / MODEL_TEXT)]

    @staticmethod
    def text_of(files: dict[str, bytes], origin: Path) -> str:
        """The LightGBM model text of a model folder's checked file bytes."""
        try:
            return files[MODEL_TEXT].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{Path(origin) / MODEL_TEXT}: cannot read the LightGBM model text ({exc})") from None

    @classmethod
    def from_files(cls, files: dict[str, bytes], metadata: dict, origin: Path) -> "LightGBMModel":
        """The model from a model folder's checked file bytes (:mod:`riskcap.models.persist`)."""
        return cls(cls.text_of(files, origin), metadata)


class GBMModel(LightGBMModel):
    """LightGBM classifier with a monotone recalibration of its log-odds.

    Contributions are to the log-odds before the recalibration, which, being monotone, cannot
    change which factors push a person's risk up the most.
    """

    kind = "gbm"

    def __init__(self, model_text: str, calibration: dict, metadata: dict | None = None):
        from riskcap.models.calibrate import METHOD

        super().__init__(model_text, metadata)
        from riskcap.models.calibrate import check_recalibration

        if not isinstance(calibration, dict) or calibration.get("method") != METHOD:
            method = calibration.get("method") if isinstance(calibration, dict) else calibration
            raise DataError(f"gbm model: unknown calibration {method!r} (expected {METHOD!r})")
        check_recalibration(calibration, "gbm model")
        self.calibration = calibration

    def from_raw(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probability of one or more emergency admissions in the next 12 months."""
        from scipy.special import expit

        from riskcap.models.calibrate import apply_recalibration

        return expit(apply_recalibration(raw, self.calibration))

    def save(self, model_dir: str | Path) -> list[Path]:
        return super().save(model_dir) + [write_json(self.calibration, Path(model_dir) / CALIBRATION_FILE)]

    @classmethod
    def from_files(cls, files: dict[str, bytes], metadata: dict, origin: Path) -> "GBMModel":
        calibration = finite_json(files[CALIBRATION_FILE], Path(origin) / CALIBRATION_FILE)
        return cls(cls.text_of(files, origin), calibration, metadata)


def fit_gbm(frame: pd.DataFrame, seed: int = 0, params: dict | None = None,
            metadata: dict | None = None) -> tuple[GBMModel, dict]:
    """Train the classifier with early stopping on a validation split, then recalibrate.

    Returns (model, details) with rounds, the validation log-loss and the calibration.
    """
    from riskcap.models.calibrate import fit_recalibration

    check_features(frame, MODEL_FEATURES, "training data")
    X = feature_matrix(frame, MODEL_FEATURES)
    y = frame[LABEL].to_numpy(dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise DataError(f"training data: the label {LABEL} has only one value; cannot fit a model")
    valid = validation_split(len(y), seed)
    booster, details = train_booster(X, y, params or CLASSIFIER_PARAMS, seed, valid)
    text = booster.model_to_string(num_iteration=booster.best_iteration)
    from riskcap.models.treescorer import TreeEnsemble

    raw = TreeEnsemble.from_string(text).predict(X[valid], raw_score=True)
    calibration = fit_recalibration(raw, y[valid], CALIBRATION_KNOTS, fitted_on="validation split")
    model = GBMModel(text, calibration, metadata)
    details["calibration"] = calibration
    return model, details
