"""Twin of :mod:`riskcap.models.treescorer`'s kernels: every tree walked with LightGBM's rules.

The decision rules are LightGBM's ``Tree::NumericalDecision`` and ``Tree::CategoricalDecision``
(``include/LightGBM/tree.h``), transcribed directly on raw floats, one node at a time.
"""
from __future__ import annotations

import math

import numpy as np

from riskcap.models.treescorer import K_ZERO_THRESHOLD, TreeEnsemble

# LightGBM's decision_type bits (tree.h): categorical, default left, then the missing type
_CATEGORICAL_MASK, _DEFAULT_LEFT_MASK = 1, 2
_MISSING_ZERO, _MISSING_NAN = 1, 2


def _tree_output(tree, X: np.ndarray) -> np.ndarray:
    """One tree's output per row by LightGBM's rules on raw floats (vectorised over rows)."""
    if tree.num_leaves == 1:
        return np.full(X.shape[0], tree.leaf_value[0])
    node = np.zeros(X.shape[0], np.int64)
    active = np.arange(X.shape[0])
    while active.size:
        nd = node[active]
        fval = X[active, tree.split_feature[nd]]
        dt = tree.decision_type[nd].astype(np.int64)
        missing = (dt >> 2) & 3
        categorical = (dt & _CATEGORICAL_MASK) > 0
        # NumericalDecision: NaN reads as 0.0 unless the missing type is NaN; then missing
        # values go the default way and everything else compares with the threshold
        f = np.where(np.isnan(fval) & (missing != _MISSING_NAN), 0.0, fval)
        is_missing = (((missing == _MISSING_ZERO) & (f >= -K_ZERO_THRESHOLD) & (f <= K_ZERO_THRESHOLD))
                      | ((missing == _MISSING_NAN) & np.isnan(f)))
        with np.errstate(invalid="ignore"):
            go_left = np.where(is_missing, (dt & _DEFAULT_LEFT_MASK) > 0, f <= tree.threshold[nd])
        # CategoricalDecision: NaN or static_cast<int>(fval) < 0 go right (on x86 the cast of a
        # value outside the int range is INT_MIN); otherwise left iff the category is in the bitset
        for r in np.flatnonzero(categorical):
            go_left[r] = False
            v = fval[r]
            if not math.isnan(v) and -2147483649.0 < v < 2147483648.0 and int(v) >= 0:
                c = int(v)
                lo, hi = tree.cat_boundaries[int(tree.threshold[nd[r]]):int(tree.threshold[nd[r]]) + 2]
                go_left[r] = c // 32 < hi - lo and (int(tree.cat_threshold[lo + c // 32]) >> (c % 32)) & 1 == 1
        nxt = np.where(go_left, tree.left_child[nd], tree.right_child[nd])
        node[active] = nxt
        active = active[nxt >= 0]
    return tree.leaf_value[~node]


def predict_raw(ensemble: TreeEnsemble, X, start_iteration: int = 0,
                num_iteration: int | None = None, raw_score: bool = True) -> np.ndarray:
    """Scores by walking every tree with LightGBM's decision rules on raw floats (slow).

    The twin of the kernels behind :meth:`TreeEnsemble.predict`; it shares only the parsed
    trees with them.

    Parameters
    ----------
    ensemble : TreeEnsemble
    X : array-like of shape (n_rows, n_features)
    start_iteration, num_iteration : int, optional
        As in :meth:`TreeEnsemble.predict`.
    raw_score : bool, default True
        False applies the objective's transform.

    Returns
    -------
    numpy.ndarray
        Shape (n_rows,), or (n_rows, num_class) for multiclass models.
    """
    X = ensemble._rows(X)
    # Booster.predict keeps only |x| > kZeroThreshold or NaN from a dense row; the rest reads as 0
    X = np.where(np.abs(X) <= K_ZERO_THRESHOLD, 0.0, X)
    first, last, n_used = ensemble._trees_used(start_iteration, num_iteration)
    raw = np.zeros((X.shape[0], ensemble.num_class))
    for t in range(first, last):
        raw[:, t % ensemble.num_class] += _tree_output(ensemble._trees[t], X)
    return ensemble._finish(raw, n_used, raw_score)
