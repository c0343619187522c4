"""What every riskcap model shares: the feature matrix, the feature check, metadata.

A model is an object with ``kind``, ``features`` (input column names, in order),
``metadata`` (a JSON-able dict), ``predict(frame)`` (probabilities, or pounds for the cost
model), ``contributions(frame)`` (per-person, per-feature contributions to the score, for
reasons) and ``save(model_dir)``. :mod:`riskcap.models.persist` loads them back.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from riskcap.errors import DataError
from riskcap.features import MODEL_FEATURES

#: Model kinds: name -> what they predict.
KINDS: dict[str, str] = {
    "logistic": "probability of an emergency admission in the next 12 months (CPM-style logistic regression)",
    "gbm": "probability of an emergency admission in the next 12 months (LightGBM, calibrated)",
    "cost": "cost of care in the next 12 months in pounds (LightGBM, Tweedie)",
}
#: Kinds whose output is a probability of the emergency-admission label.
RISK_KINDS = ("logistic", "gbm")


def check_features(frame: pd.DataFrame, features: list[str], where: str = "model") -> None:
    """Raise DataError naming the mismatch when ``frame`` lacks the model's inputs.

    The model's inputs must all be present; model-input columns of this riskcap version
    (:data:`~riskcap.features.MODEL_FEATURES`) that the model does not know are a mismatch
    too (the model was trained on a different feature set).
    """
    missing = [c for c in features if c not in frame.columns]
    unknown = [c for c in MODEL_FEATURES if c in frame.columns and c not in features]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"{len(missing)} feature(s) the model needs are missing from the data: "
                         f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        if unknown:
            parts.append(f"{len(unknown)} feature(s) in the data were not in the model's training features: "
                         f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}")
        raise DataError(f"{where}: features do not match the model: {'; '.join(parts)}. "
                        "Retrain the model with this version of riskcap, or use the matching version.")


def feature_columns(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The model inputs as float64 rows of a (len(features), n) array (NaN kept).

    One contiguous row per feature: filling it is a straight copy of the column.
    """
    out = np.empty((len(features), len(frame)), dtype=np.float64)
    for j, name in enumerate(features):
        values = frame[name].to_numpy()
        if values.dtype.kind in "biuf":
            out[j] = values
        else:  # nullable or object columns: nulls become NaN
            out[j] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def feature_matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The model inputs as a C-ordered float64 (n, len(features)) matrix (NaN kept)."""
    return np.ascontiguousarray(feature_columns(frame, features).T)


def finite_json(data: bytes | str, where) -> object:
    """Parse JSON whose numbers are all finite: ``NaN``, ``Infinity`` and numbers too large for
    a float (``1e999``) are refused with a DataError naming ``where``, as is invalid JSON."""
    def refuse(token):
        raise ValueError(f"{token} is not a finite number")

    def number(text: str) -> float:
        value = float(text)
        if value in (float("inf"), float("-inf")):
            refuse(text)
        return value

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_constant=refuse, parse_float=number)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{where}: not valid JSON ({exc})") from None
