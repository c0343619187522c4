"""The import's rules, each against a slow, obviously-correct reference: registers from the
journal (include / exclude), persons from registration periods, daily totals, ICD-10 forms,
admission methods, outpatient codes, prices, the codelist mapping and its files."""
from __future__ import annotations

import datetime as dt
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcap.errors import ConfigError, DataError
from riskcap.ingest import gp, hospital
from riskcap.ingest.activity import ActivityRows, activity_table, monthly
from riskcap.ingest.gp import People
from riskcap.ingest.codelists import load_codelists, normalise_icd10, read_mapping
from riskcap.ingest.costs import Pricing, load_unit_costs
from riskcap.ingest.extracts import EXTRACTS, INT32_NULL, Source
from riskcap.ingest.report import ages
from riskcap.ingest.rows import Rows
from riskcap.schema import CONDITION_CODES

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "import"
CODELISTS = load_codelists(FIXTURE / "codelists", FIXTURE / "codelists.txt")
DAY0 = int(np.datetime64("2000-01-01", "D").astype(int))
EXTRACT_DAY = int(np.datetime64("2025-03-31", "D").astype(int))


def rows_of(key: str, columns: dict) -> Rows:
    """Rows of extract ``key`` holding ``columns`` (an in-memory table standing for a file)."""
    table = pa.table(columns)
    source = Source(EXTRACTS[key], Path(f"{key.split('/')[1]}.csv"), table.column_names, table.num_rows, False)
    return Rows(source, table, np.arange(table.num_rows))


def people(ids, birth_day=DAY0 - 20_000) -> gp.People:
    ids = np.asarray(sorted(ids), dtype=np.int64)
    return gp.People(ids, np.full(len(ids), birth_day, np.int32), np.zeros(len(ids), np.int8),
                     np.ones(len(ids), bool))


def _day(d: int) -> dt.date:
    return (np.datetime64(d, "D")).item()


# --- registers from the journal ------------------------------------------------------------------

#: Codes of the made-up lists: a diagnosis, an exclusion, a code in two registers' lists, noise.
JOURNAL_CODES = ["999000101", "999000102", "999100011", "999000601", "999100001", "999002101", "999100021",
                 "999009999", "271649006"]


def registers_reference(events: list[tuple[int, str, int]]) -> dict[tuple[int, str], int]:
    """(person, register) -> diagnosed_on, by the rule written out: a person is on a register when
    their latest include code is later than their latest exclude code; diagnosed_on is their first
    include code after that latest exclude code."""
    lists = {}
    for m in CODELISTS.mapping:
        codes = {str(c) for c in CODELISTS.lists[m.codelist_id].codes}
        lists.setdefault((m.register, m.role), set()).update(codes)
    out = {}
    for register in CONDITION_CODES:
        include, exclude = lists.get((register, "include"), set()), lists.get((register, "exclude"), set())
        by_person = defaultdict(lambda: ([], []))
        for person, code, day in events:
            if code in include:
                by_person[person][0].append(day)
            if code in exclude:
                by_person[person][1].append(day)
        for person, (inc, exc) in by_person.items():
            latest_exclusion = max(exc) if exc else None
            after = [d for d in inc if latest_exclusion is None or d > latest_exclusion]
            if after:
                out[(person, register)] = min(after)
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.sampled_from(JOURNAL_CODES), st.integers(0, 40)), max_size=60))
def test_registers_match_the_reference(events):
    events = [(p, c, DAY0 + d) for p, c, d in events]  # few distinct days: same-day codes are common
    rows = rows_of("gp/events", {"person_id": pa.array([e[0] for e in events], pa.int64()),
                                 "snomed_code": pa.array([e[1] for e in events], pa.string()),
                                 "event_date": pa.array([_day(e[2]) for e in events], pa.date32())})
    table, stats = gp.conditions(rows, people(range(1, 7)), CODELISTS, EXTRACT_DAY)
    got = {(p, c): int(np.datetime64(d, "D").astype(int)) for p, c, d in
           zip(table.column("person_id").to_pylist(), table.column("condition").to_pylist(),
               table.column("diagnosed_on").to_pylist())}
    assert got == registers_reference(events)
    order = [(p, CONDITION_CODES.index(c)) for p, c in got]
    assert order == sorted(order)
    tally = rows.tally()
    assert tally.reconciles()
    assert tally.unmapped.get("SNOMED CT code in no codelist of the mapping", 0) == \
        sum(c == "271649006" for _, c, _ in events)


