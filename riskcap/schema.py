"""The data contract: tables, columns, types and code sets.

Every reader, validator, generator and feature builder takes its column names and
allowed values from here, so the contract lives in exactly one place.
See ``docs/data-contract.md`` for the prose version.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

# --- Code sets -----------------------------------------------------------------

#: Long-term condition registers (QOF 2019/20 plus frailty and palliative care).
#: code -> (plain-English name, minimum age of the QOF denominator or 0).
CONDITIONS: dict[str, tuple[str, int]] = {
    "hypertension": ("hypertension", 0),
    "depression": ("depression", 18),
    "obesity": ("obesity", 18),
    "diabetes": ("diabetes", 17),
    "asthma": ("asthma", 0),
    "ckd": ("chronic kidney disease (stage 3-5)", 18),
    "cancer": ("cancer", 0),
    "chd": ("coronary heart disease", 0),
    "af": ("atrial fibrillation", 0),
    "copd": ("COPD", 0),
    "stroke_tia": ("stroke or TIA", 0),
    "heart_failure": ("heart failure", 0),
    "smi": ("serious mental illness", 0),
    "epilepsy": ("epilepsy", 18),
    "dementia": ("dementia", 0),
    "rheumatoid_arthritis": ("rheumatoid arthritis", 16),
    "osteoporosis": ("osteoporosis", 50),
    "pad": ("peripheral arterial disease", 0),
    "learning_disability": ("learning disability", 0),
    "palliative": ("on the palliative care register", 0),
    "frailty": ("moderate or severe frailty", 0),
}
CONDITION_CODES: tuple[str, ...] = tuple(CONDITIONS)

#: Activity settings: code -> plain-English name.
SETTINGS: dict[str, str] = {
    "emergency_inpatient": "emergency admission",
    "elective_inpatient": "elective admission",
    "day_case": "day case",
    "outpatient": "outpatient attendance",
    "ae": "A&E attendance",
    "gp": "GP consultation",
    "community": "community nursing contact",
    "mental_health": "mental health contact",
    "social_care": "social care",
    "prescribing": "prescription items",
}
SETTING_CODES: tuple[str, ...] = tuple(SETTINGS)
INPATIENT_SETTINGS: frozenset[str] = frozenset({"emergency_inpatient", "elective_inpatient", "day_case"})

SEXES: tuple[str, ...] = ("F", "M")

#: Chronic ambulatory-care-sensitive conditions (NHS Outcomes Framework 2.3.i), as ICD-10
#: prefixes: a primary diagnosis starting with any of these counts as ACS.
ACS_ICD10_PREFIXES: tuple[str, ...] = (
    "I20", "I25", "I240", "I248", "I249",  # angina
    "J45", "J46",  # asthma
    "I50", "I110", "J81",  # congestive heart failure
    "G40", "G41", "R56",  # epilepsy and convulsions
    "J41", "J42", "J43", "J44", "J47",  # COPD (J20 with COPD secondary not representable)
    "F00", "F01", "F02", "F03",  # dementia
    "E10", "E11", "E12", "E13", "E14",  # diabetes with complications
    "I10", "I119",  # hypertension
    "D501", "D508", "D509",  # iron-deficiency anaemia
    "E40", "E41", "E42", "E43", "E550", "E643",  # nutritional deficiency
)


def is_acs(icd10: str | None) -> bool:
    """True when an ICD-10 code (with or without the dot) is ambulatory-care-sensitive."""
    if not icd10:
        return False
    code = icd10.replace(".", "").upper()
    return code.startswith(ACS_ICD10_PREFIXES)


# --- Tables --------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """One column of a table in the contract."""

    name: str
    kind: str  # "str", "int", "float", "date", "bool"
    required: bool = True  # the column must be present
    nullable: bool = False  # null values allowed
    doc: str = ""


@dataclass(frozen=True)
class Table:
    """A table of the contract: its file stem and its columns, in order."""

    name: str
    columns: tuple[Column, ...] = field(default_factory=tuple)
    doc: str = ""

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


PRACTICES = Table("practices", (
    Column("practice_code", "str", doc="ODS code of the GP practice, e.g. A81001; unique"),
    Column("icb_code", "str", doc="ODS code of the integrated care board, e.g. QHM"),
    Column("list_size", "int", doc="registered list size at the start of the base year"),
    Column("need_index", "float", required=False, nullable=True,
           doc="published weighted / registered population (about 1.0 = average need)"),
    Column("practice_name", "str", required=False, nullable=True, doc="display name"),
), doc="One row per GP practice.")

PERSONS = Table("persons", (
    Column("person_id", "int", doc="pseudonymised person key (integer), unique"),
    Column("nhs_number", "str", required=False, nullable=True,
           doc="10-digit NHS number passing the modulus-11 check; only for re-identification"),
    Column("practice_code", "str", doc="practice the person is registered with (in practices)"),
    Column("sex", "str", doc="F or M"),
    Column("birth_date", "date", doc="date of birth (first of the month is fine)"),
    Column("imd_decile", "int", doc="Index of Multiple Deprivation decile, 1 = most deprived, 10 = least"),
    Column("registered_from", "date", doc="date registration with the practice began"),
    Column("registered_to", "date", nullable=True, doc="date registration ended; null = still registered"),
    Column("died_on", "date", nullable=True, doc="date of death; null = alive"),
    Column("care_home", "bool", doc="lives in a care home"),
    Column("opted_out", "bool", doc="national data opt-out: never on a case-finding list"),
), doc="One row per registered person (current or past).")

CONDITIONS_TABLE = Table("conditions", (
    Column("person_id", "int", doc="person (in persons)"),
    Column("condition", "str", doc="condition code from the fixed code set"),
    Column("diagnosed_on", "date", doc="date first recorded on the register"),
), doc="One row per person and long-term condition register entry.")

ACTIVITY = Table("activity", (
    Column("person_id", "int", doc="person (in persons)"),
    Column("setting", "str", doc="setting code from the fixed code set"),
    Column("start_date", "date", doc="admission / attendance / contact date"),
    Column("end_date", "date", nullable=True,
           doc="discharge date for inpatient spells; null or equal to start_date otherwise"),
    Column("quantity", "int", required=False, doc="units in the row (items, contacts, hours); default 1"),
    Column("cost_gbp", "float", doc="cost of the row in pounds (2 decimal places), >= 0"),
    Column("primary_diagnosis", "str", required=False, nullable=True,
           doc="ICD-10 primary diagnosis (inpatient rows), e.g. I50.0"),
), doc="One row per spell, attendance, contact, or month of items/hours.")

TABLES: dict[str, Table] = {t.name: t for t in (PRACTICES, PERSONS, CONDITIONS_TABLE, ACTIVITY)}

#: The most one activity row may cost, in pounds, unless ``$RISKCAP_MAX_COST_GBP`` says otherwise:
#: well above any single NHS spell, contact or month of items (the dearest one-off treatments cost
#: about £2 million), so a larger value is a data error (e.g. pence in the pounds column).
MAX_COST_GBP = 10_000_000
MAX_COST_ENV = "RISKCAP_MAX_COST_GBP"
#: The largest value ``$RISKCAP_MAX_COST_GBP`` may set (pence sums stay exact far beyond it).
MAX_COST_LIMIT_GBP = 10**12


def max_cost_gbp() -> float:
    """The plausible maximum cost of one activity row (:data:`MAX_COST_GBP`, or ``$RISKCAP_MAX_COST_GBP``)."""
    text = os.environ.get(MAX_COST_ENV, "").strip()
    if not text:
        return float(MAX_COST_GBP)
    try:
        value = float(text.replace(",", "").replace("_", ""))
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_COST_LIMIT_GBP:
        from riskcap.errors import ConfigError

        raise ConfigError(f"${MAX_COST_ENV}={text!r}: expected the most one activity row may cost, in pounds, "
                          f"above 0 and at most {MAX_COST_LIMIT_GBP:,} (default {MAX_COST_GBP:,})")
    return value


def nhs_number_valid(number: str) -> bool:
    """Modulus-11 check of a 10-digit NHS number."""
    if len(number) != 10 or not number.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:9], range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(number[9])
