"""Run capitation scenarios side by side and write their tables (``riskcap capitation run``).

Timing (documented in ``docs/capitation.md``): at index date T every person registered and
alive at T is grouped with their features at T; tariffs come from the base year (the 12
months before T); budgets are for the outcome year [T, T + 365 days), pro-rated by each
person's days on the list in it; settlement compares them with that year's actual costs.

Output folder layout::

    OUT/summary.json            every scenario's key numbers, the comparison, the inputs
    OUT/comparison.csv          one row per scenario (the table printed on the terminal)
    OUT/budgets.parquet|csv     practice budgets of all scenarios, with change vs baseline
    OUT/tariffs.parquet|csv     group tariffs of all scenarios
    OUT/settlement.parquet|csv  per-practice settlement; settlement_icb.csv per ICB
    OUT/accuracy.csv            predictive ratios by need group and overall
    OUT/pace_path.csv           budgets year by year for scenarios with a pace of change
    OUT/stop_loss.csv           scenarios with a stop-loss: per practice, who paid the costs above it
    OUT/risk_pools.csv          scenarios with risk pooling or widened bands: each practice's pool settlement
    OUT/withhold_outcome.csv    scenarios earning the withhold by outcome: each practice's observed, expected, earned
    OUT/components.csv          component budgets per practice for scenarios with budget.components
    OUT/coding_intensity.csv    register growth against the ICB's per practice, flags (budget.coding_intensity)
    OUT/practices_without_people.csv  practices with no one on their list in the outcome year, and why
    OUT/scenarios/<name>/       the same tables for one scenario, its summary.json and scenario.yaml
    OUT/need_groups/<scheme>.parquet  each person's need group (person_id, practice_code, need_group)

:func:`run_capitation` is the command (and the demo's stage): :func:`run_scenarios_streamed`
maps :func:`capitation_partition` over person-range partitions with an engine (:mod:`riskcap.stream.engines`), so memory is bounded by one partition plus about 20
bytes per person per (scheme, settings) for the population-wide cost cap and pool. Each
partition returns a :class:`RunPart` (a :class:`~riskcap.capitation.population.PopulationPart`
per (scheme, settings)); the driver combines them in task order, streams the per-person need
groups to parquet, and evaluates the scenarios on the combined populations. A run given a
:class:`~riskcap.models.score.ScoresWriter` also scores each partition's features, so one read
of the data gives scores and budgets (``riskcap capitation run --model``).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from riskcap.capitation.coding import combine_registers, register_cells
from riskcap.capitation.engine import ScenarioResult, evaluate
from riskcap.capitation.population import (Population, PopulationBuilder, PopulationPart, attach_scores,
                                           population_part, tariff_basis)
from riskcap.capitation.scenario import Scenario
from riskcap.capitation.scheme import NeedGroupScheme, assign_need_groups, load_scheme
from riskcap.data.read import Tables
from riskcap.data.scores import read_scores_range, scores_are_cost
from riskcap.data.summary import LoadSummary
from riskcap.data.write import OWNER_ONLY, ParquetRowsWriter, write_csv, write_file, write_json, write_parquet
from riskcap.errors import ConfigError, DataError, LoadRejected
from riskcap.stream.context import RunContext
from riskcap.stream.plan import PARTITION_PEOPLE


@dataclass
class RunResult:
    """The scenarios' results and the tables built from them."""

    results: list[ScenarioResult]
    baseline: str
    budgets: pd.DataFrame
    tariffs: pd.DataFrame
    settlement: pd.DataFrame
    settlement_icb: pd.DataFrame
    accuracy: pd.DataFrame
    pace_path: pd.DataFrame
    comparison: pd.DataFrame
    load_summary: LoadSummary | None = None  # of every partition loaded from files (streamed runs)
    scored: object = None  # the ScoredPopulation a run that also scored wrote (riskcap.models.score)
    #: practices of the practices table with no one on their list in the outcome year, and why
    practices_without_people: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["practice_code", "icb_code", "reason"]))
    #: per-practice tables of the issue 19 levers scenarios set (ScenarioResult.lever_frames)
    levers: dict[str, pd.DataFrame] = field(default_factory=dict)

    def summary(self, inputs: dict | None = None) -> dict:
        return {
            "baseline": self.baseline,
            "inputs": inputs or {},
            "scenarios": [r.summary() for r in self.results],
            "comparison": _records(self.comparison),
            "practices_without_people": _records(self.practices_without_people),
        }


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


