"""Need-group schemes: YAML rules, validation at load, and the numba grouping kernel.

A scheme lists need groups in priority order; each group has one or more rules and each
rule is a conjunction of conditions ``feature op value`` over the person features of
:func:`riskcap.features.build_features` (plus ``risk_tier``/``risk_score``/
``risk_percentile``/``predicted_cost_gbp`` from a scores file). A person belongs to the
group of the **first** rule they match, reading the file top to bottom. See
``docs/capitation.md`` for the file format and ``configs/need_groups/`` for shipped schemes.

Loading refuses, with a message naming the file, group and rule number:
unknown features or operators, values of the wrong kind, a rule that can never match
(its conditions contradict each other, or every person it matches is taken by earlier
rules, e.g. an exact duplicate or anything after a catch-all), and a scheme under which
some possible person matches no rule (add a catch-all: an empty rule ``[]``, last).

Evaluation: :func:`assign_need_groups` compiles the rules to arrays (distinct conditions,
or "atoms", with feature, op code and values; one bitmask of atoms per rule); an
``@njit(parallel=True)`` kernel takes people in blocks of 4,096, sets one bit per atom per
person, then finds each person's first matching rule.
``tests/reference/capitation.py`` has the slow pure-Python twin.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from riskcap.capitation.coverage import TooComplex, ValueSet, intersect_boxes, uncovered
from riskcap.config import load_yaml, parse_yaml, resolve_config
from riskcap.errors import ConfigError, DataError
from riskcap.names import ALLOWED as SAFE_NAME
from riskcap.names import is_safe_name
from riskcap.stream.threads import kernel_threads
from riskcap.schema import CONDITION_CODES, SETTING_CODES

#: Comparison operators a condition may use, in op-code order.
OPS: tuple[str, ...] = ("==", "!=", "<", "<=", ">", ">=", "in", "not in")
_OP_CODE = {op: i for i, op in enumerate(OPS)}

#: Risk tiers of the scores file (interface 5) as codes for the ``risk_tier`` feature;
#: 0 means "not scored". Rules may name tiers (``risk_tier in [high, very high]``).
RISK_TIER_CODES: dict[str, int] = {"low": 1, "rising": 2, "high": 3, "very high": 4}

WINDOWS: tuple[str, ...] = ("0_12", "12_24", "24_36")
_COUNT_MEASURES = ("emergency_admissions", "elective_admissions", "day_cases", "bed_days", "outpatient",
                   "ae", "gp", "community", "mental_health", "prescribing_items")
_AMOUNT_MEASURES = ("social_care",)  # units may be hours: not necessarily whole
#: Feature columns that describe the outcome year: never allowed in grouping rules.
OUTCOME_PREFIXES: tuple[str, ...] = ("cost_next_12m_", "y_emergency_12m", "list_days_next_12")


@dataclass(frozen=True)
class FeatureDomain:
    """The values a grouping feature can take (used for the reachability checks)."""

    lo: float
    hi: float
    integer: bool

    def values(self) -> ValueSet:
        return ValueSet.between(self.lo, self.hi, self.integer)


def _grouping_features() -> dict[str, FeatureDomain]:
    flag = FeatureDomain(0, 1, True)
    feats: dict[str, FeatureDomain] = {
        "male": flag, "care_home": flag, "opted_out": flag,
        "age": FeatureDomain(0, 130, True),
        "imd_decile": FeatureDomain(1, 10, True),
        "imd_quintile": FeatureDomain(1, 5, True),
        "ltc_count": FeatureDomain(0, len(CONDITION_CODES) - 2, True),
        "days_since_emergency": FeatureDomain(0, 1461, True),
        "days_since_ae": FeatureDomain(0, 1461, True),
        "acs_admissions_0_12": FeatureDomain(0, math.inf, True),
        "cost_total_0_12": FeatureDomain(0, math.inf, False),
        "risk_tier": FeatureDomain(0, max(RISK_TIER_CODES.values()), True),
        "risk_score": FeatureDomain(0, 100, True),
        "risk_percentile": FeatureDomain(0, 100, False),
        "predicted_cost_gbp": FeatureDomain(0, math.inf, False),
    }
    for code in CONDITION_CODES:
        feats[f"ltc_{code}"] = flag
    for window in WINDOWS:
        for measure in _COUNT_MEASURES:
            feats[f"{measure}_{window}"] = FeatureDomain(0, math.inf, True)
        for measure in _AMOUNT_MEASURES:
            feats[f"{measure}_{window}"] = FeatureDomain(0, math.inf, False)
    for setting in SETTING_CODES:
        feats[f"cost_{setting}_0_12"] = FeatureDomain(0, math.inf, False)
    return feats


#: Every feature a rule may use, with its domain.
GROUPING_FEATURES: dict[str, FeatureDomain] = _grouping_features()


@dataclass(frozen=True)
class Condition:
    """One condition ``feature op value(s)`` of a rule."""

    feature: str
    op: str
    values: tuple[float, ...]
    text: str


@dataclass(frozen=True)
class Rule:
    """A conjunction of conditions; matching it puts a person in ``group_id``."""

    group_index: int
    group_id: str
    number: int  # 1-based position within its group
    conditions: tuple[Condition, ...]

    @property
    def where(self) -> str:
        return f"group '{self.group_id}' rule {self.number}"

    def box(self) -> dict[str, ValueSet] | None:
        """The people this rule matches, as one value set per constrained feature."""
        box: dict[str, ValueSet] = {}
        for c in self.conditions:
            domain = GROUPING_FEATURES[c.feature]
            values = ValueSet.from_condition(c.op, c.values, domain.integer).intersect(domain.values())
            box = intersect_boxes(box, {c.feature: values})
            if box is None:
                return None
        return box


@dataclass(frozen=True)
class NeedGroup:
    """A need group (the capitation 'currency')."""

    id: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class NeedGroupScheme:
    """A validated need-group scheme; ``rules`` are in evaluation (priority) order."""

    name: str
    label: str
    description: str
    groups: tuple[NeedGroup, ...]
    rules: tuple[Rule, ...]
    source: str

    @property
    def group_ids(self) -> list[str]:
        return [g.id for g in self.groups]

    @property
    def features(self) -> list[str]:
        """Feature columns the rules read, sorted."""
        return sorted({c.feature for r in self.rules for c in r.conditions})

    def rule_for_feature(self, feature: str) -> Rule:
        return next(r for r in self.rules if any(c.feature == feature for c in r.conditions))


# --- loading -----------------------------------------------------------------------

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_CONDITION = re.compile(
    r"^\s*(?P<feature>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?:(?P<sym>==|!=|<=|>=|<|>)|\s(?P<word>not\s+in|in)\s)\s*(?P<value>.+?)\s*$"
)
_TOP_KEYS = {"name", "label", "description", "groups"}
_GROUP_KEYS = {"id", "name", "description", "rules"}


def load_scheme(name_or_path: str | Path) -> NeedGroupScheme:
    """Load and validate a need-group scheme: a YAML path, or a shipped scheme's name.

    Raises
    ------
    ConfigError
        naming the file, group, rule number and the problem.
    """
    path = resolve_config(name_or_path, folder="need_groups")
    return parse_scheme(load_yaml(path), source=str(path))


def parse_scheme(data: dict, source: str = "<scheme>") -> NeedGroupScheme:
    """Validate a scheme mapping (as read from YAML); ``source`` names it in errors."""
    def fail(msg: str):
        raise ConfigError(f"{source}: {msg}")

    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        fail(f"unknown key '{unknown[0]}'; allowed keys: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("name", "groups"):
        if key not in data:
            fail(f"missing key '{key}'")
    if not is_safe_name(data["name"]):
        fail(f"key 'name': {data['name']!r} cannot name the scheme's output file; allowed: {SAFE_NAME}")
    groups_raw = data["groups"]
    if not isinstance(groups_raw, list) or not groups_raw:
        fail("key 'groups': expected a non-empty list of groups (each with id, name and rules)")

    groups, rules, seen = [], [], set()
    for gi, g in enumerate(groups_raw):
        if not isinstance(g, dict):
            fail(f"groups[{gi}]: expected a mapping with keys id, name, rules")
        gid = g.get("id")
        label = f"group '{gid}'" if isinstance(gid, str) else f"groups[{gi}]"
        bad = sorted(set(g) - _GROUP_KEYS)
        if bad:
            fail(f"{label}: unknown key '{bad[0]}'; allowed keys: {', '.join(sorted(_GROUP_KEYS))}")
        if not isinstance(gid, str) or not _ID.match(gid):
            fail(f"{label}: key 'id' must be a lower-case identifier like 'end_of_life'")
        if gid in seen:
            fail(f"{label}: duplicate group id")
        seen.add(gid)
        if "rules" not in g or not isinstance(g["rules"], list) or not g["rules"]:
            fail(f"{label}: key 'rules' must be a non-empty list of rules "
                 "(a rule is a list of conditions; [] matches everyone)")
        for ri, raw_rule in enumerate(g["rules"], start=1):
            where = f"group '{gid}' rule {ri}"
            if isinstance(raw_rule, str):
                raw_rule = [raw_rule]
            if not isinstance(raw_rule, list):
                fail(f"{where}: expected a list of conditions like [\"age >= 75\", \"ltc_count >= 2\"]")
            conditions = tuple(_parse_condition(c, source, where) for c in raw_rule)
            rules.append(Rule(gi, gid, ri, conditions))
        groups.append(NeedGroup(gid, str(g.get("name", gid)), str(g.get("description", ""))))

    scheme = NeedGroupScheme(
        name=data["name"], label=str(data.get("label", data["name"])),
        description=str(data.get("description", "")), groups=tuple(groups), rules=tuple(rules), source=source,
    )
    _check_reachability(scheme)
    return scheme


def _parse_condition(raw, source: str, where: str) -> Condition:
    def fail(msg: str):
        raise ConfigError(f"{source}: {where}: {msg}")

    if not isinstance(raw, str):
        fail(f"condition {raw!r} must be a string like \"age >= 75\"")
    m = _CONDITION.match(raw)
    if not m:
        fail(f"cannot read condition '{raw}': expected 'feature op value' with op one of {', '.join(OPS)}")
    feature = m["feature"]
    op = m["sym"] or " ".join(m["word"].split())
    if feature not in GROUPING_FEATURES:
        if feature.startswith(OUTCOME_PREFIXES):
            fail(f"feature '{feature}' in '{raw}' describes the outcome year and cannot be used for grouping")
        close = difflib.get_close_matches(feature, GROUPING_FEATURES, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        fail(f"unknown feature '{feature}' in '{raw}'{hint} (allowed features: see docs/capitation.md)")
    try:
        value = parse_yaml(m["value"])
    except ConfigError:
        fail(f"cannot read the value in '{raw}'")
    if op in ("in", "not in"):
        if not isinstance(value, list) or not value:
            fail(f"'{op}' needs a non-empty list like [2, 3] in '{raw}'")
        values = tuple(_condition_value(v, feature, raw, fail) for v in value)
    else:
        if isinstance(value, list):
            fail(f"'{op}' needs a single value in '{raw}' (use 'in' for a list)")
        values = (_condition_value(value, feature, raw, fail),)
    return Condition(feature, op, values, raw.strip())


def _condition_value(value, feature: str, raw: str, fail) -> float:
    if feature == "risk_tier" and isinstance(value, str):
        if value not in RISK_TIER_CODES:
            fail(f"unknown risk tier '{value}' in '{raw}'; allowed: {', '.join(RISK_TIER_CODES)}")
        return float(RISK_TIER_CODES[value])
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and not math.isnan(value):
        return float(value)
    allowed = "a number, true/false" + (" or a tier name" if feature == "risk_tier" else "")
    fail(f"value {value!r} in '{raw}' is not {allowed}")


def _check_reachability(scheme: NeedGroupScheme) -> None:
    domains = {f: d.values() for f, d in GROUPING_FEATURES.items()}
    earlier: list[tuple[Rule, dict]] = []
    try:
        for rule in scheme.rules:
            box = rule.box()
            if box is None:
                raise ConfigError(f"{scheme.source}: {rule.where} can never match: its conditions contradict "
                                  f"each other ({' and '.join(c.text for c in rule.conditions)})")
            if not uncovered(box, [b for _, b in earlier], domains):
                takers = [r.where for r, b in earlier if intersect_boxes(box, b) is not None]
                raise ConfigError(
                    f"{scheme.source}: {rule.where} can never match: every person it matches is taken by "
                    f"earlier rules ({'; '.join(takers)}); move it up or remove it"
                    + (f" (it is the only rule of group '{rule.group_id}', so that group is unreachable)"
                       if sum(r.group_id == rule.group_id for r in scheme.rules) == 1 else "")
                )
            earlier.append((rule, box))
        gaps = uncovered({}, [b for _, b in earlier], domains)
    except TooComplex as exc:
        raise ConfigError(f"{scheme.source}: too many overlapping rules to check ({exc}); simplify the scheme") from exc
    if gaps:
        example = ", ".join(f"{f}={_fmt(v.sample())}" for f, v in sorted(gaps[0].items())) or "anyone"
        raise ConfigError(
            f"{scheme.source}: some people match no rule, e.g. {example}; "
            f"end the last group '{scheme.groups[-1].id}' with a catch-all rule [] (matches everyone)"
        )


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


# --- evaluation --------------------------------------------------------------------

@dataclass(frozen=True)
class CompiledScheme:
    """A scheme as arrays for the kernels: distinct conditions ('atoms') and rule bitmasks."""

    features: tuple[str, ...]
    atom_feature: np.ndarray  # int64 (A,) index into features
    atom_op: np.ndarray  # int64 (A,) op code
    atom_start: np.ndarray  # int64 (A,) first value in ``values``
    atom_end: np.ndarray  # int64 (A,) one past the last value
    values: np.ndarray  # float64
    rule_masks: np.ndarray  # uint64 (R, W): atoms each rule needs
    rule_group: np.ndarray  # int16 (R,)
    lookup: np.ndarray  # int16 (2**A,): group of every combination of atom bits (A <= 16), else empty

    @property
    def words(self) -> int:
        return self.rule_masks.shape[1]


def compile_scheme(scheme: NeedGroupScheme) -> CompiledScheme:
    """Compile a scheme's rules to arrays (conditions are deduplicated into atoms)."""
    features = tuple(scheme.features)
    atoms: dict[tuple, int] = {}
    rule_atoms = []
    for rule in scheme.rules:
        ids = []
        for c in rule.conditions:
            key = (c.feature, c.op, c.values)
            ids.append(atoms.setdefault(key, len(atoms)))
        rule_atoms.append(ids)
    words = max(1, math.ceil(len(atoms) / 64))
    masks = np.zeros((len(scheme.rules), words), dtype=np.uint64)
    for r, ids in enumerate(rule_atoms):
        for a in ids:
            masks[r, a // 64] |= np.uint64(1) << np.uint64(a % 64)
    starts, ends, values = [], [], []
    for feature, op, vals in atoms:
        starts.append(len(values))
        values.extend(vals)
        ends.append(len(values))
    keys = list(atoms)
    rule_group = np.array([r.group_index for r in scheme.rules], dtype=np.int16)
    lookup = np.empty(0, dtype=np.int16)
    if len(atoms) <= _LOOKUP_ATOMS:  # first matching rule for every bit pattern, precomputed
        codes = np.arange(2 ** len(atoms), dtype=np.uint64)
        lookup = np.full(codes.size, -1, dtype=np.int16)
        for mask, group in zip(masks[:, 0], rule_group):
            lookup[(lookup < 0) & ((codes & mask) == mask)] = group
    return CompiledScheme(
        features=features,
        atom_feature=np.array([features.index(k[0]) for k in keys], dtype=np.int64),
        atom_op=np.array([_OP_CODE[k[1]] for k in keys], dtype=np.int64),
        atom_start=np.array(starts, dtype=np.int64),
        atom_end=np.array(ends, dtype=np.int64),
        values=np.array(values, dtype=np.float64),
        rule_masks=masks,
        rule_group=rule_group,
        lookup=lookup,
    )


#: Column kinds the kernel reads without copying; other numeric dtypes are converted.
_KINDS: tuple[np.dtype, ...] = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int32), np.dtype(np.int64),
                                np.dtype(np.float64))
