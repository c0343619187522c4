"""Loading a data folder: read, parse, check every table, then reject or quarantine.

:func:`load_tables` is the one way commands read a data folder whole, :func:`load_partition`
one ``person_id`` range of it; both run :func:`check_tables`, which reads each table
(:mod:`riskcap.data.read`), parses it to the contract's types (:mod:`riskcap.data.parse`),
runs every check (:mod:`riskcap.data.check`) and collects *all* problems (not just the first).

- ``on_invalid="reject"`` (default): any problem raises :class:`~riskcap.errors.LoadRejected`
  listing every problem, one per line.
- ``on_invalid="quarantine"``: rows with row-level problems are moved, with a ``reason``
  column, to ``rejects_dir/<table>_rejects.parquet`` (and ``.csv``); rows of quarantined
  practices and persons follow them ("practice quarantined", "person quarantined"). File-level
  problems (missing or unreadable file, missing column, empty table, a column where no value
  parses) always raise.

Nothing is dropped silently: :class:`~riskcap.data.summary.LoadSummary` reconciles, per
table, ``rows_in = rows_used + rows_quarantined``.

A partition's rules that span rows stay inside its range (duplicate ``person_id`` or
``(person_id, condition)`` rows, look-ups of a row's person); the file-level rules are
decided once for the whole table by :func:`scan_tables`, from the parquet metadata, reading a
column only when its type does not settle it. Whole-table facts (the practices table,
file-level problems) are reported by the first partition only, so
:meth:`~riskcap.data.summary.LoadSummary.combine` of every partition's summary equals the
whole-table summary, rejects included.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from riskcap.data.check import (PersonIndex, _as_of, check_activity, check_conditions, check_persons,
                                check_practice_changes, check_practices, check_registrations, codes_of)
from riskcap.data.parse import (MAX_EXAMPLES, ON_INVALID, Problem, TableScan, _examples, _file_problem,
                                _schema_problem, column_verdict, parse_table, row_problem)
from riskcap.data.read import (_BATCH_ROWS, WHOLE_TABLES, PersonRange, Tables, _row_groups, arrow_to_pandas,
                               csv_batches, parse_series, person_tables, read_range, read_raw, table_path)
from riskcap.data.summary import LoadSummary
from riskcap.data.write import OWNER_ONLY, private_dir, write_csv, write_parquet
from riskcap.errors import DataError, LoadRejected
from riskcap.schema import ALL_TABLES

# --- Loading -----------------------------------------------------------------------

_CHECKS = {"practices": check_practices, "persons": check_persons,
           "conditions": check_conditions, "activity": check_activity}
#: Person tables checked against persons, in check order (registrations is optional).
_EVENT_TABLES = ("conditions", "activity", "registrations")


def validate_data(data_dir: str | Path, as_of=None, on_invalid: str = "reject",
                  rejects_dir: str | Path | None = None) -> tuple[Tables | None, LoadSummary]:
    """Read and check every table of ``data_dir``; never raises for bad data.

    Returns (tables, summary); tables is None when the data cannot be used (any file-level
    problem, or any problem in reject mode). In quarantine mode the rejects files are written
    to ``rejects_dir`` (required) for every table, empty ones included, so no stale file stays.
    See :func:`load_tables` for the rules.
    """
    check_mode(on_invalid)
    if on_invalid == "quarantine" and rejects_dir is None:
        raise ValueError("on_invalid='quarantine' needs a rejects_dir")
    tables, summary = check_tables(data_dir, as_of, on_invalid, lambda name, path: (read_raw(path), None))
    if tables is not None and on_invalid == "quarantine":
        write_rejects(summary, rejects_dir)
    return tables, summary


def check_mode(on_invalid: str) -> None:
    """ValueError unless ``on_invalid`` is one of :data:`ON_INVALID`."""
    if on_invalid not in ON_INVALID:
        raise ValueError(f"on_invalid must be one of {ON_INVALID}, not {on_invalid!r}")


def check_tables(data_dir: str | Path, as_of, on_invalid: str, read, scans: dict | None = None
                 ) -> tuple[Tables | None, LoadSummary]:
    """The checks of :func:`validate_data`, on whatever rows ``read`` gives: the one core that
    whole-table and partition loading share.

    ``read(name, path) -> (arrow table, row labels or None)`` reads a table's rows (raising
    DataError when it cannot). ``scans``: for a partition, the whole tables' file-level facts
    (:class:`~riskcap.data.parse.TableScan` per event table; practices are always read whole). Quarantined rows
    are returned in ``summary.rejected_rows`` (see :func:`write_rejects`), not written.
    """
    data_dir = Path(data_dir)
    as_of_ts = _as_of(as_of)
    summary = LoadSummary(str(data_dir), as_of_ts.date().isoformat(), on_invalid)
    raws: dict[str, pa.Table] = {}
    frames: dict[str, pd.DataFrame] = {}
    problems: dict[str, list[Problem]] = {name: [] for name in ALL_TABLES}

    for name in ALL_TABLES:
        scan = scans.get(name) if scans else None
        if scan is not None:  # a partition: the whole file's facts come from the scan
            problems[name] += scan.problems
            path = Path(scan.file)
            summary.files[name] = scan.file
            if any(p.rule == "unreadable" for p in scan.problems):
                continue
        else:
            try:
                path = table_path(data_dir, name)
            except DataError:
                if ALL_TABLES[name].optional:
                    continue  # absent: what schema.ABSENT_MEANS says
                problems[name].append(_file_problem(
                    name, data_dir, f"table '{name}' not found: expected {name}.parquet, {name}.csv or a parquet "
                    f"dataset directory {name}/", rule="missing_file"))
                continue
            summary.files[name] = str(path)
        try:
            raw, index = read(name, path)
        except DataError as exc:
            problems[name].append(_file_problem(name, path, str(exc).removeprefix(f"{path}: "), rule="unreadable"))
            continue
        summary.rows_in[name] = raw.num_rows
        df, found = parse_table(raw, name, path, index=index, scan=scan)
        problems[name] += found
        if df is not None:
            frames[name] = df
            if on_invalid == "quarantine":
                raws[name] = raw
        del raw

    files = {name: summary.files.get(name, name) for name in ALL_TABLES}
    if "practices" in frames:
        problems["practices"] += check_practices(frames["practices"], files["practices"], as_of_ts)
    if "persons" in frames:
        codes = frames["practices"]["practice_code"].dropna().unique() if "practices" in frames else None
        problems["persons"] += check_persons(frames["persons"], files["persons"], as_of_ts, codes,
                                             practices_file=Path(files["practices"]).name)
    index = PersonIndex.from_persons(frames["persons"]) if "persons" in frames else None
    for name in ("conditions", "activity"):
        if name in frames:
            problems[name] += _CHECKS[name](frames[name], files[name], as_of_ts, index,
                                            persons_file=Path(files["persons"]).name)
    if "practice_changes" in frames:
        problems["practice_changes"] += check_practice_changes(
            frames["practice_changes"], files["practice_changes"], codes_of(frames.get("practices")),
            Path(files["practices"]).name)
    if "registrations" in frames:
        problems["registrations"] += check_registrations(
            frames["registrations"], files["registrations"], as_of_ts, index, frames.get("persons"),
            codes_of(frames.get("practices")), frames.get("practice_changes"),
            persons_file=Path(files["persons"]).name, practices_file=Path(files["practices"]).name)
        if "persons" in frames:  # everyone on persons has a registration history
            persons = frames["persons"]
            p = row_problem(persons, persons["person_id"].notna().to_numpy() & ~persons["person_id"].isin(
                frames["registrations"]["person_id"].dropna().unique()).to_numpy(), "persons", files["persons"],
                "person_id", "no_registrations", f"no registration period in {Path(files['registrations']).name}")
            if p is not None:
                p.order = (1, 50)  # after the persons' own row checks
                problems["persons"].append(p)

    summary.problems = [p for name in ALL_TABLES for p in problems[name]]
    failing = {name: _failing_mask(frames[name], problems[name]) for name in frames}
    summary.rows_failing = {name: int(mask.sum()) for name, mask in failing.items()}

    if summary.file_problems or (on_invalid == "reject" and summary.problems):
        summary.status = "rejected"
        return None, summary

    if on_invalid == "quarantine":
        _cascade(frames, problems, failing, files)
        summary.problems = [p for name in ALL_TABLES for p in problems[name]]
        for name in frames:
            mask = failing[name]
            summary.rows_quarantined[name] = int(mask.sum())
            summary.rejected_rows[name] = _rejects_table(raws.pop(name), frames[name], mask, problems[name])
            frames[name] = frames[name][~mask]
        summary.status = "quarantined" if any(summary.rows_quarantined.values()) else "clean"
    else:
        summary.rows_quarantined = {name: 0 for name in frames}

    for name in frames:
        frames[name] = _finalise(frames[name], name)
        summary.rows_used[name] = len(frames[name])
    if not summary.reconciles():  # pragma: no cover - guards the invariant
        raise AssertionError(f"row counts do not reconcile: {summary.as_dict()['tables']}")
    return Tables(**frames), summary


def write_rejects(summary: "LoadSummary", rejects_dir: str | Path) -> None:
    """Write every table's quarantined rows (``summary.rejected_rows``) to ``rejects_dir``,
    as ``<table>_rejects.parquet`` and ``.csv``, and record the paths in ``summary.rejects``.
    The rows hold identifiers, so the files are owner-only, in a folder made owner-only."""
    from riskcap.manifest import claim_file, table_with_columns

    paths = {name: Path(rejects_dir) / f"{name}_rejects.parquet" for name in summary.table_names}
    for path in paths.values():  # only earlier rejects files are replaced (riskcap.manifest)
        for p in (path, path.with_suffix(".csv")):
            claim_file(p, table_with_columns("row", "reason"), "rejects file")
    private_dir(rejects_dir)
    for name in summary.table_names:
        table = summary.rejected_rows[name]
        path = paths[name]
        write_parquet(table, path, mode=OWNER_ONLY)
        write_csv(table.to_pandas(), path.with_suffix(".csv"), mode=OWNER_ONLY)
        summary.rejects[name] = str(path)


def load_tables(data_dir: str | Path, as_of=None, on_invalid: str = "reject",
                rejects_dir: str | Path | None = None) -> tuple[Tables, LoadSummary]:
    """Read, type and validate the contract's four tables from ``data_dir``.

    Parameters
    ----------
    data_dir : folder holding practices, persons, conditions and activity as
        ``<table>.parquet``, a ``<table>/`` parquet dataset, or ``<table>.csv`` (UTF-8).
    as_of : date (or ISO string); any birth_date, registered_from, died_on, diagnosed_on,
        start_date or end_date after it is an error. Default: today. Training passes
        ``index_date + 365 days``.
    on_invalid : "reject" (default) raises DataError listing every problem; "quarantine"
        moves rows with problems to ``rejects_dir/<table>_rejects.parquet`` and ``.csv``
        (with a ``reason`` column) and carries on.
    rejects_dir : where quarantined rows go (required for "quarantine").

    Returns
    -------
    (Tables, LoadSummary) : frames with contract dtypes (optional columns added, sorted by
        person_id, index reset) and the reconciled row counts.

    Raises
    ------
    LoadRejected
        On any file-level problem, or any problem at all in reject mode (a DataError
        carrying the LoadSummary).
    """
    tables, summary = validate_data(data_dir, as_of, on_invalid, rejects_dir)
    if tables is None:
        raise LoadRejected(summary)
    return tables, summary


def _failing_mask(df: pd.DataFrame, problems: list[Problem]) -> np.ndarray:
    mask = np.zeros(len(df), dtype=bool)
    for p in problems:
        if p.row_indices is not None:
            mask[p.row_indices] = True
    return mask


def _cascade(frames, problems, failing, files) -> None:
    """Quarantine persons of quarantined practices, and events of quarantined persons."""
    def dropped_keys(table, key):
        values = frames[table][key]
        dropped = pd.Index(values[failing[table]].dropna().unique())
        return dropped.difference(pd.Index(values[~failing[table]].dropna().unique()))

    practice_codes = dropped_keys("practices", "practice_code")
    if len(practice_codes):
        p = row_problem(frames["persons"], frames["persons"]["practice_code"].isin(practice_codes), "persons",
                        files["persons"], "practice_code", "practice_quarantined",
                        f"practice quarantined (see {Path(files['practices']).name})")
        if p is not None:
            p.order = (2, 0)
            problems["persons"].append(p)
            failing["persons"][p.row_indices] = True
    if len(practice_codes) and "registrations" in frames:
        p = row_problem(frames["registrations"], frames["registrations"]["practice_code"].isin(practice_codes),
                        "registrations", files["registrations"], "practice_code", "practice_quarantined",
                        f"practice quarantined (see {Path(files['practices']).name})")
        if p is not None:
            p.order = (2, 0)
            problems["registrations"].append(p)
            failing["registrations"][p.row_indices] = True
    if "registrations" in frames:  # a person's history with a period missing is not their history
        regs = frames["registrations"]
        broken = pd.Index(regs["person_id"][failing["registrations"]].dropna().unique())
        p = row_problem(frames["persons"], frames["persons"]["person_id"].isin(broken).to_numpy()
                        & ~failing["persons"], "persons", files["persons"], "person_id", "registration_quarantined",
                        f"registration period quarantined (see {Path(files['registrations']).name})")
        if p is not None:
            p.order = (2, 0)
            problems["persons"].append(p)
            failing["persons"][p.row_indices] = True
    person_ids = dropped_keys("persons", "person_id")
    if len(person_ids):
        for name in (n for n in _EVENT_TABLES if n in frames):
            p = row_problem(frames[name], frames[name]["person_id"].isin(person_ids), name, files[name],
                            "person_id", "person_quarantined", "person quarantined", column="")
            if p is not None:
                p.order = (2, 1)
                problems[name].append(p)
                failing[name][p.row_indices] = True


def _rejects_table(raw: pa.Table, df: pd.DataFrame, mask: np.ndarray, problems: list[Problem]) -> pa.Table:
    """The rows of ``raw`` flagged in ``mask``, with their input row number and reasons."""
    positions = np.flatnonzero(mask)
    reasons = np.full(len(df), "", dtype=object)
    if len(positions):
        rows = np.concatenate([p.row_indices for p in problems if p.row_indices is not None])
        texts = np.concatenate([np.full(len(p.row_indices), p.reason, dtype=object)
                                for p in problems if p.row_indices is not None])
        joined = pd.Series(texts).groupby(rows, sort=True).agg("; ".join)
        reasons[joined.index.to_numpy()] = joined.to_numpy()
    labels = df.index.to_numpy()[positions] + 1
    out = raw.take(pa.array(positions, type=pa.int64()))
    for i, fld in enumerate(out.schema):  # text read as codes (riskcap.data.read.read_range) is written as text
        if pa.types.is_dictionary(fld.type):
            out = out.set_column(i, fld.name, out.column(i).cast(fld.type.value_type))
    out = out.append_column("row", pa.array(labels, type=pa.int64()))
    return out.append_column("reason", pa.array(reasons[positions].tolist(), type=pa.string()))


def _finalise(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Contract dtypes once bad rows are gone (non-nullable ints/bools lose their NA type),
    sorted by person_id (stable) with a fresh index."""
    for col in ALL_TABLES[name].columns:
        if col.nullable or col.name not in df.columns:
            continue
        if col.kind == "int" and df[col.name].dtype != np.int64:
            df[col.name] = df[col.name].astype("int64")
        elif col.kind == "bool" and df[col.name].dtype != bool:
            df[col.name] = df[col.name].astype(bool)
    if "person_id" in df.columns and not df["person_id"].is_monotonic_increasing:
        df = df.sort_values("person_id", kind="stable")
    return df.reset_index(drop=True)


