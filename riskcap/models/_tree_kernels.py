"""Private layout builder and numba kernels for :mod:`riskcap.models.treescorer`.

Codes
    Each used feature gets one or more *code columns*. A numeric value ``x`` becomes
    ``1 + (number of the feature's split thresholds below x)``, so the split
    ``x <= thresholds[j]`` is exactly ``code <= j + 1``. Missing values are folded in per
    column: a split that sends NaN (or, with ``zero_as_missing``, zero) left reads a column
    where those values have code ``0``, below every threshold; one that sends them right
    reads a column where they have the top code, above every threshold. A feature has one
    column per combination its splits use (usually one or two). Categorical values become
    the rank of the category among those the model's bitsets mention, anything else the
    top code. Codes are ``uint8`` when every feature has at most 253 thresholds (LightGBM's
    default ``max_bin=255`` guarantees it), else ``uint16``. Position among the thresholds
    comes from a branch-free walk of an Eytzinger-ordered copy of them, four rows at a time.

Scoring a block of rows (codes stored column-major, ``codes[column * block_rows + row]``)
    *Bit-vector kernel* (trees of at most 64 leaves; with categorical splits, ``uint8``
    codes): QuickScorer's rule, vectorised over rows. Number each tree's leaves left to
    right and give every row a bit-vector with all leaves set; a split whose test fails
    (``code > threshold``, the row goes right) clears the bits of the leaves in its left
    subtree. After all of a tree's splits, the lowest set bit is the leaf the row reaches.
    Each split is one contiguous compare-and-mask over the block's rows, which the
    compiler turns into wide SIMD; no step depends on the previous one and nothing
    branches on data. A categorical split looks each row's code up in a 256-entry table.

    *Path kernel* (any tree, any codes): every row takes its first step, rows
    not yet at a leaf go on a work list that is stepped until empty, so each row walks
    exactly its own path without data-dependent branches.

Both add the leaf values per row in tree order in float64, as LightGBM does, so raw
scores are identical. Blocks run in parallel (``prange``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import overload

from riskcap.stream.threads import numba_threads

#: rows per block: the block's codes (block_rows x code columns) stay in L1/L2 cache while
#: every tree visits them; a multiple of 64 keeps the SIMD loops free of remainders.
BLOCK_ROWS = 512
#: the bit-vector kernel handles trees up to this many leaves (one uint64 per row)
MAX_BITVECTOR_LEAVES = 64

_K_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold
_MISSING_ZERO, _MISSING_NAN = 1, 2
_CATEGORICAL_MASK, _DEFAULT_LEFT_MASK = 1, 2
_LEAF_FLAG = 1 << 31
_CAT_FLAG = 1 << 63


@dataclass(frozen=True)
class CompiledForest:
    """Everything the kernels need, as flat numpy arrays (see the module docstring)."""

    # binning, one entry per used feature u
    feature: np.ndarray  # int64: column of X
    kind: np.ndarray  # int64: 1 numeric, 2 categorical
    nan_as_zero: np.ndarray  # bool: NaN reads as 0.0 (no split of the feature treats NaN as missing)
    search_offset: np.ndarray  # int64: start in `search`
    search_steps: np.ndarray  # int64: numeric: log2 of the Eytzinger size; categorical: number of categories
    column_start: np.ndarray  # int64: first code column of the feature
    column_count: np.ndarray  # int64
    search: np.ndarray  # float64: Eytzinger-ordered thresholds or sorted categories
    column_nan_code: np.ndarray  # int64 per code column: code of NaN, -1 = the plain code
    column_zero_code: np.ndarray  # int64 per code column: code of zero, -1 = the plain code
    code_dtype: type
    top_code: int
    block_rows: int
    # trees (both kernels)
    tree_start: np.ndarray  # int64, n_trees + 1: each tree's internal nodes are [start[t], start[t+1])
    leaf_start: np.ndarray  # int64 per tree: first leaf in leaf_value
    leaf_value: np.ndarray  # float64: bit-vector kernel: leaves left to right; path kernel: LightGBM order
    kernel: str  # "bitvector" or "path"
    # bit-vector kernel
    node_column: np.ndarray  # int64 per node: code column * block_rows
    node_threshold: np.ndarray  # code dtype per node: go left iff code <= threshold
    node_mask: np.ndarray  # uint32/uint64 per node: clears the leaves of the left subtree
    mask_full: np.ndarray  # one all-ones value of node_mask's dtype
    node_table: np.ndarray  # int64 per node: categorical splits: start of its 256-entry table in `go_left`; else -1
    go_left: np.ndarray  # uint8: per categorical split, 1 for the codes that go left
    # path kernel
    node_words: np.ndarray  # uint64, 2 per node (A, B)
    cat_words: np.ndarray  # uint32: per categorical node [n_words, word0, word1, ...]


def _eytzinger(sorted_values: np.ndarray) -> tuple[np.ndarray, int]:
    """Sorted values in Eytzinger (BFS) order at 1..2**steps-1, padded with +inf.

    Walking ``k = 2k + (e[k] < x)`` ``steps`` times from ``k = 1`` ends at
    ``2**steps + (number of values below x)``.
    """
    steps = int(np.ceil(np.log2(sorted_values.size + 1))) if sorted_values.size else 0
    size = 1 << steps
    padded = np.concatenate([sorted_values, np.full(size - 1 - sorted_values.size, np.inf)])
    out = np.full(size, np.inf)
    it = iter(padded.tolist())
    stack: list[int] = []
    k = 1
    while stack or k < size:  # in-order walk of the implicit tree 1 -> (2k, 2k+1)
        while k < size:
            stack.append(k)
            k *= 2
        k = stack.pop()
        out[k] = next(it)
        k = 2 * k + 1
    return out, steps


def bitset_members(tree, node: int) -> list[int]:
    """Categories (ints) in the bitset of categorical split ``node`` of ``tree``."""
    cat_idx = int(tree.threshold[node])
    words = tree.cat_threshold[tree.cat_boundaries[cat_idx]:tree.cat_boundaries[cat_idx + 1]]
    return [32 * w + b for w, word in enumerate(words.tolist()) for b in range(32) if (word >> b) & 1]


def _leaves_in_order(tree) -> list[int]:
    """The tree's leaf numbers from left to right."""
    order: list[int] = []
    stack = [0]
    while stack:
        node = stack.pop()
        if node < 0:
            order.append(~node)
        else:
            stack.append(int(tree.right_child[node]))
            stack.append(int(tree.left_child[node]))
    return order