_BLOCK = 4096  # people per block: a block's condition bits stay in cache
_STACK_PEOPLE = 1 << 20  # people grouped per kernel call (their columns are stacked into 2-D arrays)
_LOOKUP_ATOMS = 16  # up to this many distinct conditions, the first match is a table lookup


@numba.njit(inline="always", cache=True)
def _test_atom(column, lo, hi, op, values, start, end, bits, word, mask):  # pragma: no cover - compiled
    """Set ``mask`` in word ``word`` of ``bits[i]`` for people lo + i whose value passes the atom.

    Loops run over a slice from 0 so numba knows indices are non-negative and vectorises.
    """
    col = column[lo:hi]
    v = values[start]
    n = col.shape[0]
    if op == 0:
        for i in range(n):
            if col[i] == v:
                bits[i, word] |= mask
    elif op == 1:
        for i in range(n):
            if col[i] != v:
                bits[i, word] |= mask
    elif op == 2:
        for i in range(n):
            if col[i] < v:
                bits[i, word] |= mask
    elif op == 3:
        for i in range(n):
            if col[i] <= v:
                bits[i, word] |= mask
    elif op == 4:
        for i in range(n):
            if col[i] > v:
                bits[i, word] |= mask
    elif op == 5:
        for i in range(n):
            if col[i] >= v:
                bits[i, word] |= mask
    else:  # 6: in, 7: not in
        for i in range(n):
            hit = False
            for j in range(start, end):
                if col[i] == values[j]:
                    hit = True
                    break
            if hit != (op == 7):
                bits[i, word] |= mask


