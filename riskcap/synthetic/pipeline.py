"""Generate a synthetic population partition by partition, and write it to parquet.

:func:`generate` yields :class:`Partition` objects (a batch of whole practices, a
contiguous person_id range); :func:`write_population` streams them into
``practices/persons/conditions/activity/truth.parquet`` (one row group per partition, so
memory is bounded by a partition) plus ``calibration.json``. Each practice has its own
seed derived from (seed, practice_code), so the population does not depend on the
partition size, and the same arguments give byte-identical files.
"""
from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskcap.config import load_yaml, resolve_config
from riskcap.data.read import Tables, coerce
from riskcap.data.write import atomic_path, write_json
from riskcap.errors import ConfigError
from riskcap.schema import CONDITION_CODES, SETTING_CODES, TABLES
from riskcap.synthetic import calibration
from riskcap.synthetic import params as P
from riskcap.synthetic.calendar import DEFAULT_YEARS, Calendar
from riskcap.synthetic.kernels import nhs_numbers
from riskcap.synthetic.plan import PracticePlan, build_plan
from riskcap.synthetic.population import DIAGNOSIS_CODES, NEVER, simulate_practice
from riskcap.synthetic.practices import read_nhse_practices, synthetic_practices

DEFAULT_PEOPLE = 100_000
DEFAULT_SEED = 20240401
DEFAULT_PARTITION_PEOPLE = 100_000
TRUTH_COLUMNS = ("person_id", "year_start", "p_emergency", "frailty", "state", "expected_admissions")
#: Tables written partition by partition (one row group each).
OUTPUT_TABLES = ("practices", "persons", "conditions", "activity", "registrations", "truth")
#: Tables about the practices, written whole: practice_changes (contract, optional table) and
#: practice_truth (what no model may see: each practice's effects and coding).
PRACTICE_TABLES = ("practice_changes", "practice_truth")
#: Parquet dictionary encoding: everywhere except truth's floats (random, so it only costs time).
DICTIONARY_COLUMNS = {"truth": ["year_start"]}


@dataclass(frozen=True)
class SynthConfig:
    """What to generate.

    Attributes
    ----------
    people : int, optional
        People registered on the first simulated day. Default 100,000 for synthetic
        practices; with ``practices_file`` the real list sizes unless given (then scaled).
    practices_file : str, optional
        NHS England's practice file (or a practices table) to place people in.
    icb : str, optional
        With ``practices_file``: keep one ICB (ICS22 code or name).
    n_practices : int, optional
        Synthetic practices: how many (default: as England's list sizes imply).
    icb_code, icb_name : str, optional
        Synthetic practices: the ICB they belong to.
    years : int
        Simulated financial years ending 2025-03-31 (default 5: from 2020-04-01).
    seed : int
        Random seed.
    partition_people : int
        Practices are batched into partitions of about this many people.
    coding_up_practices : int
        How many practices code up: from the start of the second-last year their register
        entries grow by ``coding_up_uplift`` (a share of their recorded entries) more than
        their patients' morbidity (calibration.json and practice_truth.parquet say which).
    """

    people: int | None = None
    practices_file: str | None = None
    icb: str | None = None
    n_practices: int | None = None
    icb_code: str | None = None
    icb_name: str | None = None
    years: int = DEFAULT_YEARS
    seed: int = DEFAULT_SEED
    partition_people: int = DEFAULT_PARTITION_PEOPLE
    coding_up_practices: int = 0
    coding_up_uplift: float = P.CODING_UP_UPLIFT

    def __post_init__(self):
        if self.people is not None and int(self.people) < 1:
            raise ConfigError(f"people must be at least 1, got {self.people}")
        if self.icb is not None and self.practices_file is None:
            raise ConfigError("icb selects practices from a practices file: give practices_file (--practices) too")
        if not 1 <= int(self.years) <= 30:
            raise ConfigError(f"years must be between 1 and 30, got {self.years}")
        if int(self.partition_people) < 1:
            raise ConfigError(f"partition_people must be at least 1, got {self.partition_people}")
        if int(self.coding_up_practices) < 0:
            raise ConfigError(f"coding_up_practices must be 0 or more, got {self.coding_up_practices}")
        if not 0 < float(self.coding_up_uplift) <= 1:
            raise ConfigError(f"coding_up_uplift must be above 0 and at most 1, got {self.coding_up_uplift}")

    @classmethod
    def from_preset(cls, name_or_path: str | Path, **overrides) -> "SynthConfig":
        """A config from a YAML preset (shipped name like ``default_icb`` or a path), then overrides.

        Overrides whose value is None are ignored.
        """
        path = resolve_config(name_or_path, "synthetic")
        data = load_yaml(path)
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed - {"description"})
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        values = {k: v for k, v in data.items() if k in allowed}
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("people", "n_practices", "years", "seed", "partition_people", "coding_up_practices"):
            if values.get(key) is not None and not isinstance(values[key], int):
                raise ConfigError(f"{path}: '{key}' must be an integer, got {values[key]!r}")
        return cls(**values)

    @property
    def calendar(self) -> Calendar:
        return Calendar(int(self.years))

    def practices(self, extras: bool = False) -> pd.DataFrame:
        """The practices this population is drawn for, sorted by practice_code (with ``extras``,
        the NHS England file's PCN, position and component indices where it has them)."""
        if self.practices_file is not None:
            return read_nhse_practices(self.practices_file, icb=self.icb, people=self.people, extras=extras)
        people = DEFAULT_PEOPLE if self.people is None else int(self.people)
        return synthetic_practices(people, self.seed, n_practices=self.n_practices,
                                   icb_code=self.icb_code, icb_name=self.icb_name)

    def plan(self, practices: pd.DataFrame | None = None) -> PracticePlan:
        """Everything decided about the practices (:func:`riskcap.synthetic.plan.build_plan`)."""
        practices = self.practices(extras=True) if practices is None else practices
        # the real list sizes stay as they are; otherwise the start total is what was asked for
        people = self.people if self.people is not None or self.practices_file else int(practices["list_size"].sum())
        return build_plan(practices, self.calendar, self.seed, people=people,
                          coding_up_practices=int(self.coding_up_practices), coding_up_uplift=float(self.coding_up_uplift))


