"""load_tables: reject / quarantine, reconciliation, rejects files, dtypes and per-frame checks."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcap.cli import main
from riskcap.data.check import PersonIndex, after, check_activity, nhs_number_checks
from riskcap.data.load import load_tables, validate_data
from riskcap.data.parse import _to_pandas, parse_column, parse_table, text_is_clean
from riskcap.data.read import arrow_to_pandas, parse_series, read_table
from riskcap.errors import DataError
from riskcap.schema import TABLES, nhs_number_valid
from reference import validate as naive

CORPUS = Path(__file__).resolve().parent / "malformed"
VALID = CORPUS / "valid"
AS_OF = "2025-03-31"


def _copy(case: str, tmp_path: Path) -> Path:
    dest = tmp_path / case
    shutil.copytree(CORPUS / case, dest)
    return dest


# --- NHS number -----------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text("0123456789", min_size=9, max_size=11),
                          st.text("0123456789 A", min_size=10, max_size=10)), min_size=1, max_size=30))
def test_nhs_number_checks_match_reference(numbers):
    bad_format, bad_check = nhs_number_checks(pd.Series(numbers, dtype="string"))
    for n, fmt, chk in zip(numbers, bad_format, bad_check):
        if n is None:
            assert not fmt and not chk
        else:
            assert (not fmt and not chk) == nhs_number_valid(n), n
            assert fmt == (not (len(n) == 10 and n.isdigit()))


def test_nhs_number_checks_every_check_digit():
    """All ten final digits of one stem: exactly one passes (none when the check digit is 10)."""
    for stem in ("943476591", "401023213", "000000000", "999999999", "123456789"):
        numbers = pd.Series([stem + str(d) for d in range(10)], dtype="string")
        _, bad_check = nhs_number_checks(numbers)
        assert list(~bad_check) == [nhs_number_valid(n) for n in numbers]


# --- Reject mode --------------------------------------------------------------------

def test_clean_data_loads_with_contract_dtypes():
    tables, summary = load_tables(VALID, as_of=AS_OF)
    assert summary.status == "clean" and summary.reconciles()
    assert summary.rows_in == {"practices": 3, "persons": 10, "conditions": 12, "activity": 24}
    assert summary.rows_used == summary.rows_in
    persons, activity = tables.persons, tables.activity
    assert persons["person_id"].dtype == np.int64 and persons["imd_decile"].dtype == np.int64
    assert persons["birth_date"].dtype == "datetime64[s]" and persons["care_home"].dtype == bool
    assert activity["quantity"].dtype == np.int64 and activity["cost_gbp"].dtype == np.float64
    assert persons["nhs_number"].isna().sum() == 1 and persons["registered_to"].notna().sum() == 1
    for name in ("persons", "conditions", "activity"):
        assert getattr(tables, name)["person_id"].is_monotonic_increasing


def test_parquet_and_csv_give_the_same_tables(tmp_path):
    for name in TABLES:
        pq.write_table(pacsv.read_csv(VALID / f"{name}.csv"), tmp_path / f"{name}.parquet")
    from_csv, _ = load_tables(VALID, as_of=AS_OF)
    from_parquet, _ = load_tables(tmp_path, as_of=AS_OF)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(from_csv, name), getattr(from_parquet, name), check_dtype=False)
        assert list(getattr(from_csv, name).dtypes) == list(getattr(from_parquet, name).dtypes), name


def test_dictionary_encoded_and_unsorted_parquet(tmp_path):
    """Categorical codes (as pandas/arrow writers often store them) and unsorted rows load fine."""
    for name in TABLES:
        shutil.copy(VALID / f"{name}.csv", tmp_path)
    activity = pacsv.read_csv(VALID / "activity.csv")
    activity = activity.set_column(1, "setting", activity["setting"].dictionary_encode())
    activity = activity.take(pa.array(np.arange(activity.num_rows)[::-1]))
    (tmp_path / "activity.csv").unlink()
    pq.write_table(activity, tmp_path / "activity.parquet")
    tables, summary = load_tables(tmp_path, as_of=AS_OF)
    assert summary.status == "clean"
    assert tables.activity["person_id"].is_monotonic_increasing
    expected, _ = load_tables(VALID, as_of=AS_OF)
    # a stable sort of the reversed rows keeps each person's rows reversed
    got = tables.activity.sort_values(["person_id", "start_date", "setting"], ignore_index=True)
    want = expected.activity.sort_values(["person_id", "start_date", "setting"], ignore_index=True)
    assert isinstance(got["setting"].dtype, pd.CategoricalDtype)  # codes stay codes (in text order)
    got["setting"] = got["setting"].astype(want["setting"].dtype)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_absent_optional_columns_are_added(tmp_path):
    for name in TABLES:
        shutil.copy(VALID / f"{name}.csv", tmp_path)
    act = pd.read_csv(VALID / "activity.csv").drop(columns=["quantity", "primary_diagnosis"])
    act.to_csv(tmp_path / "activity.csv", index=False)
    tables, _ = load_tables(tmp_path, as_of=AS_OF)
    assert (tables.activity["quantity"] == 1).all() and tables.activity["quantity"].dtype == np.int64
    assert tables.activity["primary_diagnosis"].isna().all()


def test_reject_lists_every_problem():
    with pytest.raises(DataError) as err:
        load_tables(CORPUS / "several_problems", as_of=AS_OF)
    lines = [l for l in str(err.value).splitlines() if l.startswith("  - ")]
    assert len(lines) == 5
    assert {p.table for p in err.value.summary.problems} == {"persons", "conditions", "activity"}
    assert err.value.summary.status == "rejected"
    assert "--on-invalid quarantine" in str(err.value)


def test_validate_data_reports_without_raising():
    tables, summary = validate_data(CORPUS / "several_problems", as_of=AS_OF)
    assert tables is None and summary.status == "rejected"
    assert summary.rows_in["activity"] == 24 and summary.rows_failing["activity"] == 2
    assert [p.rule for p in summary.problems] == [
        "nhs_number_mod11", "unknown_code", "unknown_code", "negative", "unknown_key"]
    assert all(p.count == 1 and len(p.examples) == 1 for p in summary.problems)


def test_as_of_defaults_to_today(tmp_path):
    folder = _copy("valid", tmp_path)
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    act = pd.read_csv(folder / "activity.csv", dtype=str)
    act.loc[0, ["start_date", "end_date"]] = tomorrow
    act.to_csv(folder / "activity.csv", index=False)
    with pytest.raises(DataError, match=f"after the as-of date {dt.date.today().isoformat()}.*row 1: {tomorrow}"):
        load_tables(folder)
    tables, _ = load_tables(folder, as_of=dt.date.today() + dt.timedelta(days=1))
    assert len(tables.activity) == 24


# --- Quarantine mode ----------------------------------------------------------------

def test_quarantine_reconciles_and_writes_reasons(tmp_path):
    rejects = tmp_path / "rejects"
    tables, summary = load_tables(CORPUS / "several_problems", as_of=AS_OF, on_invalid="quarantine",
                                  rejects_dir=rejects)
    assert summary.status == "quarantined" and summary.reconciles()
    # persons 1 (NHS number) and 7 (sex); conditions row 5 (code) plus person 1's three rows;
    # activity rows 1-6 except 5 are person 1's, row 5 has an unknown person, row 20 is person 7's
    assert summary.rows_quarantined == {"practices": 0, "persons": 2, "conditions": 4, "activity": 7}
    for name in TABLES:
        assert summary.rows_in[name] == summary.rows_used[name] + summary.rows_quarantined[name]
        assert len(getattr(tables, name)) == summary.rows_used[name]
    assert not tables.persons["person_id"].isin([1, 7]).any()
    assert not tables.activity["person_id"].isin([1, 7, 99]).any()

    act = pd.read_parquet(rejects / "activity_rejects.parquet")
    assert list(act["row"]) == [1, 2, 3, 4, 5, 6, 20]
    reasons = dict(zip(act["row"], act["reason"]))
    assert reasons[3] == "cost_gbp: negative cost; person quarantined"
    assert reasons[5].startswith("person_id: person_id not in ") and "persons.csv" in reasons[5]
    assert reasons[20] == "person quarantined"
    assert act.loc[act["row"] == 3, "cost_gbp"].item() == "-42.00"  # the input text as given
    persons = pd.read_parquet(rejects / "persons_rejects.parquet")
    assert dict(zip(persons["row"], persons["reason"])) == {
        1: "nhs_number: NHS number fails the modulus-11 check", 7: "sex: sex must be one of F, M"}
    csv = pd.read_csv(rejects / "activity_rejects.csv", dtype=str)
    assert list(csv["reason"]) == list(act["reason"])
    assert len(pd.read_parquet(rejects / "practices_rejects.parquet")) == 0  # no stale file left
    as_dict = json.loads(json.dumps(summary.as_dict()))
    assert as_dict["tables"]["activity"]["rows_quarantined"] == 7
    assert as_dict["tables"]["activity"]["rejects"].endswith("activity_rejects.parquet")


def test_quarantined_practice_takes_its_persons_and_their_events(tmp_path):
    tables, summary = load_tables(CORPUS / "duplicate_practice_code", as_of=AS_OF, on_invalid="quarantine",
                                  rejects_dir=tmp_path)
    assert summary.reconciles()
    # both A81002 rows go; persons 5-7 (quarantined practice) and 8-10 (unknown practice) follow
    assert summary.rows_quarantined["practices"] == 2
    assert list(tables.persons["person_id"]) == [1, 2, 3, 4]
    assert set(tables.activity["person_id"]) <= {1, 2, 3, 4}
    persons = pd.read_parquet(tmp_path / "persons_rejects.parquet")
    assert (persons["reason"].str.startswith("practice_code: practice quarantined")).sum() == 3
    assert persons["reason"].str.contains("practice_code not in").sum() == 3


def test_people_without_a_registration_history_are_quarantined_with_a_reason(tmp_path):
    """A person with no registration rows, and one whose registration row is quarantined, go
    with their events: neither history can say which practice they were with."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(CORPUS / "person_without_registrations", data)
    regs = pd.read_csv(data / "registrations.csv", dtype=str)
    regs.loc[regs["person_id"] == "5", "registered_to"] = "1900-01-01"  # ends before it starts
    regs.to_csv(data / "registrations.csv", index=False)
    tables, summary = load_tables(data, as_of=AS_OF, on_invalid="quarantine", rejects_dir=tmp_path / "rejects")
    assert summary.reconciles()
    assert 3 not in set(tables.persons["person_id"]) and 5 not in set(tables.persons["person_id"])
    assert not ({3, 5} & set(tables.activity["person_id"]) | {3, 5} & set(tables.registrations["person_id"]))
    assert summary.rows_quarantined["persons"] == 2
    rejects = pd.read_parquet(tmp_path / "rejects" / "persons_rejects.parquet")
    reasons = dict(zip(rejects["person_id"].astype(str), rejects["reason"]))
    assert reasons == {"3": "person_id: no registration period in registrations.csv",
                       "5": "person_id: registration period quarantined (see registrations.csv)"}