def test_register_rule_examples():
    """Same-day exclusion wins; a later diagnosis re-registers from its own date; an exclusion
    before the diagnosis does nothing; a code in two lists puts the person on both registers."""
    d = DAY0
    events = [(1, "999000101", d), (1, "999100011", d),  # hypertension and its resolution on one day
              (2, "999000101", d), (2, "999100011", d + 5), (2, "999000102", d + 9), (2, "999000101", d + 20),
              (3, "999100001", d), (3, "999000601", d + 1),  # CKD 1-2 before CKD 3-5
              (4, "999009999", d + 3)]
    rows = rows_of("gp/events", {"person_id": [e[0] for e in events], "snomed_code": [e[1] for e in events],
                                 "event_date": pa.array([_day(e[2]) for e in events], pa.date32())})
    table, stats = gp.conditions(rows, people([1, 2, 3, 4]), CODELISTS, EXTRACT_DAY)
    got = list(zip(table.column("person_id").to_pylist(), table.column("condition").to_pylist(),
                   [int(np.datetime64(x, "D").astype(int)) - d for x in table.column("diagnosed_on").to_pylist()]))
    assert got == [(2, "hypertension", 9), (3, "ckd", 1), (4, "chd", 3), (4, "stroke_tia", 3)]
    assert stats.excluded["hypertension"] == 1 and stats.on_register["hypertension"] == 1


# --- persons from registrations -----------------------------------------------------------------

@st.composite
def histories(draw):
    """Registration histories of a few people: non-overlapping periods (gaps allowed), only the
    last possibly open, sometimes a death; rows shuffled."""
    rows, expected = [], {}
    for person in range(1, draw(st.integers(1, 6)) + 1):
        birth = DAY0 - draw(st.integers(0, 20_000))
        start = birth + draw(st.integers(0, 3_000))
        periods = []
        for k in range(draw(st.integers(1, 4))):
            length = draw(st.integers(1, 2_000))
            periods.append([draw(st.sampled_from(["A81001", "A81002", "B82005"])), start, start + length])
            start += length + draw(st.sampled_from([0, 0, 30]))
        if draw(st.booleans()):
            periods[-1][2] = None
        died = None
        if draw(st.booleans()):
            died = max(periods[-1][1], (periods[-1][2] or periods[-1][1] + 100) + draw(st.integers(-50, 50)))
        imd, care, opted = draw(st.integers(1, 10)), draw(st.booleans()), draw(st.booleans())
        for practice, f, t in periods:
            rows.append((person, practice, f, t, birth, died, draw(st.integers(1, 10)), care, opted))
        rows[-1] = rows[-1][:6] + (imd, care, opted)
        last_to = periods[-1][2]
        if died is not None and (last_to is None or last_to > died):
            last_to = died
        expected[person] = (periods[-1][0], periods[0][1], last_to, died, imd, care, opted, len(periods))
    order = draw(st.permutations(range(len(rows))))
    return [rows[i] for i in order], expected