@dataclass
class Partition:
    """One batch of whole practices: arrow tables for the contract tables, registrations and truth.

    ``person_id_range`` is ``(first, last + 1)``; ``stats`` are calibration counters.
    """

    index: int
    person_id_range: tuple[int, int]
    arrow: dict[str, pa.Table]
    stats: dict = field(default_factory=dict)

    def tables(self) -> Tables:
        """The four contract tables as pandas frames with the contract's dtypes."""
        return Tables(**{name: coerce(self.arrow[name], name) for name in TABLES})

    def registrations(self) -> pd.DataFrame:
        """registrations rows: person_id, practice_code, registered_from, registered_to."""
        return _frame_with_dates(self.arrow["registrations"])

    def truth(self) -> pd.DataFrame:
        """truth rows: person_id, year_start, p_emergency and the latent state."""
        return _frame_with_dates(self.arrow["truth"])


def _frame_with_dates(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    for fld in table.schema:
        if pa.types.is_date32(fld.type):
            df[fld.name] = df[fld.name].astype("datetime64[s]")
        elif pa.types.is_dictionary(fld.type):
            df[fld.name] = df[fld.name].astype("string")
    return df


def practice_seed(seed: int, practice_code: str) -> np.random.SeedSequence:
    """The seed of one practice's population: from the run's seed and the practice code."""
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, zlib.crc32(practice_code.encode())])


def partition_bounds(list_sizes: np.ndarray, partition_people: int) -> list[tuple[int, int]]:
    """Split practices (in order) into consecutive batches of about ``partition_people`` people."""
    bounds, lo, acc = [], 0, 0
    for i, size in enumerate(list_sizes):
        acc += int(size)
        if acc >= partition_people:
            bounds.append((lo, i + 1))
            lo, acc = i + 1, 0
    if lo < len(list_sizes):
        bounds.append((lo, len(list_sizes)))
    return bounds


def generate(config: SynthConfig, practices: pd.DataFrame | None = None, jobs: int = 1,
             plan: PracticePlan | None = None) -> Iterator[Partition]:
    """Yield the population one partition (batch of practices) at a time, in person_id order.

    Parameters
    ----------
    config : SynthConfig
        What to generate.
    practices : pandas.DataFrame, optional
        The practices table (default ``config.practices()``); or give the ``plan`` itself.
    jobs : int
        Worker processes simulating partitions ahead (1 = in this process). The output
        does not depend on ``jobs``.
    """
    plan = plan if plan is not None else config.plan(practices)
    sizes = plan.frame["nominal_size"].to_numpy()
    tasks = [(config, plan, lo, hi, index) for index, (lo, hi) in enumerate(partition_bounds(sizes, config.partition_people))]
    next_id = 1
    for partition in _run(tasks, jobs):
        partition = _with_person_ids(partition, next_id)
        next_id = partition.person_id_range[1]
        yield partition