# --- Whole-table facts ---------------------------------------------------------------------

def scan_tables(data_dir: str | Path) -> dict[str, TableScan]:
    """:class:`TableScan` of each person table (what :func:`plan_partitions` streams)."""
    return {name: scan_table(table_path(data_dir, name), name) for name in person_tables(data_dir)}


def scans_for(data_dir: str | Path, parts: list[PersonRange]) -> dict[str, TableScan] | None:
    """The table scans a streamed run over ``parts`` needs: none when one part loads everything whole."""
    return None if len(parts) == 1 and parts[0].is_whole else scan_tables(data_dir)


def scan_table(path: Path, name: str) -> TableScan:
    """The file-level checks of :func:`riskcap.data.parse.parse_table` for a whole table: for
    parquet from its schema and statistics, reading (in batches) only the columns they do not
    settle; a CSV is parsed in one pass, block by block."""
    spec = ALL_TABLES[name]
    file = str(path)
    if path.suffix == ".csv":
        try:
            names, rows, counts = _csv_counts(path, spec)
        except DataError as exc:  # as check_tables reports a table it cannot read; partitions skip it
            return TableScan(file, [_file_problem(name, path, str(exc).removeprefix(f"{path}: "), rule="unreadable")],
                             schema_failed=True)
    else:
        groups = list(_row_groups(path))
        schema = groups[0][1].schema_arrow
        names, rows = schema.names, sum(pf.metadata.num_rows for _, pf, _, _ in groups)
    problem = _schema_problem(names, rows, name, file)
    if problem is not None:
        return TableScan(file, [problem], schema_failed=True)
    problems, failed = [], set()
    for j, col in enumerate(spec.columns):
        if col.name not in names:
            continue
        if path.suffix != ".csv":
            counts = {col.name: _settled_counts(groups, col, schema.field(col.name).type, rows)}
            if counts[col.name] is None:
                counts = _column_counts(_parquet_batches(groups, [col.name]), [col])
        present, bad, null, examples = counts[col.name]
        verdict = column_verdict(name, file, j, rows, present, bad, null, lambda: examples)
        if verdict is not None:
            problems.append(verdict)
            failed.add(col.name)
    return TableScan(file, problems, frozenset(failed))


