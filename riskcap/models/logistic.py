"""CPM-style logistic regression: transformed counts, an age spline, one coefficient per term.

Training is a scikit-learn pipeline (:class:`CPMTransform` -> ``StandardScaler`` ->
``LogisticRegression``). The fitted pipeline is exported to plain JSON (the transform
spec with its learned caps, the standardisation means and scales, the coefficients and
the intercept), and :class:`LogisticModel` scores from that JSON with numpy alone; it
reproduces ``Pipeline.predict_proba`` to within 1e-12 (tested).

Transforms (per input feature; ``docs/models.md`` lists them):

- ``age``: a linear spline with knots from 0 to 100 (hat functions, one per knot but the
  reference age 40), so the log-odds can follow any shape of risk by age;
- counts, bed days, costs and years since diagnosis: ``log1p(min(x, cap))`` with the cap at
  the training population's 99.9th percentile (missing = 0), so a few extreme users
  cannot dominate;
- days since the last event: ``log1p(min(days, 1461))``;
- flags, sex, deprivation decile, LTC count: as they are;
- cost by setting: left out (costs are counts times near-constant unit costs, so they would
  duplicate the counts and make the coefficients unreadable); total cost stays in.

The fitted log-odds are then recalibrated on the training people with a monotone spline
(:mod:`riskcap.models.calibrate`), so observed/expected holds in every risk decile, not only
overall; ranking is unchanged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from riskcap.data.write import write_csv, write_json
from riskcap.errors import DataError
from riskcap.features import COST_FEATURES, LABEL, MODEL_FEATURES, NO_EVENT_DAYS, WINDOW_FEATURES
from riskcap.models.base import check_features, feature_columns, feature_matrix, finite_json

FORMAT = "riskcap-logistic/1"
MODEL_FILE = "model.json"
COEFFICIENTS_FILE = "coefficients.csv"
#: Age spline knots (years); the spline is linear between them and flat beyond the ends.
AGE_KNOTS: tuple[float, ...] = (0.0, 1.0, 5.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)
#: The knot whose term is left out (its log-odds are the reference the others are measured from).
AGE_REFERENCE = 40.0
CAP_QUANTILE = 0.999

_LOG_FEATURES = set(WINDOW_FEATURES) | {"cost_total_0_12", "acs_admissions_0_12"} | {
    f for f in MODEL_FEATURES if f.startswith("years_since_")}
_OMITTED = set(COST_FEATURES) - {"cost_total_0_12"}


def default_transform(feature: str) -> dict:
    """The transform of one model input (before caps are learned)."""
    if feature == "age":
        return {"feature": feature, "kind": "spline", "knots": list(AGE_KNOTS), "reference": AGE_REFERENCE}
    if feature in _LOG_FEATURES:
        return {"feature": feature, "kind": "log1p", "cap": None}
    if feature.startswith("days_since_"):
        return {"feature": feature, "kind": "log1p", "cap": float(NO_EVENT_DAYS)}
    if feature in _OMITTED:
        return {"feature": feature, "kind": "omit"}
    return {"feature": feature, "kind": "identity"}


def term_names(spec: list[dict]) -> list[str]:
    """Names of the model terms (transformed columns) a spec produces, in order."""
    names = []
    for t in spec:
        if t["kind"] == "spline":
            names += [f"{t['feature']}_at_{k:g}" for k in t["knots"] if k != t["reference"]]
        elif t["kind"] == "omit":
            continue
        else:
            names.append(t["feature"] if t["kind"] == "identity" else f"log1p_{t['feature']}")
    return names


def term_features(spec: list[dict]) -> list[int]:
    """For each term, the position of its input feature in the spec."""
    out = []
    for j, t in enumerate(spec):
        out += [j] * {"spline": len(t.get("knots", [])) - 1, "omit": 0}.get(t["kind"], 1)
    return out


def spline_basis(x: np.ndarray, knots) -> list[np.ndarray]:
    """Hat functions of a linear spline: at knot k the k-th is 1 and the others 0 (sum = 1).

    Values beyond the end knots take the end value (the spline is flat outside).
    """
    knots = np.asarray(knots, dtype=np.float64)
    x = np.clip(x, knots[0], knots[-1])
    out = []
    for i, k in enumerate(knots):
        b = np.zeros_like(x)
        if i > 0:
            lo = knots[i - 1]
            m = (x >= lo) & (x <= k)
            b[m] = (x[m] - lo) / (k - lo)
        if i < len(knots) - 1:
            hi = knots[i + 1]
            m = (x >= k) & (x <= hi)
            b[m] = (hi - x[m]) / (hi - k)
        out.append(b)
    return out


def apply_transforms(X: np.ndarray, spec: list[dict]) -> np.ndarray:
    """Transform an input matrix (columns in spec order) into the model's terms."""
    if X.shape[1] != len(spec):
        raise ValueError(f"expected {len(spec)} input columns, got {X.shape[1]}")
    cols = []
    for j, t in enumerate(spec):
        x = np.nan_to_num(X[:, j], nan=0.0)
        if t["kind"] == "spline":
            cols += [b for k, b in zip(t["knots"], spline_basis(x, t["knots"])) if k != t["reference"]]
        elif t["kind"] == "log1p":
            cols.append(np.log1p(np.clip(x, 0.0, t["cap"])))
        elif t["kind"] == "identity":
            cols.append(x)
        elif t["kind"] == "omit":
            continue
        else:
            raise ValueError(f"unknown transform kind {t['kind']!r}")
    return np.column_stack(cols) if cols else np.empty((len(X), 0))