def _run(tasks, jobs: int) -> Iterator[Partition]:
    """Simulate partitions in order, with up to ``jobs`` worker processes working ahead."""
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield simulate_partition(*task)
        return
    import concurrent.futures as cf
    import multiprocessing as mp

    context = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        pending = []
        queue = iter(tasks)
        for task in queue:  # keep jobs + 1 partitions in flight: memory stays bounded
            pending.append(pool.submit(simulate_partition, *task))
            if len(pending) > jobs:
                break
        while pending:
            partition = pending.pop(0).result()
            task = next(queue, None)
            if task is not None:
                pending.append(pool.submit(simulate_partition, *task))
            yield partition


def simulate_partition(config: SynthConfig, plan: PracticePlan, lo: int, hi: int, index: int) -> Partition:
    """Simulate the practices ``lo:hi`` of the plan; person ids start at 0 (see :func:`generate`)."""
    results, stats = [], {}
    icb_codes = plan.frame["icb_code"].astype(str).to_numpy()
    for row in range(lo, hi):
        spec = plan.spec(row)
        icb = plan.icb(icb_codes[row])
        result = simulate_practice(spec, icb, config.calendar, practice_seed(config.seed, spec.practice_code))
        result.persons["practice"] = icb.rows[result.persons["practice"]]
        result.segments["practice"] = icb.rows[result.segments["practice"]]
        calibration.merge_stats(stats, result.stats)  # merged at once: per-practice histograms are large
        result.stats = {}
        results.append(result)
    partition = _assemble(index, plan, lo, hi, results, config.calendar)
    partition.stats = stats
    return partition


def _with_person_ids(partition: Partition, first_id: int) -> Partition:
    """Shift a partition's person ids to start at ``first_id`` and fill in NHS numbers."""
    lo, hi = partition.person_id_range
    arrow = dict(partition.arrow)
    for name in ("persons", "conditions", "activity", "registrations", "truth"):
        table = arrow[name]
        shifted = pc.add(table.column("person_id"), pa.scalar(first_id - lo, pa.int64()))
        arrow[name] = table.set_column(0, "person_id", shifted)
    person_id = np.arange(first_id, first_id + hi - lo, dtype=np.int64)
    persons = arrow["persons"]
    arrow["persons"] = persons.set_column(1, "nhs_number", pa.array(nhs_numbers(person_id)).cast(pa.string()))
    return Partition(partition.index, (first_id, first_id + hi - lo), arrow, partition.stats)


def generate_tables(config: SynthConfig) -> tuple[Tables, pd.DataFrame]:
    """The whole population in memory (for small populations, tests and examples)."""
    parts = list(generate(config))
    tables = Tables(**{name: pd.concat([p.tables().__dict__[name] for p in parts], ignore_index=True) for name in TABLES})
    truth = pd.concat([p.truth() for p in parts], ignore_index=True)
    return tables, truth


# --- arrow assembly ----------------------------------------------------------------------

def _dates(days: np.ndarray) -> pa.Array:
    """int32 day numbers to date32, with ``NEVER`` as null."""
    days = np.asarray(days, dtype=np.int32)
    missing = days == NEVER
    return pa.Array.from_buffers(pa.date32(), len(days), [_validity(missing), pa.py_buffer(days)]) if missing.any() \
        else pa.array(days, type=pa.date32())


def _validity(missing: np.ndarray):
    return pa.array(~missing).buffers()[1] if len(missing) else None


def _dictionary(indices: np.ndarray, dictionary: pa.Array, null: np.ndarray | None = None) -> pa.DictionaryArray:
    idx = pa.array(np.asarray(indices, dtype=np.int32), mask=null if null is not None and null.any() else None)
    return pa.DictionaryArray.from_arrays(idx, dictionary)


_SETTINGS = pa.array(list(SETTING_CODES), type=pa.string())
_CONDITIONS = pa.array(list(CONDITION_CODES), type=pa.string())
_DIAGNOSES = pa.array(list(DIAGNOSIS_CODES), type=pa.string())
_SEXES = pa.array(["F", "M"], type=pa.string())