def _csv_counts(path: Path, spec) -> tuple[list[str], int, dict]:
    """A CSV table's column names, rows and :func:`_column_counts` of its contract columns (one pass)."""
    seen = {"names": None, "rows": 0}

    def counted():
        for start, batch in csv_batches(path):
            seen["names"], seen["rows"] = batch.schema.names, start + batch.num_rows
            yield start, batch

    counts = _column_counts(counted(), spec.columns)
    if seen["names"] is None:  # a header and no rows
        return read_raw(path).column_names, 0, {}
    return seen["names"], seen["rows"], counts


def _parquet_batches(groups, columns: list[str]):
    """(first row number, batch) of ``columns`` of a parquet table's files (:func:`_row_groups`)."""
    for _, pf, offset, _ in groups:
        start = offset
        for batch in pf.iter_batches(batch_size=_BATCH_ROWS, columns=columns):
            yield start, batch
            start += batch.num_rows


def _stats(groups, column: str):
    """Each row group's statistics of ``column`` (None where absent)."""
    for _, pf, _, _ in groups:
        names = [pf.metadata.schema.column(i).path for i in range(pf.metadata.num_columns)]
        k = names.index(column)
        for g in range(pf.metadata.num_row_groups):
            yield pf.metadata.row_group(g).column(k).statistics


