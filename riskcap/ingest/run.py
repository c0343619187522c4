"""``riskcap import`` end to end: extracts in, a data folder of the contract out, with its report.

:func:`import_extracts` finds the extracts, checks their files, reads the practices, then
streams the people one ``person_id`` range at a time (planned from the registrations): each
range's registrations, journal and activity extracts are read, checked, mapped and written,
then dropped, so memory is bounded by a range (parquet extracts sorted by ``person_id`` stream
best). Output goes to a staging folder inside ``--out`` and is moved into place only when the
whole import succeeded and (by default) the written folder passed the contract's checks:
a failed run leaves nothing behind. Every file holding person-level rows is owner-only (0600).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from riskcap.data.dates import declare_extract_date
from riskcap.data.parse import ON_INVALID, Problem
from riskcap.data.read import INT64_MAX, INT64_MIN, PersonRange, parquet_files
from riskcap.data.write import (OWNER_ONLY, OWNER_ONLY_DIR, ROW_GROUP_ROWS, ParquetRowsWriter, private_dir, write_csv,
                                write_json, write_parquet)
from riskcap.errors import ConfigError, DataError
from riskcap.ingest import community, gp, hospital
from riskcap.ingest.activity import activity_table
from riskcap.ingest.codelists import Codelists, load_codelists
from riskcap.ingest.costs import Pricing, UnitCosts, load_unit_costs
from riskcap.ingest.extracts import EXTRACTS, SOURCES, Source, extracts_of, locate, open_source, parse
from riskcap.ingest.report import ImportReport, prevalence_counts
from riskcap.ingest.rows import Rows, Tally, merge_problems
from riskcap.manifest import RunManifest
from riskcap.stream.memory import keep_freed_memory
from riskcap.stream.plan import person_ranges, sorted_person_ids

PARTITION_PEOPLE = 100_000
REPORT = "import_report.json"
REPORT_TEXT = "import_report.txt"
#: Output files that hold person-level rows (and the report, whose problem examples quote rows).
PERSON_LEVEL = ("persons.parquet", "registrations.parquet", "conditions.parquet", "activity.parquet", REPORT,
                REPORT_TEXT)
#: Date columns that say how far the data reach (the default extract date is their latest).
_NOT_EVENTS = {"registered_to"}


@dataclass
class ImportSettings:
    """What to import and how (the options of ``riskcap import``)."""

    gp: Path
    codelists: Path
    out: Path
    hospital: Path | None = None
    community: Path | None = None
    mapping: Path | None = None
    unit_costs: Path | None = None
    extract_date: dt.date | None = None
    on_invalid: str = "reject"
    partition_people: int = PARTITION_PEOPLE

    def folder(self, source: str) -> Path | None:
        return {"gp": self.gp, "hospital": self.hospital, "community": self.community,
                "codelists": self.codelists}[source]


# --- finding the extracts ----------------------------------------------------------------------

def find_sources(settings: ImportSettings) -> tuple[dict[str, Source], list[str], list[str], list[str]]:
    """(sources by extract key, file-level problems, ignored files, warnings) of the folders given."""
    sources, problems, ignored = {}, [], []
    for source in SOURCES:
        folder = settings.folder(source)
        if folder is None:
            continue
        folder = Path(folder)
        if not folder.is_dir():
            problems.append(f"{folder}: --{source} folder not found")
            continue
        known, before = set(), len(problems)
        for extract in extracts_of(source):
            path = locate(folder, extract.name)
            if path is None:
                if extract.required:
                    problems.append(f"{folder}: extract '{extract.name}' not found: expected {extract.name}.parquet, "
                                    f"a {extract.name}/ parquet dataset, or {extract.name}.csv")
                continue
            known.add(path.name)
            found, problem = open_source(extract, path)
            if problem is not None:
                problems.append(f"{path}: {problem}")
            else:
                sources[extract.key] = found
        others = sorted(p.name for p in folder.iterdir() if p.name not in known and not p.name.startswith("."))
        ignored += [str(folder / name) for name in others]
        if source != "gp" and len(problems) == before and not any(e.key in sources for e in extracts_of(source)):
            problems.append(f"{folder}: no {source} extract found (expected "
                            f"{', '.join(e.name for e in extracts_of(source))} as .parquet or .csv)")
    if "gp/registrations" in sources and sources["gp/registrations"].rows == 0:
        problems.append(f"{sources['gp/registrations'].path}: empty extract: no registrations")
    whole = [s.path.name for s in sources.values() if s.extract.person_level and not s.by_range]
    warnings = [f"read whole, not by person range (memory is not bounded by partitions): {', '.join(whole)}; "
                f"parquet with an integer person_id, sorted by it, streams"] if whole else []
    return sources, problems, ignored, warnings


def latest_date(sources: dict[str, Source]) -> tuple[int | None, str]:
    """The latest date in the extracts' event dates (as int32 days) and where it is."""
    best, where = None, ""
    for key, src in sources.items():
        if not src.extract.person_level:
            continue
        for f in src.extract.fields:
            if f.kind != "date" or f.name in _NOT_EVENTS or f.name not in src.columns:
                continue
            value = _column_max(src, f.name)
            if value is not None and (best is None or value > best):
                best, where = value, f"{src.path} column '{f.name}'"
    return best, where