def test_quarantine_of_duplicate_person_id_drops_both_and_their_events(tmp_path):
    tables, summary = load_tables(CORPUS / "duplicate_person_id", as_of=AS_OF, on_invalid="quarantine",
                                  rejects_dir=tmp_path)
    assert summary.reconciles()
    assert 9 not in set(tables.persons["person_id"]) and 9 not in set(tables.conditions["person_id"])
    assert summary.rows_quarantined["persons"] == 2


def test_file_problems_raise_even_in_quarantine_mode(tmp_path):
    with pytest.raises(DataError, match="cannot be quarantined") as err:
        load_tables(CORPUS / "truncated_parquet", as_of=AS_OF, on_invalid="quarantine", rejects_dir=tmp_path)
    assert err.value.summary.file_problems[0].table == "persons"
    assert not any(tmp_path.iterdir())


def test_quarantine_needs_a_rejects_dir():
    with pytest.raises(ValueError, match="rejects_dir"):
        load_tables(VALID, as_of=AS_OF, on_invalid="quarantine")


def test_cli_quarantine_exits_zero_and_reports(tmp_path):
    rejects, summary_json = tmp_path / "rej", tmp_path / "summary.json"
    result = CliRunner().invoke(main, ["validate", "--data", str(CORPUS / "several_problems"), "--as-of", AS_OF,
                                       "--on-invalid", "quarantine", "--rejects", str(rejects),
                                       "--summary", str(summary_json)])
    assert result.exit_code == 0, result.output
    assert "13 row(s) quarantined" in result.output and str(rejects) in result.output
    # the five problems plus the rows that follow quarantined persons in conditions and activity
    assert "7 problem(s)" in result.output and "person quarantined - 3 row(s)" in result.output
    written = json.loads(summary_json.read_text())
    assert written["status"] == "quarantined"
    assert {t: v["rows_in"] for t, v in written["tables"].items()} == {
        t: v["rows_used"] + v["rows_quarantined"] for t, v in written["tables"].items()}