class CPMTransform(TransformerMixin, BaseEstimator):
    """Learn count caps on the training rows; turn input columns into model terms.

    Parameters
    ----------
    features : list of str
        Names of the input columns, in order (default :data:`MODEL_FEATURES`).
    cap_quantile : float
        Quantile of each log-transformed input used as its cap.
    """

    def __init__(self, features=None, cap_quantile: float = CAP_QUANTILE):
        self.features = features
        self.cap_quantile = cap_quantile

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        features = list(self.features or MODEL_FEATURES)
        spec = [default_transform(f) for f in features]
        for j, t in enumerate(spec):
            if t["kind"] == "log1p" and t["cap"] is None:
                x = np.nan_to_num(X[:, j], nan=0.0)
                t["cap"] = float(max(np.quantile(x, self.cap_quantile), 1.0)) if len(x) else 1.0
        self.spec_ = spec
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return apply_transforms(np.asarray(X, dtype=np.float64), self.spec_)


def make_pipeline(C: float = 1.0, max_iter: int = 2000) -> Pipeline:
    """The untrained scikit-learn pipeline."""
    return Pipeline([
        ("transform", CPMTransform()),
        ("scale", StandardScaler()),
        ("model", LogisticRegression(C=C, max_iter=max_iter, tol=1e-6)),
    ])


