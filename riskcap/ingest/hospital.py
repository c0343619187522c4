"""Hospital extracts to contract activity: admitted patient care spells (SUS APC), outpatient
appointments (SUS OPA) and A&E attendances (ECDS).

Admitted patient care maps by NHS Data Dictionary admission method and patient classification
(the table is in ``docs/import.md``; any other method or classification is an error); the
primary diagnosis is ICD-10 in any of the forms extracts use, written in the contract's dotted
form (:func:`riskcap.ingest.codelists.normalise_icd10`). Outpatient appointments count when
attended (codes 5, 6); first and follow-up attendances are priced apart when a cost is missing.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from riskcap.ingest.activity import SETTING_INDEX, ActivityRows
from riskcap.ingest.codelists import Codelists, normalise_icd10
from riskcap.ingest.costs import Pricing
from riskcap.ingest.extracts import INT32_NULL
from riskcap.ingest.gp import People
from riskcap.ingest.rows import Rows
from riskcap.schema import is_acs

ELECTIVE = ("11", "12", "13")
EMERGENCY = ("21", "22", "23", "24", "25", "26", "27", "28", "2A", "2B", "2C", "2D")
MATERNITY = ("31", "32")
OTHER = ("81", "82", "83")
CLASSIFICATIONS = ("1", "2", "3", "4", "5")
#: Outpatient attended or did not attend: attended, and not attended (with 0: a future appointment).
ATTENDED, NOT_ATTENDED = ("5", "6"), ("2", "3", "4", "7", "0")
FIRST, FOLLOW_UP, ADMINISTRATIVE = ("1", "3"), ("2", "4"), ("5",)


def _code_of(rows: Rows, name: str) -> tuple[np.ndarray, list[str]]:
    """A code column's values (index into upper-cased categories, -1 = null) and those categories."""
    col = rows.col(name)
    return col.values, [c.upper() for c in col.categories]


def _lookup(values: np.ndarray, categories: list[str], table: dict[str, int], missing: int = -1) -> np.ndarray:
    """``table[category]`` of each row (``missing`` for null or unknown)."""
    return np.array([table.get(c, missing) for c in categories] + [missing], dtype=np.int64)[values]


