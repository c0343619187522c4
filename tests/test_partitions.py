"""Streaming partitions from disk: plans cover every row once, streamed validation finds what
whole-table validation finds, and streamed scores are byte for byte the whole-table scores."""
from __future__ import annotations

import datetime
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskcap.cli import main
from riskcap.data.load import load_partition, load_tables, scan_tables, validate_data, write_rejects
from riskcap.data.read import (INT64_MAX, INT64_MIN, PERSON_TABLES, PersonRange, person_tables, read_range,
                               read_raw)
from riskcap.data.summary import LoadSummary
from riskcap.data.write import write_parquet
from riskcap.errors import DataError
from riskcap.features import build_features, features_at
from riskcap.models.persist import load_model, load_model_files, read_model_files, save_model
from riskcap.models.score import score_population
from riskcap.models.train import train_model
from riskcap.stream.plan import StreamingFallbackWarning, plan_partitions
from riskcap.synthetic import EVAL_INDEX_DATE, TRAIN_INDEX_DATE, SynthConfig, write_population
from reference.scoring import score_everyone, write_everyone

CORPUS = Path(__file__).resolve().parent / "malformed"
SAMPLE = Path(__file__).resolve().parent.parent / "synthetic_data"
AS_OF = "2025-03-31"


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    write_population(out, SynthConfig(people=3000, seed=1, partition_people=700))  # several row groups
    return out


@pytest.fixture(scope="module")
def models(population, tmp_path_factory):
    tables, _ = load_tables(population)
    frame = build_features(tables, TRAIN_INDEX_DATE)
    root = tmp_path_factory.mktemp("models")
    for kind, seed in (("logistic", 0), ("gbm", 3)):
        save_model(train_model(kind, frame, TRAIN_INDEX_DATE, seed=seed), root / kind)
    return root


def _reference_scores(model, tables, path, index_date=EVAL_INDEX_DATE, reasons_for=None):
    """The whole population's scores the obvious way (:mod:`reference.scoring`), written to ``path``."""
    return write_everyone(score_everyone(model, build_features(tables, index_date), reasons_for), path)


def _streamed(data_dir, people, as_of=None, on_invalid="reject"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StreamingFallbackWarning)
        parts = plan_partitions(data_dir, people)
    scans = scan_tables(data_dir) if len(parts) > 1 else None
    loaded = [load_partition(data_dir, part, as_of, on_invalid, scans) for part in parts]
    return parts, loaded, LoadSummary.combine([summary for _, summary in loaded])


# --- Plans ---------------------------------------------------------------------------

def _messy_table(folder: Path, rng, rows: int, row_group: int) -> Path:
    """A persons-like table: unsorted ids with duplicates, nulls and extreme values."""
    ids = rng.integers(-50, 50, rows).astype(object)
    ids[rng.random(rows) < 0.1] = None
    ids[:2] = [INT64_MIN, INT64_MAX]
    rng.shuffle(ids)
    table = pa.table({"person_id": pa.array(list(ids), type=pa.int64()), "x": np.arange(rows)})
    path = folder / "t.parquet"
    pq.write_table(table, path, row_group_size=row_group)
    return path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=st.integers(60, 4500), rows=st.integers(2, 300), row_group=st.integers(1, 400), seed=st.integers(0, 99))
def test_plan_reads_every_row_exactly_once(population, tmp_path_factory, people, rows, row_group, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StreamingFallbackWarning)
        parts = plan_partitions(population, people)
    assert parts[0].first == INT64_MIN and parts[-1].stop == INT64_MAX
    assert all(a.stop == b.first for a, b in zip(parts, parts[1:]))
    assert [p.index for p in parts] == list(range(len(parts)))
    for name in person_tables(population):
        path = population / f"{name}.parquet"
        labels = np.concatenate([read_range(path, part, ["person_id"])[1] for part in parts])
        assert np.array_equal(np.sort(labels), np.arange(pq.ParquetFile(path).metadata.num_rows)), name
    # any ids at all (unsorted, duplicated, null, int64 extremes) against the same ranges
    messy = _messy_table(tmp_path_factory.mktemp("messy"), np.random.default_rng(seed), rows, row_group)
    got = [read_range(messy, part) for part in parts]
    labels = np.concatenate([lab for _, lab in got])
    assert np.array_equal(np.sort(labels), np.arange(rows))
    whole = pq.read_table(messy)
    for table, lab in got:  # the rows read are the rows at those numbers
        assert table.equals(whole.take(pa.array(lab, type=pa.int64())).replace_schema_metadata(None))


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(0, 300), row_group=st.integers(1, 400), seed=st.integers(0, 99), sort=st.booleans(),
       batch=st.sampled_from([1, 7, 1 << 20]))