def _column_max(src: Source, column: str) -> int | None:
    if src.by_range:
        files = parquet_files(src.path)
        best = None
        for file in files:
            meta = pq.ParquetFile(file).metadata
            index = meta.schema.names.index(column)
            kind = pq.read_schema(file).field(column).type
            dated = pa.types.is_date(kind) or pa.types.is_timestamp(kind)
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(index).statistics
                if not dated or stats is None or not stats.has_min_max:
                    values = parse(pq.ParquetFile(file).read_row_group(g, columns=[column]).column(0), "date",
                                   meta.row_group(g).num_rows)
                    value = _max_day(values)
                else:
                    value = int(np.datetime64(stats.max, "D").astype(np.int64))
                if value is not None and (best is None or value > best):
                    best = value
        return best
    whole = src.whole()
    return _max_day(parse(whole.column(column), "date", whole.num_rows))


def _max_day(parsed) -> int | None:
    ok = ~parsed.null & ~parsed.bad
    return int(parsed.values[ok].max()) if ok.any() else None


def plan(registrations: Source, people: int) -> list[PersonRange]:
    """Ranges of about ``people`` persons each, from the registrations' person_id column (one
    range of everyone when the registrations are not read by range)."""
    if not registrations.by_range:
        return [PersonRange(0, INT64_MIN, INT64_MAX)]
    return person_ranges(np.unique(sorted_person_ids(registrations.path)), people)


# --- the staging folder ------------------------------------------------------------------------