Key = tuple[str, tuple[str, ...]]  #: (need-group scheme location, in-scope settings)
_NOBODY = "no people in the features (nobody registered and alive at the index date?)"


@dataclass(frozen=True)
class RunPlan:
    """The schemes (by location) and the (scheme, settings) keys some scenarios need; picklable."""

    schemes: dict[str, NeedGroupScheme]
    keys: tuple[Key, ...]
    deprivation: bool = False  # also sum list days and need by IMD decile (the inequalities adjustment)
    coding: bool = False  # also count register entries by practice x age-sex band in both years (coding intensity)

    def first_key(self, where: str) -> Key:
        """The first key of scheme ``where`` (its parts carry the scheme's grouping)."""
        return next(k for k in self.keys if k[0] == where)


def plan_run(scenarios: list[Scenario], deprivation: bool = False, coding: bool = False) -> RunPlan:
    """Check the scenarios (at least one, unique names) and load their schemes (unique names).

    Each scenario's component budgets add a key per component's settings; ``deprivation`` (or
    any scenario's inequalities adjustment) asks for the populations' IMD-decile sums, ``coding``
    (or any scenario's coding-intensity safeguard) for register counts in both years."""
    if not scenarios:
        raise ConfigError("no scenarios to run")
    names = [s.name for s in scenarios]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"scenario name '{dupes[0]}' is used by more than one file "
                          f"({', '.join(s.source for s in scenarios if s.name == dupes[0])}); names must be unique")
    schemes: dict[str, NeedGroupScheme] = {}
    keys: list[Key] = []
    for scenario in scenarios:
        where = scenario.scheme_location
        if where not in schemes:
            scheme = load_scheme(where)
            clash = next((w for w, s in schemes.items() if s.name == scheme.name), None)
            if clash is not None:
                raise ConfigError(f"need-group schemes {clash} and {where} are both named '{scheme.name}'; "
                                  "scheme names must be unique within a run")
            schemes[where] = scheme
        for settings in (scenario.settings, *(c.settings for c in scenario.components)):
            if (where, settings) not in keys:
                keys.append((where, settings))
    return RunPlan(schemes, tuple(keys), deprivation or any(s.inequalities is not None for s in scenarios),
                   coding or any(s.coding_intensity is not None for s in scenarios))


@dataclass
class RunPart:
    """One partition's result (picklable): its person_ids in row order, a part per plan key, and
    the partition's load summary when it was read from files (no parts if its data were rejected)."""

    person_id: np.ndarray
    parts: dict[Key, PopulationPart]
    summary: LoadSummary | None = None
    #: each practice's list changes in the window (:func:`practice_notes`; the same in every partition)
    notes: pd.DataFrame | None = None
    #: the partition's unranked scores, when the run also scores (:class:`~riskcap.models.score.ScoresWriter`)
    scores: pd.DataFrame | None = None
    #: register entries per practice x age-sex band in the base and current years (plan.coding)
    registers: pd.DataFrame | None = None

    @property
    def n_people(self) -> int:
        return int(self.person_id.size)


def aggregate_partition(features: pd.DataFrame, plan: RunPlan, practices: pd.DataFrame | None = None,
                        exposure=None, tariff_groups: dict[str, np.ndarray] | None = None) -> RunPart:
    """Group one partition's people once per scheme and aggregate them once per plan key.

    With an ``exposure`` and the ``tariff_groups`` a year before T (:func:`forward_inputs`), by
    the day with forward tariffs; without, from the features frame alone (base-year tariffs).
    """
    groups: dict[str, np.ndarray] = {}
    parts: dict[Key, PopulationPart] = {}
    for where, settings in plan.keys:
        scheme = plan.schemes[where]
        if where not in groups:
            groups[where] = assign_need_groups(features, scheme)
        tariff = None if exposure is None else tariff_basis(exposure, scheme, settings, tariff_groups[where])
        parts[(where, settings)] = population_part(features, scheme, settings, practices, groups[where],
                                                   exposure=exposure, tariff=tariff, deprivation=plan.deprivation)
    return RunPart(features["person_id"].to_numpy(dtype=np.int64, copy=True), parts)


