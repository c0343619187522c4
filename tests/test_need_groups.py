"""Need-group schemes: loading and refusal, exact reachability checks, numba kernel == reference."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskcap.capitation import scheme as S
from riskcap.capitation.coverage import ValueSet
from riskcap.config import shipped_config
from riskcap.errors import ConfigError, DataError
from reference import capitation as naive
from reference.fabricated import make_features

SHIPPED = ["yoc_illustrative", "ltc_count_age", "risk_segments"]


def scheme_dict(*groups, name="test"):
    """groups: (id, [rule, ...]) with each rule a list of condition strings."""
    return {"name": name, "groups": [{"id": gid, "name": gid, "rules": rules} for gid, rules in groups]}


# --- shipped schemes -------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_schemes_load_and_are_labelled(name):
    scheme = S.load_scheme(name)
    assert scheme.name == name
    assert "illustrative" in scheme.label.lower()
    assert scheme.rules[-1].conditions == ()  # ends with a catch-all


def test_default_scheme_is_year_of_care_style_with_8_to_12_groups():
    scheme = S.load_scheme("yoc_illustrative")
    assert 8 <= len(scheme.groups) <= 12
    used = set(scheme.features)
    for needed in ("ltc_count", "age", "ltc_frailty", "ltc_dementia", "ltc_smi", "ltc_palliative",
                   "social_care_0_12", "care_home"):
        assert needed in used
    text = shipped_config("need_groups/yoc_illustrative.yaml").read_text()
    assert "ILLUSTRATIVE" in text


@pytest.mark.parametrize("name", SHIPPED)
def test_kernel_equals_reference_on_shipped_schemes(name):
    features, _ = make_features(3000, 7, seed=5, with_scores=True)
    scheme = S.load_scheme(name)
    fast = S.assign_need_groups(features, scheme)
    slow = naive.assign_need_groups(features, scheme)
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(fast, naive.groups_by_masks(features, scheme))
    assert len(np.unique(fast)) >= 5  # the data exercise most groups


def test_priority_order_first_match_wins():
    scheme = S.parse_scheme(scheme_dict(("eol", [["ltc_palliative == 1"]]), ("old", [["age >= 65"]]),
                                        ("rest", [[]])))
    frame = pd.DataFrame({"person_id": [1, 2, 3, 4], "ltc_palliative": np.array([1, 1, 0, 0], np.uint8),
                          "age": np.array([90, 30, 70, 20], np.int32)})
    assert S.assign_need_groups(frame, scheme).tolist() == [0, 0, 1, 2]


# --- refusal at load -------------------------------------------------------------------

BAD = {
    "unknown feature": (scheme_dict(("a", [["agee >= 65"]]), ("b", [[]])), ["group 'a' rule 1", "agee", "age"]),
    "outcome feature": (scheme_dict(("a", [["cost_next_12m_total > 5"]]), ("b", [[]])), ["group 'a' rule 1", "outcome"]),
    "bad operator": (scheme_dict(("a", [["age => 65"]]), ("b", [[]])), ["group 'a' rule 1", "cannot read"]),
    "list for ==": (scheme_dict(("a", [["age == [1, 2]"]]), ("b", [[]])), ["group 'a' rule 1", "single value"]),
    "text value": (scheme_dict(("a", [["age >= old"]]), ("b", [[]])), ["group 'a' rule 1", "not a number"]),
    "unknown tier": (scheme_dict(("a", [["risk_tier == medium"]]), ("b", [[]])), ["group 'a' rule 1", "very high"]),
    "duplicate rule": (scheme_dict(("a", [["age >= 65"]]), ("b", [["age >= 65"]]), ("c", [[]])),
                       ["group 'b' rule 1", "can never match", "group 'a' rule 1", "unreachable"]),
    "after catch-all": (scheme_dict(("a", [[]]), ("b", [["age >= 65"]])), ["group 'b' rule 1", "can never match"]),
    "interval subsumed": (scheme_dict(("a", [["age > 64"]]), ("b", [["age >= 70", "ltc_count >= 2"]]), ("c", [[]])),
                          ["group 'b' rule 1", "can never match"]),
    "covered by a union": (scheme_dict(("a", [["male == 0"]]), ("b", [["male == 1"]]), ("c", [["age > 5"]])),
                           ["group 'c' rule 1", "group 'a' rule 1; group 'b' rule 1"]),
    "second rule dead": (scheme_dict(("a", [["age >= 65"], ["age >= 80"]]), ("b", [[]])),
                         ["group 'a' rule 2", "can never match"]),
    "contradiction": (scheme_dict(("a", [["age > 80", "age < 50"]]), ("b", [[]])),
                      ["group 'a' rule 1", "contradict"]),
    "no catch-all": (scheme_dict(("a", [["age >= 65"]]), ("b", [["ltc_count >= 1"]])),
                     ["match no rule", "age=0", "ltc_count=0", "catch-all"]),
    "duplicate group": (scheme_dict(("a", [["age >= 65"]]), ("a", [[]])), ["group 'a'", "duplicate"]),
    "bad id": (scheme_dict(("Bad Id", [[]])), ["id", "identifier"]),
    "no rules": (scheme_dict(("a", [])), ["group 'a'", "rules"]),
    "unknown key": ({"name": "x", "colour": 1, "groups": []}, ["colour", "allowed keys"]),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_schemes_are_refused_naming_file_group_and_rule(case):
    data, fragments = BAD[case]
    with pytest.raises(ConfigError) as err:
        S.parse_scheme(data, source="schemes/bad.yaml")
    message = str(err.value)
    assert message.startswith("schemes/bad.yaml: ")
    for fragment in fragments:
        assert fragment in message, message


def test_load_scheme_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ngroups:\n  - id: a\n    rules: [[\"frailty == 1\"]]\n  - id: b\n    rules: [[]]\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: group 'a' rule 1: unknown feature 'frailty'.*ltc_frailty"):
        S.load_scheme(path)


def test_value_sets_use_integer_semantics():
    assert ValueSet.from_condition(">", (74,), True) == ValueSet.from_condition(">=", (75,), True)
    assert ValueSet.from_condition(">", (74,), False) != ValueSet.from_condition(">=", (75,), False)
    assert ValueSet.from_condition("<", (0.5,), True) == ValueSet.between(-math.inf, 0, True)
    assert ValueSet.from_condition("<", (1,), True) == ValueSet.between(-math.inf, 0, True)
    assert ValueSet.points([1, 2, 3], True) == ValueSet.between(1, 3, True)  # adjacent integers merge
    flag = ValueSet.between(0, 1, True)
    assert flag.intersect(ValueSet.from_condition("!=", (0,), True)) == ValueSet.points([1], True)
    assert flag.intersect(ValueSet.from_condition("in", (0.5,), True)).is_empty()


# exhaustive check of the reachability analysis on a finite domain: 2 x 5 x 5 people
GRID_FEATURES = {"male": (0, 1), "imd_quintile": (1, 5), "risk_tier": (0, 4)}
OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "not in"]


@st.composite
def small_rules(draw):
    rules = []
    for _ in range(draw(st.integers(1, 6))):
        conds = []
        for _ in range(draw(st.integers(0, 2))):
            feature = draw(st.sampled_from(sorted(GRID_FEATURES)))
            lo, hi = GRID_FEATURES[feature]
            op = draw(st.sampled_from(OPS))
            value = st.sampled_from([v / 2 for v in range(2 * lo - 2, 2 * hi + 3)])
            if op in ("in", "not in"):
                vals = draw(st.lists(value, min_size=1, max_size=3))
                conds.append(f"{feature} {op} [{', '.join(f'{v:g}' for v in vals)}]")
            else:
                conds.append(f"{feature} {op} {draw(value):g}")
        rules.append(conds)
    return rules


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(small_rules(), st.booleans())
def test_reachability_matches_exhaustive_enumeration(rules, add_catch_all):
    if add_catch_all:
        rules = rules + [[]]
    data = scheme_dict(*[(f"g{i}", [r]) for i, r in enumerate(rules)])
    # ground truth: which rule each possible person matches first
    conditions = [[S._parse_condition(c, "t", "t") for c in r] for r in rules]
    grid = itertools.product(*(range(lo, hi + 1) for lo, hi in GRID_FEATURES.values()))
    first = []
    for point in grid:
        person = dict(zip(GRID_FEATURES, point))
        hit = next((i for i, conds in enumerate(conditions)
                    if all(naive.condition_matches(c, float(person[c.feature])) for c in conds)), None)
        first.append(hit)
    dead = [i for i in range(len(rules)) if i not in first]
    try:
        S.parse_scheme(data, source="grid.yaml")
    except ConfigError as exc:
        message = str(exc)
        if dead:
            assert f"group 'g{dead[0]}' rule 1 can never match" in message
        else:
            assert None in first and "match no rule" in message
    else:
        assert not dead and None not in first


# --- kernel == reference on random schemes and frames ---------------------------------

KERNEL_FEATURES = {  # name -> (dtype, low, high): covers every column kind and conversions
    "age": (np.int32, 0, 100), "male": (np.int8, 0, 1), "care_home": (bool, 0, 1),
    "ltc_count": (np.int64, 0, 6), "social_care_0_12": (np.float64, 0, 5), "imd_decile": (np.uint16, 1, 10),
    "cost_total_0_12": (np.float32, 0, 4), "ltc_frailty": (np.uint8, 0, 1),
}


@st.composite
def frames_and_schemes(draw):
    n = draw(st.integers(1, 120))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    frame = {"person_id": np.arange(n, dtype=np.int64)}
    for name, (dtype, lo, hi) in KERNEL_FEATURES.items():
        if dtype in (np.float64, np.float32):
            values = rng.integers(lo, hi + 1, n) + rng.choice([0.0, 0.5], n)
            values[rng.random(n) < 0.1] = np.nan
            frame[name] = values.astype(dtype)
        else:
            frame[name] = rng.integers(lo, hi + 1, n).astype(dtype)
    rules = []
    n_groups = draw(st.integers(1, 8))
    for g in range(n_groups):
        for number in range(1, draw(st.integers(1, 3)) + 1):
            conds = []
            for _ in range(draw(st.integers(0, 3))):
                name = draw(st.sampled_from(sorted(KERNEL_FEATURES)))
                _, lo, hi = KERNEL_FEATURES[name]
                op = draw(st.sampled_from(OPS))
                values = tuple(draw(st.lists(st.sampled_from([v / 2 for v in range(2 * lo - 1, 2 * hi + 2)]),
                                             min_size=1, max_size=3 if op in ("in", "not in") else 1)))
                conds.append(S.Condition(name, op, values, f"{name} {op} {values}"))
            rules.append(S.Rule(g, f"g{g}", number, tuple(conds)))
    if draw(st.booleans()):
        rules.append(S.Rule(n_groups - 1, f"g{n_groups - 1}", 99, ()))
    scheme = S.NeedGroupScheme("random", "random", "", tuple(S.NeedGroup(f"g{g}", f"g{g}") for g in range(n_groups)),
                               tuple(rules), "random.yaml")
    return pd.DataFrame(frame), scheme


def _groups_or_error(fn, frame, scheme):
    try:
        return fn(frame, scheme).tolist()
    except DataError as exc:
        return str(exc).split(",")[0]  # "<count> person(s) match no rule ..."


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames_and_schemes())
def test_kernel_equals_pure_python_reference(case):
    frame, scheme = case
    fast = _groups_or_error(S.assign_need_groups, frame, scheme)
    assert fast == _groups_or_error(naive.assign_need_groups, frame, scheme)
    if isinstance(fast, list):
        assert fast == naive.groups_by_masks(frame, scheme).tolist()


@pytest.mark.parametrize("n_rules", [20, 70, 140])  # beyond the lookup table, and beyond one 64-bit word
def test_kernel_with_many_conditions(n_rules):
    rng = np.random.default_rng(n_rules)
    frame = pd.DataFrame({"person_id": np.arange(5000), "age": rng.integers(0, 150, 5000).astype(np.int32),
                          "ltc_count": rng.integers(0, 4, 5000)})
    rules = [S.Rule(i, f"g{i}", 1, (S.Condition("age", "==", (float(i),), ""),
                                    S.Condition("ltc_count", "!=", (float(i % 3),), "")))
             for i in range(n_rules)]
    rules.append(S.Rule(n_rules, f"g{n_rules}", 1, ()))
    groups = tuple(S.NeedGroup(f"g{i}", f"g{i}") for i in range(n_rules + 1))
    scheme = S.NeedGroupScheme("many", "many", "", groups, tuple(rules), "many.yaml")
    compiled = S.compile_scheme(scheme)
    atoms = n_rules + 3  # age == i for each rule, ltc_count != 0, 1, 2
    assert len(compiled.atom_op) == atoms and compiled.words == math.ceil(atoms / 64)
    assert compiled.lookup.size == 0
    np.testing.assert_array_equal(S.assign_need_groups(frame, scheme), naive.assign_need_groups(frame, scheme))


def test_missing_column_and_unmatched_people_are_data_errors():
    scheme = S.load_scheme("yoc_illustrative")
    features, _ = make_features(50, 2, seed=1)
    with pytest.raises(DataError, match=r"no column 'ltc_smi'.*yoc_illustrative.*group 'smi_or_ld' rule 1"):
        S.assign_need_groups(features.drop(columns="ltc_smi"), scheme)
    two = S.parse_scheme(scheme_dict(("young", [["age < 65"]]), ("old", [["age >= 65"]])))
    frame = pd.DataFrame({"person_id": [7, 8, 9], "age": [np.nan, 70.0, 3.0]})
    with pytest.raises(DataError, match=r"1 person\(s\) match no rule.*person_id 7"):
        S.assign_need_groups(frame, two)
    risk = S.load_scheme("risk_segments")
    with pytest.raises(DataError, match="--scores"):
        S.assign_need_groups(features, risk)