class Staging:
    """A private folder inside ``out`` (claimed by the run's manifest) to write into;
    :meth:`commit` moves its files into ``out``, :meth:`abort` removes it."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.dir = Path(tempfile.mkdtemp(prefix=".import-", dir=self.out))
        os.chmod(self.dir, OWNER_ONLY_DIR)

    def path(self, relative: str) -> Path:
        path = self.dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.dir)) for p in self.dir.rglob("*") if p.is_file())

    def commit(self) -> list[str]:
        """Move the files into ``out``, person-level ones owner-only (the manifest then removes
        an earlier run's outputs this one did not write again)."""
        written = self.files()
        for relative in written:
            source = self.dir / relative
            if relative in PERSON_LEVEL or relative.startswith("rejects/"):
                os.chmod(source, OWNER_ONLY)
            target = self.out / relative
            if not target.parent.exists():
                private_dir(target.parent) if relative.startswith("rejects/") else target.parent.mkdir(parents=True)
            os.replace(source, target)
        shutil.rmtree(self.dir, ignore_errors=True)
        return written

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# --- the import ------------------------------------------------------------------------------

@dataclass
class Progress:
    """What a caller may show while the import runs: the stage ("importing", then "checking"
    the written folder), and its partitions done of all."""

    partitions: int = 0
    done: int = 0
    people: int = 0
    stage: str = "importing"


@dataclass
class _State:
    """What the partitions add up."""

    tallies: dict[str, Tally] = field(default_factory=dict)
    problems: dict[tuple, Problem] = field(default_factory=dict)
    rejects: dict[str, list[pa.Table]] = field(default_factory=dict)
    rows_out: Counter = field(default_factory=Counter)

    def take(self, rows: Rows, quarantine: bool) -> None:
        self.tallies.setdefault(rows.key, Tally()).add(rows.tally())
        merge_problems(self.problems, rows.problems)
        if quarantine:
            table = rows.rejects()
            if table is not None:
                self.rejects.setdefault(rows.key, []).append(table)


def import_extracts(settings: ImportSettings, check: bool = True,
                    progress: Callable[[Progress], None] | None = None) -> ImportReport:
    """Import the extracts of ``settings`` into ``settings.out``; returns the report.

    Raises DataError (nothing written) for file-level problems, and for any row-level problem
    in reject mode, listing every problem; ConfigError for a bad mapping or unit-cost table.
    ``check``: read the written folder back through the contract's checks before committing it.
    """
    if settings.on_invalid not in ON_INVALID:
        raise ConfigError(f"on_invalid: {settings.on_invalid!r}; allowed: {', '.join(ON_INVALID)}")
    quarantine = settings.on_invalid == "quarantine"
    codelists = load_codelists(settings.codelists, settings.mapping)
    unit_costs = load_unit_costs(settings.unit_costs)
    sources, file_problems, ignored, warnings = find_sources(settings)
    if file_problems:
        raise DataError(f"{len(file_problems)} problem(s) with the extract files; nothing was imported "
                        f"(fix them: they cannot be quarantined):\n" + "\n".join(f"  - {p}" for p in file_problems))
    # the extract date is the first day the extracts do not cover, as in riskcap.data.dates
    if settings.extract_date is not None:
        last_day, date_from = int(np.datetime64(settings.extract_date, "D").astype(np.int64)) - 1, "--extract-date"
    else:
        last_day, date_from = latest_date(sources)
        if last_day is None:
            raise DataError(f"{settings.gp}: no dates in the extracts; give --extract-date")
        date_from = f"the day after the latest date in the extracts ({date_from})"
    state = _State()
    manifest = RunManifest(settings.out)  # new, empty or an earlier run's folder (riskcap.manifest)
    for name in ("gp", "hospital", "community", "codelists"):
        folder = settings.folder(name)
        if folder is not None:
            manifest.add_input(name, folder)  # fingerprinted while the import runs
    staging = Staging(settings.out)
    try:
        report = _run(settings, codelists, unit_costs, sources, last_day, quarantine, staging, state, progress)
        report.extract_date_from, report.ignored_files, report.warnings = date_from, ignored, warnings
        problems = _ordered(state.problems)
        report.problems = problems
        if problems and not quarantine:
            exc = DataError(f"{len(problems)} problem(s) found in the extracts (extract date "
                            f"{np.datetime64(last_day + 1, 'D')}); nothing was imported (fix them, or run with "
                            f"--on-invalid quarantine to set bad rows aside):\n" +
                            "\n".join(f"  - {p}" for p in problems))
            exc.report = report
            raise exc
        if quarantine:
            report.rejects = _write_rejects(state.rejects, staging, sources)
        if check:
            _check(staging.dir, last_day, settings.partition_people, progress)
        declare_extract_date(staging.dir, np.datetime64(last_day + 1, "D").item())
        report.outputs = staging.files() + [REPORT, REPORT_TEXT]
        write_json(report.as_dict(), staging.path(REPORT))
        staging.path(REPORT_TEXT).write_text(report.text(), encoding="utf-8")
        staging.commit()
        manifest.add_config("codelists", report.codelists)
        manifest.add_config("unit_costs", report.unit_costs)
        manifest.add_config("import", {"extract_date": report.extract_date,
                                       "extract_date_from": report.extract_date_from, "on_invalid": settings.on_invalid})
        manifest.write()
        return report
    except BaseException:
        staging.abort()
        manifest.abandon()  # the folder as it was: the earlier run's manifest back, or no folder
        raise


def _ordered(problems: dict[tuple, Problem]) -> list[Problem]:
    order = {key: i for i, key in enumerate(EXTRACTS)}
    return sorted(problems.values(), key=lambda p: order.get(p.table, len(order)))


_ACTIVITY = ("gp/appointments", "gp/prescriptions", "hospital/apc", "hospital/outpatients", "hospital/ae",
             "community/community", "community/mental_health", "community/social_care")


def _run(settings, codelists: Codelists, unit_costs: UnitCosts, sources: dict[str, Source], last_day: int,
         quarantine: bool, staging: Staging, state: _State, progress) -> ImportReport:
    keep_freed_memory()  # each range allocates and frees the same blocks: keep them (riskcap.stream.memory)
    whole = PersonRange(0, INT64_MIN, INT64_MAX)
    practice_rows = Rows(sources["gp/practices"], *sources["gp/practices"].read(whole))
    codes = gp.practices(practice_rows)
    known: dict[str, int] = {}
    for code, rejected in zip(codes, practice_rows.rejected):
        if code is not None:
            known[code] = min(known.get(code, 1), 1 if (rejected and quarantine) else 0)
    changes: dict[str, int] = {}
    change_rows = None
    if "gp/practice_changes" in sources:
        change_rows = Rows(sources["gp/practice_changes"], *sources["gp/practice_changes"].read(whole))
        changes = gp.practice_changes(change_rows, {c for c, s in known.items() if s == 0})
    parts = plan(sources["gp/registrations"], settings.partition_people)
    info = Progress(len(parts))
    if progress is not None:
        progress(info)  # the bar shows from the start, not after the first range
    pricing = Pricing(unit_costs)
    reg_stats, register_stats, hospital_stats = gp.RegistrationStats(), gp.RegisterStats(), hospital.HospitalStats()
    prevalence: Counter = Counter()
    person_sources = {key: src for key, src in sources.items() if src.extract.person_level}

    def read(part):
        return {key: src.read(part) for key, src in person_sources.items()}

    writers = {name: ParquetRowsWriter(staging.path(f"{name}.parquet"))
               for name in ("persons", "registrations", "conditions", "activity")}
    # one thread reads the next range while this one maps the current; another writes (parquet
    # decoding, encoding and numpy's sorts release the GIL, so the three overlap on two cores)
    with contextlib.ExitStack() as stack:
        for writer in writers.values():
            stack.enter_context(writer)
        reader = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="riskcap-import-read"))
        writing = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="riskcap-import-write"))
        mapping = stack.enter_context(ThreadPoolExecutor(2, thread_name_prefix="riskcap-import-map"))
        written: list[Future] = []
        pending = reader.submit(read, parts[0])
        for i, part in enumerate(parts):
            raw = pending.result()
            if i + 1 < len(parts):
                pending = reader.submit(read, parts[i + 1])
            reg = Rows(sources["gp/registrations"], *raw.pop("gp/registrations"))
            people, persons, registrations, stats = gp.registrations(reg, known, changes, last_day, quarantine)
            reg_stats.add(stats)
            state.take(reg, quarantine)
            # the journal and each activity extract map independently: two threads share them
            tasks = [(key, Rows(sources[key], *raw.pop(key))) for key in ("gp/events", *_ACTIVITY) if key in raw]
            mapped = [mapping.submit(_map, key, rows, people, unit_costs, codelists, last_day)
                      for key, rows in tasks]
            conditions, activity = gp.CONDITIONS_SCHEMA.empty_table(), []
            for (key, rows), future in zip(tasks, mapped):
                result, task_pricing, stats_ = future.result()
                pricing.add(task_pricing)
                if key == "gp/events":
                    conditions = result
                    register_stats.add(stats_)
                else:
                    activity.append(result)
                    if stats_ is not None:
                        hospital_stats.add(stats_)
                state.take(rows, quarantine)
            del tasks, mapped
            prevalence.update(prevalence_counts(persons, registrations, conditions, last_day))
            for future in written:
                future.result()  # the previous range's writes, so a failure stops the run early
            written = []
            for name, table in (("persons", persons), ("registrations", registrations), ("conditions", conditions)):
                written.append(writing.submit(_write, writers[name], table))
                state.rows_out[name] += table.num_rows
            # activity is sorted and written while the next range is mapped
            written.append(writing.submit(lambda parts: _write(writers["activity"], activity_table(parts)), activity))
            state.rows_out["activity"] += sum(len(part) for part in activity)
            info.done += 1
            info.people += persons.num_rows
            if progress is not None:
                progress(info)
            del raw, reg, people, persons, registrations, conditions, activity
        for future in written:
            future.result()
    practices = gp.practices_table(practice_rows, reg_stats.list_sizes)
    state.take(practice_rows, quarantine)
    write_parquet(practices, staging.path("practices.parquet"))
    state.rows_out["practices"] = practices.num_rows
    if change_rows is not None:
        table = gp.practice_changes_table(change_rows)
        write_parquet(table, staging.path("practice_changes.parquet"))
        state.rows_out["practice_changes"] = table.num_rows
        state.take(change_rows, quarantine)
    return ImportReport.build(
        settings=settings, last_day=last_day, sources=sources, tallies=state.tallies,
        codelists=codelists, unit_costs=unit_costs, pricing=pricing, registrations=reg_stats,
        registers=register_stats, hospital=hospital_stats, prevalence=prevalence, outputs_rows=dict(state.rows_out),
        list_size_derived="list_size" not in sources["gp/practices"].columns, partitions=len(parts))


