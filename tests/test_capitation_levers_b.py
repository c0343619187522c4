"""Issue 19 levers B: component budgets and the health-inequalities adjustment, pinned on
hand-checkable populations (direction and amount), plus validation, sums and the sweep."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskcap.capitation.engine import evaluate
from riskcap.capitation.population import Population, population_part
from riskcap.capitation.scenario import HEALTH_SETTINGS, load_scenario, parse_scenario
from riskcap.capitation.scheme import load_scheme, parse_scheme
from riskcap.capitation.sweep import run_sweep
from riskcap.errors import ConfigError
from reference.fabricated import make_features, run_on_features

TWO = parse_scheme({"name": "two", "groups": [{"id": "old", "rules": [["age >= 65"]]}, {"id": "young", "rules": [[]]}]})
SETTINGS = ("gp", "prescribing")
COMPONENTS = {"primary_care": {"settings": ["gp"], "need": "list_size"},
              "prescribing": {"settings": ["prescribing"], "need": "group_tariff"}}


def four_people(**extra) -> pd.DataFrame:
    """Practice A: one person 70 and one 30; practice B: two people 30; everyone a whole year."""
    return pd.DataFrame({
        "person_id": [1, 2, 3, 4], "practice_code": ["A", "A", "B", "B"],
        "age": np.array([70, 30, 30, 30], np.int32), "list_days_next_12": [365] * 4,
        "imd_decile": np.array([1, 1, 10, 10], np.int8),
        "cost_gp_0_12": [300.0, 100.0, 100.0, 100.0], "cost_prescribing_0_12": [900.0, 0.0, 60.0, 0.0],
        "cost_next_12m_gp": [200.0, 0.0, 50.0, 0.0], "cost_next_12m_prescribing": [700.0, 0.0, 0.0, 30.0], **extra})


def populations(frame: pd.DataFrame, deprivation: bool = False) -> dict:
    return {s: Population.from_features(frame, TWO, list(s), deprivation=deprivation)
            for s in (SETTINGS, ("gp",), ("prescribing",))}


# --- lever 5: component budgets ------------------------------------------------------------

def test_components_by_hand():
    # tariffs (GBP per year): gp old 300, young 100; prescribing old 900, young 20; total old 1,200,
    # young 120 -> envelope 1,200 + 3 x 120 = 1,560 GBP, split 600 (gp) + 960 (prescribing).
    # primary care by list size: 300 each; prescribing by its tariffs: A 900 + 20, B 20 + 20.
    pops = populations(four_people())
    plain = evaluate(pops[SETTINGS], parse_scenario({"name": "p", "settings": list(SETTINGS)}))
    assert plain.budgets.budget_pence.tolist() == [132_000, 24_000]
    scenario = parse_scenario({"name": "c", "settings": list(SETTINGS), "budget": {"components": COMPONENTS}})
    result = evaluate(pops[SETTINGS], scenario, {s: p for s, p in pops.items() if s != SETTINGS})
    split = result.budgets.components
    assert split.tariff_pence.tolist() == [[30_000, 10_000], [90_000, 2_000]]
    assert split.envelope_pence.tolist() == [60_000, 96_000]
    assert split.target_pence.tolist() == [[30_000, 30_000], [92_000, 4_000]]
    # the flat primary-care component moves 100 GBP from A (its 70-year-old's GP costs) to B
    assert result.budgets.budget_pence.tolist() == [122_000, 34_000]
    assert int(result.budgets.budget_pence.sum()) == result.budgets.envelope_pence == 156_000
    assert split.actual_pence.tolist() == [[20_000, 5_000], [70_000, 3_000]]
    summary = result.summary()["components"]
    assert [c["envelope_pence"] for c in summary] == [60_000, 96_000]
    frame = result.components_frame()
    assert frame["budget_pence"].tolist() == [30_000, 30_000, 92_000, 4_000]
    assert "components" not in plain.summary()


def test_components_add_up_to_the_envelope_and_each_budget_with_pace_of_change():
    features, practices = make_features(3000, 9, seed=4, with_scores=True)
    scheme = load_scheme("yoc_illustrative")
    main = Population.from_features(features, scheme, HEALTH_SETTINGS, practices)
    parts = {("emergency_inpatient", "elective_inpatient", "day_case", "outpatient", "ae"): "group_tariff",
             ("gp",): "list_size", ("community", "mental_health", "prescribing"): "predicted_cost"}
    pops = {s: Population.from_features(features, scheme, s, practices) for s in parts}
    scenario = parse_scenario({"name": "c", "top_slices": {"contingency_pct": 1.5}, "budget": {
        "pace_of_change": {"step_pct": 50}, "components": {
            f"c{i}": {"settings": list(s), "need": need} for i, (s, need) in enumerate(parts.items())}}})
    b = evaluate(main, scenario, pops).budgets
    split = b.components
    assert int(split.envelope_pence.sum()) == b.envelope_pence == int(b.budget_pence.sum())
    assert (split.budget_pence.sum(axis=0) == b.budget_pence).all()
    assert (split.target_pence.sum(axis=0) == b.target_pence).all()
    assert not np.array_equal(b.budget_pence, b.target_pence)  # the pace of change moved them


@pytest.mark.parametrize("components, key", [
    ({"a": {"settings": ["gp"]}}, "budget.components"),  # prescribing in no component
    ({"a": {"settings": ["gp"]}, "b": {"settings": ["gp", "prescribing"]}}, "budget.components.b.settings"),
    ({"a": {"settings": ["gp", "ae"]}, "b": {"settings": ["prescribing"]}}, "budget.components.a.settings"),
    ({"a": {"settings": ["gp"], "need": "size"}, "b": {"settings": ["prescribing"]}}, "budget.components.a.need"),
    ({"a": {"settings": ["gp"], "weight": 1}, "b": {"settings": ["prescribing"]}}, "budget.components.a.weight"),
])
def test_components_are_validated_naming_the_key(components, key):
    with pytest.raises(ConfigError, match=f"f.yaml: key '{key}'"):
        parse_scenario({"name": "x", "settings": list(SETTINGS), "budget": {"components": components}}, source="f.yaml")


# --- lever 3: health-inequalities adjustment ----------------------------------------------

def test_inequalities_on_tariffs_by_hand():
    # tariff weights: A 132,000 (deciles 1), B 24,000 (deciles 10) pence-years; index 2 for the most
    # deprived decile, 1 elsewhere; weight 30 %: mean index I = (2 x 132 + 24) / 156 = 288 / 156,
    # factors 0.7 + 0.3 x index / I; A's share 132 x (0.7 + 0.6 x 156 / 288) = 132 x 1.025
    pops = populations(four_people(), deprivation=True)
    scenario = parse_scenario({"name": "i", "settings": list(SETTINGS), "budget": {"inequalities": {
        "by": "imd_decile", "index": [2] + [1] * 9, "weight_pct": 30}}})
    result = evaluate(pops[SETTINGS], scenario)
    assert result.budgets.budget_pence.tolist() == [135_300, 20_700]
    assert result.budgets.gross_pence == 156_000 == int(result.budgets.budget_pence.sum())
    report = result.summary()["inequalities"]
    assert report["moved_pence"] == 3_300 and report["mean_index"] == round(288 / 156, 6)
    assert report["bands"][0]["change_pence"] == 3_300 and report["bands"][9]["change_pence"] == -3_300


def test_inequalities_on_fair_shares_by_quintile_by_hand():
    # equal predicted need (1,000 GBP each): I = 1.5, factors 0.8 + 0.2 x index / 1.5 -> A 16/15, B 14/15
    frame = four_people(predicted_cost_gbp=[1000.0] * 4)
    pops = populations(frame, deprivation=True)
    scenario = parse_scenario({"name": "f", "settings": list(SETTINGS), "budget": {
        "mode": "fair_shares", "envelope_gbp": 1000, "need": "predicted_cost",
        "inequalities": {"by": "imd_quintile", "index": [2, 1, 1, 1, 1], "weight_pct": 20, "apply_to": "fair_shares"}}})
    b = evaluate(pops[SETTINGS], scenario).budgets
    assert b.budget_pence.tolist() == [53_333, 46_667]
    assert b.inequalities["moved_pence"] == 3_333
    none = parse_scenario({"name": "z", "settings": list(SETTINGS), "budget": {
        "inequalities": {"by": "imd_quintile", "index": [2, 1, 1, 1, 1], "weight_pct": 0}}})
    assert evaluate(pops[SETTINGS], none).budgets.budget_pence.tolist() == [132_000, 24_000]


@pytest.mark.parametrize("inequalities, key", [
    ({"by": "imd_decile", "index": [1, 1, 1, 1, 1]}, "budget.inequalities.index"),
    ({"by": "lsoa", "index": [1] * 5}, "budget.inequalities.by"),
    ({"index": [1, 1, 0, 1, 1]}, "budget.inequalities.index.2"),
    ({"index": [1] * 5, "weight_pct": 101}, "budget.inequalities.weight_pct"),
    ({"index": [1] * 5, "apply_to": "fair_shares"}, "budget.inequalities.apply_to"),
])
def test_inequalities_are_validated_naming_the_key(inequalities, key):
    with pytest.raises(ConfigError, match=f"f.yaml: key '{key}'"):
        parse_scenario({"name": "x", "budget": {"inequalities": inequalities}}, source="f.yaml")


def test_deprivation_sums_of_parts_equal_the_whole_and_a_groupby():
    features, practices = make_features(2000, 7, seed=8, with_scores=True)
    scheme = load_scheme("yoc_illustrative")
    whole = Population.from_features(features, scheme, HEALTH_SETTINGS, practices, deprivation=True)
    halves = [population_part(features.iloc[a:b].reset_index(drop=True), scheme, HEALTH_SETTINGS, practices,
                              deprivation=True) for a, b in ((0, 900), (900, len(features)))]
    combined = Population.combine(halves, scheme)
    assert np.array_equal(whole.deprivation, combined.deprivation)
    assert np.array_equal(whole.deprivation[0].sum(axis=2), whole.list_days)
    assert np.array_equal(whole.deprivation[1].sum(axis=2), whole.need_days)
    days = features.groupby(features["imd_decile"].astype(int))["list_days_next_12"].sum()
    assert whole.deprivation[0].sum(axis=(0, 1)).tolist() == [int(days.get(d, 0)) for d in range(1, 11)]


def test_sweep_varies_the_levers():
    pops = populations(four_people(), deprivation=True)
    base = parse_scenario({"name": "s", "settings": list(SETTINGS), "budget": {"inequalities": {
        "by": "imd_decile", "index": [2] + [1] * 9, "weight_pct": 0}}})
    frame = run_sweep(pops[SETTINGS], base, [("budget.inequalities.weight_pct", [0, 30])])
    assert frame["inequalities_moved_pence"].tolist() == [0, 3_300]
    base = parse_scenario({"name": "c", "settings": list(SETTINGS), "budget": {"components": COMPONENTS}})
    frame = run_sweep(pops[SETTINGS], base, [("budget.components.primary_care.need", ["list_size", "group_tariff"])],
                      {s: p for s, p in pops.items() if s != SETTINGS})
    assert frame["component_primary_care_envelope_pence"].tolist() == [60_000, 60_000]
    with pytest.raises(ConfigError, match="cannot vary in a sweep"):
        run_sweep(pops[SETTINGS], base, [("budget.components", [{"all": {"settings": ["gp", "prescribing"]}}])],
                  {s: p for s, p in pops.items() if s != SETTINGS})


@pytest.mark.parametrize("name", ["components", "inequalities", "convergence_growing"])
def test_shipped_lever_scenarios_load(name):
    scenario = load_scenario(name)
    assert scenario.components or scenario.inequalities or scenario.pace_of_change.envelope_growth_ppm


# --- lever 6: convergence with a growing envelope ------------------------------------------

def _converging() -> Population:
    # A: a 70-year-old costing 800 GBP and a 30-year-old costing 0; B: two 30-year-olds, 400 and 200.
    # Tariffs (base year per head): old 800, young 200 -> targets A 1,000, B 400 (envelope 1,400 GBP);
    # current spend A 800, B 600.
    frame = pd.DataFrame({"person_id": [1, 2, 3, 4], "practice_code": ["A", "A", "B", "B"],
                          "age": np.array([70, 30, 30, 30], np.int32), "list_days_next_12": [365] * 4,
                          "cost_gp_0_12": [800.0, 0.0, 400.0, 200.0], "cost_next_12m_gp": [0.0] * 4})
    return Population.from_features(frame, TWO, ["gp"])


def test_growth_floor_above_zero_needs_a_growing_envelope():
    pop = _converging()
    pace = {"step_pct": 100, "min_growth_pct": 1}
    with pytest.raises(ConfigError, match="min_growth_pct.*lower the floor"):  # flat envelope: refused, as before
        evaluate(pop, parse_scenario({"name": "flat", "settings": ["gp"], "budget": {"pace_of_change": pace}}))
    scenario = parse_scenario({"name": "grow", "settings": ["gp"], "budget": {"pace_of_change": {
        **pace, "envelope_growth_pct": 2, "years": 2}}})
    b = evaluate(pop, scenario).budgets
    # last year's total 140,000 / 1.02 = 137,254.9 -> 137,255 pence, shared 800:600 -> 78,431 and 58,824;
    # B (above target) gets its 1 % floor, 59,412.24; A the rest, 80,587.76 -> to the penny 80,588 + 59,412
    assert b.growing.last_year_pence == 137_255
    assert b.growing.current_pence.tolist() == [78_431, 58_824]
    assert b.budget_pence.tolist() == [80_588, 59_412] and int(b.budget_pence.sum()) == b.envelope_pence == 140_000
    # year 2: envelope 142,800; B's floor 59,412 x 1.01 = 60,006.12, A the rest 82,793.88
    assert b.growing.envelopes.tolist() == [140_000, 142_800]
    assert b.pace_path[1].tolist() == [82_794, 60_006]
    assert (b.pace_path.sum(axis=1) == b.growing.envelopes).all()
    assert b.growing.targets[1].tolist() == [102_000, 40_800]
    summary = evaluate(pop, scenario).summary()["pace_of_change_growth"]
    assert summary == {"last_year_pence": 137_255, "envelopes_pence": [140_000, 142_800]}


def test_growth_without_limits_moves_part_way_and_sums_each_year():
    features, practices = make_features(3000, 9, seed=5)
    pop = Population.from_features(features, load_scheme("yoc_illustrative"), HEALTH_SETTINGS, practices)
    b = evaluate(pop, parse_scenario({"name": "g", "budget": {"pace_of_change": {
        "step_pct": 50, "min_growth_pct": 0.5, "max_growth_pct": 6, "envelope_growth_pct": 3, "years": 4}}})).budgets
    assert (b.pace_path.sum(axis=1) == b.growing.envelopes).all()
    last = np.vstack([b.growing.current_pence, b.pace_path[:-1]]).astype(float)
    growth = b.pace_path / last - 1
    assert (growth >= 0.005 - 2 / last).all() and (growth <= 0.06 + 2 / last).all()


# --- lever 4: coding-intensity safeguard ---------------------------------------------------

def _registers(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["icb_code", "practice_code", "year", "band", "people", "entries"])


def test_coding_growth_by_hand():
    from riskcap.capitation.coding import coding_growth

    # one band; A's entries grow 40 -> 50 (25 %), B and C stay at 50: the ICB's median growth is 0,
    # so A's excess is 25 %; the ICB's base-year rate (140 / 300) cancels out of each growth
    registers = _registers([("Q", p, y, 7, 100, e) for p, (e0, e1) in {"A": (40, 50), "B": (50, 50), "C": (50, 50)}.items()
                            for y, e in ((0, e0), (1, e1))])
    g = coding_growth(registers)
    assert g["growth"].tolist() == [0.25, 0.0, 0.0] and g["icb_growth"].tolist() == [0.0] * 3
    assert g["excess_growth"].tolist() == [0.25, 0.0, 0.0]
    assert g["expected_base"].tolist() == [round(100 * 140 / 300, 6)] * 3
    # age-sex change is taken out: B's people move to a band with twice the ICB's rate, entries double
    aged = _registers([("Q", "A", 0, 1, 100, 10), ("Q", "B", 0, 1, 100, 10), ("Q", "B", 0, 2, 0, 0),
                       ("Q", "A", 0, 2, 100, 20), ("Q", "A", 1, 1, 100, 10), ("Q", "A", 1, 2, 100, 20),
                       ("Q", "B", 1, 2, 100, 20)])
    assert coding_growth(aged)["growth"].tolist() == [0.0, 0.0]


def _three_practices() -> Population:
    frame = pd.DataFrame({"person_id": [1, 2, 3], "practice_code": ["A", "B", "C"],
                          "age": np.array([30, 30, 30], np.int32), "list_days_next_12": [365] * 3,
                          "cost_gp_0_12": [100.0] * 3, "cost_next_12m_gp": [0.0] * 3})
    pop = Population.from_features(frame, TWO, ["gp"])
    pop.registers = _registers([("Q", p, y, 7, 100, e) for p, (e0, e1) in
                                {"A": (40, 50), "B": (50, 50), "C": (50, 50)}.items() for y, e in ((0, e0), (1, e1))])
    return pop


def test_coding_intensity_flags_and_normalises_by_hand():
    pop = _three_practices()
    report = evaluate(pop, parse_scenario({"name": "r", "settings": ["gp"], "budget": {
        "coding_intensity": {"flag_threshold_pct": 20}}}))
    assert report.budgets.budget_pence.tolist() == [10_000] * 3  # normalise_pct 0: report only
    assert report.summary()["coding_intensity"]["flagged"] == ["A"]
    # normalise all of it: A's weight 365 x 10,000 / 1.25; shares 0.8 : 1 : 1 of 30,000 pence ->
    # 8,571.43, 10,714.29, 10,714.29 -> to the penny 8,572 (largest remainder), 10,714, 10,714
    result = evaluate(pop, parse_scenario({"name": "n", "settings": ["gp"], "budget": {
        "coding_intensity": {"flag_threshold_pct": 20, "normalise_pct": 100}}}))
    assert result.budgets.budget_pence.tolist() == [8_572, 10_714, 10_714]
    summary = result.summary()["coding_intensity"]
    assert summary["moved_pence"] == 1_428 and summary["flagged"] == ["A"]
    half = evaluate(pop, parse_scenario({"name": "h", "settings": ["gp"], "budget": {
        "coding_intensity": {"normalise_pct": 50, "flag_threshold_pct": 30}}}))
    assert half.budgets.coding["factor"].tolist() == [1.125, 1.0, 1.0] and half.summary()["coding_intensity"]["flagged"] == []
    frame = run_sweep(pop, parse_scenario({"name": "s", "settings": ["gp"], "budget": {"coding_intensity": {}}}),
                      [("budget.coding_intensity.normalise_pct", [0, 100])])
    assert frame["coding_moved_pence"].tolist() == [0, 1_428]


def test_coding_intensity_needs_register_counts():
    frame = four_people()
    pop = Population.from_features(frame, TWO, ["gp"])
    with pytest.raises(Exception, match="register counts in the base and current years"):
        evaluate(pop, parse_scenario({"name": "x", "settings": ["gp"], "budget": {"coding_intensity": {}}}))
    with pytest.raises(ConfigError, match="f.yaml: key 'budget.coding_intensity.normalise_pct'"):
        parse_scenario({"name": "x", "budget": {"coding_intensity": {"normalise_pct": 150}}}, source="f.yaml")
    with pytest.raises(ConfigError, match="f.yaml: key 'budget.coding_intensity.audit'"):
        parse_scenario({"name": "x", "budget": {"coding_intensity": {"audit": 1}}}, source="f.yaml")


@pytest.mark.e2e
def test_the_safeguard_finds_the_practices_the_generator_made_code_up(tmp_path):
    import json

    from click.testing import CliRunner

    from riskcap.cli import main
    from riskcap.synthetic import SynthConfig, write_population

    data = tmp_path / "coded"
    write_population(data, SynthConfig(people=50_000, seed=5, coding_up_practices=2))
    coders = {p["practice_code"] for p in json.loads((data / "calibration.json").read_text())["coding_up"]["practices"]}
    out = tmp_path / "demo" / "capitation"
    result = CliRunner().invoke(main, ["capitation", "run", "baseline", "coding_intensity", "--data", str(data),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "coding_intensity.csv")
    top = table.sort_values("excess_growth", ascending=False)["practice_code"].head(len(coders))
    assert set(top) == coders  # the two practices coding up have the largest excess growth
    summary = json.loads((out / "summary.json").read_text())["scenarios"][1]
    assert set(summary["coding_intensity"]["flagged"]) == coders
    budgets = pd.read_csv(out / "budgets.csv")
    change = budgets[budgets["scenario"] == "coding_intensity"].set_index("practice_code")["change_vs_baseline_pence"]
    assert (change[sorted(coders)] < 0).all()  # normalised: their budgets go down
    assert int(budgets[budgets["scenario"] == "coding_intensity"]["budget_pence"].sum()) == summary["envelope_pence"]
    from riskcap.report.outputs import read_run
    from riskcap.report.levers import lever_tables

    tables = lever_tables(read_run(tmp_path / "demo").capitation, "budgets")
    table = next(t for t in tables if t.title == "Coding-intensity safeguard")
    assert table.rows[0][0] == "coding_intensity" and set(table.rows[0][3].split(", ")) == coders


# --- report and workbook ---------------------------------------------------------------------

def test_levers_show_in_the_report_and_the_workbook(tmp_path):
    from io import BytesIO

    from openpyxl import load_workbook

    from riskcap.capitation.run import write_run
    from riskcap.report.outputs import read_run
    from riskcap.report.sections import budgets_section
    from riskcap.report.workbook import workbook_bytes

    features, practices = make_features(2000, 6, seed=3, with_scores=True)
    names = ["baseline", "components", "inequalities", "convergence_growing"]
    result = run_on_features(features, practices, [load_scenario(n) for n in names])
    write_run(result, tmp_path / "capitation", {"data": "x"})
    assert (tmp_path / "capitation" / "components.csv").exists()
    run = read_run(tmp_path)
    titles = [t.title for t in budgets_section(run).tables]
    assert titles[1:] == ["Component budgets", "Health-inequalities adjustment: money by deprivation band",
                          "Pace of change with a growing envelope"]
    book = load_workbook(BytesIO(workbook_bytes(run)))
    assert {"Component budgets", "Inequalities adjustment", "Envelope path"} <= set(book.sheetnames)
    assert "Coding intensity" not in book.sheetnames
    rows = list(book["Component budgets"].iter_rows(min_row=2, values_only=True))
    envelope = run.capitation.scenarios["components"]["summary"]["envelope_pence"]
    assert sum(r[4] for r in rows) == envelope and len(rows) == 5
    plain = run_on_features(features, practices, [load_scenario("baseline")])
    write_run(plain, tmp_path / "plain" / "capitation", {"data": "x"})
    assert [t.title for t in budgets_section(read_run(tmp_path / "plain")).tables] == ["Scenarios side by side"]