def _subtree_leaves(tree, child: int) -> list[int]:
    """Leaf numbers in the subtree rooted at ``child`` (a node number, or ~leaf)."""
    out, stack = [], [child]
    while stack:
        node = stack.pop()
        if node < 0:
            out.append(~node)
        else:
            stack.extend((int(tree.left_child[node]), int(tree.right_child[node])))
    return out


def compile_forest(trees, feature_names: list[str], block_rows: int = BLOCK_ROWS,
                   kernel: str | None = None) -> CompiledForest:
    """Lay out parsed LightGBM trees (``treescorer._Tree``) for the kernels.

    Parameters
    ----------
    trees : list of treescorer._Tree
    feature_names : list of str
    block_rows : int
        Rows per block (a multiple of 64).
    kernel : {"bitvector", "path"}, optional
        Force a kernel (tests use this); by default the bit-vector kernel whenever every
        tree has at most 64 leaves (and, with categorical splits, the codes fit ``uint8``).

    Raises
    ------
    ValueError
        If a feature is split both as categorical and numerical, or needs more codes than
        ``uint16`` holds; the message names the feature.
    """
    if block_rows <= 0 or block_rows % 64:
        raise ValueError(f"block_rows must be a positive multiple of 64, got {block_rows}")
    n_features = len(feature_names)
    thresholds: list[set] = [set() for _ in range(n_features)]
    categories: list[set] = [set() for _ in range(n_features)]
    nan_special = np.zeros(n_features, bool)
    zero_special = np.zeros(n_features, bool)
    is_cat = np.zeros(n_features, bool)
    is_num = np.zeros(n_features, bool)
    for tree in trees:
        for node in range(tree.num_leaves - 1):
            f, dt = int(tree.split_feature[node]), int(tree.decision_type[node])
            if dt & _CATEGORICAL_MASK:
                is_cat[f] = True
                categories[f].update(bitset_members(tree, node))
            else:
                is_num[f] = True
                thresholds[f].add(float(tree.threshold[node]))
                missing = (dt >> 2) & 3
                zero_special[f] |= missing == _MISSING_ZERO
                nan_special[f] |= missing in (_MISSING_ZERO, _MISSING_NAN)
    both = np.flatnonzero(is_cat & is_num)
    if both.size:
        raise ValueError(f"feature {feature_names[both[0]]!r} is split both as categorical and as numerical; "
                         "LightGBM never does this, so the model text is inconsistent")
    sizes = [len(thresholds[f]) + 1 if is_num[f] else len(categories[f]) for f in range(n_features)]
    widest = max(sizes + [0])
    if widest > np.iinfo(np.uint16).max - 1:
        f = int(np.argmax(sizes))
        raise ValueError(f"feature {feature_names[f]!r} has {widest} distinct split values; "
                         "the tree scorer supports at most 65533 per feature")
    code_dtype = np.uint8 if widest <= np.iinfo(np.uint8).max - 1 else np.uint16
    top = int(np.iinfo(code_dtype).max)

    def direction_key(f: int, dt: int, thr: float) -> tuple:
        """(NaN goes left?, zero goes left?) for a numeric split; None where not special."""
        missing, default_left = (dt >> 2) & 3, bool(dt & _DEFAULT_LEFT_MASK)
        zero_left = 0.0 <= thr  # a plain zero compares with the threshold...
        nan_left = default_left if missing in (_MISSING_ZERO, _MISSING_NAN) else zero_left  # ...NaN reads as 0.0
        if missing == _MISSING_ZERO:
            zero_left = default_left
        return (nan_left if nan_special[f] else None, zero_left if zero_special[f] else None)

    variants: list[list[tuple]] = [[] for _ in range(n_features)]
    for tree in trees:
        for node in range(tree.num_leaves - 1):
            f, dt = int(tree.split_feature[node]), int(tree.decision_type[node])
            if not dt & _CATEGORICAL_MASK:
                key = direction_key(f, dt, float(tree.threshold[node]))
                if key not in variants[f]:
                    variants[f].append(key)

    used = [f for f in range(n_features) if is_num[f] or is_cat[f]]
    sorted_values = {f: np.array(sorted(thresholds[f] if is_num[f] else categories[f]), dtype=np.float64)
                     for f in used}
    search_parts, search_offset, search_steps = [], [], []
    column_start, column_count, column_nan, column_zero = [], [], [], []
    column_of: dict[tuple, int] = {}
    pos = 0
    for f in used:
        if is_num[f]:
            search_values, steps = _eytzinger(sorted_values[f])
            keys = sorted(variants[f], key=repr)
        else:
            search_values, steps = sorted_values[f], sorted_values[f].size
            keys = [None]
        search_offset.append(pos)
        search_steps.append(steps)
        search_parts.append(search_values)
        pos += search_values.size
        column_start.append(len(column_nan))
        column_count.append(len(keys))
        for key in keys:
            column_of[(f, key)] = len(column_nan)
            nan_left, zero_left = key if key is not None else (None, None)
            column_nan.append(-1 if nan_left is None else (0 if nan_left else top))
            column_zero.append(-1 if zero_left is None else (0 if zero_left else top))

    def node_column(tree, node: int) -> int:
        f, dt = int(tree.split_feature[node]), int(tree.decision_type[node])
        key = None if dt & _CATEGORICAL_MASK else direction_key(f, dt, float(tree.threshold[node]))
        return column_of[(f, key)]

    def threshold_code(tree, node: int) -> int:
        f = int(tree.split_feature[node])
        return int(np.searchsorted(sorted_values[f], float(tree.threshold[node]))) + 1

    max_leaves = max(t.num_leaves for t in trees)
    eligible = max_leaves <= MAX_BITVECTOR_LEAVES and (code_dtype == np.uint8 or not is_cat.any())
    if kernel is None:
        kernel = "bitvector" if eligible else "path"
    if kernel not in ("bitvector", "path") or (kernel == "bitvector" and not eligible):
        raise ValueError(f"kernel {kernel!r} cannot score this model")

    tree_start, leaf_start, leaf_values = [0], [], []
    columns, thresholds_code, masks, tables, go_left, words, cat_words = [], [], [], [], [], [], [0]
    n_leaves = 0
    mask_dtype = np.uint32 if max_leaves <= 32 else np.uint64
    full = int(np.iinfo(mask_dtype).max)
    for tree in trees:
        n_internal = tree.num_leaves - 1
        tree_start.append(tree_start[-1] + n_internal)
        leaf_start.append(n_leaves)
        n_leaves += tree.num_leaves
        if kernel == "bitvector":
            order = _leaves_in_order(tree) if n_internal else [0]
            position = {leaf: k for k, leaf in enumerate(order)}
            leaf_values.append(np.asarray(tree.leaf_value, dtype=np.float64)[order])
            for node in range(n_internal):
                mask = full
                for leaf in _subtree_leaves(tree, int(tree.left_child[node])):
                    mask &= ~(1 << position[leaf])
                columns.append(node_column(tree, node) * block_rows)
                masks.append(mask)
                if tree.decision_type[node] & _CATEGORICAL_MASK:
                    members = set(bitset_members(tree, node))
                    ranks = sorted_values[int(tree.split_feature[node])].tolist()
                    table = [int(code < len(ranks) and ranks[code] in members) for code in range(256)]
                    tables.append(len(go_left))
                    go_left.extend(table)
                    thresholds_code.append(0)
                else:
                    tables.append(-1)
                    thresholds_code.append(threshold_code(tree, node))
        else:
            leaf_values.append(np.asarray(tree.leaf_value, dtype=np.float64))
            for node in range(n_internal):
                f, dt = int(tree.split_feature[node]), int(tree.decision_type[node])
                if dt & _CATEGORICAL_MASK:
                    members = set(bitset_members(tree, node))
                    bits = np.zeros(max(1, (sorted_values[f].size + 31) // 32), np.int64)
                    for rank, category in enumerate(sorted_values[f].tolist()):
                        if category in members:
                            bits[rank >> 5] |= 1 << (rank & 31)
                    upper = (len(cat_words) << 32) | _CAT_FLAG
                    cat_words.append(bits.size)
                    cat_words.extend(int(b) for b in bits)
                else:
                    upper = threshold_code(tree, node) << 32
                left, right = int(tree.left_child[node]), int(tree.right_child[node])
                words.append(node_column(tree, node) * block_rows | upper)
                words.append(_child(left) | _child(right) << 32)
    if len(cat_words) >= 1 << 31 or len(column_nan) * block_rows >= 1 << 32:
        raise ValueError("model too large for the tree scorer's node layout")

    def i64(values) -> np.ndarray:
        return np.asarray(values, dtype=np.int64)

    return CompiledForest(
        feature=i64(used), kind=i64([1 if is_num[f] else 2 for f in used]),
        nan_as_zero=np.array([not nan_special[f] for f in used], dtype=bool),
        search_offset=i64(search_offset), search_steps=i64(search_steps),
        column_start=i64(column_start), column_count=i64(column_count),
        search=np.concatenate(search_parts) if search_parts else np.zeros(1),
        column_nan_code=i64(column_nan), column_zero_code=i64(column_zero),
        code_dtype=code_dtype, top_code=top, block_rows=block_rows,
        tree_start=i64(tree_start), leaf_start=i64(leaf_start), leaf_value=np.concatenate(leaf_values),
        kernel=kernel,
        node_column=i64(columns), node_threshold=np.asarray(thresholds_code, dtype=code_dtype),
        node_mask=np.asarray(masks, dtype=mask_dtype), mask_full=np.array([full], dtype=mask_dtype),
        node_table=i64(tables), go_left=np.asarray(go_left or [0], dtype=np.uint8),
        node_words=np.asarray(words, dtype=np.uint64), cat_words=np.asarray(cat_words, dtype=np.uint32),
    )


def _child(child: int) -> int:
    return child if child >= 0 else _LEAF_FLAG | ~child


# --------------------------------------------------------------------------- kernels
_ONE = np.uint64(1)
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S5 = np.uint64(5)
_S63 = np.uint64(63)
_LEAF = np.uint64(_LEAF_FLAG)
_LEAF_MASK = np.uint32(_LEAF_FLAG - 1)
_CAT_OFFSET = np.uint64(0x7FFFFFFF)


def _ones_if(cond, like):  # pragma: no cover - replaced by the overload inside numba
    raise NotImplementedError


@overload(_ones_if, inline="always")
def _ones_if_impl(cond, like):
    """All-ones of ``like``'s unsigned type if ``cond`` else 0, without widening (keeps SIMD lanes narrow)."""
    if like == types.uint32:
        return lambda cond, like: np.uint32(-np.int32(cond))
    if like == types.uint64:
        return lambda cond, like: np.uint64(-np.int64(cond))
    return None


@njit(cache=True, boundscheck=False)
def _bin_block(X, start, m, codes, feature, kind, nan_as_zero, search_offset, search_steps, column_start,
               column_count, search, column_nan_code, column_zero_code, top_code, block_rows):
    """Codes of rows [start, start+m) of X into ``codes[column * block_rows + row]``."""
    for u in range(feature.size):
        f = feature[u]
        base = column_start[u] * block_rows
        if kind[u] == 1:
            steps = search_steps[u]
            off = np.uint64(search_offset[u])
            shift = (_ONE << np.uint64(steps)) - _ONE  # code = rank walk end - 2**steps + 1
            nan_zero = nan_as_zero[u]
            i = 0
            while i < m:
                # four independent walks at a time keep the core busy
                x0 = X[start + i, f]
                x1 = X[start + min(i + 1, m - 1), f]
                x2 = X[start + min(i + 2, m - 1), f]
                x3 = X[start + min(i + 3, m - 1), f]
                # Booster.predict reads |x| <= kZeroThreshold as 0; NaN reads as 0 unless a split treats it as missing
                x0 = 0.0 if abs(x0) <= _K_ZERO or (nan_zero and x0 != x0) else x0
                x1 = 0.0 if abs(x1) <= _K_ZERO or (nan_zero and x1 != x1) else x1
                x2 = 0.0 if abs(x2) <= _K_ZERO or (nan_zero and x2 != x2) else x2
                x3 = 0.0 if abs(x3) <= _K_ZERO or (nan_zero and x3 != x3) else x3
                k0 = k1 = k2 = k3 = _ONE
                for _ in range(steps):
                    k0 = (k0 << _ONE) + np.uint64(search[off + k0] < x0)
                    k1 = (k1 << _ONE) + np.uint64(search[off + k1] < x1)
                    k2 = (k2 << _ONE) + np.uint64(search[off + k2] < x2)
                    k3 = (k3 << _ONE) + np.uint64(search[off + k3] < x3)
                codes[base + i] = k0 - shift
                if i + 1 < m:
                    codes[base + i + 1] = k1 - shift
                if i + 2 < m:
                    codes[base + i + 2] = k2 - shift
                if i + 3 < m:
                    codes[base + i + 3] = k3 - shift
                i += 4
            # fold NaN / zero into each column (last first: the first column holds the plain codes)
            for v in range(column_count[u] - 1, -1, -1):
                j = column_start[u] + v
                nan_code = column_nan_code[j]
                zero_code = column_zero_code[j]
                if v == 0 and nan_code < 0 and zero_code < 0:
                    continue
                out = j * block_rows
                for i in range(m):
                    x = X[start + i, f]
                    c = np.int64(codes[base + i])
                    if nan_code >= 0 and x != x:
                        c = nan_code
                    if zero_code >= 0 and abs(x) <= _K_ZERO:
                        c = zero_code
                    codes[out + i] = c
        else:  # categorical: rank of static_cast<int>(x) among the model's categories
            lo = search_offset[u]
            n = search_steps[u]
            for i in range(m):
                x = X[start + i, f]
                c = top_code
                if x > -1.0 and x < 2147483648.0:  # not NaN, not negative after truncation, fits an int
                    category = float(np.int64(x))
                    a, b = lo, lo + n
                    while a < b:
                        mid = (a + b) >> 1
                        if search[mid] < category:
                            a = mid + 1
                        else:
                            b = mid
                    if a < lo + n and search[a] == category:
                        c = a - lo
                codes[base + i] = c


@njit(cache=True, boundscheck=False)
def _bitvector_block(X, start, m, feature, kind, nan_as_zero, search_offset, search_steps, column_start,
                     column_count, search, column_nan_code, column_zero_code, top_code, code_proto, block_rows,
                     tree_start, leaf_start, leaf_value, node_column, node_threshold, node_mask, mask_full,
                     node_table, go_left,
                     first, last, num_class, out):
    codes = np.zeros(max(column_nan_code.size, 1) * block_rows, dtype=code_proto.dtype)
    _bin_block(X, start, m, codes, feature, kind, nan_as_zero, search_offset, search_steps, column_start,
               column_count, search, column_nan_code, column_zero_code, top_code, block_rows)
    full = mask_full[0]
    alive = np.empty(block_rows, dtype=node_mask.dtype)  # leaves each row can still reach
    acc = np.zeros((m, num_class))
    for t in range(first, last):
        alive[:] = full
        for node in range(tree_start[t], tree_start[t + 1]):
            col = codes[node_column[node]:node_column[node] + block_rows]
            mask = node_mask[node]
            table = node_table[node]
            if table < 0:
                threshold = node_threshold[node]
                for i in range(block_rows):  # rows going right lose the leaves of the left subtree
                    alive[i] &= mask | _ones_if(col[i] <= threshold, mask)
            else:  # categorical split
                lut = go_left[table:table + 256]
                for i in range(block_rows):
                    alive[i] &= mask | _ones_if(lut[col[i]] != 0, mask)
        k = t % num_class
        lstart = leaf_start[t]
        for i in range(m):
            acc[i, k] += leaf_value[lstart + np.int64(trailing_zeros(alive[i]))]
    for i in range(m):  # (an explicit loop: slice assignment drags string formatting into the compile)
        for c in range(num_class):
            out[start + i, c] = acc[i, c]


@njit(cache=True, parallel=True)
def _score_bitvector(X, feature, kind, nan_as_zero, search_offset, search_steps, column_start, column_count,
                     search, column_nan_code, column_zero_code, top_code, code_proto, block_rows,
                     tree_start, leaf_start, leaf_value, node_column, node_threshold, node_mask, mask_full,
                     node_table, go_left,
                     first, last, num_class, out):
    n = X.shape[0]
    for b in prange((n + block_rows - 1) // block_rows):
        start = b * block_rows
        _bitvector_block(X, start, min(block_rows, n - start), feature, kind, nan_as_zero, search_offset,
                         search_steps, column_start, column_count, search, column_nan_code, column_zero_code,
                         top_code, code_proto, block_rows, tree_start, leaf_start, leaf_value, node_column,
                         node_threshold, node_mask, mask_full, node_table, go_left, first, last, num_class, out)


@njit(inline="always")
def _go_right(codes, i, a_word, cat_words):
    code = np.uint64(codes[(a_word & _M32) + i])
    if a_word >> _S63:  # categorical: left iff the category's bit is set
        at = (a_word >> _S32) & _CAT_OFFSET
        w = code >> _S5
        if w < np.uint64(cat_words[at]):
            return _ONE - ((np.uint64(cat_words[at + _ONE + w]) >> (code & np.uint64(31))) & _ONE)
        return _ONE
    return np.uint64(code > (a_word >> _S32))


@njit(cache=True, boundscheck=False)
def _path_block(X, start, m, feature, kind, nan_as_zero, search_offset, search_steps, column_start, column_count,
                search, column_nan_code, column_zero_code, top_code, code_proto, block_rows,
                tree_start, leaf_start, leaf_value, node_words, cat_words, first, last, num_class, out):
    codes = np.zeros(max(column_nan_code.size, 1) * block_rows, dtype=code_proto.dtype)
    _bin_block(X, start, m, codes, feature, kind, nan_as_zero, search_offset, search_steps, column_start,
               column_count, search, column_nan_code, column_zero_code, top_code, block_rows)
    work = np.empty(m, np.uint64)  # row | node << 32, for rows not yet at a leaf
    reached = np.empty(m, np.uint32)  # where each row is (ends at leaf | _LEAF)
    acc = np.zeros((m, num_class))
    for t in range(first, last):
        k = t % num_class
        lstart = leaf_start[t]
        if tree_start[t + 1] == tree_start[t]:  # a single leaf
            for i in range(m):
                acc[i, k] += leaf_value[lstart]
            continue
        base = np.uint64(2 * tree_start[t])
        a_word = node_words[base]
        b_word = node_words[base + _ONE]
        n_work = 0
        for i in range(np.uint64(m)):
            nxt = (b_word >> (_go_right(codes, i, a_word, cat_words) << _S5)) & _M32
            reached[i] = np.uint32(nxt)
            work[n_work] = i | (nxt << _S32)
            n_work += np.int64(nxt < _LEAF)
        while n_work > 0:
            n_next = 0
            for w in range(n_work):
                item = work[w]
                i = item & _M32
                at = base + ((item >> _S32) << _ONE)
                a_word = node_words[at]
                b_word = node_words[at + _ONE]
                nxt = (b_word >> (_go_right(codes, i, a_word, cat_words) << _S5)) & _M32
                reached[i] = np.uint32(nxt)
                work[n_next] = i | (nxt << _S32)
                n_next += np.int64(nxt < _LEAF)
            n_work = n_next
        for i in range(m):
            acc[i, k] += leaf_value[lstart + np.int64(reached[i] & _LEAF_MASK)]
    for i in range(m):  # (an explicit loop: slice assignment drags string formatting into the compile)
        for c in range(num_class):
            out[start + i, c] = acc[i, c]


@njit(cache=True, parallel=True)
def _score_path(X, feature, kind, nan_as_zero, search_offset, search_steps, column_start, column_count,
                search, column_nan_code, column_zero_code, top_code, code_proto, block_rows,
                tree_start, leaf_start, leaf_value, node_words, cat_words, first, last, num_class, out):
    n = X.shape[0]
    for b in prange((n + block_rows - 1) // block_rows):
        start = b * block_rows
        _path_block(X, start, min(block_rows, n - start), feature, kind, nan_as_zero, search_offset, search_steps,
                    column_start, column_count, search, column_nan_code, column_zero_code, top_code, code_proto,
                    block_rows, tree_start, leaf_start, leaf_value, node_words, cat_words, first, last,
                    num_class, out)


def predict_raw(X: np.ndarray, forest: CompiledForest, first: int, last: int, num_class: int,
                n_threads: int | None = None) -> np.ndarray:
    """Raw scores (n_rows, num_class) of trees ``[first, last)`` for float64 C-contiguous ``X``."""
    out = np.zeros((X.shape[0], num_class))
    if X.shape[0] == 0 or last <= first:
        return out
    common = (X, forest.feature, forest.kind, forest.nan_as_zero, forest.search_offset, forest.search_steps,
              forest.column_start, forest.column_count, forest.search, forest.column_nan_code,
              forest.column_zero_code, forest.top_code, np.zeros(1, forest.code_dtype), forest.block_rows,
              forest.tree_start, forest.leaf_start, forest.leaf_value)
    with numba_threads(n_threads):
        if forest.kernel == "bitvector":
            _score_bitvector(*common, forest.node_column, forest.node_threshold, forest.node_mask,
                             forest.mask_full, forest.node_table, forest.go_left, first, last, num_class, out)
        else:
            _score_path(*common, forest.node_words, forest.cat_words, first, last, num_class, out)
    return out