class LogisticModel:
    """A fitted CPM-style logistic model held as plain numbers (loads from JSON, no pickle).

    ``params`` holds the transform spec, standardisation means and scales, coefficients,
    intercept and the recalibration map (``calibration``; absent = none).
    """

    kind = "logistic"

    def __init__(self, params: dict, metadata: dict | None = None):
        if params.get("format") != FORMAT:
            raise DataError(f"logistic model: unknown format {params.get('format')!r} (expected {FORMAT})")
        self.params = params
        self.spec: list[dict] = params["transforms"]
        self.features: list[str] = [t["feature"] for t in self.spec]
        self.mean = np.asarray(params["mean"], dtype=np.float64)
        self.scale = np.asarray(params["scale"], dtype=np.float64)
        self.coef = np.asarray(params["coef"], dtype=np.float64)
        self.intercept = float(params["intercept"])
        self.calibration: dict | None = params.get("calibration")
        self._term_feature = np.asarray(term_features(self.spec), dtype=np.int64)
        n_terms = len(term_names(self.spec))
        if not (len(self.mean) == len(self.scale) == len(self.coef) == n_terms):
            raise DataError(f"logistic model: {n_terms} terms but {len(self.coef)} coefficients")
        numbers = np.concatenate([self.mean, self.scale, self.coef, [self.intercept]])
        if not np.isfinite(numbers).all() or (self.scale <= 0).any():
            raise DataError("logistic model: its means, scales, coefficients and intercept must be finite numbers "
                            "(and scales positive)")
        if self.calibration is not None:
            from riskcap.models.calibrate import check_recalibration

            check_recalibration(self.calibration, "logistic model")
        self._compiled = None  # kernel arrays, built on first use
        self.metadata = metadata or {}

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline, metadata: dict | None = None,
                      calibration: dict | None = None) -> "LogisticModel":
        """Export a fitted pipeline's numbers (and an optional recalibration map)."""
        spec = pipeline.named_steps["transform"].spec_
        scaler = pipeline.named_steps["scale"]
        model = pipeline.named_steps["model"]
        params = {
            "format": FORMAT,
            "transforms": spec,
            "terms": term_names(spec),
            "mean": scaler.mean_.tolist(),
            "scale": scaler.scale_.tolist(),
            "coef": model.coef_[0].tolist(),
            "intercept": float(model.intercept_[0]),
            "C": float(model.C),
        }
        if calibration is not None:
            params["calibration"] = calibration
        return cls(params, metadata)

    def _kernel(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        from riskcap.models import _logistic_kernel

        if self._compiled is None:
            self._compiled = _logistic_kernel.compile_spec(self.spec, self.mean, self.scale, self.coef)
        check_features(frame, self.features)
        return _logistic_kernel.score(feature_columns(frame, self.features), self._compiled, self.intercept)

    def raw_linear_predictor(self, frame: pd.DataFrame) -> np.ndarray:
        """The regression's log-odds, before recalibration (numba kernel, row by row)."""
        return self._kernel(frame)[0]

    def predict_uncalibrated(self, frame: pd.DataFrame) -> np.ndarray:
        """The regression's probability: equals the scikit-learn pipeline's ``predict_proba``."""
        return _expit(self.raw_linear_predictor(frame))

    def _calibrate(self, lp: np.ndarray) -> np.ndarray:
        from riskcap.models.calibrate import apply_recalibration

        return apply_recalibration(lp, self.calibration) if self.calibration else lp

    def linear_predictor(self, frame: pd.DataFrame) -> np.ndarray:
        """Recalibrated log-odds of an emergency admission."""
        return self._calibrate(self.raw_linear_predictor(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of one or more emergency admissions in the next 12 months."""
        return _expit(self.linear_predictor(frame))

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Coefficient x centred value, summed over each input's terms: shape (n, len(features)).

        Left-out inputs contribute 0. (Recalibration is monotone, so it cannot change which
        factors push a person's risk up the most.)
        """
        return self._kernel(frame)[1]

    def predict_with_contributions(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and contributions in one pass over the rows."""
        lp, contrib = self._kernel(frame)
        return _expit(self._calibrate(lp)), contrib

    def coefficients(self) -> pd.DataFrame:
        """The coefficient table (per standardised term), largest effect first."""
        table = pd.DataFrame({
            "term": term_names(self.spec),
            "feature": [self.features[j] for j in self._term_feature],
            "coef_per_sd": self.coef,
            "mean": self.mean,
            "sd": self.scale,
        })
        table["coef_per_unit"] = table["coef_per_sd"] / table["sd"]
        table["odds_ratio_per_sd"] = np.exp(table["coef_per_sd"])
        return table.reindex(table["coef_per_sd"].abs().sort_values(ascending=False).index).reset_index(drop=True)

    def save(self, model_dir: str | Path) -> list[Path]:
        """Write ``model.json`` (what scoring reads) and ``coefficients.csv`` (for people to read)."""
        return [write_json(self.params, Path(model_dir) / MODEL_FILE),
                write_csv(self.coefficients(), Path(model_dir) / COEFFICIENTS_FILE)]

    @classmethod
    def from_files(cls, files: dict[str, bytes], metadata: dict, origin: Path) -> "LogisticModel":
        """The model from a model folder's checked file bytes (:mod:`riskcap.models.persist`)."""
        params = finite_json(files[MODEL_FILE], Path(origin) / MODEL_FILE)
        if not isinstance(params, dict):
            raise DataError(f"{Path(origin) / MODEL_FILE}: expected a JSON object")
        return cls(params, metadata)


def _expit(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(x)


def fit_pipeline(frame: pd.DataFrame, C: float = 1.0) -> Pipeline:
    """Fit the scikit-learn pipeline on a feature frame (label :data:`LABEL`)."""
    check_features(frame, MODEL_FEATURES, "training data")
    X = feature_matrix(frame, MODEL_FEATURES)
    y = frame[LABEL].to_numpy(dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise DataError(f"training data: the label {LABEL} has only one value; cannot fit a model")
    from riskcap.stream.threads import blas_threads  # noqa: PLC0415

    # lbfgs takes many small steps: extra BLAS/OpenMP threads only fight over the cores
    with blas_threads(1):
        return make_pipeline(C=C).fit(X, y)


def fit_logistic(frame: pd.DataFrame, C: float = 1.0, metadata: dict | None = None,
                 recalibrate: bool = True) -> LogisticModel:
    """Fit the pipeline, recalibrate its log-odds on the training people, export as numbers."""
    from riskcap.models.calibrate import fit_recalibration

    model = LogisticModel.from_pipeline(fit_pipeline(frame, C=C), metadata)
    if recalibrate:
        lp = model.raw_linear_predictor(frame)
        model.calibration = model.params["calibration"] = fit_recalibration(
            lp, frame[LABEL].to_numpy(), fitted_on="training people")
    return model