@settings(max_examples=150, deadline=None)
@given(histories())
def test_persons_from_registrations_match_the_reference(history):
    rows_, expected = history
    dates = lambda k: pa.array([None if r[k] is None else _day(r[k]) for r in rows_], pa.date32())  # noqa: E731
    rows = rows_of("gp/registrations", {
        "person_id": pa.array([r[0] for r in rows_], pa.int64()), "practice_code": [r[1] for r in rows_],
        "registered_from": dates(2), "registered_to": dates(3), "sex": ["F"] * len(rows_),
        "birth_date": dates(4), "imd_decile": pa.array([r[6] for r in rows_], pa.int64()), "died_on": dates(5),
        "care_home": [r[7] for r in rows_], "opted_out": [r[8] for r in rows_]})
    known = {"A81001": 0, "A81002": 0, "B82005": 0}
    found, persons, registrations, stats = gp.registrations(rows, known, {}, EXTRACT_DAY + 10_000, quarantine=True)
    assert not rows.problems
    got = {}
    for r in persons.to_pylist():
        days = [None if r[k] is None else int(np.datetime64(r[k], "D").astype(int))
                for k in ("registered_from", "registered_to", "died_on")]
        periods = registrations.filter(pa.compute.equal(registrations.column("person_id"), r["person_id"])).num_rows
        got[r["person_id"]] = (r["practice_code"], days[0], days[1], days[2], r["imd_decile"], r["care_home"],
                               r["opted_out"], periods)
    assert got == expected
    assert stats.several_periods == sum(e[7] > 1 for e in expected.values())
    ids = registrations.column("person_id").to_pylist()
    starts = registrations.column("registered_from").to_pylist()
    assert list(zip(ids, starts)) == sorted(zip(ids, starts))


# --- activity --------------------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 120), st.integers(0, 9), st.integers(0, 5000)),
                max_size=40),
       st.lists(st.tuples(st.integers(1, 4), st.integers(0, 120)), max_size=6))
def test_monthly_totals_match_the_reference(rows, moves):
    """Summed per person, calendar month and registration period (a move splits the month)."""
    person = np.array([r[0] for r in rows], np.int64)
    day = np.array([DAY0 + r[1] for r in rows], np.int32)
    quantity = np.array([r[2] for r in rows], np.int64)
    pence = np.array([r[3] for r in rows], np.int64)
    starts = sorted({(p, DAY0 + d) for p, d in moves})  # each person's later periods start on these days
    people = People(np.arange(1, 5, dtype=np.int64), np.zeros(4, np.int32), np.zeros(4, np.int8),
                    period_pos=np.array([p - 1 for p, _ in starts], np.int64),
                    period_from=np.array([d for _, d in starts], np.int64))
    want = defaultdict(lambda: [None, 0, 0])
    for p, d, q, c in zip(person, day, quantity, pence):
        month = str(np.datetime64(int(d), "D"))[:7]
        period = sum(1 for sp, sd in starts if sp == p and sd <= d)
        entry = want[(int(p), month, period)]
        entry[0] = int(d) if entry[0] is None else min(entry[0], int(d))
        entry[1] += int(q)
        entry[2] += int(c)
    got = monthly(person, day, quantity, pence, people.period_of(person - 1, day))
    assert [(int(p), int(d), int(q), int(c)) for p, d, q, c in zip(*got)] == \
        sorted((p, v[0], v[1], v[2]) for (p, _, _), v in want.items())


def test_activity_table_order_does_not_depend_on_input_order():
    rng = np.random.default_rng(4)
    n = 300
    parts = [ActivityRows(rng.integers(1, 20, n), rng.integers(0, 10, n).astype(np.int8),
                          DAY0 + rng.integers(0, 30, n).astype(np.int32),
                          np.where(rng.random(n) < 0.5, INT32_NULL, DAY0 + 40).astype(np.int32),
                          rng.integers(1, 3, n), rng.integers(0, 500, n), rng.integers(-1, 2, n).astype(np.int32),
                          ["I10", "J44.1"])]
    table = activity_table(parts)
    shuffled = rng.permutation(n)
    other = ActivityRows(*(getattr(parts[0], f)[shuffled] for f in
                           ("person", "setting", "start", "end", "quantity", "pence", "diagnosis")), ["I10", "J44.1"])
    assert activity_table([other]).equals(table)
    rows = table.to_pylist()
    assert [r["person_id"] for r in rows] == sorted(r["person_id"] for r in rows)