def _settled_counts(groups, col, arrow_type, rows: int):
    """(present, bad, null, examples) from the type and statistics alone, or None if they do not settle it."""
    kind = col.kind
    typed = {"str": True, "int": pa.types.is_integer(arrow_type), "bool": pa.types.is_boolean(arrow_type),
             "date": pa.types.is_date(arrow_type) or pa.types.is_timestamp(arrow_type),
             "float": pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)}[kind]
    if not typed:
        return None
    stats = list(_stats(groups, col.name))
    if any(s is None or not s.has_null_count for s in stats):
        return None
    nulls = sum(s.null_count for s in stats)
    if kind == "float" and pa.types.is_floating(arrow_type):
        # infinities do not parse; only statistics with finite bounds rule them out
        if any(s.num_values and not (s.has_min_max and np.isfinite(s.min) and np.isfinite(s.max)) for s in stats):
            return None
    if kind == "str" and not col.nullable and nulls < rows:
        # blank text parses to null: a non-blank bound proves a non-blank value
        if not any(s.has_min_max and (_text(s.max).strip() or _text(s.min).strip()) for s in stats):
            return None
    return rows - nulls, 0, nulls, ([], [])


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _column_counts(batches, cols) -> dict[str, tuple]:
    """(present, bad, null, examples) of each of ``cols``, parsed batch by batch from
    ``batches`` of (first row number, record batch)."""
    counts = {col.name: [0, 0, 0, [], []] for col in cols}
    for start, batch in batches:
        frame = arrow_to_pandas(pa.Table.from_batches([batch]).replace_schema_metadata(None))
        frame.index = np.arange(start, start + batch.num_rows)
        for col in cols:
            if col.name not in frame.columns:
                continue
            c = counts[col.name]
            raw_values = frame[col.name]
            values, is_bad = parse_series(raw_values, col.kind)
            c[0] += int(raw_values.notna().sum())
            c[1] += int(is_bad.sum())
            c[2] += int((values.isna().to_numpy() & ~is_bad).sum())
            if len(c[3]) < MAX_EXAMPLES and is_bad.any():
                positions = np.flatnonzero(is_bad)[:MAX_EXAMPLES - len(c[3])]
                c[3] += _examples(frame, positions, [col.name], raw_values)
                c[4] += list(frame.index[positions])
    return {name: (present, bad, null, (texts, labels)) for name, (present, bad, null, texts, labels) in counts.items()}