def test_cli_quarantine_still_fails_on_file_problems(tmp_path):
    result = CliRunner().invoke(main, ["validate", "--data", str(CORPUS / "missing_file"), "--on-invalid",
                                       "quarantine", "--rejects", str(tmp_path)])
    assert result.exit_code == 2 and "table 'activity' not found" in result.output


# --- Per-frame checks (partitions) ----------------------------------------------------

def test_checks_on_partitions_add_up_to_the_whole():
    """Checks are per frame: run on two person_id ranges with global row labels they find the
    same rows as on the whole table."""
    persons = read_table(VALID, "persons")
    index = PersonIndex.from_persons(persons)
    raw = pacsv.read_csv(CORPUS / "several_problems" / "activity.csv",
                         convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in TABLES["activity"].names}))
    whole, _ = parse_table(raw, "activity", "activity.csv")
    # person 99 sorts last: make the frame sorted first, as partitions require
    whole = whole.sort_values("person_id", kind="stable")
    whole_problems = {(p.rule, p.column): set(whole.index[p.row_indices]) for p in
                      check_activity(whole, "activity.csv", AS_OF, index)}
    cut = int(np.searchsorted(whole["person_id"].to_numpy(), 5))
    parts = {}
    for part in (whole.iloc[:cut], whole.iloc[cut:]):
        for p in check_activity(part, "activity.csv", AS_OF, index):
            parts.setdefault((p.rule, p.column), set()).update(part.index[p.row_indices])
    assert parts == whole_problems and len(whole_problems) == 2