def forward_inputs(tables: Tables, index_date, plan: RunPlan
                   ) -> tuple[pd.DataFrame, dict, object, np.ndarray, pd.DataFrame | None]:
    """What a partition's forward, by-day capitation needs: the features at T of everyone on a
    list in the outcome year (joiners too), the need groups (per scheme of ``plan``) of the
    people registered a year before T (the tariff year's), the
    :class:`~riskcap.capitation.exposure.Exposure`, and which rows of the features were
    registered at T (the people a run also scores), and with ``plan.coding`` the base year's
    register counts (:func:`~riskcap.capitation.coding.register_cells`)."""
    from riskcap.capitation.exposure import exposure_of, tariff_start  # noqa: PLC0415
    from riskcap.features import OUTCOME_DAYS, build_features, registered_on, to_day  # noqa: PLC0415
    from riskcap.registrations import periods_of  # noqa: PLC0415

    day = to_day(index_date)
    periods = periods_of(tables.persons, tables.registrations)
    tariff_features = build_features(tables, tariff_start(day), periods=periods)
    tariff_ids = tariff_features["person_id"].to_numpy(dtype=np.int64, copy=True)
    tariff_groups = {where: assign_need_groups(tariff_features, scheme) if len(tariff_features) else
                     np.zeros(0, dtype=np.int16) for where, scheme in plan.schemes.items()}
    base_registers = register_cells(tariff_features, 0, tables.practices) if plan.coding else None
    del tariff_features  # one features frame in memory at a time
    features = build_features(tables, day, joining_days=OUTCOME_DAYS, periods=periods)
    exposure = exposure_of(tables, day, features["person_id"].to_numpy(dtype=np.int64), tariff_ids, periods)
    at_t, _ = registered_on(tables.persons, tables.registrations, day, periods)
    registered = np.isin(features["person_id"].to_numpy(dtype=np.int64),
                         tables.persons["person_id"].to_numpy(dtype=np.int64)[at_t])
    return features, tariff_groups, exposure, registered, base_registers


def need_group_table(run_part: RunPart, plan: RunPlan, where: str) -> pa.Table:
    """Each person's need group under scheme ``where``: person_id, practice_code, need_group."""
    part = run_part.parts[plan.first_key(where)]
    practice, group = np.divmod(part.person_cell, part.n_groups)
    return pa.table({
        "person_id": pa.array(run_part.person_id, pa.int64()),
        "practice_code": pa.array(part.practice_codes, pa.large_string()).take(practice),
        "need_group": pa.array(plan.schemes[where].group_ids, pa.large_string()).take(group),
    })


def capitation_partition(task, *, run: RunContext, plan: RunPlan) -> RunPart:
    """One partition of a capitation run: load, build features, attach scores, group and aggregate;
    with ``run.model_files``, also score the features (``run.share``: as for
    :func:`~riskcap.models.score.score_candidates`), so one read serves scores and budgets.

    ``task`` is a :class:`riskcap.data.read.PersonRange` (rows of ``run.data_dir`` loaded and
    checked by :func:`~riskcap.data.load.load_partition`) or a :class:`~riskcap.data.read.Tables`
    partition in memory. ``run.scores`` are (path, :func:`~riskcap.data.scores.scores_are_cost`) pairs; only the
    partition's person_id range of each file is read.
    """
    index_date = run.index_date
    summary = None
    if isinstance(task, Tables):
        tables = task
        ids = tables.persons["person_id"].to_numpy(dtype=np.int64)
        first, stop = (int(ids.min()), int(ids.max()) + 1) if ids.size else (0, 0)
    else:
        from riskcap.data.load import load_partition  # noqa: PLC0415

        tables, summary = load_partition(run.data_dir, task, run.as_of, run.on_invalid, run.scans)
        if tables is None:
            return RunPart(np.zeros(0, dtype=np.int64), {}, summary)
        first, stop = int(task.first), int(task.stop)
    practices = tables.practices
    notes = practice_notes(practices, tables.practice_changes, index_date)
    features, tariff_groups, exposure, at_index, registers = forward_inputs(tables, index_date, plan)
    registered = features if at_index.all() else features.loc[at_index].reset_index(drop=True)
    if plan.coding:
        registers = combine_registers([registers, register_cells(registered, 1, practices)])
    del tables
    scored = None
    if run.model_files is not None:
        from riskcap.models.persist import load_model_files  # noqa: PLC0415
        from riskcap.models.score import score_candidates  # noqa: PLC0415

        scored = score_candidates(load_model_files(run.model_files), registered, run.share)  # as `riskcap score`: at T
    del registered
    for path, cost_file in run.scores:
        features = attach_scores(features, read_scores_range(path, first, stop), source=str(path), cost_file=cost_file)
    run_part = aggregate_partition(features, plan, practices, exposure, tariff_groups)
    run_part.summary, run_part.scores, run_part.notes = summary, scored, notes
    run_part.registers = registers
    return run_part