def load_partition(data_dir: str | Path, part: PersonRange, as_of=None, on_invalid: str = "reject",
                   scans: dict[str, TableScan] | None = None) -> tuple[Tables | None, LoadSummary]:
    """Read and check the rows of one person_id range of each table (practices whole).

    The same checks, problems and quarantine rules as :func:`riskcap.data.load.validate_data`;
    tables is None when the data cannot be used. Quarantined rows are returned in
    ``summary.rejected_rows`` (the driver writes them once, after the last partition, with
    :func:`riskcap.data.load.write_rejects` on the :meth:`LoadSummary.combine` of every
    partition). Whole-table facts (practices, file-level problems) are counted only by the
    first partition. ``scans``: :func:`scan_tables` (computed here when not given).
    """
    check_mode(on_invalid)
    if part.is_whole:
        read, scans = (lambda name, path: (read_raw(path), None)), None
    else:
        scans = scan_tables(data_dir) if scans is None else scans

        def read(name, path):
            return (read_raw(path), None) if name in WHOLE_TABLES else read_range(path, part, codes=True)

    tables, summary = check_tables(data_dir, as_of, on_invalid, read, scans)
    for p in summary.problems:  # positions in this partition's frames: of no use to the caller
        p.row_indices = None
    if not part.is_first:  # whole-table facts are the first partition's to report
        summary.problems = [p for p in summary.problems if p.table not in WHOLE_TABLES and p.level != "file"]
        for counts in (summary.rows_in, summary.rows_failing, summary.rows_used, summary.rows_quarantined,
                       summary.rejected_rows):
            for name in WHOLE_TABLES:
                counts.pop(name, None)
    return tables, summary