def test_person_index_lookup():
    persons = pd.DataFrame({"person_id": [5, 3, 9, 3], "birth_date": pd.to_datetime(
        ["2000-01-01", "1990-01-01", "1980-01-01", "1991-01-01"]).astype("datetime64[s]")})
    index = PersonIndex.from_persons(persons)
    found, birth = index.lookup(pd.Series([3, 4, 9, 10, 1], dtype="int64"))
    assert list(found) == [True, False, True, False, False]
    assert str(birth[0])[:10] == "1990-01-01" and np.isnat(birth[1])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-5, 40), max_size=30), st.lists(st.one_of(st.none(), st.integers(-8, 45)), max_size=60),
       st.booleans())
def test_person_index_lookup_matches_reference(person_ids, event_ids, sort_events):
    """The one-pass kernel gives the numpy binary search's answers, sorted or not, nulls and all."""
    births = pd.Series(pd.to_datetime([None if i % 5 == 4 else f"{1950 + i % 60}-0{1 + i % 9}-1{i % 10}"
                                       for i in range(len(person_ids))])).astype("datetime64[s]")
    index = PersonIndex.from_persons(pd.DataFrame({"person_id": pd.Series(person_ids, dtype="int64"),
                                                   "birth_date": births}))
    if sort_events:
        event_ids = sorted(event_ids, key=lambda v: (v is None, v))
    dates = [pd.Series(pd.to_datetime([None if i % 7 == 3 else f"{1940 + i * 3 % 80}-06-15"
                                       for i in range(len(event_ids))])).astype("datetime64[s]"),
             pd.Series(pd.to_datetime(["1975-01-01"] * len(event_ids)).astype("datetime64[ms]"))]
    for series in (pd.Series(event_ids, dtype="Int64"),
                   pd.Series([0 if v is None else v for v in event_ids], dtype="int64")):
        found, birth = index.lookup(series)
        ref_found, ref_birth = naive.person_lookup(index, series)
        assert found.dtype == ref_found.dtype and birth.dtype == ref_birth.dtype
        np.testing.assert_array_equal(found, ref_found)
        np.testing.assert_array_equal(birth, ref_birth)
        for columns in ([], dates[:1], dates, dates[1:]):
            found, befores = index.lookup_before(series, columns)
            np.testing.assert_array_equal(found, ref_found)
            assert len(befores) == len(columns)
            for column, before in zip(columns, befores):
                np.testing.assert_array_equal(before, (column.to_numpy() < ref_birth))