def test_planned_ids_are_the_sorted_non_null_ids(tmp_path_factory, rows, row_group, seed, sort, batch):
    """Planning reads person_id in batches into one array: the same ids as sorting the whole column."""
    import riskcap.stream.plan as P

    folder = tmp_path_factory.mktemp("ids")
    ids = np.random.default_rng(seed).integers(-50, 50, rows)
    if sort:
        ids.sort()
    nulls = np.random.default_rng(seed + 1).random(rows) < 0.1
    table = pa.table({"person_id": pa.array(ids, mask=nulls, type=pa.int64())})
    pq.write_table(table, folder / "persons.parquet", row_group_size=row_group)
    original = P._BATCH_ROWS
    P._BATCH_ROWS = batch
    try:
        got = P.sorted_person_ids(folder / "persons.parquet")
    finally:
        P._BATCH_ROWS = original
    assert got.dtype == np.int64 and np.array_equal(got, np.sort(ids[~nulls]))


_CODES = ["gp", "ae", " ae", "", "outpatient", None]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 300), row_group=st.integers(1, 120), batch=st.sampled_from([7, 64, 1 << 20]),
       seed=st.integers(0, 99), large=st.booleans())
def test_read_range_of_dictionary_text_is_the_rows_as_text(tmp_path_factory, monkeypatch, rows, row_group, batch,
                                                           seed, large):
    """Small-dictionary text columns are read as dictionaries and decoded after filtering: the
    rows, types and row numbers are those of reading the text whole; long text stays text."""
    import riskcap.data.read as partitions

    monkeypatch.setattr(partitions, "_BATCH_ROWS", batch)
    rng = np.random.default_rng(seed)
    text = pa.large_string() if large else pa.string()
    ids = np.sort(rng.integers(0, 40, rows))
    table = pa.table({
        "person_id": pa.array(ids, type=pa.int64()),
        "setting": pa.array([_CODES[i] for i in rng.integers(0, len(_CODES), rows)], type=text),
        "note": pa.array([f"{rng.integers(10**12)}-{'x' * int(rng.integers(0, 3000))}" for _ in range(rows)],
                         type=text),
    })
    path = tmp_path_factory.mktemp("dict") / "t.parquet"
    pq.write_table(table, path, row_group_size=row_group, dictionary_pagesize_limit=1 << 20)
    pf = pq.ParquetFile(path)
    assert "setting" in partitions._coded_text(pf, pf.schema_arrow)  # the dictionary route is taken
    cuts = sorted({int(c) for c in rng.integers(0, 40, 3)})
    bounds = [INT64_MIN, *cuts, INT64_MAX]
    parts = [PersonRange(i, lo, hi) for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])) if lo < hi]
    whole = pq.read_table(path).replace_schema_metadata(None)
    labels = []
    for part in parts:
        got, lab = read_range(path, part)
        assert got.schema == whole.schema
        assert got.equals(whole.take(pa.array(lab, type=pa.int64())))
        labels.append(lab)
        codes, same = read_range(path, part, codes=True)  # the same rows, setting left as codes
        assert np.array_equal(same, lab) and pa.types.is_dictionary(codes.schema.field("setting").type)
        for name in ("setting", "note"):  # note too when its dictionary is small
            column = codes.column(name)
            assert (column.cast(text) if pa.types.is_dictionary(column.type) else column).equals(got.column(name))
    assert np.array_equal(np.sort(np.concatenate(labels)), np.arange(rows))


