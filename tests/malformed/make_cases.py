"""Build the malformed-input corpus from the hand-written valid dataset in ``valid/``.

Each case is a complete data folder ``<case>/`` (so ``riskcap validate --data
tests/malformed/<case>`` shows its message) made by one mutation of ``valid/``; the
expected message fragments live in ``cases.yaml``. tests/test_validate_corpus.py checks
that this script reproduces the committed folders byte for byte.

Regenerate with::

    python tests/malformed/make_cases.py
"""
from __future__ import annotations

import csv
import io
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
VALID = HERE / "valid"
TABLE_NAMES = ("practices", "persons", "conditions", "activity")


def read(table: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(VALID / f"{table}.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def write(folder: Path, table: str, header: list[str], rows: list[dict[str, str]], encoding="utf-8") -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (folder / f"{table}.csv").write_bytes(buffer.getvalue().encode(encoding))


def edit(table: str, changes: dict[int, dict[str, str]] | None = None, append: list[dict] | None = None,
         drop_column: str | None = None):
    """A mutation that sets fields of 1-based data rows, appends rows or drops a column."""
    def mutate(folder: Path) -> None:
        header, rows = read(table)
        for number, fields in (changes or {}).items():
            rows[number - 1].update(fields)
        rows += [dict(zip(header, [""] * len(header))) | r for r in (append or [])]
        if drop_column:
            header.remove(drop_column)
            for r in rows:
                del r[drop_column]
        write(folder, table, header, rows)
    return mutate


def chain(*mutations):
    def mutate(folder: Path) -> None:
        for m in mutations:
            m(folder)
    return mutate


def remove(table: str):
    def mutate(folder: Path) -> None:
        (folder / f"{table}.csv").unlink()
    return mutate


def empty(table: str):
    def mutate(folder: Path) -> None:
        header, _ = read(table)
        write(folder, table, header, [])
    return mutate


def _valid_parquet(table: str) -> pa.Table:
    return pacsv.read_csv(VALID / f"{table}.csv")


def truncated_parquet(table: str):
    def mutate(folder: Path) -> None:
        (folder / f"{table}.csv").unlink()
        sink = pa.BufferOutputStream()
        pq.write_table(_valid_parquet(table), sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        (folder / f"{table}.parquet").write_bytes(data[: len(data) // 2])
    return mutate


def truncated_csv(table: str):
    def mutate(folder: Path) -> None:
        data = (VALID / f"{table}.csv").read_bytes()
        (folder / f"{table}.csv").write_bytes(data[: data.rindex(b",", 0, len(data) - 40)])
    return mutate


def latin1(table: str, row: int, fields: dict[str, str]):
    def mutate(folder: Path) -> None:
        header, rows = read(table)
        rows[row - 1].update(fields)
        write(folder, table, header, rows, encoding="latin-1")
    return mutate


def parquet_with(table: str, column: str, values):
    """Write the table as parquet with one column replaced by ``values`` (any arrow type)."""
    def mutate(folder: Path) -> None:
        (folder / f"{table}.csv").unlink()
        t = _valid_parquet(table)
        t = t.set_column(t.column_names.index(column), column, pa.array(values))
        pq.write_table(t, folder / f"{table}.parquet", compression="zstd")
    return mutate


def parquet_dataset(table: str, changes: dict[int, dict[str, str]]):
    """Write the table as a two-file parquet dataset directory, with edits applied first."""
    def mutate(folder: Path) -> None:
        edit(table, changes)(folder)
        t = pacsv.read_csv(folder / f"{table}.csv")
        (folder / f"{table}.csv").unlink()
        (folder / table).mkdir()
        half = t.num_rows // 2
        pq.write_table(t.slice(0, half), folder / table / "part-0.parquet", compression="zstd")
        pq.write_table(t.slice(half), folder / table / "part-1.parquet", compression="zstd")
    return mutate


def add_table(table: str, header: list[str], rows: list[list[str]]):
    """Add an optional table (contract v2) as CSV."""
    def mutate(folder: Path) -> None:
        write(folder, table, header, [dict(zip(header, r)) for r in rows])
    return mutate


def registrations_from_persons(skip: set[str]):
    """A registrations table of one period per person, as persons says, but for the ``skip`` ids."""
    def mutate(folder: Path) -> None:
        _, persons = read("persons")
        header = ["person_id", "practice_code", "registered_from", "registered_to"]
        write(folder, "registrations", header, [{k: p[k] for k in header} for p in persons if p["person_id"] not in skip])
    return mutate


def add_columns(table: str, columns: dict[str, dict[int, str]]):
    """Add columns to a table: for each, its value in 1-based data rows (others empty)."""
    def mutate(folder: Path) -> None:
        header, rows = read(table)
        for name, values in columns.items():
            header.append(name)
            for number, row in enumerate(rows, start=1):
                row[name] = values.get(number, "")
        write(folder, table, header, rows)
    return mutate


def no_change(folder: Path) -> None:
    """The valid data, checked with a stricter --as-of (see cases.yaml)."""


CASES = {
    # file level
    "missing_file": remove("activity"),
    "missing_column": edit("persons", drop_column="sex"),
    "empty_table": empty("conditions"),
    "truncated_parquet": truncated_parquet("persons"),
    "truncated_csv": truncated_csv("activity"),
    "non_utf8_csv": latin1("practices", 2, {"practice_name": "Caf\u00e9 Lane Surgery"}),
    "wrong_type_whole_column": edit("practices", {1: {"list_size": "four"}, 2: {"list_size": "three"},
                                                  3: {"list_size": "n/a"}}),
    "int_in_date_column_parquet": parquet_with("persons", "birth_date", list(range(10))),
    # types and missing values
    "text_in_int_column": edit("persons", {4: {"imd_decile": "nine"}}),
    "decimal_in_int_column": edit("conditions", {2: {"person_id": "1.5"}}),
    "bad_date_format": edit("activity", {2: {"start_date": "03/11/2022"}}),
    "bad_bool": edit("persons", {6: {"care_home": "maybe"}}),
    "text_in_float_column": edit("activity", {5: {"cost_gbp": "£120"}}),
    "missing_value": edit("persons", {3: {"sex": ""}}),
    # keys and codes
    "duplicate_person_id": edit("persons", {10: {"person_id": "9"}}),
    "duplicate_practice_code": edit("practices", {3: {"practice_code": "A81002"}}),
    "duplicate_condition": edit("conditions", append=[{"person_id": "1", "condition": "hypertension",
                                                       "diagnosed_on": "2006-01-01"}]),
    "nhs_mod11": edit("persons", {1: {"nhs_number": "4820096754"}}),
    "nhs_not_10_digits": edit("persons", {2: {"nhs_number": "446 468 0097"}, 5: {"nhs_number": "40328457"}}),
    "unknown_practice_code": edit("persons", {5: {"practice_code": "Z99999"}}),
    "unknown_person": edit("activity", {5: {"person_id": "99"}}),
    "unknown_condition": edit("conditions", {5: {"condition": "diabetes_type2"}}),
    "unknown_setting": edit("activity", {2: {"setting": "A&E"}}),
    "sex_out_of_range": edit("persons", {7: {"sex": "U"}}),
    "imd_out_of_range": edit("persons", {2: {"imd_decile": "0"}, 8: {"imd_decile": "11"}}),
    # values and dates
    "negative_cost": edit("activity", {3: {"cost_gbp": "-42.00"}}),
    "negative_quantity": edit("activity", {4: {"quantity": "-6"}}),
    "negative_list_size": edit("practices", {2: {"list_size": "-3"}}),
    "end_before_start": edit("activity", {1: {"end_date": "2022-10-30"}}),
    "future_activity": edit("activity", {9: {"start_date": "2099-08-01", "end_date": "2099-08-02"}}),
    "future_birth_date": edit("persons", {4: {"birth_date": "2031-07-01"}}),
    "future_relative_to_as_of": no_change,
    "died_before_birth": edit("persons", {9: {"died_on": "1930-01-01"}}),
    "registered_to_before_from": edit("persons", {3: {"registered_to": "2009-08-31"}}),
    "registered_before_birth": edit("persons", {4: {"registered_from": "2019-06-01"}}),
    "diagnosed_before_birth": edit("conditions", {7: {"diagnosed_on": "1955-04-01"}}),
    "activity_before_birth": edit("activity", {12: {"start_date": "2018-09-09", "end_date": "2018-09-09"}}),
    # more than five failing rows, a parquet dataset, and several problems at once
    "many_bad_rows": edit("activity", {i: {"setting": "gp_visit"} for i in range(1, 8)}),
    "parquet_dataset_bad_row": parquet_dataset("activity", {20: {"cost_gbp": "-42.00"}}),
    # contract v2's optional tables
    "registrations_overlap": add_table("registrations", ["person_id", "practice_code", "registered_from", "registered_to"], [
        ["1", "A81001", "1990-01-15", "2000-01-01"], ["1", "A81001", "1999-06-01", ""],
        ["2", "Z99999", "1995-06-01", ""]]),
    "person_without_registrations": registrations_from_persons({"3"}),
    "practices_bad_opened_on_and_pcn_code": add_columns("practices", {
        "opened_on": {1: "2024-31-12", 2: "2030-01-01"}, "pcn_code": {3: "=HYPERLINK(\"x\")"}}),
    "practice_changes_merge_without_target": add_table(
        "practice_changes", ["practice_code", "change", "effective_on", "into_practice_code"],
        [["A81002", "merge", "2024-01-01", ""], ["B82005", "split", "2024-01-01", ""]]),
    "several_problems": chain(
        edit("persons", {1: {"nhs_number": "4820096754"}, 7: {"sex": "U"}}),
        edit("conditions", {5: {"condition": "diabetes_type2"}}),
        edit("activity", {3: {"cost_gbp": "-42.00"}, 5: {"person_id": "99"}}),
    ),
}


def build(root: Path = HERE) -> list[str]:
    """Write every case folder under ``root`` (replacing old ones); return the case names."""
    for name, mutate in CASES.items():
        folder = root / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for table in TABLE_NAMES:
            shutil.copyfile(VALID / f"{table}.csv", folder / f"{table}.csv")
        mutate(folder)
    return list(CASES)


if __name__ == "__main__":
    names = build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"wrote {len(names)} cases")