def practice_notes(practices: pd.DataFrame, changes: pd.DataFrame | None, index_date=None) -> pd.DataFrame:
    """Per practice of the practices table: practice_code, icb_code and ``list_change``, what
    happened to its list around the outcome year (opened, merged into another, closed), from
    ``practices.opened_on`` and the ``practice_changes`` table; empty text when nothing did."""
    from riskcap.features import OUTCOME_DAYS, to_date, to_day  # noqa: PLC0415

    codes = practices["practice_code"].astype(str).to_numpy()
    icb = practices["icb_code"].astype(str).to_numpy() if "icb_code" in practices.columns else np.full(len(codes), "UNKNOWN")
    text = dict.fromkeys(codes.tolist(), "")
    if index_date is not None and "opened_on" in practices.columns:
        lo = to_day(index_date)
        for code, opened in zip(codes, practices["opened_on"]):
            if not pd.isna(opened):
                day = to_day(opened)
                text[code] = f"opened {to_date(day).isoformat()}" + (" (after the outcome year)" if day >= lo + OUTCOME_DAYS
                                                                      else "")
    if changes is not None:
        for code, kind, on, into in changes[["practice_code", "change", "effective_on",
                                             "into_practice_code"]].itertuples(index=False):
            what = f"merged into {into}" if kind == "merge" else "closed (list dispersed)"
            text[str(code)] = "; ".join(t for t in (text.get(str(code), ""), f"{what} {pd.Timestamp(on).date()}") if t)
    return pd.DataFrame({"practice_code": codes, "icb_code": icb, "list_change": [text[c] for c in codes]}
                        ).sort_values("practice_code", kind="stable").reset_index(drop=True)


def _stream(engine, tasks, plan: RunPlan, sinks: dict[str, Callable[[pa.Table], None]],
            on_result: Callable[[RunPart], None] | None, run: RunContext, scores_to=None, spill_dir=None) -> tuple[dict[Key, Population], LoadSummary | None]:
    """Map :func:`capitation_partition` over tasks; combine parts in task order (per-person arrays
    spilled to ``spill_dir``, see :class:`PopulationBuilder`); feed need groups to sinks (and
    partitions' scores to the ``scores_to`` ScoresWriter).

    Partitions whose data were rejected are skipped and, after the last one, every problem of
    every partition is raised together (as :func:`riskcap.data.load.load_tables` would).
    """
    builders = {key: PopulationBuilder(plan.schemes[key[0]], spill_dir) for key in plan.keys}
    registers: list[pd.DataFrame] = []
    summaries: list[LoadSummary] = []
    notes = None
    people = 0
    run = run if scores_to is None else scores_to.scoring(run)
    for result in engine.map(capitation_partition, tasks, run=run, plan=plan):
        if result.summary is not None:
            summaries.append(result.summary)
        if notes is None and result.notes is not None:
            notes = result.notes
        if result.parts and not any(s.status == "rejected" for s in summaries):
            for key, part in result.parts.items():
                builders[key].add(part)
            if scores_to is not None:
                scores_to.add(result.scores)
            for where, sink in sinks.items():
                sink(need_group_table(result, plan, where))
            people += result.n_people
            if result.registers is not None:
                registers.append(result.registers)
        if on_result is not None:
            on_result(result)
        del result
    summary = LoadSummary.combine(summaries) if summaries else None
    if summary is not None and summary.status == "rejected":
        raise LoadRejected(summary)
    if not people:
        raise DataError(_NOBODY)
    populations = {key: builder.build() for key, builder in builders.items()}
    if registers:  # the coding-intensity safeguard's register counts, the same for every population
        combined = combine_registers(registers)
        for population in populations.values():
            population.registers = combined
    return populations, summary, notes