@pytest.mark.parametrize("coded_first", [True, False])
def test_read_range_codes_of_a_dataset_whose_files_differ(tmp_path, coded_first):
    """Files of one dataset may store a code column as a dictionary or as plain text: read as
    codes, every file's rows come back in the first file's encoding, with the same values."""
    folder = tmp_path / "activity"
    folder.mkdir()
    for i, coded in enumerate([coded_first, not coded_first]):
        table = pa.table({"person_id": pa.array(np.arange(i * 10, i * 10 + 10), type=pa.int64()),
                          "setting": pa.array(["gp", "ae", None, "gp", "outpatient"] * 2)})
        pq.write_table(table, folder / f"part-{i}.parquet", use_dictionary=coded)
    plain, labels = read_range(folder, PersonRange(0, 5, 15))
    codes, same = read_range(folder, PersonRange(0, 5, 15), codes=True)
    assert np.array_equal(labels, same) and np.array_equal(labels, np.arange(5, 15))
    assert pa.types.is_dictionary(codes.schema.field("setting").type) == coded_first
    assert codes.column("setting").cast(pa.string()).equals(plain.column("setting"))


def test_plan_cuts_about_people_persons(population):
    ids = pq.read_table(population / "persons.parquet", columns=["person_id"]).column(0).to_numpy()
    parts = plan_partitions(population, 1000)
    sizes = [int(((ids >= p.first) & ((ids < p.stop) | (p.stop == INT64_MAX))).sum()) for p in parts]
    assert sum(sizes) == len(ids) and all(s == 1000 for s in sizes[:-1]) and 0 < sizes[-1] <= 1000
    assert [p.persons_rows for p in parts] == sizes  # the bound a streamed capitation run reserves