@pytest.mark.parametrize("text, want", [
    ("I50.0", "I50.0"), ("I500", "I50.0"), ("i50.0", "I50.0"), (" I50.0 ", "I50.0"), ("I10", "I10"),
    ("I10X", "I10"), ("I10-", "I10"), ("I10.X", "I10"), ("J441", "J44.1"), ("M1700", "M17.0"), ("G401D", "G40.1"),
    ("I5O.0", None), ("17.1M", None), ("I5", None), ("I5000X", None), ("", None), ("I10D", None), ("XX", None),
    ("G01*", "G01"), ("A17\u2020", "A17"), ("A17.0\u2020", "A17.0"), ("G01D", None),
])
def test_icd10_forms(text, want):
    assert normalise_icd10(text) == want


@given(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), st.integers(0, 99), st.one_of(st.none(), st.integers(0, 9)),
       st.sampled_from(["dotted", "compact", "lower", "padded"]))
def test_icd10_every_form_gives_the_dotted_code(letter, number, fourth, form):
    code = f"{letter}{number:02d}" + ("" if fourth is None else f".{fourth}")
    written = {"dotted": code, "compact": code.replace(".", ""), "lower": code.lower(),
               "padded": code + "X" if fourth is None else code.replace(".", "")}[form]
    assert normalise_icd10(written) == code


APC_CASES = [("21", "1", "emergency_inpatient"), ("2A", "1", "emergency_inpatient"), ("2d", "2", "emergency_inpatient"),
             ("28", "1", "emergency_inpatient"), ("11", "1", "elective_inpatient"), ("13", "2", "day_case"),
             ("31", "1", "maternity admission"), ("32", "1", "maternity admission"), ("81", "1", "other admission"),
             ("83", "2", "other admission"), ("12", "3", "regular day or night"), ("21", "4", "regular day or night"),
             ("11", "5", "mother and baby"), ("99", "1", "unknown admission method"), ("1", "1", "unknown admission"),
             ("11", "7", "unknown patient classification")]


@pytest.mark.parametrize("method, classification, want", APC_CASES)
def test_admission_method_and_classification(method, classification, want):
    rows = rows_of("hospital/apc", {
        "spell_id": ["S1"], "person_id": pa.array([1], pa.int64()), "admission_method": [method],
        "patient_classification": [classification], "admission_date": pa.array([_day(DAY0)], pa.date32()),
        "discharge_date": pa.array([_day(DAY0 + 2)], pa.date32()), "primary_diagnosis": ["I500"],
        "cost_gbp": pa.array([None], pa.float64())})
    pricing = Pricing(load_unit_costs())
    out = hospital.apc(rows, people([1]), pricing, CODELISTS, EXTRACT_DAY, hospital.HospitalStats())
    if want.startswith("unknown"):
        assert rows.problems and want in rows.problems[0].message and len(out) == 0
    elif "_" in want:
        table = activity_table([out])
        assert table.column("setting").to_pylist() == [want]
        assert table.column("primary_diagnosis").to_pylist() == ["I50.0"]
        assert table.column("cost_gbp").to_pylist() == [load_unit_costs().pence[want] / 100]
        assert pricing.priced_rows[want] == 1
    else:
        assert len(out) == 0 and any(want in reason for reason in rows.tally().unmapped)


def test_outpatients_attended_first_and_follow_up_prices():
    rows = rows_of("hospital/outpatients", {
        "person_id": pa.array([1] * 6, pa.int64()),
        "appointment_date": pa.array([_day(DAY0 + k) for k in range(6)], pa.date32()),
        "attended": ["5", "6", "5", "3", "5", "6"], "first_attendance": ["1", "4", None, "1", "5", "3"],
        "cost_gbp": pa.array([None, None, None, None, None, 99.5], pa.float64())})
    prices = load_unit_costs()
    out = activity_table([hospital.outpatients(rows, people([1]), Pricing(prices), EXTRACT_DAY)])
    assert out.column("cost_gbp").to_pylist() == [prices.pence["outpatient_first"] / 100,
                                                  prices.pence["outpatient_follow_up"] / 100,
                                                  prices.pence["outpatient"] / 100, 99.5]
    assert rows.tally().unmapped == {"not attended (did not attend, cancelled, or not yet happened)": 1,
                                     "administrative event (first attendance code 5), not an attendance": 1}