_DICT = pa.dictionary(pa.int32(), pa.string())
SCHEMAS = {
    "practices": pa.schema([("practice_code", pa.string()), ("icb_code", pa.string()), ("list_size", pa.int64()),
                            ("need_index", pa.float64()), ("practice_name", pa.string()), ("opened_on", pa.date32()),
                            ("pcn_code", pa.string())]),
    "persons": pa.schema([("person_id", pa.int64()), ("nhs_number", pa.string()), ("practice_code", _DICT),
                          ("sex", _DICT), ("birth_date", pa.date32()),
                          ("imd_decile", pa.int64()), ("registered_from", pa.date32()), ("registered_to", pa.date32()),
                          ("died_on", pa.date32()), ("care_home", pa.bool_()), ("opted_out", pa.bool_())]),
    "conditions": pa.schema([("person_id", pa.int64()), ("condition", _DICT), ("diagnosed_on", pa.date32())]),
    "activity": pa.schema([("person_id", pa.int64()), ("setting", _DICT),
                           ("start_date", pa.date32()), ("end_date", pa.date32()), ("quantity", pa.int64()),
                           ("cost_gbp", pa.float64()), ("primary_diagnosis", _DICT)]),
    "registrations": pa.schema([("person_id", pa.int64()), ("practice_code", _DICT), ("registered_from", pa.date32()),
                                ("registered_to", pa.date32())]),
    "truth": pa.schema([("person_id", pa.int64()), ("year_start", pa.date32()), ("p_emergency", pa.float64()),
                        ("frailty", pa.float64()), ("state", pa.float64()), ("expected_admissions", pa.float64())]),
    "practice_changes": pa.schema([("practice_code", pa.string()), ("change", pa.string()),
                                   ("effective_on", pa.date32()), ("into_practice_code", pa.string())]),
}


def _assemble(index: int, plan: PracticePlan, lo: int, hi: int, results, calendar: Calendar) -> Partition:
    """Arrow tables of a partition: one record batch per practice (no copies of big columns)."""
    codes = pa.array(plan.frame["practice_code"].astype(str).tolist(), type=pa.string())
    year_days = calendar.year_starts
    batches = {name: [] for name in OUTPUT_TABLES if name != "practices"}
    base = 0
    for r in results:
        person_id = np.arange(base, base + r.n_persons, dtype=np.int64)
        p = r.persons
        batches["persons"].append(pa.record_batch([
            pa.array(person_id), pa.nulls(r.n_persons, pa.string()),  # NHS numbers follow the final ids
            _dictionary(p["practice"], codes), _dictionary(p["male"].astype(np.int32), _SEXES),
            _dates(p["birth"]), pa.array(p["imd"].astype(np.int64)), _dates(p["reg_from"]), _dates(p["reg_to"]),
            _dates(p["died_on"]), pa.array(p["care_home"]), pa.array(p["opted_out"]),
        ], schema=SCHEMAS["persons"]))
        g = r.segments
        batches["registrations"].append(pa.record_batch([
            pa.array(g["person"].astype(np.int64) + base), _dictionary(g["practice"], codes), _dates(g["start"]),
            _dates(np.minimum(g["stop"], NEVER)),
        ], schema=SCHEMAS["registrations"]))
        c = r.conditions
        batches["conditions"].append(pa.record_batch([
            pa.array(c["person"].astype(np.int64) + base), _dictionary(c["condition"], _CONDITIONS), _dates(c["diagnosed_on"]),
        ], schema=SCHEMAS["conditions"]))
        a = r.activity
        diag = a["diagnosis"]
        batches["activity"].append(pa.record_batch([
            pa.array(a["person"].astype(np.int64) + base), _dictionary(a["setting"], _SETTINGS), _dates(a["start"]),
            _dates(a["end"]), pa.array(a["quantity"]), pa.array(a["cost_pence"] / 100.0),
            _dictionary(np.maximum(diag, 0), _DIAGNOSES, null=diag < 0),
        ], schema=SCHEMAS["activity"]))
        tr = r.truth
        batches["truth"].append(pa.record_batch([
            pa.array(tr["person"].astype(np.int64) + base), _dates(year_days[tr["year"]]),
            pa.array(tr["p_emergency"]), pa.array(tr["frailty"]), pa.array(tr["state"]), pa.array(tr["expected_admissions"]),
        ], schema=SCHEMAS["truth"]))
        base += r.n_persons
    arrow = {name: pa.Table.from_batches(b, schema=SCHEMAS[name]) for name, b in batches.items()}
    arrow["practices"] = pa.Table.from_pandas(plan.practices.iloc[lo:hi].reset_index(drop=True),
                                              schema=SCHEMAS["practices"], preserve_index=False)
    return Partition(index, (0, int(base)), arrow)