def test_csv_is_planned_by_person_range_and_warns_that_each_partition_parses_it():
    with pytest.warns(StreamingFallbackWarning, match="persons.csv, conditions.csv, activity.csv are CSV, which each of the 10 partitions parses whole"):
        parts = plan_partitions(CORPUS / "valid", 1)
    assert len(parts) > 2 and parts[0].first == INT64_MIN and parts[-1].stop == INT64_MAX
    assert all(a.stop == b.first for a, b in zip(parts, parts[1:]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plan_partitions(CORPUS / "valid") == [PersonRange(0, INT64_MIN, INT64_MAX)]


def test_csv_range_reads_the_whole_table_rows_of_the_range():
    path = CORPUS / "several_problems" / "conditions.csv"
    whole = read_raw(path)
    ids = pd.to_numeric(whole["person_id"].to_pandas(), errors="coerce")
    cut = int(ids.dropna().median())
    low, low_rows = read_range(path, PersonRange(0, INT64_MIN, cut))
    high, high_rows = read_range(path, PersonRange(1, cut, INT64_MAX))
    assert low.schema == high.schema == whole.schema
    assert 0 < low.num_rows < whole.num_rows and low.num_rows + high.num_rows == whole.num_rows
    assert sorted([*low_rows, *high_rows]) == list(range(whole.num_rows))
    assert whole.take(pa.array(low_rows)).equals(low) and whole.take(pa.array(high_rows)).equals(high)
    assert not (ids[high_rows] < cut).any() and not (ids[low_rows] >= cut).any()  # unparsed ids are the first range's


def test_a_csv_without_person_id_or_unreadable_at_its_start_is_loaded_whole(tmp_path):
    shutil.copytree(CORPUS / "valid", tmp_path / "no_id")
    conditions = pd.read_csv(tmp_path / "no_id" / "conditions.csv")
    conditions.drop(columns="person_id").to_csv(tmp_path / "no_id" / "conditions.csv", index=False)
    shutil.copytree(CORPUS / "valid", tmp_path / "latin1")
    (tmp_path / "latin1" / "activity.csv").write_bytes(b"person_id,setting\n1,caf\xe9\n")
    for data, why in ((tmp_path / "no_id", "has no person_id column"), (tmp_path / "latin1", "not UTF-8")):
        with pytest.warns(StreamingFallbackWarning, match=why):
            assert plan_partitions(data, 2) == [PersonRange(0, INT64_MIN, INT64_MAX)]


def test_a_csv_unreadable_past_its_first_block_is_reported_as_the_whole_load_reports_it(tmp_path):
    data = shutil.copytree(CORPUS / "valid", tmp_path / "data")
    rows = (data / "activity.csv").read_bytes().splitlines()
    body = b"\n".join([*rows, *rows[1:] * 4_000]) + b"\n"  # several MB: pyarrow reads it in several blocks
    (data / "activity.csv").write_bytes(body + b"1,gp,2023-01-10,,1,42.00,caf\xe9\n")
    _, whole = validate_data(data, as_of=AS_OF)
    parts, _, streamed = _streamed(data, 3, as_of=AS_OF)
    assert len(parts) > 1 and whole.status == "rejected"
    assert [p.rule for p in whole.file_problems] == ["unreadable"]
    assert streamed.as_dict() == whole.as_dict()


# --- Streamed validation ---------------------------------------------------------------

STREAMED_CASES = ["several_problems", "duplicate_person_id", "duplicate_condition", "unknown_person",
                  "unknown_practice_code", "nhs_mod11", "imd_out_of_range", "missing_value", "text_in_int_column",
                  "bad_date_format", "future_activity", "activity_before_birth", "empty_table", "missing_column",
                  "many_bad_rows", "duplicate_practice_code", "valid"]


def _as_parquet(case: str, folder: Path) -> Path:
    """A corpus case with its person tables as parquet (types inferred, row groups of 3 rows)."""
    shutil.copytree(CORPUS / case, folder, dirs_exist_ok=True)
    for name in PERSON_TABLES:
        csv = folder / f"{name}.csv"
        if csv.exists():
            table = pacsv.read_csv(csv)
            if name == "conditions" and table.num_rows == 0:
                table = table.cast(pa.schema([(f.name, pa.string()) for f in table.schema]))
            pq.write_table(table, folder / f"{name}.parquet", row_group_size=3)
            csv.unlink()
    return folder


def _as_format(case: str, folder: Path, fmt: str) -> Path:
    return _as_parquet(case, folder) if fmt == "parquet" else CORPUS / case


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("case", STREAMED_CASES)
@pytest.mark.parametrize("people", [2, 5])
def test_streamed_validation_finds_the_same_problems(case, people, fmt, tmp_path):
    data = _as_format(case, tmp_path / case, fmt)
    _, whole = validate_data(data, as_of=AS_OF)
    parts, _, streamed = _streamed(data, people, as_of=AS_OF)
    if case not in ("empty_table", "missing_column"):
        assert len(parts) > 1
    assert streamed.as_dict() == whole.as_dict()
    assert streamed.error_message() == whole.error_message()
    assert (whole.status == "clean") == (case == "valid")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("case", ["several_problems", "duplicate_practice_code", "unknown_person", "many_bad_rows"])
def test_streamed_quarantine_reconciles_and_rejects_the_same_rows(case, fmt, tmp_path):
    data = _as_format(case, tmp_path / "data", fmt)
    tables, whole = validate_data(data, as_of=AS_OF, on_invalid="quarantine", rejects_dir=tmp_path / "whole")
    parts, loaded, streamed = _streamed(data, 3, as_of=AS_OF, on_invalid="quarantine")
    assert len(parts) > 1 and streamed.status == "quarantined" and streamed.reconciles()
    write_rejects(streamed, tmp_path / "streamed")
    assert {k: v for k, v in streamed.as_dict().items() if k != "tables"} == \
        {k: v for k, v in whole.as_dict().items() if k != "tables"}
    for name, counts in whole.as_dict()["tables"].items():
        got = streamed.as_dict()["tables"][name]
        assert {k: v for k, v in got.items() if k != "rejects"} == {k: v for k, v in counts.items() if k != "rejects"}
        for suffix in (".parquet", ".csv"):
            file = f"{name}_rejects{suffix}"
            assert (tmp_path / "streamed" / file).read_bytes() == (tmp_path / "whole" / file).read_bytes(), file
    for name in person_tables(data):  # the rows used are the same rows, partition by partition
        used = np.concatenate([getattr(t, name)["person_id"].to_numpy(dtype=np.int64) for t, _ in loaded])
        assert np.array_equal(used, getattr(tables, name)["person_id"].to_numpy(dtype=np.int64))


# --- Features by range -------------------------------------------------------------------

@pytest.mark.parametrize("people", [700, 100_000])
def test_features_by_range_are_the_whole_table_features(population, people):
    tables, whole = load_tables(population)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StreamingFallbackWarning)
        parts = plan_partitions(population, people)
    assert (len(parts) > 1) == (people == 700)
    frame, summary = features_at(population, EVAL_INDEX_DATE, parts=parts)
    pd.testing.assert_frame_equal(frame, build_features(tables, EVAL_INDEX_DATE))
    assert summary.as_dict() == whole.as_dict()


@pytest.mark.parametrize("case", ["several_problems", "unknown_person", "many_bad_rows"])
def test_features_by_range_reject_and_quarantine_as_the_whole_table_load(case, tmp_path):
    data = _as_parquet(case, tmp_path / "data")
    parts = plan_partitions(data, 3)
    assert len(parts) > 1
    with pytest.raises(DataError) as whole:
        load_tables(data)
    with pytest.raises(DataError) as streamed:
        features_at(data, EVAL_INDEX_DATE, parts=parts)
    assert str(streamed.value) == str(whole.value)
    tables, summary = validate_data(data, on_invalid="quarantine", rejects_dir=tmp_path / "whole")
    frame, streamed = features_at(data, EVAL_INDEX_DATE, parts=parts, on_invalid="quarantine")
    pd.testing.assert_frame_equal(frame, build_features(tables, EVAL_INDEX_DATE))
    assert streamed.as_dict()["tables"].keys() == summary.as_dict()["tables"].keys()
    for name, table in summary.rejected_rows.items():
        assert streamed.rejected_rows[name].equals(table), name


def test_train_and_evaluate_quarantine_write_the_rejects_validate_writes(population, tmp_path):
    """The commands' load, now range by range: the same rejects files as the whole-table load."""
    data = tmp_path / "data"
    shutil.copytree(population, data)
    persons = pq.read_table(data / "persons.parquet")
    imd = persons.column("imd_decile").to_numpy().copy()
    imd[[5, 2000]] = 11  # one bad row in the first range, one in a later one
    write_parquet(persons.set_column(persons.schema.get_field_index("imd_decile"), "imd_decile", pa.array(imd)),
                  data / "persons.parquet", row_group_size=700)
    validate_data(data, on_invalid="quarantine", rejects_dir=tmp_path / "whole")
    assert pq.read_table(tmp_path / "whole" / "persons_rejects.parquet").num_rows == 2
    for args in (["train", "--model", "logistic", "--index-date", TRAIN_INDEX_DATE],
                 ["evaluate", "--model", tmp_path / "out-train", "--index-date", EVAL_INDEX_DATE]):
        out = tmp_path / f"out-{args[0]}"
        result = CliRunner().invoke(main, [str(a) for a in [*args, "--data", data, "--out", out, "--on-invalid",
                                                            "quarantine", "--partition-people", 700]])
        assert result.exit_code == 0, result.output
        assert "row(s) quarantined" in result.output
        for file in (tmp_path / "whole").iterdir():
            assert (out / "rejects" / file.name).read_bytes() == file.read_bytes(), file.name


def test_wrong_type_throughout_a_column_is_one_file_problem(tmp_path):
    """A text column with no valid date is found by the scan, once, with the file's row numbers."""
    data = _as_parquet("valid", tmp_path / "data")
    persons = pq.read_table(data / "persons.parquet")
    bad = pa.array([f"day {k}" for k in range(persons.num_rows)])
    i = persons.schema.get_field_index("registered_from")
    pq.write_table(persons.set_column(i, "registered_from", bad), data / "persons.parquet", row_group_size=3)
    _, whole = validate_data(data, as_of=AS_OF)
    parts, _, streamed = _streamed(data, 3, as_of=AS_OF)
    assert len(parts) > 1
    assert streamed.error_message() == whole.error_message()
    assert "no value is a valid date" in whole.error_message() and "row 1: 'day 0'" in whole.error_message()


def test_partition_rows_are_numbered_as_in_the_file(population):
    parts = plan_partitions(population, 900)
    _, summary = load_partition(population, parts[2], on_invalid="reject")
    assert "practices" not in summary.rows_in and summary.status == "clean"
    ids = pq.read_table(population / "activity.parquet", columns=["person_id"]).column(0).to_numpy()
    assert summary.rows_in["activity"] == int(((ids >= parts[2].first) & (ids < parts[2].stop)).sum())


# --- Streamed scores ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["logistic", "gbm"])
@pytest.mark.parametrize("people", [400, 1700, 10**6])
def test_streamed_scores_are_the_whole_table_scores(population, models, kind, people, tmp_path):
    model = load_model(models / kind)
    tables, _ = load_tables(population)
    _reference_scores(model, tables, tmp_path / "whole.parquet")
    scored = score_population(read_model_files(models / kind), population, EVAL_INDEX_DATE, tmp_path / "streamed.parquet",
                              people=people)
    assert scored.summary.status == "clean"
    assert scored.people == pq.ParquetFile(tmp_path / "whole.parquet").metadata.num_rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.parquet", "whole.parquet"]  # no parts left
    assert (tmp_path / "streamed.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()


@pytest.mark.parametrize("margin", [0.3, 1.25, 5.0])
def test_reasons_come_from_pass_one_or_a_second_read(population, models, margin, tmp_path, monkeypatch):
    """Chosen people whom pass one did not explain are explained by re-reading their partitions."""
    import riskcap.models.score as S

    monkeypatch.setattr(S, "CANDIDATE_MARGIN", margin)
    tables, _ = load_tables(population)
    _reference_scores(load_model(models / "gbm"), tables, tmp_path / "whole.parquet", reasons_for=10)
    reread = []
    score_population(read_model_files(models / "gbm"), population, EVAL_INDEX_DATE, tmp_path / "streamed.parquet",
                     people=700, reasons_for=10, progress=lambda stage, done, total: reread.append(stage))
    assert (tmp_path / "streamed.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    if margin != 1.25:  # the default margin may or may not need a second read here
        assert ("reasons" in reread) == (margin < 1)


def test_scores_in_row_groups_match_one_write(population, models, tmp_path, monkeypatch):
    import riskcap.models.score as S

    monkeypatch.setattr(S, "SCORES_ROW_GROUP", 1000)
    score_population(read_model_files(models / "gbm"), population, EVAL_INDEX_DATE, tmp_path / "a.parquet", people=700)
    table = pq.read_table(tmp_path / "a.parquet")
    assert pq.ParquetFile(tmp_path / "a.parquet").metadata.num_row_groups == -(-table.num_rows // 1000)
    write_parquet(table, tmp_path / "b.parquet", row_group_size=1000)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    nobody = datetime.date(1900, 1, 1)  # before anyone registered: an empty file, with its columns
    score_population(read_model_files(models / "gbm"), population, nobody, tmp_path / "empty.parquet")
    _reference_scores(load_model(models / "gbm"), load_tables(population)[0], tmp_path / "empty_ref.parquet", nobody)
    assert (tmp_path / "empty.parquet").read_bytes() == (tmp_path / "empty_ref.parquet").read_bytes()


def _with_bad_rows(population: Path, folder: Path) -> Path:
    """The population with bad activity rows spread over several partitions."""
    shutil.copytree(population, folder)
    activity = pq.read_table(folder / "activity.parquet")
    cost = activity["cost_gbp"].to_numpy().copy()
    rows = np.linspace(0, len(cost) - 1, 7).astype(int)
    cost[rows] = -1.0
    activity = activity.set_column(activity.schema.get_field_index("cost_gbp"), "cost_gbp", pa.array(cost))
    pq.write_table(activity, folder / "activity.parquet", row_group_size=len(cost) // 5)
    return folder


def test_streamed_quarantine_scores_and_rejects_match(population, models, tmp_path):
    data = _with_bad_rows(population, tmp_path / "data")
    model = load_model(models / "logistic")
    tables, _ = load_tables(data, on_invalid="quarantine", rejects_dir=tmp_path / "whole")
    _reference_scores(model, tables, tmp_path / "whole.parquet")
    result = CliRunner().invoke(main, ["score", "--model", models / "logistic", "--data", data, "--out",
                                       tmp_path / "out" / "scores.parquet", "--on-invalid", "quarantine",
                                       "--partition-people", "800", "--index-date", EVAL_INDEX_DATE])
    assert result.exit_code == 0, result.output
    assert "7 row(s) quarantined" in result.output
    assert (tmp_path / "out" / "scores.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    for file in ("activity_rejects.parquet", "activity_rejects.csv", "persons_rejects.csv"):
        assert (tmp_path / "out" / "rejects" / file).read_bytes() == (tmp_path / "whole" / file).read_bytes()


def test_streamed_reject_lists_every_partitions_problems(population, models, tmp_path):
    data = _with_bad_rows(population, tmp_path / "data")
    with pytest.raises(DataError) as whole:
        load_tables(data)
    with pytest.raises(DataError) as streamed:
        score_population(read_model_files(models / "gbm"), data, EVAL_INDEX_DATE, tmp_path / "out" / "scores.parquet",
                         people=500)
    assert not (tmp_path / "out").exists()  # nothing written, no folder left behind
    assert str(streamed.value) == str(whole.value)
    assert "negative cost - 7 row(s)" in str(streamed.value)
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(main, ["score", "--model", models / "gbm", "--data", data, "--out", out,
                                       "--partition-people", "500"])
    assert result.exit_code != 0 and not out.exists()
    assert "negative cost" in result.output


def test_score_command_matches_the_committed_path_on_the_sample(models, tmp_path):
    """`riskcap score` on synthetic_data/ writes the bytes of the whole population scored at once."""
    for kind in ("logistic", "gbm"):
        tables, _ = load_tables(SAMPLE)
        _reference_scores(load_model(models / kind), tables, tmp_path / "ref.parquet")
        out = tmp_path / f"{kind}.parquet"
        result = CliRunner().invoke(main, ["score", "--model", models / kind, "--data", SAMPLE, "--out", out,
                                           "--partition-people", "6000", "--index-date", EVAL_INDEX_DATE])
        assert result.exit_code == 0, result.output
        assert "partition(s)" in result.output
        assert out.read_bytes() == (tmp_path / "ref.parquet").read_bytes(), kind


@pytest.mark.parametrize("people", [2, 250_000])
def test_score_command_on_csv_streams_by_range(models, people, tmp_path):
    tables, _ = load_tables(CORPUS / "valid")
    _reference_scores(load_model(models / "logistic"), tables, tmp_path / "ref.parquet")
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(main, ["score", "--model", models / "logistic", "--data", CORPUS / "valid",
                                       "--out", out, "--index-date", EVAL_INDEX_DATE, "--partition-people", people])
    assert result.exit_code == 0, result.output
    assert ("activity.csv are CSV" in " ".join(result.output.split())) == (people == 2)  # as wrapped
    assert out.read_bytes() == (tmp_path / "ref.parquet").read_bytes()


# --- Model bytes -----------------------------------------------------------------------

def test_model_travels_as_checked_file_bytes(models):
    files = read_model_files(models / "gbm")
    assert set(files) == {"metadata.json", "model.txt", "calibration.json"}
    assert all(isinstance(v, bytes) for v in files.values())
    model = load_model_files(files)
    assert load_model_files(dict(files)) is model  # parsed once per process
    assert model.features == load_model(models / "gbm").features
    tampered = {**files, "model.txt": files["model.txt"] + b"\n"}
    with pytest.raises(DataError, match="model.txt: changed since the model was saved"):
        load_model_files(tampered)