def stream_populations(engine, tasks, plan: RunPlan, *, run: RunContext = RunContext(),
                       on_result: Callable[[RunPart], None] | None = None,
                       spill_dir: str | Path | None = None) -> tuple[dict[Key, Population], LoadSummary | None]:
    """The combined Population of each plan key over partition ``tasks``, and the combined load
    summary (None for in-memory tasks); raises DataError if any partition's data were rejected.

    ``spill_dir``: where per-person arrays wait until the last partition (see
    :class:`~riskcap.capitation.population.PopulationBuilder`). ``run`` goes to
    :func:`capitation_partition`.
    """
    return _stream(engine, tasks, plan, {}, on_result, run, spill_dir=spill_dir)[:2]


def run_scenarios_streamed(engine, tasks, scenarios: list[Scenario], *, need_groups_dir: str | Path | None = None,
                           on_result: Callable[[RunPart], None] | None = None, scores_to=None,
                           spill_dir: str | Path | None = None, run: RunContext = RunContext()) -> RunResult:
    """Evaluate scenarios partition by partition (bounded memory) and build the comparison tables.

    The baseline for "change vs baseline" is the scenario named ``baseline`` if there is one,
    else the first scenario. ``tasks`` go to :func:`capitation_partition` (with ``run``) through
    ``engine.map``. Per-person need groups are written to ``need_groups_dir/<scheme>.parquet``
    as partitions arrive (the files appear only if the whole run succeeds), not kept in the
    result; ``on_result`` sees each partition's result (e.g. for progress). ``scores_to``: a
    :class:`~riskcap.models.score.ScoresWriter` (entered) that the same pass scores everyone
    into, finished here (the result's ``scored`` says what it wrote). ``spill_dir``: as for
    :func:`stream_populations`.
    """
    plan, tasks = plan_run(scenarios), list(tasks)
    with contextlib.ExitStack() as stack:
        sinks = {} if need_groups_dir is None else {
            where: stack.enter_context(ParquetRowsWriter(Path(need_groups_dir) / f"{scheme.name}.parquet",
                                                         mode=OWNER_ONLY)).write
            for where, scheme in plan.schemes.items()}
        populations, summary, notes = _stream(engine, tasks, plan, sinks, on_result, run, scores_to, spill_dir)
        result = tabulate(plan, scenarios, populations, notes)
        if scores_to is not None:
            for population in populations.values():  # ranking and re-reads need the room
                population.release_people()
            del populations
            result.scored = scores_to.finish(summary, engine, tasks, run)
    result.load_summary = summary
    return result


def run_capitation(data_dir: str | Path, scenarios: list[Scenario], out_dir: str | Path, index, *,
                   scores: tuple[Path, ...] = (), model_files: dict[str, bytes] | None = None,
                   reasons_for: float | None = None, on_invalid: str = "reject", partition_people: int = PARTITION_PEOPLE,
                   engine=None, parts: list | None = None, on_result: Callable[[RunPart], None] | None = None,
                   shown: Callable[[Path], str] = str) -> RunResult:
    """``riskcap capitation run``: the scenarios over the data folder's partitions (``parts``, else
    planned here), written to ``out_dir``; with ``model_files`` everyone is also scored into
    ``out_dir/scores.parquet`` in the same pass. ``index`` is the :class:`~riskcap.data.dates.IndexDate`;
    ``shown`` how the summary names the data and scores paths. The demo runs this too."""
    from riskcap.models.score import ScoresWriter  # noqa: PLC0415
    from riskcap.stream.engines import LocalEngine  # noqa: PLC0415
    from riskcap.stream.plan import plan_partitions  # noqa: PLC0415

    out_dir = Path(out_dir)
    parts = plan_partitions(data_dir, partition_people) if parts is None else parts
    with (contextlib.nullcontext() if model_files is None else
          ScoresWriter(out_dir / "scores.parquet", model_files, reasons_for)) as scores_to:
        result = run_scenarios_streamed(engine or LocalEngine(), parts, scenarios, need_groups_dir=out_dir / "need_groups",
                                        on_result=on_result, scores_to=scores_to, spill_dir=spill_dir(out_dir),
                                        run=run_context(data_dir, parts, index.date, on_invalid, scores))
    write_run(result, out_dir, run_inputs(data_dir, index, scores, result.results[0].population.n_people, shown))
    return result