@numba.njit(parallel=True, cache=True)
def _group_kernel(u8, i8, i32, i64, f64, atom_kind, atom_pos, atom_op, atom_start, atom_end, values,
                  rule_masks, rule_group, lookup, out):  # pragma: no cover - compiled
    """Need group per person: condition bits for a block of people, then the first matching rule.

    Feature columns come in one 2-D array per dtype (``atom_kind`` picks the array and
    ``atom_pos`` its row); atom ``a`` sets bit ``a % 64`` of word ``a // 64``. With few
    atoms, ``lookup[bits]`` is the first matching rule's group; otherwise rules are scanned.
    """
    n = out.shape[0]
    n_rules, words = rule_masks.shape
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for b in numba.prange(n_blocks):
        lo = b * _BLOCK
        hi = min(n, lo + _BLOCK)
        bits = np.zeros((hi - lo, words), dtype=np.uint64)
        for a in range(atom_kind.shape[0]):
            word = a // 64
            mask = np.uint64(1) << np.uint64(a % 64)
            kind, pos, op = atom_kind[a], atom_pos[a], atom_op[a]
            if kind == 0:
                _test_atom(u8[pos], lo, hi, op, values, atom_start[a], atom_end[a], bits, word, mask)
            elif kind == 1:
                _test_atom(i8[pos], lo, hi, op, values, atom_start[a], atom_end[a], bits, word, mask)
            elif kind == 2:
                _test_atom(i32[pos], lo, hi, op, values, atom_start[a], atom_end[a], bits, word, mask)
            elif kind == 3:
                _test_atom(i64[pos], lo, hi, op, values, atom_start[a], atom_end[a], bits, word, mask)
            else:
                _test_atom(f64[pos], lo, hi, op, values, atom_start[a], atom_end[a], bits, word, mask)
        o = out[lo:hi]
        if lookup.shape[0] > 0:
            for i in range(o.shape[0]):
                o[i] = lookup[bits[i, 0]]
        else:
            for i in range(o.shape[0]):
                group = -1
                for r in range(n_rules):
                    ok = True
                    for w in range(words):
                        if bits[i, w] & rule_masks[r, w] != rule_masks[r, w]:
                            ok = False
                            break
                    if ok:
                        group = rule_group[r]
                        break
                o[i] = group


