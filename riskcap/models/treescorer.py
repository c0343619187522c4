"""Score LightGBM models with riskcap's own numba kernels.

A :class:`TreeEnsemble` is built from LightGBM's text model format
(``Booster.model_to_string()`` / ``Booster.save_model``), so a model saved as text is all
that is needed to score a population and nothing is unpickled. Results are LightGBM's:
raw scores are bit-for-bit those of ``lightgbm.Booster.predict`` and transformed outputs
differ at most in the last bit of ``exp``.

How it is fast (details in :mod:`riskcap.models._tree_kernels`):

1. Each feature value is replaced, once per row, by its position among the model's
   sorted split thresholds for that feature (a ``uint8`` when the model was trained with
   at most 255 bins), so ``x <= threshold`` becomes an exact comparison of small
   integers. Missing values (NaN, and zero with ``zero_as_missing``) are folded into the
   codes so that every split stays a single comparison.
2. Rows are scored in blocks of 512, every tree applied to the whole block before the
   next tree. For trees of up to 64 leaves without categorical splits each split is one
   SIMD compare-and-mask over the block (QuickScorer's leaf bit-vectors); otherwise rows
   walk their own paths from a work list.
3. Blocks run in parallel threads; each row's tree outputs are added in tree order in
   float64, the order LightGBM uses.

The decision rules are LightGBM's ``Tree::NumericalDecision`` and
``Tree::CategoricalDecision`` (``include/LightGBM/tree.h``) as ``Booster.predict`` applies
them to a dense matrix, whose values with ``|x| <= kZeroThreshold`` (``1e-35f``) it reads
as zero. ``tests/reference/treescorer.py`` transcribes those rules directly on raw floats, to
test the kernels.

:meth:`TreeEnsemble.contributions` gives per-feature TreeSHAP contributions, as
``Booster.predict(pred_contrib=True)`` does, from :mod:`riskcap.models._shap_kernels`
(LightGBM's algorithm, run once per distinct decision pattern of each small tree).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from riskcap.errors import DataError
from riskcap.models import _tree_kernels as _k

__all__ = ["TreeEnsemble", "ModelFormatError", "K_ZERO_THRESHOLD"]

#: LightGBM's ``kZeroThreshold``: the C++ literal ``1e-35f`` (a float32) held in a double.
K_ZERO_THRESHOLD = float(np.float32(1e-35))

_MISSING_ZERO, _MISSING_NAN = 1, 2
_CATEGORICAL_MASK, _DEFAULT_LEFT_MASK = 1, 2

# canonical objective names as LightGBM writes them (ObjectiveFunction::ToString) -> output transform
_TRANSFORMS = {
    "regression": "identity", "regression_l1": "identity", "huber": "identity", "fair": "identity",
    "quantile": "identity", "mape": "identity", "lambdarank": "identity", "rank_xendcg": "identity",
    "custom": "identity",
    "binary": "sigmoid", "multiclassova": "sigmoid", "cross_entropy": "sigmoid",
    "cross_entropy_lambda": "log1pexp",
    "poisson": "exp", "gamma": "exp", "tweedie": "exp",
    "multiclass": "softmax",
}


class ModelFormatError(DataError, ValueError):
    """A model text that is malformed or uses something the tree scorer does not support.

    A :class:`ValueError` for library callers and a :class:`riskcap.errors.DataError` for the
    CLI (exit status 2); the message names the tree, node or feature concerned.
    """


@dataclass(frozen=True)
class _Tree:
    """One tree as written in the model text (LightGBM's own node numbering)."""

    num_leaves: int
    split_feature: np.ndarray  # int32, one per internal node
    threshold: np.ndarray  # float64 (categorical splits: index into cat_boundaries)
    decision_type: np.ndarray  # int8 bit flags: 1 categorical, 2 default left, (>> 2) & 3 missing type
    left_child: np.ndarray  # int32; a negative child c is leaf ~c
    right_child: np.ndarray
    leaf_value: np.ndarray  # float64, shrinkage already applied
    cat_boundaries: np.ndarray  # int32
    cat_threshold: np.ndarray  # uint32 bitset words
    leaf_count: np.ndarray | None = None  # float64 training rows per leaf (TreeSHAP's cover); None if absent
    internal_count: np.ndarray | None = None  # float64 training rows per internal node


@dataclass(frozen=True)
class _Objective:
    name: str
    transform: str  # identity | sqrt | sigmoid | exp | log1pexp | softmax
    sigmoid: float = 1.0


# --------------------------------------------------------------------------- parsing
def _numbers(where: str, fields: dict, key: str, dtype, length: int) -> np.ndarray:
    if length == 0:
        return np.zeros(0, dtype=dtype)
    if key not in fields:
        raise ModelFormatError(f"{where} has no '{key}' line")
    try:
        values = [float(v) if dtype is np.float64 else int(v) for v in fields[key].split()]
    except ValueError as exc:
        raise ModelFormatError(f"{where} '{key}' is not a list of numbers ({exc})") from None
    if len(values) != length:
        raise ModelFormatError(f"{where} '{key}' has {len(values)} values, expected {length}")
    return np.array(values, dtype=np.float64 if dtype is np.float64 else np.int64).astype(dtype)


def _parse_tree(tree_no: int, lines: list[str], feature_names: list[str]) -> _Tree:
    where = f"LightGBM model text: Tree={tree_no}"
    fields = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    if fields.get("is_linear", "0") not in ("0", ""):
        raise ModelFormatError(f"{where} is a linear tree (trained with linear_tree=True); "
                               "riskcap's tree scorer supports constant leaves only")
    try:
        num_leaves = int(fields["num_leaves"])
        num_cat = int(fields.get("num_cat", "0") or 0)
    except (KeyError, ValueError):
        raise ModelFormatError(f"{where} has no valid 'num_leaves' / 'num_cat' line") from None
    if num_leaves < 1 or num_cat < 0:
        raise ModelFormatError(f"{where} has num_leaves={num_leaves}, num_cat={num_cat}")
    n_internal = num_leaves - 1
    tree = _Tree(
        num_leaves=num_leaves,
        split_feature=_numbers(where, fields, "split_feature", np.int32, n_internal),
        threshold=_numbers(where, fields, "threshold", np.float64, n_internal),
        decision_type=_numbers(where, fields, "decision_type", np.int8, n_internal),
        left_child=_numbers(where, fields, "left_child", np.int32, n_internal),
        right_child=_numbers(where, fields, "right_child", np.int32, n_internal),
        leaf_value=_numbers(where, fields, "leaf_value", np.float64, num_leaves),
        cat_boundaries=_numbers(where, fields, "cat_boundaries", np.int32, num_cat + 1) if num_cat
        else np.zeros(1, np.int32),
        cat_threshold=_numbers(where, fields, "cat_threshold", np.uint32,
                               len(fields.get("cat_threshold", "").split())) if num_cat
        else np.zeros(0, np.uint32),
        leaf_count=_numbers(where, fields, "leaf_count", np.float64, num_leaves)
        if "leaf_count" in fields else None,
        internal_count=_numbers(where, fields, "internal_count", np.float64, n_internal)
        if "internal_count" in fields or not n_internal else None,
    )
    _check_tree(where, tree, num_cat, feature_names)
    return tree


def _check_tree(where: str, tree: _Tree, num_cat: int, feature_names: list[str]) -> None:
    """Refuse malformed trees: bad feature indices, flags, thresholds, bitsets or shape."""
    n_features = len(feature_names)
    n_internal = tree.num_leaves - 1
    bad = (tree.split_feature < 0) | (tree.split_feature >= n_features)
    if bad.any():
        raise ModelFormatError(f"{where} splits on feature index {int(tree.split_feature[bad][0])}, but the "
                               f"model has {n_features} features (max_feature_idx={n_features - 1})")
    for node in range(n_internal):
        dt = int(tree.decision_type[node])
        name = feature_names[tree.split_feature[node]]
        if dt < 0 or dt > 15 or (dt >> 2) & 3 == 3:
            raise ModelFormatError(f"{where} node {node} (feature {name!r}) has unknown decision_type={dt}")
        threshold = tree.threshold[node]
        if dt & _CATEGORICAL_MASK:
            if not (threshold == int(threshold) and 0 <= threshold < num_cat):
                raise ModelFormatError(f"{where} node {node}: the categorical split on feature {name!r} points "
                                       f"to bitset {threshold}, but the tree has num_cat={num_cat}")
        elif math.isnan(threshold):
            raise ModelFormatError(f"{where} node {node} (feature {name!r}) has threshold NaN")
    bad_leaf = ~np.isfinite(tree.leaf_value)
    if bad_leaf.any():
        raise ModelFormatError(f"{where} leaf {int(np.flatnonzero(bad_leaf)[0])} has value "
                               f"{tree.leaf_value[bad_leaf][0]}, not a finite number")
    if num_cat:
        b = tree.cat_boundaries
        if b[0] != 0 or np.any(np.diff(b) < 0) or b[-1] != tree.cat_threshold.size:
            raise ModelFormatError(f"{where}: cat_boundaries {b.tolist()} do not match the "
                                   f"{tree.cat_threshold.size} cat_threshold words")
    # every internal node but the root, and every leaf, is some node's child exactly once...
    children = np.concatenate([tree.left_child, tree.right_child]).astype(np.int64)
    internal, leaves = children[children >= 0], ~children[children < 0]
    if (internal.size != max(n_internal - 1, 0) or leaves.size != (tree.num_leaves if n_internal else 0)
            or np.any(internal == 0) or np.any(internal >= n_internal) or np.unique(internal).size != internal.size
            or np.any(leaves >= tree.num_leaves) or np.unique(leaves).size != leaves.size):
        raise ModelFormatError(f"{where}: left_child/right_child do not describe a binary tree "
                               f"with {tree.num_leaves} leaves")
    # ...and all are reachable from the root (which also rules out cycles)
    seen, stack = 0, [0] if n_internal else []
    while stack:
        node = stack.pop()
        seen += 1
        stack.extend(int(c) for c in (tree.left_child[node], tree.right_child[node]) if c >= 0)
    if seen != n_internal:
        raise ModelFormatError(f"{where}: {n_internal - seen} internal nodes are not reachable from the root")


def _parse_objective(text: str | None) -> _Objective:
    if text is None or not text.strip():
        return _Objective("none", "identity")
    name, *options = text.split()
    settings = dict(o.split(":", 1) for o in options if ":" in o)
    if name not in _TRANSFORMS:
        raise ModelFormatError(f"LightGBM model text: objective {name!r} is not supported by riskcap's tree "
                               f"scorer (supported: {', '.join(sorted(_TRANSFORMS))})")
    transform = _TRANSFORMS[name]
    if transform == "identity" and "sqrt" in options:  # reg_sqrt=True
        transform = "sqrt"
    try:
        sigmoid = float(settings.get("sigmoid", 1.0))
    except ValueError:
        raise ModelFormatError(f"LightGBM model text: objective line {text!r} has a bad sigmoid value") from None
    return _Objective(name, transform, sigmoid)


def _convert_output(raw: np.ndarray, objective: _Objective) -> np.ndarray:
    """LightGBM's ``ObjectiveFunction::ConvertOutput`` on raw scores of shape (n, k)."""
    t = objective.transform
    with np.errstate(over="ignore"):
        if t == "identity":
            return raw
        if t == "sqrt":
            return np.sign(raw) * raw * raw
        if t == "sigmoid":
            return 1.0 / (1.0 + np.exp(-objective.sigmoid * raw))
        if t == "exp":
            return np.exp(raw)
        if t == "log1pexp":  # Common::SafeLog(1 + exp(x))
            return np.log(1.0 + np.exp(raw))
        if t == "softmax":  # Common::Softmax: subtract the row max, exponentiate, normalise
            e = np.exp(raw - raw.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
    raise AssertionError(t)  # pragma: no cover - _parse_objective returns only the above


def _split_sections(text: str) -> tuple[dict[str, str], list[tuple[int, list[str]]]]:
    """The header's ``key=value`` fields and the lines of each ``Tree=i`` block."""
    if not isinstance(text, str) or text.lstrip().split("\n", 1)[0].strip() != "tree":
        raise ModelFormatError("not a LightGBM text model: it must start with the line 'tree' "
                               "(write one with Booster.save_model or Booster.model_to_string)")
    header: dict[str, str] = {}
    blocks: list[tuple[int, list[str]]] = []
    for line in text.lstrip().splitlines()[1:]:
        line = line.strip()
        if line == "end of trees":
            return header, blocks
        if line.startswith("Tree="):
            try:
                blocks.append((int(line[5:]), []))
            except ValueError:
                raise ModelFormatError(f"LightGBM model text: bad tree header {line!r}") from None
        elif blocks:
            blocks[-1][1].append(line)
        elif line:
            key, _, value = line.partition("=")
            header[key] = value
    raise ModelFormatError("LightGBM model text is truncated: there is no 'end of trees' line")


# --------------------------------------------------------------------------- the model
class TreeEnsemble:
    """A LightGBM model compiled for fast, exact batch scoring.

    Build one with :meth:`from_booster`, :meth:`from_string` or :meth:`from_file`, then
    call :meth:`predict`.

    Attributes
    ----------
    feature_names : list of str
        Input columns, in the order the model expects them.
    n_features : int
        ``len(feature_names)``.
    num_class : int
        Outputs per row (1 except for multiclass models).
    n_iterations : int
        Boosting iterations in the model (number of trees / ``num_class``).
    objective : str
        Objective as written in the model text (``"binary"``, ``"regression"``, ...).

    Examples
    --------
    >>> scorer = TreeEnsemble.from_booster(booster)          # doctest: +SKIP
    >>> probability = scorer.predict(X, n_threads=2)          # doctest: +SKIP
    """

    def __init__(self, feature_names: list[str], trees: list[_Tree], num_class: int,
                 objective: _Objective, average_output: bool):
        self.feature_names = list(feature_names)
        self.n_features = len(self.feature_names)
        self.num_class = num_class
        self.n_iterations = len(trees) // num_class
        self.objective = objective.name
        self._objective = objective
        self._average_output = average_output
        self._trees = trees
        self._forest = _k.compile_forest(trees, self.feature_names)
        self._shap = None  # TreeSHAP layout, built on first use of contributions()

    @classmethod
    def from_string(cls, text: str) -> "TreeEnsemble":
        """Parse LightGBM's text model format.

        Parameters
        ----------
        text : str
            The output of ``Booster.model_to_string()`` or the content of a file written by
            ``Booster.save_model``.

        Returns
        -------
        TreeEnsemble

        Raises
        ------
        ModelFormatError
            (a ``ValueError``) if the text is malformed or uses something the scorer does not
            support (linear trees, an unknown objective); the message names the tree, node
            or feature.
        """
        header, blocks = _split_sections(text)
        try:
            n_features = int(header["max_feature_idx"]) + 1
            num_class = int(header.get("num_class", "1"))
            per_iteration = int(header.get("num_tree_per_iteration", str(num_class)))
        except (KeyError, ValueError):
            raise ModelFormatError("LightGBM model text has no valid max_feature_idx / num_class / "
                                   "num_tree_per_iteration lines") from None
        if n_features < 1 or per_iteration < 1:
            raise ModelFormatError(f"LightGBM model text has max_feature_idx={n_features - 1}, "
                                   f"num_tree_per_iteration={per_iteration}")
        names = header.get("feature_names", "").split()
        if len(names) != n_features:
            names = [f"Column_{i}" for i in range(n_features)]
        if not blocks:
            raise ModelFormatError("LightGBM model text has no trees")
        misnumbered = [(i, no) for i, (no, _) in enumerate(blocks) if no != i]
        if misnumbered:
            raise ModelFormatError(f"LightGBM model text: trees are misnumbered (tree {misnumbered[0][0]} is "
                                   f"'Tree={misnumbered[0][1]}')")
        if len(blocks) % per_iteration:
            raise ModelFormatError(f"LightGBM model text: {len(blocks)} trees is not a multiple of "
                                   f"num_tree_per_iteration={per_iteration}")
        trees = [_parse_tree(no, lines, names) for no, lines in blocks]
        try:
            return cls(names, trees, per_iteration, _parse_objective(header.get("objective")),
                       average_output="average_output" in header)
        except ModelFormatError:
            raise
        except ValueError as exc:  # layout limits, named by compile_forest
            raise ModelFormatError(f"LightGBM model text: {exc}") from None

    @classmethod
    def from_booster(cls, booster) -> "TreeEnsemble":
        """Build from a trained ``lightgbm.Booster``, up to its best iteration if it has one.

        This matches ``booster.predict(X)`` with its default ``num_iteration=None``.
        """
        return cls.from_string(booster.model_to_string(num_iteration=None))

    @classmethod
    def from_file(cls, path: str | Path) -> "TreeEnsemble":
        """Read a model written by ``Booster.save_model`` (LightGBM's text format).

        Raises
        ------
        ModelFormatError
            If the file is not a LightGBM text model; the message starts with the path.
        """
        try:
            return cls.from_string(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ModelFormatError(f"{path}: not a LightGBM text model (not UTF-8 text)") from None
        except ModelFormatError as exc:
            raise ModelFormatError(f"{path}: {exc}") from None

    # ------------------------------------------------------------------ scoring
    def _rows(self, X) -> np.ndarray:
        if hasattr(X, "columns") and hasattr(X, "dtypes"):  # a pandas DataFrame: by position, as LightGBM
            bad = [c for c, d in zip(X.columns, X.dtypes) if not (d.kind in "biuf")]
            if bad:
                raise ValueError(f"column {bad[0]!r} has dtype {X[bad[0]].dtype}; the tree scorer takes numeric "
                                 "columns only (pass categories as the integer codes the model was trained on)")
            X = X.to_numpy(dtype=np.float64, na_value=np.nan)
        X = np.asarray(X)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.ndim != 2 or X.dtype.kind not in "biuf":
            raise ValueError(f"X must be a 2-d numeric array (rows x features), got {X.ndim}-d {X.dtype}")
        if X.shape[1] != self.n_features:
            raise ValueError(f"X has {X.shape[1]} columns but the model expects {self.n_features} "
                             f"({', '.join(self.feature_names[:3])}, ...)")
        return np.ascontiguousarray(X, dtype=np.float64)

    def _trees_used(self, start_iteration: int, num_iteration: int | None) -> tuple[int, int, int]:
        """First and last tree, and the number of iterations, as Booster.predict picks them."""
        if start_iteration < 0:
            raise ValueError(f"start_iteration must be >= 0, got {start_iteration}")
        start = min(start_iteration, self.n_iterations)
        remaining = self.n_iterations - start
        used = remaining if num_iteration is None or num_iteration <= 0 else min(num_iteration, remaining)
        return start * self.num_class, (start + used) * self.num_class, used

    def predict(self, X, raw_score: bool = False, n_threads: int | None = None,
                start_iteration: int = 0, num_iteration: int | None = None) -> np.ndarray:
        """Score rows as ``lightgbm.Booster.predict`` would.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Feature values, converted to float64; NaN means missing. A pandas DataFrame is
            read by column position, as LightGBM does, and must have numeric columns.
        raw_score : bool, default False
            Return the summed tree outputs without the objective's transform (log-odds
            rather than probabilities for a binary model).
        n_threads : int, optional
            Threads to use; default numba's current setting (``numba.get_num_threads()``).
        start_iteration : int, default 0
        num_iteration : int, optional
            Use iterations ``[start_iteration, start_iteration + num_iteration)``;
            ``None`` or ``<= 0`` means all remaining iterations.

        Returns
        -------
        numpy.ndarray of float64
            Shape (n_rows,), or (n_rows, num_class) for multiclass models.
        """
        X = self._rows(X)
        first, last, n_used = self._trees_used(start_iteration, num_iteration)
        raw = _k.predict_raw(X, self._forest, first, last, self.num_class, n_threads)
        return self._finish(raw, n_used, raw_score)

    def contributions(self, X, n_threads: int | None = None, start_iteration: int = 0,
                      num_iteration: int | None = None) -> np.ndarray:
        """Per-feature TreeSHAP contributions to the raw score, as ``Booster.predict(pred_contrib=True)``.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            As in :meth:`predict`.
        n_threads, start_iteration, num_iteration
            As in :meth:`predict`.

        Returns
        -------
        numpy.ndarray of float64
            Shape (n_rows, n_features + 1): one column per feature, then the expected value
            (so each row sums to the raw score); multiclass models have ``num_class`` such
            blocks side by side. Agrees with LightGBM to rounding (about 1e-15).

        Raises
        ------
        ModelFormatError
            If the model text has no ``leaf_count`` / ``internal_count`` lines (TreeSHAP
            weighs branches by them), or is a random forest (``average_output``).
        """
        from riskcap.models import _shap_kernels

        if self._average_output:
            raise ModelFormatError("contributions of random-forest models (average_output) are not supported")
        if self._shap is None:
            missing = [i for i, t in enumerate(self._trees) if t.leaf_count is None or t.internal_count is None]
            if missing:
                raise ModelFormatError(f"LightGBM model text: Tree={missing[0]} has no leaf_count/internal_count "
                                       "lines, which TreeSHAP needs (save the model with Booster.save_model)")
            self._shap = _shap_kernels.compile_shap(self._trees)
        X = self._rows(X)
        first, last, _ = self._trees_used(start_iteration, num_iteration)
        return _shap_kernels.contributions(X, self._shap, first, last, self.num_class, self.n_features, n_threads,
                                           binned=self._forest)

    def _finish(self, raw: np.ndarray, n_used: int, raw_score: bool) -> np.ndarray:
        if raw_score:
            out = raw
        else:
            if self._average_output and n_used > 0:  # random forest: GBDT::Predict (not PredictRaw) averages
                raw /= n_used
            out = _convert_output(raw, self._objective)
        return out[:, 0] if self.num_class == 1 else out

    def __repr__(self) -> str:
        return (f"TreeEnsemble(objective={self.objective!r}, n_trees={len(self._trees)}, "
                f"n_features={self.n_features}, num_class={self.num_class})")