@dataclass
class HospitalStats:
    """What the hospital extracts did that the report should say."""

    not_discharged: int = 0
    no_diagnosis: int = 0
    emergency: int = 0
    acs_codelist: int = 0
    acs_features: int = 0
    acs_both: int = 0
    #: emergency admissions counted ACS by one definition only, by primary diagnosis
    acs_only_codelist: Counter = field(default_factory=Counter)
    acs_only_features: Counter = field(default_factory=Counter)

    def add(self, other: "HospitalStats") -> None:
        for name in ("not_discharged", "no_diagnosis", "emergency", "acs_codelist", "acs_features", "acs_both"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("acs_only_codelist", "acs_only_features"):
            getattr(self, name).update(getattr(other, name))


def apc(rows: Rows, people: People, pricing: Pricing, codelists: Codelists, last_day: int,
        stats: HospitalStats) -> ActivityRows:
    """Admitted patient care spells to emergency, elective and day case activity (table above)."""
    pos, birth = people.match(rows)
    spell = rows.col("spell_id")
    method, methods = _code_of(rows, "admission_method")
    cls, classes = _code_of(rows, "patient_classification")
    admitted = rows.dates_in_window("admission_date", birth, last_day)
    discharged = rows.dates_in_window("discharge_date", None, last_day)
    diag = rows.col("primary_diagnosis")
    cost = rows.not_negative("cost_gbp")

    kind = _lookup(method, methods, {**dict.fromkeys(ELECTIVE, 0), **dict.fromkeys(EMERGENCY, 1),
                                     **dict.fromkeys(MATERNITY, 2), **dict.fromkeys(OTHER, 3)})
    rows.problem((kind < 0) & (method >= 0), "admission_method", "unknown_code",
                 "unknown admission method (NHS Data Dictionary: elective 11-13, emergency 21-28 and 2A-2D, "
                 "maternity 31-32, other 81-83)")
    klass = _lookup(cls, classes, {c: int(c) for c in CLASSIFICATIONS})
    rows.problem((klass < 0) & (cls >= 0), "patient_classification", "unknown_code",
                 "unknown patient classification (1 ordinary, 2 day case, 3 regular day attender, "
                 "4 regular night attender, 5 mother and baby)")
    both = ~admitted.null & ~admitted.bad & ~discharged.null & ~discharged.bad
    rows.problem(both & (discharged.values < admitted.values), ["discharge_date", "admission_date"], "date_order",
                 "discharge_date is before admission_date (negative length of stay)")
    normal = [normalise_icd10(c) for c in diag.categories]
    bad_code = np.array([n is None for n in normal] + [False], dtype=bool)[diag.values]
    rows.problem(bad_code, "primary_diagnosis", "not_a_code",
                 "not an ICD-10 code (a letter, two digits and an optional third, e.g. I50.0, I500, I10X)")
    pid = rows.col("person_id")
    rows.duplicate(["person_id", "spell_id"], [pid.values, spell.values],
                   ~pid.null & ~pid.bad & ~spell.null,
                   "duplicate spell (person_id, spell_id): one row per spell (SUS APCS), not per episode (APCE)")
    rows.unmapped(np.isin(klass, (3, 4)), "regular day or night attender (patient classification 3 or 4)",
                  column="patient_classification")
    rows.unmapped(klass == 5, "mother and baby (patient classification 5)", column="patient_classification")
    rows.unmapped(kind == 2, "maternity admission (admission method 31-32)", column="admission_method")
    rows.unmapped(kind == 3, "other admission method (81-83: transfers, babies born in hospital)",
                  column="admission_method")

    keep = rows.keep
    setting = np.where(kind == 1, SETTING_INDEX["emergency_inpatient"],
                       np.where(klass == 2, SETTING_INDEX["day_case"], SETTING_INDEX["elective_inpatient"]))[keep]
    keys = np.array(["emergency_inpatient", "elective_inpatient", "day_case"], dtype=object)[
        np.where(setting == SETTING_INDEX["emergency_inpatient"], 0,
                 np.where(setting == SETTING_INDEX["elective_inpatient"], 1, 2))]
    pence = pricing.pence(cost.values[keep], cost.null[keep], keys)
    end = np.where(discharged.null[keep], INT32_NULL, discharged.values[keep]).astype(np.int32)
    stats.not_discharged += int(discharged.null[keep].sum())
    stats.no_diagnosis += int(diag.null[keep].sum())
    # the contract's codes: each category's normal form, as an index into the sorted distinct forms
    forms = sorted({n for n in normal if n})
    form_index = {f: k for k, f in enumerate(forms)}
    code_of_category = np.array([form_index[n] if n else -1 for n in normal] + [-1], dtype=np.int32)
    diagnosis = code_of_category[diag.values[keep]]
    emergency = setting == SETTING_INDEX["emergency_inpatient"]
    _count_acs(diagnosis[emergency], forms, codelists, stats)
    return ActivityRows(people.ids[pos[keep]], setting.astype(np.int8), admitted.values[keep].astype(np.int32), end,
                        np.ones(int(keep.sum()), dtype=np.int64), pence, diagnosis, forms)


def _count_acs(diagnosis: np.ndarray, forms: list[str], codelists: Codelists, stats: HospitalStats) -> None:
    """Emergency admissions whose primary diagnosis is ambulatory-care-sensitive, by the
    mapping's ICD-10 codelist and by the definition riskcap's features use
    (:func:`riskcap.schema.is_acs`), and where the two disagree."""
    stats.emergency += len(diagnosis)
    compact = [f.replace(".", "") for f in forms]
    by_list = np.append(codelists.is_acs(compact), False)[diagnosis]
    by_features = np.array([is_acs(f) for f in forms] + [False], dtype=bool)[diagnosis]
    stats.acs_codelist += int(by_list.sum())
    stats.acs_features += int(by_features.sum())
    stats.acs_both += int((by_list & by_features).sum())
    for mask, counter in ((by_list & ~by_features, stats.acs_only_codelist),
                          (by_features & ~by_list, stats.acs_only_features)):
        for index, n in zip(*np.unique(diagnosis[mask], return_counts=True)):
            counter[forms[index]] += int(n)


def outpatients(rows: Rows, people: People, pricing: Pricing, last_day: int) -> ActivityRows:
    """Attended outpatient appointments, priced as first or follow-up when the cost is missing."""
    pos, birth = people.match(rows)
    day = rows.dates_in_window("appointment_date", birth, last_day)
    attended, codes = _code_of(rows, "attended")
    state = _lookup(attended, codes, {**dict.fromkeys(ATTENDED, 1), **dict.fromkeys(NOT_ATTENDED, 0)})
    rows.problem((state < 0) & (attended >= 0), "attended", "unknown_code",
                 "unknown attended code (5, 6 attended; 2, 3, 4, 7 not attended; 0 a future appointment)")
    first, first_codes = _code_of(rows, "first_attendance")
    visit = _lookup(first, first_codes, {**dict.fromkeys(FIRST, 1), **dict.fromkeys(FOLLOW_UP, 2),
                                         **dict.fromkeys(ADMINISTRATIVE, 3)})
    rows.problem((visit < 0) & (first >= 0), "first_attendance", "unknown_code",
                 "unknown first attendance code (1, 3 first; 2, 4 follow-up; 5 administrative event)")
    _duplicate_attendances(rows)
    cost = rows.not_negative("cost_gbp")
    rows.unmapped(state == 0, "not attended (did not attend, cancelled, or not yet happened)", column="attended")
    rows.unmapped(visit == 3, "administrative event (first attendance code 5), not an attendance",
                  column="first_attendance")
    keep = rows.keep
    keys = np.array(["outpatient", "outpatient_first", "outpatient_follow_up"], dtype=object)[
        np.maximum(visit[keep], 0)]
    pence = pricing.pence(cost.values[keep], cost.null[keep], keys)
    return ActivityRows.point(people.ids[pos[keep]], "outpatient", day.values[keep], 1, pence)


def ae(rows: Rows, people: People, pricing: Pricing, last_day: int) -> ActivityRows:
    """A&E attendances."""
    pos, birth = people.match(rows)
    day = rows.dates_in_window("arrival_date", birth, last_day)
    _duplicate_attendances(rows)
    cost = rows.not_negative("cost_gbp")
    keep = rows.keep
    pence = pricing.pence(cost.values[keep], cost.null[keep], "ae")
    return ActivityRows.point(people.ids[pos[keep]], "ae", day.values[keep], 1, pence)


def _duplicate_attendances(rows: Rows) -> None:
    if rows.has("attendance_id"):
        pid, attendance = rows.col("person_id"), rows.col("attendance_id")
        rows.duplicate(["person_id", "attendance_id"], [pid.values, attendance.values],
                       ~pid.null & ~pid.bad & ~attendance.null, "duplicate attendance (person_id, attendance_id)")