def run_context(data_dir: str | Path, parts: list, index_date, on_invalid: str, scores: tuple[Path, ...]) -> RunContext:
    """What every partition of a capitation run over ``data_dir`` shares. Paths are absolute: a
    Dask worker on another machine, or in another folder, reads the same files."""
    from riskcap.data.load import scans_for  # noqa: PLC0415

    return RunContext(data_dir=str(Path(data_dir).resolve()), index_date=index_date, on_invalid=on_invalid,
                      scans=scans_for(data_dir, parts),
                      scores=tuple((str(Path(p).resolve()), scores_are_cost(p)) for p in scores))


def spill_dir(out_dir: str | Path) -> Path:
    """The nearest existing folder at or above ``out_dir``: per-person costs wait there until the
    last partition, on the disk chosen for the outputs (not in /tmp, which may be memory)."""
    out_dir = Path(out_dir).resolve()
    return next(p for p in (out_dir, *out_dir.parents) if p.is_dir())


def run_inputs(data_dir, index, scores, people: int, shown: Callable[[Path], str] = str) -> dict:
    """The inputs a run's summary.json records."""
    return {"data": shown(data_dir), "index_date": str(index.date), "index_date_source": index.source,
            "scores": [shown(p) for p in scores], "people": int(people)}


def component_populations(populations: dict[Key, Population], scenario: Scenario) -> dict[tuple, Population]:
    """The populations of ``scenario``'s component budgets, by their settings (empty without)."""
    return {c.settings: populations[(scenario.scheme_location, c.settings)] for c in scenario.components}


def tabulate(plan: RunPlan, scenarios: list[Scenario], populations: dict[Key, Population],
              notes: pd.DataFrame | None = None) -> RunResult:
    """Evaluate every scenario on its population and build the comparison tables (``notes``:
    :func:`practice_notes`, for the practices' list changes and those without people)."""
    names = [s.name for s in scenarios]
    results = [evaluate(populations[(s.scheme_location, s.settings)], s, component_populations(populations, s))
               for s in scenarios]
    baseline = "baseline" if "baseline" in names else names[0]
    base = next(r for r in results if r.scenario.name == baseline)

    budgets = pd.concat([r.budgets_frame() for r in results], ignore_index=True)
    without = pd.DataFrame(columns=["practice_code", "icb_code", "reason"])
    if notes is not None:
        change = dict(zip(notes["practice_code"], notes["list_change"]))
        budgets.insert(3, "list_change", budgets["practice_code"].map(change).fillna("").astype("str"))
        listed = set().union(*(p.practice_codes.astype(str).tolist() for p in populations.values()))
        missing = notes[~notes["practice_code"].isin(listed)]
        without = pd.DataFrame({"practice_code": missing["practice_code"], "icb_code": missing["icb_code"],
                                "reason": [f"{c}: no one on its list in the outcome year" if c else
                                           "no one on its list in the outcome year" for c in missing["list_change"]]}
                               ).reset_index(drop=True)
    ref = base.budgets_frame().set_index("practice_code")["budget_pence"]
    budgets["baseline_budget_pence"] = budgets["practice_code"].map(ref).astype("Int64")
    budgets["change_vs_baseline_pence"] = (budgets["budget_pence"] - budgets["baseline_budget_pence"]).astype("Int64")
    with np.errstate(divide="ignore", invalid="ignore"):
        budgets["change_vs_baseline_pct"] = np.round(
            100 * budgets["change_vs_baseline_pence"].astype("float64") / budgets["baseline_budget_pence"].astype("float64"), 4)

    summaries = [r.summary() for r in results]
    base_envelope = next(s["envelope_pence"] for s in summaries if s["scenario"] == baseline)
    comparison = pd.DataFrame({
        "scenario": [s["scenario"] for s in summaries],
        "mode": [s["mode"] for s in summaries],
        "envelope_gbp": [s["envelope_pence"] / 100 for s in summaries],
        "per_head_gbp": [s["envelope_per_head_gbp"] for s in summaries],
        "change_vs_baseline_gbp": [(s["envelope_pence"] - base_envelope) / 100 for s in summaries],
        "pool_funding_gbp": [s["pool_funding_pence"] / 100 for s in summaries],
        "actual_gbp": [s["actual_pence"] / 100 for s in summaries],
        "predictive_ratio": [s["predictive_ratio"] for s in summaries],
        "practices_within_10pct": [s["practices_within_10pct"] for s in summaries],
        "r_squared": [s["r_squared"] for s in summaries],
        "payer_share_gbp": [s["payer_share_pence"] / 100 for s in summaries],
        "provider_share_gbp": [s["provider_share_pence"] / 100 for s in summaries],
        "commissioner_balance_gbp": [s["commissioner_balance_pence"] / 100 for s in summaries],
    })
    return RunResult(
        results=results, baseline=baseline, budgets=budgets,
        tariffs=pd.concat([r.tariffs_frame() for r in results], ignore_index=True),
        settlement=pd.concat([r.settlement_frame() for r in results], ignore_index=True),
        settlement_icb=pd.concat([r.settlement_icb_frame() for r in results], ignore_index=True),
        accuracy=pd.concat([r.accuracy_frame() for r in results], ignore_index=True),
        pace_path=pd.concat([r.pace_path_frame() for r in results if r.budgets.pace_path is not None]
                            or [results[0].pace_path_frame()], ignore_index=True),
        comparison=comparison, practices_without_people=without, levers=_lever_tables(results),
    )


