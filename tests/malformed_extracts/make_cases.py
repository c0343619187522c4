"""Build the malformed-extract corpus from the hand-written valid extracts in ``valid/``.

Each case is a complete set of extract folders ``<case>/gp``, ``<case>/hospital`` and
``<case>/community`` (plus, for codelist cases, ``<case>/mapping.txt``) made by one mutation of
``valid/``, so ``riskcap import --gp tests/malformed_extracts/<case>/gp ...`` shows its message;
the expected message fragments live in ``cases.yaml``. The codelists are the made-up test lists
in ``tests/fixtures/import``. tests/test_import_corpus.py checks that this script reproduces the
committed folders byte for byte.

Regenerate with::

    python tests/malformed_extracts/make_cases.py
"""
from __future__ import annotations

import csv
import io
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VALID = HERE / "valid"
MAPPING = HERE.parent / "fixtures" / "import" / "codelists.txt"
FOLDERS = ("gp", "hospital", "community")


def read(extract: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(VALID / f"{extract}.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def write(folder: Path, extract: str, header: list[str], rows: list[dict[str, str]], encoding="utf-8") -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (folder / f"{extract}.csv").write_bytes(buffer.getvalue().encode(encoding))


def edit(extract: str, changes: dict[int, dict[str, str]] | None = None, append: list[dict] | None = None,
         copy_row: int | None = None, drop_column: str | None = None, encoding: str = "utf-8"):
    """A mutation of ``extract`` (e.g. "hospital/apc"): set fields of 1-based data rows, append
    rows (or a copy of row ``copy_row``), drop a column, or save in another encoding."""
    def mutate(folder: Path) -> None:
        header, rows = read(extract)
        for number, fields in (changes or {}).items():
            rows[number - 1].update(fields)
        rows += [dict(zip(header, [""] * len(header))) | r for r in (append or [])]
        if copy_row is not None:
            rows.append(dict(rows[copy_row - 1]))
        if drop_column:
            header.remove(drop_column)
            for r in rows:
                del r[drop_column]
        write(folder, extract, header, rows, encoding)
    return mutate


def remove(extract: str):
    def mutate(folder: Path) -> None:
        (folder / f"{extract}.csv").unlink()
    return mutate


def empty(extract: str):
    def mutate(folder: Path) -> None:
        header, _ = read(extract)
        write(folder, extract, header, [])
    return mutate


def mapping(*lines: str, replace: dict[str, str] | None = None):
    """A case mapping: the test mapping with lines replaced (old -> new) and lines added."""
    def mutate(folder: Path) -> None:
        text = MAPPING.read_text(encoding="utf-8")
        for old, new in (replace or {}).items():
            assert old in text, old
            text = text.replace(old, new)
        (folder / "mapping.txt").write_text(text + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    return mutate


CASES = {
    # file level: nothing can be imported
    "missing_registrations": remove("gp/registrations"),
    "empty_registrations": empty("gp/registrations"),
    "missing_column": edit("hospital/apc", drop_column="admission_method"),
    "non_utf8_csv": edit("gp/practices", {2: {"practice_name": "Caf\u00e9 Lane Surgery"}}, encoding="latin-1"),
    "missing_codelist": mapping("asthma  include  riskcap-test/asthma-extra/v1"),
    "codelist_version_mismatch": mapping(replace={"riskcap-test/hypertension/v1": "riskcap-test/hypertension/v2"}),
    # GP registrations
    "registration_periods_overlap": edit("gp/registrations", {2: {"registered_to": "2011-01-01"}}),
    "registered_to_before_from": edit("gp/registrations", {4: {"registered_to": "2009-08-31"}}),
    "registered_before_birth": edit("gp/registrations", {5: {"registered_from": "2019-06-01"}}),
    "registered_after_death": edit("gp/registrations", {10: {"registered_from": "2024-01-01"}}),
    "conflicting_sex": edit("gp/registrations", {3: {"sex": "F"}}),
    "unknown_practice_code": edit("gp/registrations", {5: {"practice_code": "Z99999"}}),
    "duplicate_practice_code": edit("gp/practices", {3: {"practice_code": "A81002"}}),
    "imd_out_of_range": edit("gp/registrations", {7: {"imd_decile": "11"}}),
    "nhs_mod11": edit("gp/registrations", {1: {"nhs_number": "4820096754"}}),
    # GP journal
    "snomed_code_in_no_list": edit("gp/events", append=[{"person_id": "3", "snomed_code": "123456789",
                                                         "event_date": "2020-01-01"}]),
    "snomed_not_a_code": edit("gp/events", {4: {"snomed_code": "XaIfG"}}),
    "event_before_birth": edit("gp/events", {1: {"event_date": "1900-01-01"}}),
    "future_event": edit("gp/events", {2: {"event_date": "2099-01-01"}}),
    "text_person_id": edit("gp/events", {3: {"person_id": "P1"}}),
    # GP activity
    "bad_date_format": edit("gp/appointments", {1: {"appointment_date": "31/02/2023"}}),
    "negative_items": edit("gp/prescriptions", {1: {"items": "-2"}}),
    # admitted patient care
    "unknown_admission_method": edit("hospital/apc", {1: {"admission_method": "99"}}),
    "unknown_patient_classification": edit("hospital/apc", {3: {"patient_classification": "7"}}),
    "bad_icd10": edit("hospital/apc", {3: {"primary_diagnosis": "17.1M"}}),
    "discharge_before_admission": edit("hospital/apc", {1: {"discharge_date": "2022-10-30"}}),
    "duplicate_spell": edit("hospital/apc", copy_row=1),
    "admission_before_birth": edit("hospital/apc", {3: {"admission_date": "1950-01-01",
                                                        "discharge_date": "1950-01-02"}}),
    "maternity_admission": edit("hospital/apc", append=[{
        "spell_id": "S11", "person_id": "7", "admission_method": "32", "patient_classification": "1",
        "admission_date": "2024-02-01", "discharge_date": "2024-02-02", "primary_diagnosis": "O80",
        "cost_gbp": "1200.00"}]),
    # outpatients and A&E
    "unknown_attended_code": edit("hospital/outpatients", {1: {"attended": "9"}}),
    "unknown_first_attendance": edit("hospital/outpatients", {2: {"first_attendance": "8"}}),
    "duplicate_attendance": edit("hospital/outpatients", copy_row=1),
    "negative_cost": edit("hospital/ae", {1: {"cost_gbp": "-180.00"}}),
}


def build(root: Path = HERE) -> list[str]:
    """Write every case folder under ``root`` (replacing old ones); return the case names."""
    for name, mutate in CASES.items():
        folder = root / name
        if folder.exists():
            shutil.rmtree(folder)
        for source in FOLDERS:
            shutil.copytree(VALID / source, folder / source)
        mutate(folder)
    return list(CASES)


if __name__ == "__main__":
    names = build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"wrote {len(names)} cases")