_TEXT = st.one_of(st.none(), st.sampled_from(["gp", "ae", "", " ", " gp", "gp ", "\tae", "ae\n", "\u00a0x", "x\u00a0",
                                               "é", "aé", "éa", "x\x1fy", "\x1f", "\x7f", "a b", "\u3000"]),
                 st.text(max_size=4))


@settings(max_examples=300, deadline=None)
@given(st.lists(_TEXT, max_size=40), st.integers(0, 5), st.integers(0, 5), st.booleans(), st.booleans())
def test_text_fast_path_matches_parse_series(values, cut, skip, large, dictionary):
    """Clean text goes straight from arrow to the parsed column: the same values and dtype as
    parse_series; the check agrees with its Python reference on chunked, sliced and large text."""
    kind = pa.large_string() if large else pa.string()
    array = pa.array(values, type=kind)
    column = pa.chunked_array([array[:cut].slice(min(skip, cut)), array[cut:]] if cut < len(values) else [array],
                              type=kind)
    raw = pa.table({"person_id": pa.array(range(len(column)), type=pa.int64()),
                    "condition": column.dictionary_encode() if dictionary else column})
    assert text_is_clean(column) == naive.text_is_clean(column)
    df, parsed = _to_pandas(raw, ["condition"])
    reference = arrow_to_pandas(raw)
    assert list(df.columns) == list(reference.columns)
    expected, bad = parse_series(reference["condition"], "str")
    assert not bad.any()
    if parsed:
        assert text_is_clean(column)
        got = parsed["condition"]
        if dictionary:  # a categorical in text order, each distinct value judged once
            assert list(got.cat.categories) == sorted(got.cat.categories)
            got = got.astype(expected.dtype)
        pd.testing.assert_series_equal(got, expected, check_names=False)
        pd.testing.assert_series_equal(df["person_id"], reference["person_id"])
    else:
        pd.testing.assert_frame_equal(df, reference)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-800_000, 800_000)), max_size=40), st.integers(0, 5),
       st.integers(0, 5))
def test_dates_go_to_pandas_as_arrow_would_cast_them(days, cut, skip):
    """arrow_to_pandas reads date32 columns from their buffers: the same datetime64[s] values and
    NaT as arrow's own cast, on chunked and sliced columns, beside other columns."""
    array = pa.array(days, type=pa.int32()).cast(pa.date32())
    column = pa.chunked_array([array[:cut].slice(min(skip, cut)), array[cut:]] if cut < len(days) else [array],
                              type=pa.date32())
    table = pa.table({"person_id": pa.array(range(len(column)), type=pa.int64()), "start_date": column,
                      "end_date": column})
    reference = table.cast(pa.schema([("person_id", pa.int64()), ("start_date", pa.timestamp("s")),
                                      ("end_date", pa.timestamp("s"))])).to_pandas(date_as_object=False)
    pd.testing.assert_frame_equal(arrow_to_pandas(table), reference)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.datetimes(dt.datetime(1700, 1, 1), dt.datetime(2300, 1, 1))), max_size=30),
       st.datetimes(dt.datetime(1800, 1, 1), dt.datetime(2200, 1, 1)))
