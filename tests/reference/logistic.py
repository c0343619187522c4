"""Twin of :mod:`riskcap.models._logistic_kernel`: the logistic model through its term matrix.

The numpy path (``apply_transforms``, standardise, multiply by the coefficients, add up)
that the row-by-row kernel replaces.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from riskcap.models.base import check_features, feature_matrix
from riskcap.models.logistic import LogisticModel, apply_transforms, term_features


def terms(model: LogisticModel, frame: pd.DataFrame) -> np.ndarray:
    """Standardised model terms (the centred values the coefficients multiply)."""
    check_features(frame, model.features)
    return (apply_transforms(feature_matrix(frame, model.features), model.spec) - model.mean) / model.scale


def raw_linear_predictor(model: LogisticModel, frame: pd.DataFrame) -> np.ndarray:
    """:meth:`LogisticModel.raw_linear_predictor`: the term matrix, then a row sum."""
    return (terms(model, frame) * model.coef).sum(axis=1) + model.intercept


def contributions(model: LogisticModel, frame: pd.DataFrame) -> np.ndarray:
    """:meth:`LogisticModel.contributions` from the term matrix: each input's terms summed."""
    term_feature = np.asarray(term_features(model.spec), dtype=np.int64)
    weighted = terms(model, frame) * model.coef
    out = np.zeros((len(frame), len(model.features)))
    for j in range(len(model.features)):
        out[:, j] = weighted[:, term_feature == j].sum(axis=1)
    return out
