"""The round trip: a synthetic population written as raw extracts (``riskcap synth --extracts``),
then imported (``riskcap import``), gives back the same contract tables, table for table: the
same people with the same ids, registrations, registers and dates, settings, dates and costs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from riskcap.cli import main
from riskcap.data.dates import data_end
from riskcap.data.load import load_tables
from riskcap.errors import DataError, UnusablePath
from riskcap.ingest import ImportSettings, import_extracts
from riskcap.ingest.roundtrip import latest_day, write_extracts
from riskcap.synthetic import SynthConfig, write_population

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "import"
SHARED = HERE.parent.parent / "shared" / "data" / "codelists"
ACTIVITY_ORDER = ["person_id", "start_date", "setting", "end_date", "quantity", "cost_gbp", "primary_diagnosis"]


@pytest.fixture(scope="module")
def population(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("population")
    write_population(out, SynthConfig(people=4000, n_practices=3, seed=11, years=3))
    return out


def _import(extracts: Path, out: Path, codelists: Path, mapping: Path | None, **options):
    settings = ImportSettings(gp=extracts / "gp", hospital=extracts / "hospital", community=extracts / "community",
                              codelists=codelists, mapping=mapping, out=out, **options)
    return import_extracts(settings)


def _registrations(data: Path) -> pd.DataFrame:
    """The registration periods of a data folder: its registrations table, or one per person."""
    if (data / "registrations.parquet").exists():
        frame = pq.read_table(data / "registrations.parquet").to_pandas()
    else:
        frame = pq.read_table(data / "persons.parquet",
                              columns=["person_id", "practice_code", "registered_from", "registered_to"]).to_pandas()
    for column in ("registered_from", "registered_to"):
        frame[column] = pd.to_datetime(frame[column])
    return frame.astype({"practice_code": str}).reset_index(drop=True)


def assert_same_population(source: Path, imported: Path) -> None:
    as_of = np.datetime64(latest_day(source), "D").item()
    want, _ = load_tables(source, as_of=as_of)
    got, _ = load_tables(imported, as_of=as_of)
    for name in ("practices", "persons", "conditions", "activity"):
        a, b = getattr(want, name), getattr(got, name)
        assert list(a.columns) == list(b.columns), name
        if name == "activity":
            a = a.sort_values(ACTIVITY_ORDER, kind="stable", na_position="first").reset_index(drop=True)
            assert b.equals(b.sort_values(ACTIVITY_ORDER, kind="stable", na_position="first").reset_index(drop=True))
        for column in a.columns:
            left, right = a[column], b[column]
            if isinstance(left.dtype, pd.CategoricalDtype) or isinstance(right.dtype, pd.CategoricalDtype):
                left, right = left.astype(str), right.astype(str)
            pd.testing.assert_series_equal(left, right, check_names=False, check_exact=True, obj=f"{name}.{column}")
        assert len(b), name
    pd.testing.assert_frame_equal(_registrations(source), _registrations(imported))


def test_round_trip_with_test_codelists(population, tmp_path):
    extracts = tmp_path / "extracts"
    rows = write_extracts(population, extracts, FIXTURE / "codelists", FIXTURE / "codelists.txt", seed=3)
    assert rows["gp/events"] > 0 and rows["hospital/apc"] > 0
    report = _import(extracts, tmp_path / "data", FIXTURE / "codelists", FIXTURE / "codelists.txt",
                     partition_people=1500)
    assert report.partitions > 1
    assert_same_population(population, tmp_path / "data")
    files = {f["extract"]: f for f in report.files}
    # what the extracts hold beyond the contract is counted, not lost
    assert files["gp/events"]["unmapped"]["SNOMED CT code in no codelist of the mapping"] > 0
    assert files["hospital/apc"]["unmapped"]["maternity admission (admission method 31-32)"] > 0
    assert files["hospital/outpatients"]["unmapped"]
    assert all(f["rejected"] == 0 and f["rows_read"] == f["mapped"] + sum(f["unmapped"].values())
               for f in report.files)
    # costs the extracts left empty were priced back to what they were
    assert sum(priced["rows"] for priced in report.costs_priced.values()) > 0
    registers = {r["register"]: r for r in report.registers}
    assert registers["ckd"]["taken_off_by_exclude"] == 0  # exclusion codes come before the diagnosis


def test_round_trip_with_moves(population, tmp_path):
    """The generator's registration histories (moves between practices, gaps, leaving) come back
    period for period, and activity in a month of a move stays on each side of it."""
    extracts = tmp_path / "extracts"
    write_extracts(population, extracts, FIXTURE / "codelists", FIXTURE / "codelists.txt", seed=3)
    source = _registrations(population)
    movers = int((source.groupby("person_id").size() > 1).sum())
    assert movers > 100
    report = _import(extracts, tmp_path / "data", FIXTURE / "codelists", FIXTURE / "codelists.txt",
                     partition_people=1000)
    assert report.registrations["people_with_several_periods"] == movers
    assert_same_population(population, tmp_path / "data")


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs the published codelists in ../shared/data/codelists")
def test_round_trip_with_published_codelists(population, tmp_path):
    extracts = tmp_path / "extracts"
    write_extracts(population, extracts, SHARED, seed=5)
    report = _import(extracts, tmp_path / "data", SHARED, None)
    assert_same_population(population, tmp_path / "data")
    codes = {c["code"] for c in report.unmapped_codes}
    assert "271649006" in codes or "185317003" in codes  # journal noise, listed among the codes not mapped
    lists = {f["codelist"]: f for f in report.codelists["files"]}
    assert lists["nhsd-primary-care-domain-refsets/hf_cod/20250912"]["codes"] == 42
    assert all(len(f["sha256"]) == 64 for f in lists.values())


def test_same_input_same_bytes_whatever_the_partitions(population, tmp_path):
    extracts = tmp_path / "extracts"
    write_extracts(population, extracts, FIXTURE / "codelists", FIXTURE / "codelists.txt", seed=3)
    for name, people in (("a", 700), ("b", 100_000), ("c", 700)):
        _import(extracts, tmp_path / name, FIXTURE / "codelists", FIXTURE / "codelists.txt", partition_people=people)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "c").iterdir()) and "manifest.json" in names
    for name in (n for n in names if n != "manifest.json"):  # the manifest records times and paths
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name
        if name.endswith(".parquet"):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_extracts_do_not_depend_on_partitions(population, tmp_path):
    a = write_extracts(population, tmp_path / "a", FIXTURE / "codelists", FIXTURE / "codelists.txt", seed=3,
                       partition_people=900)
    b = write_extracts(population, tmp_path / "b", FIXTURE / "codelists", FIXTURE / "codelists.txt", seed=3)
    assert a == b
    for path in sorted((tmp_path / "a").rglob("*.parquet")):
        other = tmp_path / "b" / path.relative_to(tmp_path / "a")
        assert pq.read_table(path).equals(pq.read_table(other)), path


def test_person_level_files_are_owner_only(population, tmp_path):
    extracts = tmp_path / "extracts"
    write_extracts(population, extracts, FIXTURE / "codelists", FIXTURE / "codelists.txt", seed=3)
    assert oct(os.stat(extracts / "gp" / "events.parquet").st_mode & 0o777) == "0o600"
    _import(extracts, tmp_path / "data", FIXTURE / "codelists", FIXTURE / "codelists.txt")
    for name in ("persons", "registrations", "conditions", "activity"):
        assert oct(os.stat(tmp_path / "data" / f"{name}.parquet").st_mode & 0o777) == "0o600", name
    assert oct(os.stat(tmp_path / "data" / "import_report.json").st_mode & 0o777) == "0o600"
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".import-")]


def test_failed_import_leaves_nothing_and_refuses_foreign_folders(population, tmp_path):
    extracts = tmp_path / "extracts"
    write_extracts(population, extracts, FIXTURE / "codelists", FIXTURE / "codelists.txt", seed=3)
    apc = pq.read_table(extracts / "hospital" / "apc.parquet")
    methods = apc.column("admission_method").to_pylist()
    methods[-1] = "99"
    pq.write_table(apc.set_column(2, "admission_method", pa.array(methods)), extracts / "hospital" / "apc.parquet")
    with pytest.raises(DataError, match="unknown admission method"):
        _import(extracts, tmp_path / "new", FIXTURE / "codelists", FIXTURE / "codelists.txt", partition_people=1000)
    assert not (tmp_path / "new").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UnusablePath, match="holds no riskcap manifest.json"):
        _import(extracts, foreign, FIXTURE / "codelists", FIXTURE / "codelists.txt")
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_reimport_replaces_an_earlier_import(population, tmp_path):
    extracts = tmp_path / "extracts"
    write_extracts(population, extracts, FIXTURE / "codelists", FIXTURE / "codelists.txt", seed=3)
    out = tmp_path / "data"
    _import(extracts, out, FIXTURE / "codelists", FIXTURE / "codelists.txt", on_invalid="quarantine")
    assert (out / "rejects" / "hospital_apc_rejects.parquet").exists()
    _import(extracts, out, FIXTURE / "codelists", FIXTURE / "codelists.txt")
    assert not (out / "rejects" / "hospital_apc_rejects.parquet").exists()  # not written by this run
    assert_same_population(population, out)


def test_synth_writes_extracts(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["synth", "--out", str(tmp_path / "synth"), "--people", "1500", "--seed", "2",
                                  "--years", "2", "--extracts", str(tmp_path / "ex"),
                                  "--codelists", str(FIXTURE / "codelists")], catch_exceptions=False)
    # the shipped mapping names real codelists, which the made-up folder lacks
    assert result.exit_code == 2, result.output
    assert "not found" in result.output
    assert runner.invoke(main, ["synth", "--out", str(tmp_path / "s2"), "--extracts", str(tmp_path / "e2")]).exit_code == 2


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs the published codelists in ../shared/data/codelists")
def test_synth_then_import_on_the_command_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["synth", "--out", str(tmp_path / "synth"), "--people", "1500", "--seed", "2",
                                  "--years", "2", "--extracts", str(tmp_path / "ex"), "--codelists", str(SHARED)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["import", "--gp", str(tmp_path / "ex" / "gp"), "--hospital",
                                  str(tmp_path / "ex" / "hospital"), "--community", str(tmp_path / "ex" / "community"),
                                  "--codelists", str(SHARED), "--out", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "Registers (prevalence among people registered" in result.output
    assert (tmp_path / "data" / "manifest.json").exists()
    # the import declares the extract date where riskcap.data.dates reads it: the same data end
    assert data_end(tmp_path / "data").source == "extract_date in extract.json"
    assert data_end(tmp_path / "data").date == data_end(tmp_path / "synth").date
    assert_same_population(tmp_path / "synth", tmp_path / "data")


def test_reimport_never_touches_files_outside_out(population, tmp_path):
    """A tampered report of an earlier import cannot make the next one delete files elsewhere
    (the manifest, not the report, says what an earlier run wrote), and a rejects folder linked
    out of --out is refused (riskcap.manifest's claim of a run folder)."""
    import json

    extracts = tmp_path / "extracts"
    write_extracts(population, extracts, FIXTURE / "codelists", FIXTURE / "codelists.txt", seed=3)
    out = tmp_path / "data"
    _import(extracts, out, FIXTURE / "codelists", FIXTURE / "codelists.txt")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    report = json.loads((out / "import_report.json").read_text())
    report["outputs"] += [str(victim), "../victim.txt"]
    (out / "import_report.json").write_text(json.dumps(report))
    _import(extracts, out, FIXTURE / "codelists", FIXTURE / "codelists.txt")
    assert victim.read_text() == "keep me"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "rejects").symlink_to(elsewhere)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(UnusablePath, match=r"holds a symbolic link \(rejects\)"):
        _import(extracts, out, FIXTURE / "codelists", FIXTURE / "codelists.txt", on_invalid="quarantine")
    assert list(elsewhere.iterdir()) == []
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing replaced