def test_after_matches_pandas_comparison(values, as_of):
    dates = pd.Series(pd.array(values, dtype="datetime64[s]") if values else [], dtype="datetime64[s]")
    as_of = pd.Timestamp(as_of).normalize()
    np.testing.assert_array_equal(np.asarray(after(dates, as_of), dtype=bool), (dates > as_of).to_numpy(dtype=bool))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(), st.none()), max_size=30))
def test_parse_column_float_matches_parse_series(values):
    s = pd.Series([np.nan if v is None else v for v in values], dtype="float64")
    got, bad = parse_column(s, "float")
    want, want_bad = parse_series(s, "float")
    np.testing.assert_array_equal(bad, want_bad)
    pd.testing.assert_series_equal(got, want)


def test_parse_table_fast_path_gives_the_reference_frame():
    """parse_table with clean text gives the frame and problems of parsing every column with parse_series."""
    import riskcap.data.parse as validate

    raw = pa.table({"person_id": pa.array([1, 2, None, 4], type=pa.int64()),
                    "setting": pa.array(["gp", None, "ae", "bogus"]),
                    "start_date": pa.array([dt.date(2024, 1, 1)] * 4),
                    "end_date": pa.array([None, dt.date(2024, 1, 2), None, None], type=pa.date32()),
                    "cost_gbp": pa.array([1.5, float("inf"), None, 2.0]),
                    "primary_diagnosis": pa.array(["I20", " J45", None, ""])})
    fast, fast_problems = parse_table(raw, "activity", "activity.parquet")
    slow_to_pandas = validate._to_pandas
    try:
        validate._to_pandas = lambda table, text: (arrow_to_pandas(table), {})
        validate.parse_column, saved = parse_series, validate.parse_column
        slow, slow_problems = parse_table(raw, "activity", "activity.parquet")
    finally:
        validate._to_pandas, validate.parse_column = slow_to_pandas, saved
    pd.testing.assert_frame_equal(fast, slow)
    assert [str(p) for p in fast_problems] == [str(p) for p in slow_problems] and fast_problems


# --- Documentation and the synthetic generator -----------------------------------------

def test_data_contract_doc_lists_every_column():
    """docs/data-contract.md has a row per column with the schema's type, required and nullable."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-contract.md").read_text(encoding="utf-8")
    for name, table in TABLES.items():
        section = doc.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        for col in table.columns:
            row = next((l for l in section.splitlines() if l.startswith(f"| `{col.name}` |")), None)
            assert row is not None, f"{name}.{col.name} missing from docs/data-contract.md"
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert cells[1] == col.kind, (name, col.name, cells)
            assert cells[2].startswith("yes" if col.required else "no"), (name, col.name, cells)
            assert cells[3] == ("yes" if col.nullable else "no"), (name, col.name, cells)


def test_synthetic_population_validates_clean(tmp_path):
    synthetic = pytest.importorskip("riskcap.synthetic")
    if not hasattr(synthetic, "write_population"):
        pytest.skip("synthetic generator not available")
    synthetic.write_population(tmp_path, synthetic.SynthConfig(people=1500, seed=11))
    tables, summary = load_tables(tmp_path, as_of="2025-03-31")
    assert summary.status == "clean" and summary.reconciles()
    assert summary.rows_in["persons"] >= 1500 and summary.rows_in["activity"] > 0
    assert len(tables.persons) == summary.rows_in["persons"]


def test_synthetic_sample_folder_validates_clean():
    sample = Path(__file__).resolve().parents[1] / "synthetic_data"
    if not (sample / "persons.parquet").exists() and not (sample / "persons").is_dir():
        pytest.skip("no synthetic_data/ sample committed yet")
    _, summary = load_tables(sample, as_of="2025-03-31")
    assert summary.status == "clean"