def _write(writer: ParquetRowsWriter, table: pa.Table) -> None:
    """Hand a range's rows to the writer a row group at a time (it copies what it holds at each
    row group, so one large table would be copied over and over)."""
    for start in range(0, max(table.num_rows, 1), ROW_GROUP_ROWS):
        writer.write(table.slice(start, ROW_GROUP_ROWS))


def _map(key: str, rows: Rows, people, unit_costs: UnitCosts, codelists: Codelists, last_day: int):
    """Map one extract's rows of a range: (conditions or activity rows, its pricing, its stats)."""
    pricing = Pricing(unit_costs)
    if key == "gp/events":
        conditions, stats = gp.conditions(rows, people, codelists, last_day)
        return conditions, pricing, stats
    stats = hospital.HospitalStats() if key == "hospital/apc" else None
    return _map_activity(key, rows, people, pricing, codelists, last_day, stats), pricing, stats


def _map_activity(key: str, rows: Rows, people, pricing: Pricing, codelists: Codelists, last_day: int,
                  hospital_stats: hospital.HospitalStats | None):
    if key == "gp/appointments":
        return gp.appointments(rows, people, pricing, last_day)
    if key == "gp/prescriptions":
        return gp.prescriptions(rows, people, pricing, last_day)
    if key == "hospital/apc":
        return hospital.apc(rows, people, pricing, codelists, last_day, hospital_stats)
    if key == "hospital/outpatients":
        return hospital.outpatients(rows, people, pricing, last_day)
    if key == "hospital/ae":
        return hospital.ae(rows, people, pricing, last_day)
    if key == "community/social_care":
        return community.social_care(rows, people, pricing, last_day)
    return community.contacts(rows, people, pricing, last_day, key.split("/")[1])