def test_pricing_counts_priced_and_rounded_rows():
    pricing = Pricing(load_unit_costs())
    pence = pricing.pence(np.array([12.345, np.nan, 3.0]), np.array([False, True, False]), "community",
                          np.array([1, 3, 1]))
    assert pence.tolist() == [1234, 3 * 6000, 300] or pence.tolist() == [1235, 3 * 6000, 300]
    assert pricing.priced_rows["community"] == 1 and pricing.priced_pence["community"] == 18000
    assert pricing.rounded_rows == 1


def test_ages_on_a_day():
    birth = np.array([np.datetime64(d, "D").astype(int) for d in ("2000-03-31", "2000-04-01", "2000-02-29",
                                                                  "2024-03-31")], np.int32)
    day = int(np.datetime64("2025-03-31", "D").astype(int))
    assert ages(birth, day).tolist() == [25, 24, 25, 1]


# --- the codelist mapping and files ---------------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("hypertension include", "expected '<register> <role>"),
    ("hypertensive include a/b/c", "unknown register 'hypertensive'"),
    ("hypertension resolves a/b/c", "unknown role 'resolves'"),
    ("acs exclude a/b/c", "the acs list can only be 'include'"),
    ("hypertension include hyp_cod", "is not an OpenCodelists id"),
    ("ckd exclude org/ckd12/v1", "ckd has an exclude list but no include list"),
])
def test_mapping_errors_name_the_line(tmp_path, line, message):
    path = tmp_path / "mapping.txt"
    path.write_text(f"# a comment\n{line}\n")
    with pytest.raises(ConfigError, match=message) as err:
        read_mapping(path)
    assert str(path) in str(err.value)


def test_mapping_file_names_and_duplicates(tmp_path):
    lines = read_mapping(FIXTURE / "codelists.txt")
    assert lines[0].filename == "riskcap-test-hypertension.csv"
    path = tmp_path / "m.txt"
    path.write_text("acs include user/mgreen/ambulatory-care-sensitive-conditions-chronic/506ec0fe\n"
                    "chd include nhsd-primary-care-domain-refsets/chd_cod/1\n"
                    "chd include nhsd-primary-care-domain-refsets/chd_cod/2\n")
    with pytest.raises(ConfigError, match="two versions of one file"):
        read_mapping(path)
    path.write_text("acs include user/mgreen/ambulatory-care-sensitive-conditions-chronic/506ec0fe\n")
    assert read_mapping(path)[0].filename == "user-mgreen-ambulatory-care-sensitive-conditions-chronic.csv"


def test_codelist_lookup_and_checksums():
    masks = CODELISTS.lookup(np.array([999009999, 999000101, 123]))
    assert masks[2] == 0
    chd, stroke = CODELISTS.include_bits["chd"], CODELISTS.include_bits["stroke_tia"]
    assert int(masks[0]) & chd and int(masks[0]) & stroke  # one code, two registers
    files = {f["codelist"]: f for f in CODELISTS.manifest()["files"]}
    assert files["riskcap-test/hypertension/v1"]["verified"].startswith("codelists.json")
    assert CODELISTS.is_acs(["U901", "U911", "U912", "I10"]).tolist() == [True, True, False, False]


