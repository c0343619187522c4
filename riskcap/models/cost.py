"""Next-year cost model for fair-share capitation: LightGBM with a Tweedie objective.

Predicts ``cost_next_12m_total`` (pounds of care in the 365 days from the index date) from
the same inputs as the risk models. The Tweedie objective (variance power 1.5) suits costs:
many people cost nothing, a few cost a great deal, and predictions stay positive. People
who die or leave during the year keep their (partial) cost; budgets pro-rate by list days.
"""
from __future__ import annotations


import numpy as np
import pandas as pd

from riskcap.errors import DataError
from riskcap.features import COST_LABEL, MODEL_FEATURES
from riskcap.models.base import check_features, feature_matrix
from riskcap.models.gbm import BASE_PARAMS, LightGBMModel, train_booster, validation_split

COST_PARAMS: dict = {**BASE_PARAMS, "objective": "tweedie", "tweedie_variance_power": 1.5, "metric": "tweedie"}


class CostModel(LightGBMModel):
    """Expected cost of care in the next 12 months, in pounds."""

    kind = "cost"

    def from_raw(self, raw: np.ndarray) -> np.ndarray:
        """Expected next-12-month cost in pounds."""
        return np.exp(raw)


def fit_cost(frame: pd.DataFrame, seed: int = 0, params: dict | None = None,
             metadata: dict | None = None) -> tuple[CostModel, dict]:
    """Train the cost model with early stopping on a validation split of the training people."""
    check_features(frame, MODEL_FEATURES, "training data")
    X = feature_matrix(frame, MODEL_FEATURES)
    y = frame[COST_LABEL].to_numpy(dtype=np.float64)
    if not (y > 0).any():
        raise DataError(f"training data: {COST_LABEL} is zero for everyone; cannot fit a cost model")
    valid = validation_split(len(y), seed)
    booster, details = train_booster(X, y, params or COST_PARAMS, seed, valid)
    return CostModel(booster.model_to_string(num_iteration=booster.best_iteration), metadata), details