# --- writing -------------------------------------------------------------------------------

@dataclass
class WriteSummary:
    """What :func:`write_population` wrote."""

    out_dir: Path
    practices: int
    people_start: int
    rows: dict[str, int]
    calibration: dict
    partitions: int


def write_population(out_dir: str | Path, config: SynthConfig,
                     progress: Callable[[Partition, int], None] | None = None, jobs: int | None = None) -> WriteSummary:
    """Generate and write the population to ``out_dir``, one partition at a time.

    Writes ``practices``, ``persons``, ``conditions``, ``activity``, ``registrations`` and
    ``truth`` as parquet (each partition one row group), ``practice_changes`` and
    ``practice_truth`` (whole), and ``calibration.json``. Files appear only when complete
    (written to temporary files and renamed).

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created if needed).
    config : SynthConfig
        What to generate.
    progress : callable, optional
        Called with each written partition and the number of partitions.
    jobs : int, optional
        Worker processes simulating partitions (default 1: simulate in this process while a
        thread writes). Output files do not depend on it.
    """
    out_dir = Path(out_dir)
    plan = config.plan()  # a bad config fails here, before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    practices = plan.practices
    n_parts = len(partition_bounds(plan.frame["nominal_size"].to_numpy(), config.partition_people))
    rows = dict.fromkeys(OUTPUT_TABLES + PRACTICE_TABLES, 0)
    stats: dict = {}
    if jobs is None:
        jobs = 1
    with contextlib.ExitStack() as stack:
        writers = {}
        for name in OUTPUT_TABLES:
            tmp = stack.enter_context(atomic_path(out_dir / f"{name}.parquet"))
            writers[name] = stack.enter_context(
                pq.ParquetWriter(tmp, SCHEMAS[name], compression="zstd", store_schema=False, write_statistics=True,
                                 use_dictionary=DICTIONARY_COLUMNS.get(name, True)))

        def write(partition: Partition) -> None:
            for name in OUTPUT_TABLES:
                table = partition.arrow[name]
                writers[name].write_table(table, row_group_size=max(len(table), 1))
                rows[name] += len(table)
            calibration.merge_stats(stats, partition.stats)
            if progress is not None:
                progress(partition, n_parts)

        # a writer thread encodes partition k while partition k + 1 is simulated (pyarrow
        # and the numba kernels release the GIL, so the two overlap on two cores)
        _pipeline(generate(config, jobs=jobs, plan=plan), write)
        for writer in writers.values():
            writer.close()
        for name, frame in (("practice_changes", plan.changes), ("practice_truth", plan.truth)):
            table = pa.Table.from_pandas(frame, schema=SCHEMAS.get(name), preserve_index=False)
            pq.write_table(table, stack.enter_context(atomic_path(out_dir / f"{name}.parquet")), compression="zstd",
                           store_schema=False)
            rows[name] = len(table)
    report = calibration.summarise(stats, config.years, practices=plan.frame)
    changes = plan.changes
    report["practice_changes"] = {
        "opened": int(practices["opened_on"].notna().sum()), "closed": int((changes["change"] == "close").sum()),
        "merged": int((changes["change"] == "merge").sum()),
    }
    report["config"] = {
        "people": int(practices["list_size"].sum()), "practices": len(practices),
        "practices_file": Path(config.practices_file).name if config.practices_file else None,
        "icb": config.icb, "years": config.years, "seed": config.seed,
        "coding_up_practices": int(config.coding_up_practices), "coding_up_uplift": float(config.coding_up_uplift),
        "year_starts": [d.isoformat() for d in config.calendar.year_start_dates],
    }
    report["rows"] = rows
    write_json(report, out_dir / "calibration.json")
    return WriteSummary(out_dir, len(practices), int(practices["list_size"].sum()), rows, report, n_parts)


def _pipeline(partitions: Iterator[Partition], consume: Callable[[Partition], None], depth: int = 2) -> None:
    """Run ``consume`` on each partition in a background thread, producing the next meanwhile."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []
    done = object()

    def worker():
        while True:
            item = q.get()
            if item is done:
                return
            if not failure:
                try:
                    consume(item)
                except BaseException as exc:  # re-raised in the caller
                    failure.append(exc)

    thread = threading.Thread(target=worker, name="riskcap-synth-writer", daemon=True)
    thread.start()
    try:
        for partition in partitions:
            if failure:
                break
            q.put(partition)
    finally:
        q.put(done)
        thread.join()
    if failure:
        raise failure[0]