def _typed_columns(columns: list[np.ndarray]) -> tuple[list, np.ndarray]:
    """Columns stacked into one 2-D array per kind (a row per column); returns (arrays, (kind, pos)
    per column). Plain arrays, not numba typed lists: those compile their methods in every new
    process (docs/capitation.md), while copying the few columns a scheme reads is cheap."""
    n = len(columns[0]) if columns else 0
    by_kind: list[list[np.ndarray]] = [[] for _ in _KINDS]
    where = np.zeros((len(columns), 2), dtype=np.int64)
    for i, col in enumerate(columns):
        kind = next((k for k, dt in enumerate(_KINDS) if col.dtype == dt), None)
        if kind is None:
            kind = 4 if col.dtype.kind == "f" else 3
            col = col.astype(_KINDS[kind])
        where[i] = kind, len(by_kind[kind])
        by_kind[kind].append(col)
    arrays = [np.stack(cols) if cols else np.zeros((0, n), dtype=dt) for cols, dt in zip(by_kind, _KINDS)]
    return arrays, where


def feature_column(features: pd.DataFrame, name: str, scheme: NeedGroupScheme | None = None) -> np.ndarray:
    """A numeric numpy view/copy of a feature column for the kernels (bools as uint8).

    Raises DataError when the column is missing or not numeric.
    """
    if name not in features.columns:
        needed = f" needed by need-group scheme '{scheme.name}' ({scheme.source}) {scheme.rule_for_feature(name).where}" \
            if scheme is not None else ""
        hint = " (pass --scores for risk_* and predicted_cost_gbp)" if name.startswith(("risk_", "predicted_")) else ""
        raise DataError(f"features have no column '{name}'{needed}{hint}")
    s = features[name]
    if s.dtype == bool:
        return s.to_numpy().view(np.uint8)
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iuf":
        return np.ascontiguousarray(s.to_numpy())
    if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    raise DataError(f"features column '{name}' must be numeric for need grouping (got {s.dtype})")