def _write_rejects(rejects: dict[str, list[pa.Table]], staging: Staging, sources: dict[str, Source]) -> dict:
    """``rejects/<source>_<extract>_rejects.parquet`` and ``.csv`` for every extract read (empty
    ones too, so no stale file of an earlier run remains); returns their paths."""
    out = {}
    for key, source in sources.items():
        tables = rejects.get(key)
        name = key.replace("/", "_")
        if tables:
            table = pa.concat_tables(tables, promote_options="permissive")
        else:
            table = pa.table({**{c: pa.array([], pa.string()) for c in source.columns},
                              "row": pa.array([], pa.int64()), "reason": pa.array([], pa.string())})
        path = staging.path(f"rejects/{name}_rejects.parquet")
        write_parquet(table, path)
        write_csv(table.to_pandas(), path.with_suffix(".csv"))  # formula-safe (riskcap.data.write)
        out[key] = {"rows": table.num_rows, "file": f"rejects/{name}_rejects.parquet"}
    return out


def _check(folder: Path, last_day: int, people: int, progress=None) -> None:
    """Read the written folder back through the contract's checks (streamed, by person range)."""
    import warnings

    from riskcap.data.load import load_partition
    from riskcap.stream.plan import plan_partitions
    from riskcap.data.summary import LoadSummary

    as_of = np.datetime64(last_day, "D").item()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = plan_partitions(folder, people)
    summaries = []
    info = Progress(len(parts), stage="checking")
    if progress is not None:
        progress(info)
    for part in parts:
        _, summary = load_partition(folder, part, as_of=as_of)
        summaries.append(summary)
        info.done += 1
        info.people += summary.rows_in.get("persons", 0)
        if progress is not None:
            progress(info)
    summary = LoadSummary.combine(summaries)
    if summary.problems:
        raise RuntimeError("riskcap import wrote data that fail the contract's checks (a bug: please report it):\n"
                           + "\n".join(f"  - {p}" for p in summary.problems))
