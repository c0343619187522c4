"""Private layout and numba kernels for :meth:`riskcap.models.treescorer.TreeEnsemble.contributions`.

TreeSHAP
    ``_tree_shap`` is LightGBM's ``Tree::TreeSHAP`` (``src/io/tree.cpp``: Lundberg's
    path-dependent algorithm with the node counts as cover) with the recursion replaced by
    an explicit stack of pending "cold" branches, visited in the recursion's order and with
    its arithmetic written the same way, so contributions agree with ``pred_contrib`` to a
    few units in the last place. Decisions are LightGBM's, as in the tree scorer.

Memo over decision patterns (why it is fast)
    A tree's contributions for a row depend on the row only through the direction it takes
    at each internal node (the cold branches are walked too, so every node counts, not only
    those on the row's path). A tree with ``m <= MEMO_MAX_NODES`` internal nodes therefore
    has at most ``2**m`` distinct answers, and real populations hit few of them: most people
    share their counts, flags and age bands. For a block of rows, each row's pattern (one
    bit per node) is computed per tree, TreeSHAP runs once per distinct pattern, and every
    row adds its pattern's contributions. The answer is the direct one up to the order of
    additions (each tree's part is summed before it is added to the row).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from riskcap.models._tree_kernels import _bin_block
from riskcap.stream.threads import numba_threads

#: trees with at most this many internal nodes are memoised by decision pattern
MEMO_MAX_NODES = 16
#: rows per memo block (a gbm reasons call is usually smaller): patterns, 2 bytes per row and tree, stay modest
MEMO_BLOCK_ROWS = 65536
_K_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold


@dataclass(frozen=True)
class ShapForest:
    """Trees as flat arrays for the TreeSHAP kernels (LightGBM's node numbering)."""

    node_start: np.ndarray  # int64, n_trees + 1
    split_feature: np.ndarray  # int64 per internal node
    local_feature: np.ndarray  # int64 per internal node: index of its feature in the tree's feature list
    threshold: np.ndarray  # float64
    decision_type: np.ndarray  # int64
    left: np.ndarray  # int64: negative c is leaf ~c
    right: np.ndarray
    node_count: np.ndarray  # float64: training rows through each internal node
    leaf_start: np.ndarray  # int64, n_trees + 1
    leaf_value: np.ndarray  # float64
    leaf_count: np.ndarray  # float64
    cat_start: np.ndarray  # int64 per tree: first entry of the tree's cat_boundaries
    cat_boundaries: np.ndarray  # int64: global offsets into cat_words
    cat_words: np.ndarray  # int64 (uint32 bitset words)
    feature_start: np.ndarray  # int64, n_trees + 1: each tree's distinct features
    features: np.ndarray  # int64
    max_depth: int  # deepest leaf of any tree (root at depth 0)
    expected_value: np.ndarray  # float64 per tree: LightGBM's Tree::ExpectedValue


def _depth(tree) -> int:
    deepest, stack = 0, [(0, 0)] if tree.num_leaves > 1 else []
    while stack:
        node, d = stack.pop()
        if node < 0:
            deepest = max(deepest, d)
        else:
            stack.extend(((int(tree.left_child[node]), d + 1), (int(tree.right_child[node]), d + 1)))
    return deepest


def _expected_value(tree) -> float:
    """``Tree::ExpectedValue``: leaf values weighted by their share of the root's rows, in leaf order."""
    if tree.num_leaves == 1:
        return float(tree.leaf_value[0])
    total = float(tree.internal_count[0])
    value = 0.0
    for count, leaf in zip(tree.leaf_count.tolist(), tree.leaf_value.tolist()):
        value += (count / total) * leaf
    return value


def compile_shap(trees) -> ShapForest:
    """Lay out parsed trees (``treescorer._Tree`` with counts) for the kernels."""
    node_start, leaf_start, cat_start, feature_start = [0], [0], [], [0]
    parts: dict[str, list] = {k: [] for k in ("sf", "lf", "thr", "dt", "left", "right", "nc", "lv", "lc",
                                              "cb", "cw", "feat")}
    for tree in trees:
        n_internal = tree.num_leaves - 1
        node_start.append(node_start[-1] + n_internal)
        leaf_start.append(leaf_start[-1] + tree.num_leaves)
        cat_start.append(len(parts["cb"]))
        parts["cb"].extend((np.asarray(tree.cat_boundaries, np.int64) + len(parts["cw"])).tolist())
        parts["cw"].extend(np.asarray(tree.cat_threshold, np.int64).tolist())
        distinct = list(dict.fromkeys(int(f) for f in tree.split_feature))
        feature_start.append(feature_start[-1] + len(distinct))
        parts["feat"].extend(distinct)
        parts["sf"].extend(int(f) for f in tree.split_feature)
        parts["lf"].extend(distinct.index(int(f)) for f in tree.split_feature)
        parts["thr"].extend(tree.threshold.tolist())
        parts["dt"].extend(int(d) for d in tree.decision_type)
        parts["left"].extend(int(c) for c in tree.left_child)
        parts["right"].extend(int(c) for c in tree.right_child)
        parts["nc"].extend(tree.internal_count.tolist() if n_internal else [])
        parts["lv"].extend(tree.leaf_value.tolist())
        parts["lc"].extend(tree.leaf_count.tolist())

    def i64(key):
        return np.asarray(parts[key], dtype=np.int64)

    def f64(key):
        return np.asarray(parts[key], dtype=np.float64)

    return ShapForest(
        node_start=np.asarray(node_start, np.int64), split_feature=i64("sf"), local_feature=i64("lf"),
        threshold=f64("thr"), decision_type=i64("dt"), left=i64("left"), right=i64("right"),
        node_count=f64("nc"), leaf_start=np.asarray(leaf_start, np.int64), leaf_value=f64("lv"),
        leaf_count=f64("lc"), cat_start=np.asarray(cat_start, np.int64), cat_boundaries=i64("cb"),
        cat_words=i64("cw") if parts["cw"] else np.zeros(1, np.int64),
        feature_start=np.asarray(feature_start, np.int64), features=i64("feat"),
        max_depth=max([_depth(t) for t in trees] + [0]),
        expected_value=np.array([_expected_value(t) for t in trees], dtype=np.float64),
    )


# --------------------------------------------------------------------------- kernels
@njit(inline="always")
def _goes_left(fval, g, threshold, decision_type, cat_first, cat_boundaries, cat_words):
    """LightGBM's NumericalDecision / CategoricalDecision for node ``g`` on a dense row's value."""
    if abs(fval) <= _K_ZERO:  # a dense row keeps only |x| > kZeroThreshold (or NaN)
        fval = 0.0
    dt = decision_type[g]
    if dt & 1:
        if np.isnan(fval) or not (-2147483649.0 < fval < 2147483648.0):
            return False
        c = int(fval)
        if c < 0:
            return False
        b = cat_first + int(threshold[g])
        lo, hi = cat_boundaries[b], cat_boundaries[b + 1]
        w = c >> 5
        return w < hi - lo and (cat_words[lo + w] >> (c & 31)) & 1 == 1
    missing = (dt >> 2) & 3
    if np.isnan(fval) and missing != 2:
        fval = 0.0
    if (missing == 1 and fval == 0.0) or (missing == 2 and np.isnan(fval)):
        return (dt & 2) != 0
    return fval <= threshold[g]


@njit(inline="always")
def _count(child, node0, leaf0, node_count, leaf_count):
    return node_count[node0 + child] if child >= 0 else leaf_count[leaf0 + ~child]


@njit(cache=True, boundscheck=False)
def _tree_shap(x, t, node_start, key, split_feature, threshold, decision_type, left, right, node_count,
               leaf_start, leaf_value, leaf_count, cat_start, cat_boundaries, cat_words,
               out, out_offset, pf, pz, po, pw, sn, sd, sp, sz, so, sf):
    """Add tree ``t``'s TreeSHAP contributions for row ``x`` to ``out[out_offset + key[node]]``.

    ``pf, pz, po, pw`` hold the unique path (feature key, zero and one fractions, weight),
    ``(max_depth + 1) * (max_depth + 2) / 2`` long; ``sn ... sf`` the stack of pending cold
    branches (node, depth, parent path start, zero fraction, one fraction, feature key).
    """
    node0, leaf0 = node_start[t], leaf_start[t]
    cat_first = cat_start[t]
    top = 1
    sn[0], sd[0], sp[0], sz[0], so[0], sf[0] = 0, 0, 0, 1.0, 1.0, -1
    while top > 0:
        top -= 1
        node, d, parent, zero, one, feat = sn[top], sd[top], sp[top], sz[top], so[top], sf[top]
        while True:
            # ExtendPath: copy the parent's path, then append this element
            start = parent + d
            for i in range(d):
                pf[start + i], pz[start + i] = pf[parent + i], pz[parent + i]
                po[start + i], pw[start + i] = po[parent + i], pw[parent + i]
            pf[start + d], pz[start + d], po[start + d] = feat, zero, one
            pw[start + d] = 1.0 if d == 0 else 0.0
            for i in range(d - 1, -1, -1):
                pw[start + i + 1] += one * pw[start + i] * (i + 1) / (d + 1)
                pw[start + i] = zero * pw[start + i] * (d - i) / (d + 1)
            if node < 0:  # leaf: every path element's share of its value (UnwoundPathSum)
                value = leaf_value[leaf0 + ~node]
                for k in range(1, d + 1):
                    o, z = po[start + k], pz[start + k]
                    nxt = pw[start + d]
                    total = 0.0
                    for i in range(d - 1, -1, -1):
                        if o != 0:
                            tmp = nxt * (d + 1) / ((i + 1) * o)
                            total += tmp
                            nxt = pw[start + i] - tmp * z * ((d - i) / (d + 1))
                        else:
                            total += (pw[start + i] / z) / ((d - i) / (d + 1))
                    out[out_offset + pf[start + k]] += total * (o - z) * value
                break
            g = node0 + node
            if _goes_left(x[split_feature[g]], g, threshold, decision_type, cat_first, cat_boundaries, cat_words):
                hot, cold = left[g], right[g]
            else:
                hot, cold = right[g], left[g]
            w = node_count[g]
            hot_zero = _count(hot, node0, leaf0, node_count, leaf_count) / w
            cold_zero = _count(cold, node0, leaf0, node_count, leaf_count) / w
            in_zero, in_one = 1.0, 1.0
            k = key[g]
            at = 0
            while at <= d and pf[start + at] != k:
                at += 1
            if at <= d:  # split on this feature before: undo that split (UnwindPath), redo it here
                in_zero, in_one = pz[start + at], po[start + at]
                nxt = pw[start + d]
                for i in range(d - 1, -1, -1):
                    if in_one != 0:
                        tmp = pw[start + i]
                        pw[start + i] = nxt * (d + 1) / ((i + 1) * in_one)
                        nxt = tmp - pw[start + i] * in_zero * (d - i) / (d + 1)
                    else:
                        pw[start + i] = (pw[start + i] * (d + 1)) / (in_zero * (d - i))
                for i in range(at, d):
                    pf[start + i], pz[start + i] = pf[start + i + 1], pz[start + i + 1]
                    po[start + i] = po[start + i + 1]
                d -= 1
            sn[top], sd[top], sp[top], sz[top], so[top], sf[top] = cold, d + 1, start, cold_zero * in_zero, 0.0, k
            top += 1
            node, d, parent, zero, one, feat = hot, d + 1, start, hot_zero * in_zero, in_one, k


@njit(cache=True)
def _buffers(max_depth):
    path = (max_depth + 1) * (max_depth + 2) // 2 + 1
    stack = max_depth + 2
    return (np.empty(path, np.int64), np.empty(path), np.empty(path), np.empty(path),
            np.empty(stack, np.int64), np.empty(stack, np.int64), np.empty(stack, np.int64),
            np.empty(stack), np.empty(stack), np.empty(stack, np.int64))


@njit(cache=True, parallel=True)
def _shap_direct(X, trees, column_offset, node_start, split_feature, threshold, decision_type, left, right,
                 node_count, leaf_start, leaf_value, leaf_count, cat_start, cat_boundaries, cat_words,
                 max_depth, out):
    """Every row, every tree in ``trees``: TreeSHAP straight into ``out`` (rows x outputs)."""
    n = X.shape[0]
    for b in prange((n + 255) // 256):
        pf, pz, po, pw, sn, sd, sp, sz, so, sf = _buffers(max_depth)
        for r in range(b * 256, min(n, b * 256 + 256)):
            row = out[r]
            for j in range(trees.size):
                t = trees[j]
                if node_start[t + 1] > node_start[t]:
                    _tree_shap(X[r], t, node_start, split_feature, split_feature, threshold, decision_type, left,
                               right, node_count, leaf_start, leaf_value, leaf_count, cat_start, cat_boundaries,
                               cat_words, row, column_offset[j], pf, pz, po, pw, sn, sd, sp, sz, so, sf)


@njit(cache=True, parallel=True)
def _patterns(X, trees, node_start, split_feature, threshold, decision_type, cat_start, cat_boundaries,
              cat_words, patterns):
    """``patterns[j, r]``: bit ``i`` set iff row ``r`` goes left at internal node ``i`` of ``trees[j]``."""
    n = X.shape[0]
    for b in prange((n + 255) // 256):
        for j in range(trees.size):
            t = trees[j]
            g0, g1 = node_start[t], node_start[t + 1]
            for r in range(b * 256, min(n, b * 256 + 256)):
                p = 0
                for g in range(g0, g1):
                    if _goes_left(X[r, split_feature[g]], g, threshold, decision_type, cat_start[t],
                                  cat_boundaries, cat_words):
                        p |= 1 << (g - g0)
                patterns[j, r] = p


@njit(cache=True, parallel=True)
def _patterns_binned(X, trees, feature, kind, nan_as_zero, search_offset, search_steps, column_start, column_count,
                     search, column_nan_code, column_zero_code, top_code, code_proto, block_rows, tree_start,
                     node_column, node_threshold, node_table, go_left, patterns):
    """``_patterns`` from the tree scorer's codes (bit-vector layout): each split is one compare
    of small integers over a block of rows, as in ``_tree_kernels._bitvector_block``."""
    n = X.shape[0]
    for b in prange((n + block_rows - 1) // block_rows):
        start = b * block_rows
        m = min(block_rows, n - start)
        codes = np.zeros(max(column_nan_code.size, 1) * block_rows, dtype=code_proto.dtype)
        _bin_block(X, start, m, codes, feature, kind, nan_as_zero, search_offset, search_steps, column_start,
                   column_count, search, column_nan_code, column_zero_code, top_code, block_rows)
        bits = np.empty(block_rows, np.uint32)
        for j in range(trees.size):
            t = trees[j]
            bits[:] = 0
            for g in range(tree_start[t], tree_start[t + 1]):
                col = codes[node_column[g]:node_column[g] + block_rows]
                shift = np.uint32(g - tree_start[t])
                table = node_table[g]
                if table < 0:
                    threshold = node_threshold[g]
                    for i in range(block_rows):
                        bits[i] |= np.uint32(col[i] <= threshold) << shift
                else:
                    lut = go_left[table:table + 256]
                    for i in range(block_rows):
                        bits[i] |= np.uint32(lut[col[i]] != 0) << shift
            for i in range(m):
                patterns[j, start + i] = bits[i]


@njit(cache=True, parallel=True)
def _distinct(patterns, bits, representative, n_distinct):
    """Per tree: number its distinct patterns in order of first row, replace each pattern by its number."""
    n = patterns.shape[1]
    for j in prange(patterns.shape[0]):
        slot = np.full(1 << bits[j], -1, np.int64)
        k = 0
        for r in range(n):
            p = patterns[j, r]
            s = slot[p]
            if s < 0:
                s = k
                slot[p] = k
                representative[j, k] = r
                k += 1
            patterns[j, r] = s
        n_distinct[j] = k


@njit(cache=True, parallel=True)
def _memo_shap(X, trees, representative, n_distinct, memo_start, feature_start, node_start, local_feature,
               split_feature, threshold, decision_type, left, right, node_count, leaf_start, leaf_value,
               leaf_count, cat_start, cat_boundaries, cat_words, max_depth, memo):
    """TreeSHAP once per tree and distinct pattern, over the tree's own features."""
    for j in prange(trees.size):
        t = trees[j]
        width = feature_start[t + 1] - feature_start[t]
        pf, pz, po, pw, sn, sd, sp, sz, so, sf = _buffers(max_depth)
        for s in range(n_distinct[j]):
            _tree_shap(X[representative[j, s]], t, node_start, local_feature, split_feature, threshold,
                       decision_type, left, right, node_count, leaf_start, leaf_value, leaf_count, cat_start,
                       cat_boundaries, cat_words, memo, memo_start[j] + s * width, pf, pz, po, pw,
                       sn, sd, sp, sz, so, sf)


@njit(cache=True, parallel=True)
def _memo_add(patterns, trees, column_offset, memo_start, feature_start, features, memo, out):
    """Each row adds, tree by tree, its pattern's contributions."""
    n = patterns.shape[1]
    for b in prange((n + 255) // 256):
        for j in range(trees.size):
            t = trees[j]
            f0, width = feature_start[t], feature_start[t + 1] - feature_start[t]
            for r in range(b * 256, min(n, b * 256 + 256)):
                base = memo_start[j] + patterns[j, r] * width
                for q in range(width):
                    out[r, column_offset[j] + features[f0 + q]] += memo[base + q]


def contributions(X: np.ndarray, forest: ShapForest, first: int, last: int, num_class: int, n_features: int,
                  n_threads: int | None = None, memo: bool = True, binned=None) -> np.ndarray:
    """TreeSHAP of trees ``[first, last)``: shape (n_rows, num_class * (n_features + 1)), as ``pred_contrib``.

    ``memo=False`` runs TreeSHAP for every row and tree (the tests' cross-check of the memo).
    ``binned``: the tree scorer's ``CompiledForest`` of the same trees; with its bit-vector
    layout, decision patterns come from its integer codes rather than the raw floats.
    """
    n = X.shape[0]
    width = n_features + 1
    out = np.zeros((n, num_class * width))
    if n == 0 or last <= first:
        return out
    trees = np.arange(first, last, dtype=np.int64)
    offsets = (trees % num_class) * width
    for k in range(num_class):  # the bias column: each output's trees' expected values, in tree order
        bias = 0.0
        for value in forest.expected_value[first + k:last:num_class].tolist():
            bias += value
        out[:, k * width + n_features] = bias
    sizes = np.diff(forest.node_start)[first:last]
    memoised = (sizes <= MEMO_MAX_NODES) & (sizes > 0) if memo else np.zeros(sizes.size, bool)
    shared = (forest.node_start, forest.split_feature, forest.threshold, forest.decision_type)
    cats = (forest.cat_start, forest.cat_boundaries, forest.cat_words)
    with numba_threads(n_threads):
        direct = ~memoised & (sizes > 0)
        if direct.any():
            _shap_direct(X, trees[direct], offsets[direct], *shared, forest.left, forest.right, forest.node_count,
                         forest.leaf_start, forest.leaf_value, forest.leaf_count, *cats, forest.max_depth, out)
        if memoised.any():
            _memo_blocks(X, trees[memoised], offsets[memoised], sizes[memoised], forest, out,
                         binned if binned is not None and binned.kernel == "bitvector" else None)
    return out


def _memo_blocks(X, trees, offsets, sizes, forest: ShapForest, out, binned) -> None:
    widths = np.diff(forest.feature_start)[trees]
    for start in range(0, X.shape[0], MEMO_BLOCK_ROWS):
        block = X[start:start + MEMO_BLOCK_ROWS]
        m = block.shape[0]
        patterns = np.empty((trees.size, m), np.uint16 if sizes.max() <= 16 else np.uint32)
        if binned is None:
            _patterns(block, trees, forest.node_start, forest.split_feature, forest.threshold,
                      forest.decision_type, forest.cat_start, forest.cat_boundaries, forest.cat_words, patterns)
        else:
            b = binned
            _patterns_binned(block, trees, b.feature, b.kind, b.nan_as_zero, b.search_offset, b.search_steps,
                             b.column_start, b.column_count, b.search, b.column_nan_code, b.column_zero_code,
                             b.top_code, np.zeros(1, b.code_dtype), b.block_rows, b.tree_start, b.node_column,
                             b.node_threshold, b.node_table, b.go_left, patterns)
        representative = np.empty((trees.size, min(m, 1 << int(sizes.max()))), np.int64)
        n_distinct = np.zeros(trees.size, np.int64)
        _distinct(patterns, sizes, representative, n_distinct)
        memo_start = np.concatenate([[0], np.cumsum(n_distinct * widths)[:-1]]).astype(np.int64)
        memo = np.zeros(int((n_distinct * widths).sum()))
        _memo_shap(block, trees, representative, n_distinct, memo_start, forest.feature_start, forest.node_start,
                   forest.local_feature, forest.split_feature, forest.threshold, forest.decision_type,
                   forest.left, forest.right, forest.node_count, forest.leaf_start, forest.leaf_value,
                   forest.leaf_count, forest.cat_start, forest.cat_boundaries, forest.cat_words,
                   forest.max_depth, memo)
        _memo_add(patterns, trees, offsets, memo_start, forest.feature_start, forest.features, memo,
                  out[start:start + m])