def _lever_tables(results: list[ScenarioResult]) -> dict[str, pd.DataFrame]:
    """The levers' per-practice tables over every scenario that sets them (none by default)."""
    frames: dict[str, list[pd.DataFrame]] = {}
    for result in results:
        for name, frame in result.lever_frames().items():
            frames.setdefault(name, []).append(frame)
    return {name: pd.concat(parts, ignore_index=True) for name, parts in frames.items()}


def write_run(run: RunResult, out_dir: str | Path, inputs: dict | None = None) -> Path:
    """Write a run's tables (see the module docstring for the layout); returns ``out_dir``."""
    out = Path(out_dir)
    tables = {"budgets": run.budgets, "tariffs": run.tariffs, "settlement": run.settlement}
    for name, frame in tables.items():
        write_parquet(frame, out / f"{name}.parquet")
        write_csv(frame, out / f"{name}.csv")
    write_csv(run.settlement_icb, out / "settlement_icb.csv")
    write_csv(run.accuracy, out / "accuracy.csv")
    write_csv(run.comparison, out / "comparison.csv")
    write_csv(run.practices_without_people, out / "practices_without_people.csv")
    if len(run.pace_path):
        write_csv(run.pace_path, out / "pace_path.csv")
    for name, frame in run.levers.items():
        write_csv(frame, out / f"{name}.csv")
    write_json(run.summary(inputs), out / "summary.json")
    for result in run.results:
        name = result.scenario.name
        folder = out / "scenarios" / name
        for table, frame in (("budgets", run.budgets), ("tariffs", run.tariffs), ("settlement", run.settlement),
                             ("settlement_icb", run.settlement_icb), ("accuracy", run.accuracy)):
            part = frame[frame["scenario"] == name]
            if table == "budgets":
                write_parquet(part, folder / "budgets.parquet")
            write_csv(part, folder / f"{table}.csv")
        if result.budgets.pace_path is not None:
            write_csv(result.pace_path_frame(), folder / "pace_path.csv")
        for table, frame in result.lever_frames().items():
            write_csv(frame, folder / f"{table}.csv")
        write_json({"inputs": inputs or {}, "source": result.scenario.source, **result.summary()},
                   folder / "summary.json")
        write_file(f"# resolved from {result.scenario.source}\n" + yaml.safe_dump(result.scenario.raw, sort_keys=False),
                   folder / "scenario.yaml")
    return out