def assign_need_groups(features: pd.DataFrame, scheme: NeedGroupScheme, *, compiled: CompiledScheme | None = None) -> np.ndarray:
    """Need group of every person (row) as an index into ``scheme.groups`` (int16).

    Parameters
    ----------
    features
        One row per person, with every column the scheme's rules read.
    scheme
        A validated scheme (:func:`load_scheme`).

    Raises
    ------
    DataError
        when a column is missing, or some people match no rule (values outside the
        features' documented ranges), naming the count and example person_ids.
    """
    compiled = compiled or compile_scheme(scheme)
    columns = [feature_column(features, f, scheme) for f in compiled.features]
    out = np.empty(len(features), dtype=np.int16)
    with kernel_threads(len(out)):
        for lo in range(0, len(out), _STACK_PEOPLE):  # the stacked copies stay small
            hi = min(len(out), lo + _STACK_PEOPLE)
            arrays, where = _typed_columns([c[lo:hi] for c in columns])
            _group_kernel(*arrays, where[compiled.atom_feature, 0], where[compiled.atom_feature, 1], compiled.atom_op,
                          compiled.atom_start, compiled.atom_end, compiled.values, compiled.rule_masks,
                          compiled.rule_group, compiled.lookup, out[lo:hi])
    _check_all_matched(out, features, scheme)
    return out


def _check_all_matched(groups: np.ndarray, features: pd.DataFrame, scheme: NeedGroupScheme) -> None:
    unmatched = np.flatnonzero(groups < 0)
    if unmatched.size:
        ids = features["person_id"].to_numpy()[unmatched[:5]] if "person_id" in features.columns else unmatched[:5]
        raise DataError(
            f"{unmatched.size} person(s) match no rule of need-group scheme '{scheme.name}' ({scheme.source}), "
            f"e.g. person_id {', '.join(str(int(i)) for i in ids)}: check the values of "
            f"{', '.join(scheme.features)} (missing or out of range)"
        )