def test_codelist_changed_since_download(tmp_path):
    folder = tmp_path / "codelists"
    shutil.copytree(FIXTURE / "codelists", folder)
    with open(folder / "riskcap-test-asthma.csv", "a") as fh:
        fh.write("999000599,added later (made up)\n")
    with pytest.raises(DataError, match="changed since it was downloaded"):
        load_codelists(folder, FIXTURE / "codelists.txt")
    (folder / "codelists.json").unlink()
    loaded = load_codelists(folder, FIXTURE / "codelists.txt")
    assert "not checked" in loaded.lists["riskcap-test/asthma/v1"].verified
    (folder / "riskcap-test-asthma.csv").write_text("code,term\nnot-a-code,x\n")
    with pytest.raises(DataError, match="not a SNOMED CT concept id"):
        load_codelists(folder, FIXTURE / "codelists.txt")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(0, 4), st.integers(0, 2), st.integers(0, 3), st.integers(0, 2)),
                max_size=60), st.booleans())
def test_sort_order_is_lexsort(rows, huge):
    """The packed-key sort gives np.lexsort's order (huge ids: the lexsort fallback)."""
    from riskcap.ingest.activity import sort_order

    person = np.array([r[0] for r in rows], np.int64) * (1 << 40 if huge else 1)
    start = np.array([r[1] for r in rows], np.int32)
    rank = np.array([r[2] for r in rows], np.int64)
    ties = (np.array([r[3] for r in rows], np.int64), np.array([r[4] for r in rows], np.int64))
    assert sort_order(person, start, rank, ties).tolist() == np.lexsort((*ties, rank, start, person)).tolist()


def test_docs_describe_every_extract_column():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "import.md").read_text(encoding="utf-8")
    for extract in EXTRACTS.values():
        assert f"`{extract.name}`" in docs, extract.key
        for f in extract.fields:
            assert f"`{f.name}`" in docs, f"{extract.key}.{f.name}"


def test_rejects_csv_is_formula_safe(tmp_path):
    """Quarantined rows are written through riskcap.data.write.write_csv: values a spreadsheet would run
    get a ' in front, numbers stay numbers, and the parquet keeps the text as read."""
    import csv
    from types import SimpleNamespace

    import pyarrow as pa
    import pyarrow.parquet as pq

    from riskcap.ingest.run import Staging, _write_rejects

    source = SimpleNamespace(columns=["practice_code"])  # only its columns are read, for an empty extract
    table = pa.table({"practice_code": ["=HYPERLINK(\"x\")", "A81001", "+1", "@SUM(A1)", None],
                      "row": [1, 2, 3, 4, 5], "reason": ["r"] * 5})
    (tmp_path / "out").mkdir()  # claimed by the run's manifest before the import stages into it
    staging = Staging(tmp_path / "out")
    _write_rejects({"gp/practices": [table]}, staging, {"gp/practices": source})
    written = staging.dir / "rejects" / "gp_practices_rejects"
    with open(written.with_suffix(".csv"), encoding="utf-8", newline="") as fh:
        codes = [row["practice_code"] for row in csv.DictReader(fh)]
    assert codes[:4] == ["'=HYPERLINK(\"x\")", "A81001", "+1", "'@SUM(A1)"]
    assert pq.read_table(written.with_suffix(".parquet")).column("practice_code").to_pylist()[0] == "=HYPERLINK(\"x\")"


@settings(max_examples=100, deadline=None)
@given(st.sets(st.integers(-50, 400), min_size=1, max_size=60), st.lists(st.integers(-60, 420), max_size=80),
       st.booleans())
def test_person_positions_match_the_reference(ids, wanted, sparse):
    """The id-indexed table (dense ids) and the binary search (sparse ids) find the same people."""
    scale = (1 << 40) if sparse else 1
    found = people([i * scale for i in ids])
    query = np.array([w * scale for w in wanted], dtype=np.int64)
    present = np.array([w % 7 != 3 for w in wanted], dtype=bool)
    reference = {int(v): k for k, v in enumerate(found.ids)}
    want = [reference.get(int(q), -1) if p else -1 for q, p in zip(query, present)]
    assert found.positions(query, present).tolist() == want
    if sparse and len(ids) > 1:
        assert found._table is None  # the binary search
    if not sparse:
        assert found._table is not None  # the table
