"""Contract tables back to raw extracts, in the shapes ``riskcap import`` reads: the round trip.

:func:`contract_to_extracts` is a pure function of one partition's contract tables (whole
people), the codelists, the unit-cost table and a seed: each register entry becomes a real
code drawn from its codelists, each activity row the extract row an NHS system would hold for
it (admission methods, patient classifications, attendance codes, ICD-10 written in the
different forms extracts use), with costs left empty where the unit-cost table gives them back.
It adds what real extracts hold and the contract does not, so the import must count and set it
aside: journal codes in no codelist, exclusion codes (before the diagnosis they would undo, or
for people without the register), repeated codes, maternity and other admissions, regular
attenders, missed and administrative outpatient appointments, missed GP appointments.
Everything is drawn from a hash of (seed, person, row), so the extracts do not depend on how
the population is partitioned.

``import_extracts`` of these extracts gives back the same contract tables (rows in the import's
order): the test of the import (tests/test_import_roundtrip.py).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskcap.data.read import days, read_raw, read_table, table_path
from riskcap.data.write import OWNER_ONLY, ParquetRowsWriter, write_parquet
from riskcap.errors import ConfigError, DataError
from riskcap.ingest.codelists import Codelists, load_codelists
from riskcap.ingest.costs import UnitCosts, load_unit_costs
from riskcap.ingest.hospital import ELECTIVE, EMERGENCY
from riskcap.schema import CONDITION_CODES

#: Real SNOMED CT concepts common in GP journals and in no register's list (observations,
#: findings, encounters); any that a mapping's codelists do hold are left out.
NOISE_CODES = (
    271649006,  # systolic blood pressure
    271650006,  # diastolic blood pressure
    60621009,  # body mass index
    27113001,  # body weight
    50373000,  # body height
    77176002,  # smoker
    8517006,  # ex-smoker
    266919005,  # never smoked tobacco
    185317003,  # telephone encounter
    390906007,  # follow-up encounter
    33747003,  # glucose measurement, blood
    1000731000000107,  # serum creatinine level
)
_NULL = np.iinfo(np.int32).min
_DATES = ("start_date", "end_date")


# --- deterministic draws ---------------------------------------------------------------------

def _mix(*keys) -> np.ndarray:
    """A 64-bit hash of each row's keys (a splitmix64 step per key): the source of every draw."""
    arrays = [np.asarray(k) for k in keys]
    h = np.zeros(np.broadcast_shapes(*(a.shape for a in arrays)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for a in arrays:
            h = h ^ (a if a.dtype == np.uint64 else a.astype(np.int64).view(np.uint64))
            h = h + np.uint64(0x9E3779B97F4A7C15)
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(31))
    return h


def _uniform(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _pick(h: np.ndarray, n: int) -> np.ndarray:
    return (h % np.uint64(n)).astype(np.int64)


def _between(h: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A day in [lo, hi] (lo where hi < lo)."""
    span = np.maximum(hi - lo, 0).astype(np.int64) + 1
    return (lo + (h % span.astype(np.uint64)).astype(np.int64)).astype(np.int32)


# --- code pools ---------------------------------------------------------------------------------

def _pools(codelists: Codelists) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Per register, codes that put a person on it and on nothing else (include pool) and codes
    that only exclude from it (exclude pool); and noise codes in no list."""
    include, exclude = {}, {}
    codes, masks = codelists.codes, codelists.masks
    for register in codelists.registers:
        inc = np.uint64(codelists.include_bits[register])
        exc = np.uint64(codelists.exclude_bits.get(register, 0))
        include[register] = codes[((masks & inc) != 0) & ((masks & ~inc) == 0)]
        if not len(include[register]):
            raise ConfigError(f"{register}: every code of its include lists is also in another list; "
                             f"cannot draw a code that maps to {register} alone")
        if exc:
            exclude[register] = codes[((masks & exc) != 0) & ((masks & ~exc) == 0)]
    noise = np.array([c for c in NOISE_CODES if codelists.lookup(np.array([c]))[0] == 0], dtype=np.int64)
    return include, exclude, noise


# --- the conversion -------------------------------------------------------------------------------

def contract_to_extracts(tables: dict[str, pd.DataFrame], codelists: Codelists, unit_costs: UnitCosts,
                         seed: int, latest: int) -> dict[str, pd.DataFrame]:
    """The extracts holding one partition of a population (whole people).

    ``tables``: the contract's ``persons``, ``conditions`` and ``activity`` (pandas, contract
    dtypes) and optionally ``registrations``; ``latest``: the population's last day (int32
    days), the latest day any extract row may have. Returns extract key -> frame (gp/...,
    hospital/..., community/...), each sorted by person_id.
    """
    persons, conditions, activity = tables["persons"], tables["conditions"], tables["activity"]
    pid = persons["person_id"].to_numpy(np.int64)
    birth = days(persons["birth_date"])
    died = days(persons["died_on"])
    last_day = np.where(died == _NULL, latest, np.minimum(died, latest)).astype(np.int32)
    out = {"gp/registrations": _registrations(persons, tables.get("registrations"), seed)}
    out["gp/events"] = _events(pid, birth, last_day, conditions, codelists, seed)
    out.update(_activity(pid, birth, last_day, persons["sex"].to_numpy(dtype=object), activity, unit_costs, seed))
    return out


def _registrations(persons: pd.DataFrame, registrations: pd.DataFrame | None, seed: int) -> pd.DataFrame:
    attributes = persons[["person_id", "sex", "birth_date", "imd_decile", "died_on", "care_home", "opted_out",
                          "nhs_number"]]
    if registrations is None:
        periods = persons[["person_id", "practice_code", "registered_from", "registered_to"]]
    else:
        periods = registrations[["person_id", "practice_code", "registered_from", "registered_to"]]
    frame = periods.merge(attributes, on="person_id", how="left", sort=False)
    pid = frame["person_id"].to_numpy(np.int64)
    numeric = _uniform(_mix(seed, 11, pid)) < 0.1  # some systems send the Data Dictionary's 1 and 2
    frame["sex"] = np.where(numeric, frame["sex"].map({"M": "1", "F": "2"}), frame["sex"])
    return frame[["person_id", "practice_code", "registered_from", "registered_to", "sex", "birth_date",
                  "imd_decile", "died_on", "care_home", "opted_out", "nhs_number"]]


def _events(pid, birth, last_day, conditions: pd.DataFrame, codelists: Codelists, seed: int) -> pd.DataFrame:
    include, exclude, noise = _pools(codelists)
    index = {c: k for k, c in enumerate(CONDITION_CODES)}
    c_pid = conditions["person_id"].to_numpy(np.int64)
    c_reg = conditions["condition"].astype(str).map(index).to_numpy(np.int64)
    c_day = days(conditions["diagnosed_on"])
    pos = np.searchsorted(pid, c_pid)
    person_rows, code_rows, day_rows = [], [], []

    def add(p, codes, when):
        person_rows.append(p)
        code_rows.append(codes)
        day_rows.append(when)

    for register, pool in include.items():
        j = index[register]
        on = c_reg == j
        if not on.any():
            continue
        p, d, k = c_pid[on], c_day[on], pos[on]
        add(p, pool[_pick(_mix(seed, 21, j, p), len(pool))], d)
        again = _uniform(_mix(seed, 22, j, p)) < 0.5
        add(p[again], pool[_pick(_mix(seed, 23, j, p[again]), len(pool))],
            _between(_mix(seed, 24, j, p[again]), d[again], last_day[k[again]]))
        if register in exclude and len(exclude[register]):
            ex = exclude[register]
            before = (_uniform(_mix(seed, 25, j, p)) < 0.3) & (d > birth[k])
            add(p[before], ex[_pick(_mix(seed, 26, j, p[before]), len(ex))],
                _between(_mix(seed, 27, j, p[before]), birth[k[before]], d[before] - 1))
    for register, ex in exclude.items():  # exclusion codes of people not on the register
        j = index[register]
        if not len(ex):
            continue
        has = np.zeros(len(pid), dtype=bool)
        has[pos[c_reg == j]] = True
        lone = ~has & (_uniform(_mix(seed, 28, j, pid)) < 0.02)
        add(pid[lone], ex[_pick(_mix(seed, 29, j, pid[lone]), len(ex))],
            _between(_mix(seed, 30, j, pid[lone]), birth[lone], last_day[lone]))
    if len(noise):
        for draw in range(2):
            chosen = _uniform(_mix(seed, 31, draw, pid)) < (0.3 if draw == 0 else 0.1)
            add(pid[chosen], noise[_pick(_mix(seed, 32, draw, pid[chosen]), len(noise))],
                _between(_mix(seed, 33, draw, pid[chosen]), birth[chosen], last_day[chosen]))
    person = np.concatenate(person_rows) if person_rows else np.zeros(0, np.int64)
    code = np.concatenate(code_rows) if code_rows else np.zeros(0, np.int64)
    day = np.concatenate(day_rows).astype(np.int32) if day_rows else np.zeros(0, np.int32)
    order = np.lexsort((code, day, person))
    return pd.DataFrame({"person_id": person[order], "snomed_code": code[order].astype(str),
                         "event_date": day[order].astype("datetime64[D]")})


def _blank(cost: np.ndarray, price_pence: np.ndarray) -> np.ndarray:
    """Costs as given, empty (NaN) where the unit-cost price gives them back exactly."""
    return np.where(np.rint(cost * 100).astype(np.int64) == price_pence, np.nan, cost)


def _activity(pid, birth, last_day, sex, activity: pd.DataFrame, unit_costs: UnitCosts, seed: int) -> dict:
    price = unit_costs.pence
    a_pid = activity["person_id"].to_numpy(np.int64)
    setting = activity["setting"].astype(str).to_numpy(dtype=object)
    start = days(activity["start_date"])
    end = days(activity["end_date"])
    quantity = activity["quantity"].to_numpy(np.int64)
    cost = activity["cost_gbp"].to_numpy(np.float64)
    diag = activity["primary_diagnosis"].astype(object).where(activity["primary_diagnosis"].notna(), None) \
        .to_numpy(dtype=object)
    first = np.ones(len(a_pid), dtype=bool)
    first[1:] = a_pid[1:] != a_pid[:-1]
    ordinal = np.arange(len(a_pid)) - np.maximum.accumulate(np.where(first, np.arange(len(a_pid)), 0))
    h = _mix(seed, 40, a_pid, ordinal)
    pos = np.searchsorted(pid, a_pid)
    out = {}
    for name in ("gp", "outpatient", "ae", "emergency_inpatient", "elective_inpatient", "day_case"):
        rows = setting == name
        if rows.any() and (quantity[rows] != 1).any():
            raise DataError(f"{name} activity with a quantity other than 1: the extracts hold one row per "
                             f"{'spell' if 'inpatient' in name or name == 'day_case' else 'attendance'}")

    def dates(x):
        return np.where(x == _NULL, np.datetime64("NaT", "D"), x.astype("datetime64[D]"))

    # GP appointments, with missed ones
    gp = setting == "gp"
    miss = _uniform(_mix(seed, 41, pid)) < 0.05
    miss_day = _between(_mix(seed, 42, pid[miss]), birth[miss], last_day[miss])
    out["gp/appointments"] = _sorted(pd.DataFrame({
        "person_id": np.concatenate([a_pid[gp], pid[miss]]),
        "appointment_date": dates(np.concatenate([start[gp], miss_day])),
        "attended": np.concatenate([np.ones(gp.sum(), bool), np.zeros(miss.sum(), bool)]),
        "cost_gbp": np.concatenate([_blank(cost[gp], price["gp"]), np.full(miss.sum(), np.nan)]),
    }), "appointment_date")
    rx = setting == "prescribing"
    out["gp/prescriptions"] = pd.DataFrame({
        "person_id": a_pid[rx], "issue_date": dates(start[rx]), "items": quantity[rx],
        "cost_gbp": _blank(cost[rx], quantity[rx] * price["prescribing"])})

    # admitted patient care, with maternity, other and regular-attender spells
    inpatient = np.isin(setting, ["emergency_inpatient", "elective_inpatient", "day_case"])
    emergency = setting[inpatient] == "emergency_inpatient"
    hi = h[inpatient]
    method = np.where(emergency, np.array(EMERGENCY, dtype=object)[_pick(_mix(hi, 1), len(EMERGENCY))],
                      np.array(ELECTIVE, dtype=object)[_pick(_mix(hi, 2), len(ELECTIVE))])
    classification = np.where(setting[inpatient] == "day_case", "2", "1").astype(object)
    keys = setting[inpatient]
    spell_price = np.array([price[k] for k in keys], dtype=np.int64)
    apc = pd.DataFrame({
        "spell_id": [f"S{p}-{o}" for p, o in zip(a_pid[inpatient], ordinal[inpatient])],
        "person_id": a_pid[inpatient], "admission_method": method, "patient_classification": classification,
        "admission_date": dates(start[inpatient]), "discharge_date": dates(end[inpatient]),
        "primary_diagnosis": _icd10_forms(diag[inpatient], _mix(hi, 3)),
        "cost_gbp": _blank(cost[inpatient], spell_price)})
    extra = []
    for salt, share, methods_, klass, code in ((51, 0.01, ("31", "32"), "1", "O80"), (52, 0.005, ("81", "82", "83"), "1",
                                                                                     "Z38.0"),
                                               (53, 0.005, ELECTIVE, "3", "Z51.1")):
        chosen = _uniform(_mix(seed, salt, pid)) < share
        if salt == 51:
            chosen &= sex == "F"
        p = pid[chosen]
        day = _between(_mix(seed, salt, 1, p), birth[chosen], last_day[chosen])
        leave = np.minimum(day + _pick(_mix(seed, salt, 2, p), 4), last_day[chosen])
        extra.append(pd.DataFrame({
            "spell_id": [f"X{salt}-{q}" for q in p], "person_id": p,
            "admission_method": np.array(methods_, dtype=object)[_pick(_mix(seed, salt, 3, p), len(methods_))],
            "patient_classification": klass, "admission_date": dates(day), "discharge_date": dates(leave),
            "primary_diagnosis": code, "cost_gbp": np.round(600 + _pick(_mix(seed, salt, 4, p), 200000) / 100, 2)}))
    out["hospital/apc"] = _sorted(pd.concat([apc, *extra], ignore_index=True), "admission_date")

    # outpatients, with missed appointments and administrative events
    op = setting == "outpatient"
    ho = h[op]
    first_code = np.array(["1", "2", "3", "4"], dtype=object)[_pick(_mix(ho, 4), 4)]
    op_price = np.where(np.isin(first_code, ["1", "3"]), price["outpatient_first"], price["outpatient_follow_up"])
    dna = _uniform(_mix(seed, 43, pid)) < 0.05
    admin = _uniform(_mix(seed, 44, pid)) < 0.01
    extra_pid = np.concatenate([pid[dna], pid[admin]])
    extra_day = np.concatenate([_between(_mix(seed, 45, pid[dna]), birth[dna], last_day[dna]),
                                _between(_mix(seed, 46, pid[admin]), birth[admin], last_day[admin])])
    out["hospital/outpatients"] = _sorted(pd.DataFrame({
        "person_id": np.concatenate([a_pid[op], extra_pid]),
        "appointment_date": dates(np.concatenate([start[op], extra_day])),
        "attended": np.concatenate([np.array(["5", "6"], dtype=object)[_pick(_mix(ho, 5), 2)],
                                    np.array(["3", "2"], dtype=object)[_pick(_mix(seed, 47, pid[dna]), 2)],
                                    np.full(admin.sum(), "5", dtype=object)]),
        "first_attendance": np.concatenate([first_code, np.full(dna.sum(), "2", dtype=object),
                                            np.full(admin.sum(), "5", dtype=object)]),
        "attendance_id": [f"A{p}-{o}" for p, o in zip(a_pid[op], ordinal[op])] +
                         [f"D{p}" for p in pid[dna]] + [f"M{p}" for p in pid[admin]],
        "cost_gbp": np.concatenate([_blank(cost[op], op_price), np.full(len(extra_pid), np.nan)]),
    }), "appointment_date")
    ae = setting == "ae"
    out["hospital/ae"] = pd.DataFrame({"person_id": a_pid[ae], "arrival_date": dates(start[ae]),
                                       "cost_gbp": _blank(cost[ae], np.full(ae.sum(), price["ae"]))})
    for name in ("community", "mental_health"):
        rows = setting == name
        out[f"community/{name}"] = pd.DataFrame({
            "person_id": a_pid[rows], "contact_date": dates(start[rows]), "contacts": quantity[rows],
            "cost_gbp": _blank(cost[rows], quantity[rows] * price[name])})
    care = setting == "social_care"
    out["community/social_care"] = pd.DataFrame({
        "person_id": a_pid[care], "period_start": dates(start[care]), "hours": quantity[care],
        "cost_gbp": _blank(cost[care], quantity[care] * price["social_care"])})
    del pos
    return out


def _icd10_forms(codes: np.ndarray, h: np.ndarray) -> np.ndarray:
    """ICD-10 codes written the ways extracts write them: dotted, without the dot, lower case, or
    (3-character codes) padded with X as HES does."""
    form = _pick(h, 4)
    out = np.empty(len(codes), dtype=object)
    for i, (code, f) in enumerate(zip(codes, form)):
        if code is None:
            out[i] = None
        elif f == 1:
            out[i] = code.replace(".", "")
        elif f == 2:
            out[i] = code.lower()
        elif f == 3:
            out[i] = code + "X" if len(code) == 3 else code.replace(".", "")
        else:
            out[i] = code
    return out


def _sorted(frame: pd.DataFrame, date: str) -> pd.DataFrame:
    return frame.sort_values(["person_id", date], kind="stable").reset_index(drop=True)


# --- writing a population's extracts ---------------------------------------------------------------

SCHEMAS = {
    "gp/registrations": pa.schema([("person_id", pa.int64()), ("practice_code", pa.string()),
                                   ("registered_from", pa.date32()), ("registered_to", pa.date32()),
                                   ("sex", pa.string()), ("birth_date", pa.date32()), ("imd_decile", pa.int64()),
                                   ("died_on", pa.date32()), ("care_home", pa.bool_()), ("opted_out", pa.bool_()),
                                   ("nhs_number", pa.string())]),
    "gp/events": pa.schema([("person_id", pa.int64()), ("snomed_code", pa.string()), ("event_date", pa.date32())]),
    "gp/appointments": pa.schema([("person_id", pa.int64()), ("appointment_date", pa.date32()),
                                  ("attended", pa.bool_()), ("cost_gbp", pa.float64())]),
    "gp/prescriptions": pa.schema([("person_id", pa.int64()), ("issue_date", pa.date32()), ("items", pa.int64()),
                                   ("cost_gbp", pa.float64())]),
    "hospital/apc": pa.schema([("spell_id", pa.string()), ("person_id", pa.int64()),
                               ("admission_method", pa.string()), ("patient_classification", pa.string()),
                               ("admission_date", pa.date32()), ("discharge_date", pa.date32()),
                               ("primary_diagnosis", pa.string()), ("cost_gbp", pa.float64())]),
    "hospital/outpatients": pa.schema([("person_id", pa.int64()), ("appointment_date", pa.date32()),
                                       ("attended", pa.string()), ("first_attendance", pa.string()),
                                       ("attendance_id", pa.string()), ("cost_gbp", pa.float64())]),
    "hospital/ae": pa.schema([("person_id", pa.int64()), ("arrival_date", pa.date32()), ("cost_gbp", pa.float64())]),
    "community/community": pa.schema([("person_id", pa.int64()), ("contact_date", pa.date32()),
                                      ("contacts", pa.int64()), ("cost_gbp", pa.float64())]),
    "community/mental_health": pa.schema([("person_id", pa.int64()), ("contact_date", pa.date32()),
                                          ("contacts", pa.int64()), ("cost_gbp", pa.float64())]),
    "community/social_care": pa.schema([("person_id", pa.int64()), ("period_start", pa.date32()),
                                        ("hours", pa.int64()), ("cost_gbp", pa.float64())]),
}


def latest_day(data_dir: str | Path) -> int:
    """The population's last day (int32 days): its latest date of birth, registration, death,
    diagnosis or activity."""
    best = None
    for name, columns in (("persons", ["birth_date", "registered_from", "died_on"]), ("conditions", ["diagnosed_on"]),
                          ("activity", list(_DATES))):
        table = read_table(data_dir, name, columns=columns)
        for column in columns:
            values = days(table[column])
            values = values[values != _NULL]
            if len(values):
                best = int(values.max()) if best is None else max(best, int(values.max()))
    if best is None:
        raise DataError(f"{data_dir}: no dates")
    return best


def to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """An extract frame as an arrow table of ``schema`` (dates as date32, missing values null)."""
    columns = []
    for fld in schema:
        values = frame[fld.name]
        if pa.types.is_date32(fld.type):
            array = pa.array(values.to_numpy(dtype="datetime64[D]"), type=pa.date32(), from_pandas=True)
        elif pa.types.is_string(fld.type):
            text = values.astype(object).where(values.notna(), None)
            array = pa.array(text.map(lambda v: v if v is None else str(v)).to_numpy(dtype=object), type=pa.string())
        else:
            array = pa.array(values.to_numpy(), type=fld.type, from_pandas=True)
        columns.append(array)
    return pa.table(columns, schema=schema)


def write_extracts(data_dir: str | Path, out_dir: str | Path, codelists_dir: str | Path,
                   mapping: str | Path | None = None, unit_costs: str | Path | None = None, seed: int = 0,
                   partition_people: int = 250_000,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Write the population in ``data_dir`` as extracts in ``out_dir`` (``gp/``, ``hospital/``,
    ``community/``, parquet sorted by person_id; person-level files owner-only); returns rows
    per extract. ``progress(done, partitions)`` is called after each partition."""
    from riskcap.data.load import load_partition
    from riskcap.stream.plan import plan_partitions

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    codelists = load_codelists(codelists_dir, mapping)
    costs = load_unit_costs(unit_costs)
    end = latest_day(data_dir)
    as_of = np.datetime64(end, "D").item()
    registrations = _optional(data_dir, "registrations")
    rows = dict.fromkeys(SCHEMAS, 0)
    with contextlib.ExitStack() as stack:
        writers = {key: stack.enter_context(ParquetRowsWriter(out_dir / f"{key}.parquet", mode=OWNER_ONLY))
                   for key in SCHEMAS}
        parts = plan_partitions(data_dir, partition_people)
        for done, part in enumerate(parts, start=1):
            tables, _ = load_partition(data_dir, part, as_of=as_of)
            frames = {"persons": tables.persons, "conditions": tables.conditions, "activity": tables.activity}
            if registrations is not None:
                frames["registrations"] = _registrations_of(registrations, tables.persons)
            for key, frame in contract_to_extracts(frames, codelists, costs, seed, end).items():
                writers[key].write(to_arrow(frame, SCHEMAS[key]))
                rows[key] += len(frame)
            if progress is not None:
                progress(done, len(parts))
    write_parquet(read_raw(table_path(data_dir, "practices")), out_dir / "gp" / "practices.parquet")
    changes = _optional(data_dir, "practice_changes")
    if changes is not None:
        write_parquet(pq.read_table(changes), out_dir / "gp" / "practice_changes.parquet")
    return rows


def _optional(data_dir: Path, name: str) -> Path | None:
    path = data_dir / f"{name}.parquet"
    return path if path.exists() else None


def _registrations_of(path: Path, persons: pd.DataFrame) -> pd.DataFrame:
    """The registration periods of these persons (contract dtypes)."""
    ids = persons["person_id"].to_numpy(np.int64)
    if len(ids) == 0:
        return pd.DataFrame(columns=["person_id", "practice_code", "registered_from", "registered_to"])
    table = pq.read_table(path, filters=[("person_id", ">=", int(ids.min())), ("person_id", "<=", int(ids.max()))])
    frame = table.to_pandas()
    frame = frame[frame["person_id"].isin(ids)]
    for column in ("registered_from", "registered_to"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[s]")
    frame["practice_code"] = frame["practice_code"].astype(str)
    return frame.sort_values(["person_id", "registered_from"], kind="stable").reset_index(drop=True)
