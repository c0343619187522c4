"""Person-level features at an index date, built from the four contract tables.

:func:`build_features` turns one partition's :class:`~riskcap.data.read.Tables` into one row per
person registered with a practice and alive at the index date. It is a pure, vectorised
function (``searchsorted`` to map events to people, ``bincount`` per look-back window), so a
population is processed by calling it once per contiguous ``person_id`` range
(:func:`features_at` does so for a data folder, on an engine).

Only information dated *before* the index date enters a model feature; the outcome columns
(``y_emergency_12m``, ``cost_next_12m_*``, ``list_days_next_12``) look forward from it.
``docs/features.md`` describes every column in plain English.

Date conventions (documented in ``docs/features.md``):

- registration covers ``[registered_from, registered_to)`` and a person is alive before
  ``died_on``; a person is in the frame when both hold on the index date;
- look-back window ``a_b`` holds events starting in ``[index - b months, index - a months)``;
- the outcome year is ``[index, index + 365 days)``.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit, prange
from pandas.api.types import union_categoricals

from riskcap.data.load import load_partition, scans_for
from riskcap.data.read import Tables
from riskcap.data.read import day_numbers as _date_days
from riskcap.data.summary import LoadSummary
from riskcap.errors import DataError, LoadRejected
from riskcap.registrations import Periods, periods_of
from riskcap.schema import CONDITION_CODES, CONDITIONS, INPATIENT_SETTINGS, SETTING_CODES, SETTINGS, is_acs
from riskcap.stream.context import RunContext
from riskcap.stream.engines import LocalEngine
from riskcap.stream.plan import PARTITION_PEOPLE, plan_partitions
from riskcap.stream.threads import kernel_threads

#: Look-back windows: name -> (months before the index date: near end, far end).
WINDOWS: dict[str, tuple[int, int]] = {"0_12": (0, 12), "12_24": (12, 24), "24_36": (24, 36)}
#: Utilisation measures counted per window: measure -> setting code (bed days are derived).
MEASURES: dict[str, str] = {
    "emergency_admissions": "emergency_inpatient",
    "elective_admissions": "elective_inpatient",
    "day_cases": "day_case",
    "bed_days": "",
    "outpatient": "outpatient",
    "ae": "ae",
    "gp": "gp",
    "community": "community",
    "mental_health": "mental_health",
    "social_care": "social_care",
    "prescribing_items": "prescribing",
}
#: Settings whose rows are spells (counted as rows, not quantity; bed days from their dates).
SPELL_SETTINGS: tuple[str, ...] = tuple(s for s in SETTING_CODES if s in INPATIENT_SETTINGS)
#: Age bands (lower bounds) and their labels.
AGE_BAND_LOWER: tuple[int, ...] = (0, 18, 40, 50, 60, 70, 80)
AGE_BANDS: tuple[str, ...] = ("0-17", "18-39", "40-49", "50-59", "60-69", "70-79", "80+")
#: Days-since value when there was no such event in the look-back.
NO_EVENT_DAYS = 1461
#: Length of the outcome year in days.
OUTCOME_DAYS = 365
#: Condition codes that are flags rather than disease registers (not in ltc_count).
NON_DISEASE_CODES: frozenset[str] = frozenset({"frailty", "palliative"})

LABEL = "y_emergency_12m"
COST_LABEL = "cost_next_12m_total"

WINDOW_FEATURES: list[str] = [f"{m}_{w}" for m in MEASURES for w in WINDOWS]
COST_FEATURES: list[str] = [f"cost_{s}_0_12" for s in SETTING_CODES] + ["cost_total_0_12"]
#: Model input columns, in the order models see them.
MODEL_FEATURES: list[str] = (
    ["age", "male", "imd_decile", "care_home"]
    + [f"ltc_{c}" for c in CONDITION_CODES]
    + [f"years_since_{c}" for c in CONDITION_CODES]
    + ["ltc_count"]
    + WINDOW_FEATURES
    + ["days_since_emergency", "days_since_ae"]
    + COST_FEATURES
    + ["acs_admissions_0_12"]
)
#: Columns looking forward from the index date (never model inputs).
OUTCOME_COLUMNS: list[str] = (
    ["list_days_next_12", LABEL] + [f"cost_next_12m_{s}" for s in SETTING_CODES] + [COST_LABEL]
)
ID_COLUMNS: list[str] = [
    "person_id", "practice_code", "sex", "male", "age", "age_band", "imd_decile", "imd_quintile",
    "care_home", "opted_out",
]
#: Every column of the frame, in order.
COLUMNS: list[str] = list(dict.fromkeys(ID_COLUMNS + MODEL_FEATURES + OUTCOME_COLUMNS))

_WINDOW_PHRASE = {"0_12": "in the last 12 months", "12_24": "12 to 24 months before", "24_36": "24 to 36 months before"}
_MEASURE_PHRASE = {
    "emergency_admissions": "emergency hospital admissions (spells)",
    "elective_admissions": "planned (elective) hospital admissions",
    "day_cases": "day-case procedures",
    "bed_days": "nights spent in hospital (emergency and elective spells, counted inside the window only)",
    "outpatient": "outpatient attendances",
    "ae": "A&E attendances",
    "gp": "GP consultations",
    "community": "community nursing contacts",
    "mental_health": "mental health service contacts",
    "social_care": "social care units (hours of home care, weeks of residential care)",
    "prescribing_items": "prescription items dispensed",
}


def _describe() -> dict[str, str]:
    out = {
        "person_id": "Pseudonymised person key.",
        "practice_code": "GP practice the person is registered with.",
        "sex": "Sex as recorded: F or M.",
        "male": "1 if recorded as male, else 0.",
        "age": "Age in whole years on the index date.",
        "age_band": "Age band: " + ", ".join(AGE_BANDS) + ".",
        "imd_decile": "Deprivation decile of the home area (Index of Multiple Deprivation), 1 = most deprived 10%.",
        "imd_quintile": "Deprivation quintile, 1 = most deprived 20% (deciles 1-2).",
        "care_home": "Lives in a care home.",
        "opted_out": "Has registered a national data opt-out: never shown on a case-finding list.",
        "ltc_count": "Number of disease registers the person is on before the index date "
        "(all conditions except frailty and palliative care).",
        "days_since_emergency": f"Days from the start of the most recent emergency admission to the index date; "
        f"{NO_EVENT_DAYS} if none in the 3-year look-back.",
        "days_since_ae": f"Days from the most recent A&E attendance to the index date; {NO_EVENT_DAYS} if none "
        "in the 3-year look-back.",
        "acs_admissions_0_12": "Emergency admissions in the last 12 months whose primary diagnosis is a chronic "
        "ambulatory-care-sensitive condition (angina, asthma, heart failure, epilepsy, COPD, dementia, "
        "diabetes complications, hypertension, iron-deficiency anaemia, nutritional deficiency).",
        "cost_total_0_12": "Cost of all care in the last 12 months, in pounds.",
        "list_days_next_12": "Not a model input. Days in the 365 days from the index date that the person is "
        "registered and alive (for pro-rating budgets).",
        LABEL: "Not a model input: the outcome. 1 if the person has one or more emergency admissions starting "
        "in the 365 days from the index date, else 0.",
        COST_LABEL: "Not a model input. Cost of all care in the 365 days from the index date, in pounds "
        "(the next-year cost the capitation cost model predicts).",
    }
    for code in CONDITION_CODES:
        name = CONDITIONS[code][0]
        out[f"ltc_{code}"] = f"1 if on the {name} register (diagnosed before the index date), else 0."
        out[f"years_since_{code}"] = (
            f"Years since {name} was first recorded (before the index date); blank if not recorded."
        )
    out["ltc_palliative"] = "1 if on the palliative care register (added before the index date), else 0."
    out["years_since_palliative"] = ("Years since the person was added to the palliative care register (before the "
                                     "index date); blank if not on it.")
    out["ltc_frailty"] = "1 if moderate or severe frailty is recorded (before the index date), else 0."
    for measure, phrase in _MEASURE_PHRASE.items():
        for window, wphrase in _WINDOW_PHRASE.items():
            out[f"{measure}_{window}"] = f"Number of {phrase} {wphrase} the index date." if window != "0_12" \
                else f"Number of {phrase} {wphrase} before the index date."
    for setting in SETTING_CODES:
        out[f"cost_{setting}_0_12"] = f"Cost of {SETTINGS[setting]} care in the last 12 months, in pounds."
        out[f"cost_next_12m_{setting}"] = (
            f"Not a model input. Cost of {SETTINGS[setting]} care in the 365 days from the index date, in pounds."
        )
    return out


#: Plain-English description of every column (docs/features.md is checked against it).
FEATURE_DESCRIPTIONS: dict[str, str] = _describe()


# --- Helpers -----------------------------------------------------------------------

def to_day(index_date) -> int:
    """An index date (``date``, ``Timestamp``, ``datetime64``, ISO string, or an int already in
    days since 1970-01-01) as days since 1970-01-01."""
    if isinstance(index_date, (int, np.integer)) and not isinstance(index_date, bool):
        return int(index_date)
    try:
        stamp = pd.Timestamp(index_date)
    except (ValueError, TypeError) as exc:
        raise DataError(f"index date {index_date!r} is not a date (expected YYYY-MM-DD)") from exc
    if pd.isna(stamp):
        raise DataError(f"index date {index_date!r} is not a date (expected YYYY-MM-DD)")
    return int(np.datetime64(stamp.date(), "D").astype(np.int64))


def to_date(day: int) -> dt.date:
    """Days since 1970-01-01 as a ``datetime.date``."""
    return (np.datetime64(0, "D") + np.timedelta64(int(day), "D")).astype(object)


def months_before(index_date, months: int) -> int:
    """The date ``months`` calendar months before ``index_date``, as days since 1970-01-01."""
    stamp = pd.Timestamp(to_date(to_day(index_date))) - pd.DateOffset(months=months)
    return to_day(stamp)


def _codes(series: pd.Series, allowed: tuple[str, ...], table: str, column: str) -> np.ndarray:
    """Positions of ``series`` values in ``allowed`` (int8); DataError naming unknown values.

    Categoricals map their few categories and keep their codes; text is matched in arrow
    (no Python strings), so either way it is fast on millions of rows.
    """
    if isinstance(getattr(series, "dtype", None), pd.CategoricalDtype):
        lookup = np.append(pd.Index(list(allowed)).get_indexer(series.cat.categories.astype(str)), -1)
        codes = lookup[series.cat.codes.to_numpy()]  # code -1 (missing) picks the appended -1
    else:
        arr = series if isinstance(series, (pa.Array, pa.ChunkedArray)) else pa.array(series, from_pandas=True)
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = arr.cast(pa.string())
        index = pc.index_in(arr, value_set=pa.array(list(allowed), type=arr.type))
        codes = np.asarray(pc.fill_null(index, -1).to_numpy(zero_copy_only=False))
    bad = codes < 0
    if bad.any():
        values = pd.Series(np.asarray(series, dtype=object))[bad]
        examples = sorted({str(v) for v in values.head(1000).tolist()})[:5]
        raise DataError(
            f"{table}: column '{column}': {int(bad.sum())} row(s) have a code outside the contract; "
            f"examples: {', '.join(map(repr, examples))}; allowed: {', '.join(allowed)}"
        )
    return codes.astype(np.int8)


def _coded(series: pd.Series, allowed: tuple[str, ...], table: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, lookup)`` with ``lookup[codes]`` equal to :func:`_codes`: a categorical's own
    codes (no copy) and a table from its categories, else :func:`_codes` and the identity."""
    if not isinstance(getattr(series, "dtype", None), pd.CategoricalDtype):
        return _codes(series, allowed, table, column), np.arange(len(allowed), dtype=np.int8)
    lookup = pd.Index(list(allowed)).get_indexer(series.cat.categories.astype(str)).astype(np.int8)
    codes = series.cat.codes.to_numpy()
    if (lookup < 0).any() or (len(codes) and codes.min() < 0):
        _codes(series, allowed, table, column)  # raises if a row holds a missing or unknown code
    return codes, lookup


def _numbers(series: pd.Series, missing: float) -> np.ndarray:
    """A numeric column as numpy without a copy when it is one, else float64 with nulls as ``missing``."""
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iuf":
        return series.to_numpy()
    return series.to_numpy(dtype=np.float64, na_value=missing)


def _birth_parts(birth: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(year, month * 100 + day) of each birth date (missing dates read as 1970-01-01)."""
    d = _date_days(birth, 0).astype("datetime64[D]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    month_start = d.astype("datetime64[M]")
    month = month_start.astype(np.int64) % 12 + 1
    day = (d - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month * 100 + day


def age_on(birth: pd.Series, index_date) -> np.ndarray:
    """Age in whole years on ``index_date`` (a birthday on the index date counts)."""
    idx = pd.Timestamp(to_date(to_day(index_date)))
    year, md = _birth_parts(birth)
    return (idx.year - year - (idx.month * 100 + idx.day < md)).astype(np.int64)


def age_band(age: np.ndarray) -> np.ndarray:
    """Age band labels (object array of str) for ages in whole years."""
    return np.asarray(AGE_BANDS, dtype=object)[_age_band_codes(age)]


def _age_band_codes(age: np.ndarray) -> np.ndarray:
    """Position of each age's band in :data:`AGE_BANDS`."""
    pos = np.searchsorted(np.asarray(AGE_BAND_LOWER), age, side="right") - 1
    return np.clip(pos, 0, len(AGE_BANDS) - 1)


def _rows_of(ids: np.ndarray, person_id: np.ndarray) -> np.ndarray:
    """Row of each ``person_id`` in sorted unique ``ids``, or -1 when absent.

    When ``person_id`` is itself sorted (as the contract's tables are) each person's rows
    are one run: two searches per person and a numba loop filling the runs, instead of a
    search per row (the general case, any order).
    """
    m, n = len(person_id), len(ids)
    if n == 0:
        return np.full(m, -1, dtype=np.int64)
    if m > 4 * n and is_sorted(person_id):
        left = np.searchsorted(person_id, ids, side="left")
        right = np.searchsorted(person_id, ids, side="right")
        out = np.full(m, -1, dtype=np.int64)
        _fill_runs(left, right, out)
        return out
    pos = np.minimum(np.searchsorted(ids, person_id), n - 1)
    return np.where(ids[pos] == person_id, pos, -1)


def is_sorted(values: np.ndarray) -> bool:
    """True when ``values`` never decrease (one pass, stops at the first descent)."""
    return bool(_is_sorted(np.ascontiguousarray(values)))


@njit(cache=True)
def _is_sorted(values):  # pragma: no cover - compiled
    for i in range(1, len(values)):
        if values[i] < values[i - 1]:
            return False
    return True


@njit(cache=True)
def _fill_runs(left, right, out):  # pragma: no cover - compiled
    for k in range(len(left)):
        for r in range(left[k], right[k]):
            out[r] = k


# --- The builder ---------------------------------------------------------------------

def registered_on(persons: pd.DataFrame, registrations: pd.DataFrame | None, index_date,
                  periods: Periods | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``persons``: registered with a practice, born and alive on ``index_date``
    (a mask), and the practice that day (an index into ``periods.practice_codes``, -1 for none).

    The practice is the registration period holding the day (:mod:`riskcap.registrations`):
    a mover's practice on that day, not their last; a person between lists is not registered.
    """
    idx = to_day(index_date)
    periods = periods_of(persons, registrations) if periods is None else periods
    big = np.iinfo(np.int64).max
    born = _date_days(persons["birth_date"], big)
    died = _date_days(persons["died_on"], big)
    ids = persons["person_id"].to_numpy(dtype=np.int64, na_value=-1)
    practice = periods.practice_on(ids, np.full(len(ids), idx, dtype=np.int32))
    keep = (born <= idx) & (idx < died) & (practice >= 0)
    return keep, np.where(keep, practice, -1)


def joining(persons: pd.DataFrame, periods: Periods, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``persons``: whether a registration period of theirs starts in ``(lo, hi)``
    (alive, the period not empty), and the practice of the first such period (-1 for none)."""
    starts = (periods.start > lo) & (periods.start < hi) & (periods.end > periods.start)
    who, first = np.unique(periods.person[starts], return_index=True)
    ids = persons["person_id"].to_numpy(dtype=np.int64, na_value=-1)
    at = np.minimum(np.searchsorted(who, ids), max(len(who) - 1, 0))
    found = (who[at] == ids) if len(who) else np.zeros(len(ids), dtype=bool)
    return found, np.where(found, periods.practice[np.flatnonzero(starts)][first][at] if len(who) else -1, -1)


def eligible_mask(persons: pd.DataFrame, index_date, registrations: pd.DataFrame | None = None) -> np.ndarray:
    """People (rows of ``persons``) registered with a practice, born and alive on ``index_date``."""
    return registered_on(persons, registrations, index_date)[0]


def build_features(tables: Tables, index_date, joining_days: int = 0, periods: Periods | None = None) -> pd.DataFrame:
    """One row per person registered and alive at ``index_date``, sorted by ``person_id``.

    ``joining_days``: also the people who first join a list in the ``joining_days`` after the
    index date (capitation funds them from that day), with what is known at the index date
    and the practice they join (an age of 0 for the not yet born).

    Parameters
    ----------
    tables
        The contract tables of one partition (or a whole population): ``persons`` plus the
        ``conditions`` and ``activity`` rows of those people. Rows of other people are ignored.
    index_date
        The date features look back from and outcomes look forward from.
    periods
        ``periods_of(tables.persons, tables.registrations)`` when the caller has it already
        (capitation builds features at two dates from one partition's tables).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`: identifiers and demographics, the model inputs
        :data:`MODEL_FEATURES` (dated strictly before the index date) and the outcome columns
        :data:`OUTCOME_COLUMNS` (dated on or after it).
    """
    return _frame(_feature_columns(tables, to_day(index_date), joining_days, periods))


#: Consecutive int32 columns made one pandas block, so the frame has under 100 blocks (pandas
#: warns that a frame is fragmented when a column is added to one with more).
_BLOCK_COLUMNS: list[str] = WINDOW_FEATURES + ["days_since_emergency", "days_since_ae"]
#: Key of the (columns, rows) matrix of :data:`_BLOCK_COLUMNS` when the builder has one.
_BLOCK = "_block"


def _frame(columns: dict[str, object]) -> pd.DataFrame:
    """The features frame from :func:`_feature_columns`' arrays, without copying them (one
    block per column but :data:`_BLOCK_COLUMNS`, no consolidation: their matrix
    ``columns[_BLOCK]`` as it is, or stacked); text becomes pandas' ``str`` through its categories."""
    def text(values):
        return pd.Index(values.categories).astype("str").array.take(values.codes, allow_fill=True)

    first = COLUMNS.index(_BLOCK_COLUMNS[0])
    stop = first + len(_BLOCK_COLUMNS)
    data = {c: text(columns[c]) if isinstance(columns[c], pd.Categorical) else columns[c]
            for c in COLUMNS[:first] + COLUMNS[stop:]}
    block = columns[_BLOCK] if _BLOCK in columns else np.stack([columns[c] for c in _BLOCK_COLUMNS])
    # (columns, rows) is pandas' own block layout
    return pd.concat([pd.DataFrame({c: data[c] for c in COLUMNS[:first]}, copy=False),
                      pd.DataFrame(block.T, columns=_BLOCK_COLUMNS, copy=False),
                      pd.DataFrame({c: data[c] for c in COLUMNS[stop:]}, copy=False)], axis=1)


def _categorical(series: pd.Series) -> pd.Categorical:
    """Text as a categorical (a categorical column as it is, without converting each row)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.array
    return pd.Categorical(series.astype("str"))


def _feature_columns(tables: Tables, idx: int, joining_days: int = 0, periods: Periods | None = None
                     ) -> dict[str, object]:
    """:func:`build_features`' columns as arrays, text as categoricals (see :func:`_frame`)."""
    persons = tables.persons
    periods = periods_of(persons, tables.registrations) if periods is None else periods
    keep, practice = registered_on(persons, tables.registrations, idx, periods)
    if joining_days:
        joins, joined = joining(persons, periods, idx, idx + joining_days)
        joins &= ~keep
        keep, practice = keep | joins, np.where(joins, joined, practice)
    people = persons.loc[keep]
    practice = practice[keep]
    ids = people["person_id"].to_numpy(dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    if len(ids) > 1 and (np.diff(ids[order]) == 0).any():
        dup = ids[order][np.flatnonzero(np.diff(ids[order]) == 0)[:5]]
        raise DataError(f"persons: column 'person_id': duplicate ids, e.g. {', '.join(map(str, dup))}")
    people = people.iloc[order]
    ids = ids[order]
    practice = practice[order]

    out: dict[str, object] = {"person_id": ids}
    # the practice on the index date (categories: the registrations' codes, so a frame's codes are its own)
    out["practice_code"] = pd.Categorical.from_codes(practice, pd.Index(periods.practice_codes, dtype=object))
    out["sex"] = _categorical(people["sex"])
    out["male"] = np.asarray(out["sex"] == "M").astype(np.int8)
    age = np.maximum(age_on(people["birth_date"], idx), 0)
    out["age"] = age.astype(np.int32)
    out["age_band"] = pd.Categorical.from_codes(_age_band_codes(age), AGE_BANDS)
    imd = people["imd_decile"].to_numpy(dtype=np.int64)
    out["imd_decile"] = imd.astype(np.int8)
    out["imd_quintile"] = ((imd + 1) // 2).astype(np.int8)
    out["care_home"] = people["care_home"].to_numpy(dtype=bool)
    out["opted_out"] = people["opted_out"].to_numpy(dtype=bool)

    out.update(_condition_features(tables.conditions, ids, idx))
    out.update(_activity_features(tables.activity, ids, idx))

    out["list_days_next_12"] = list_days(periods, ids, idx, idx + OUTCOME_DAYS).astype(np.int32)
    return out


def list_days(periods: Periods, ids: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Days in ``[lo, hi)`` each of ``ids`` (sorted) is registered, at any practice (deaths end periods)."""
    at = np.searchsorted(ids, periods.person)
    mine = at < len(ids)
    mine[mine] = ids[at[mine]] == periods.person[mine]
    return np.bincount(at[mine], weights=periods.days_in(lo, hi)[mine], minlength=len(ids)).astype(np.int64)


def _condition_features(conditions: pd.DataFrame, ids: np.ndarray, idx: int) -> dict[str, np.ndarray]:
    n, k = len(ids), len(CONDITION_CODES)
    rows = _rows_of(ids, conditions["person_id"].to_numpy(dtype=np.int64))
    diagnosed = _date_days(conditions["diagnosed_on"], np.iinfo(np.int64).max)
    use = (rows >= 0) & (diagnosed < idx)
    code = _codes(conditions["condition"], CONDITION_CODES, "conditions", "condition")[use]
    none = np.iinfo(np.int32).max  # days fit in int32: half the memory of int64
    first = np.full(k * n, none, dtype=np.int32)  # condition-major: columns contiguous
    np.minimum.at(first, code.astype(np.int64) * n + rows[use], np.minimum(diagnosed[use], none).astype(np.int32))
    first = first.reshape(k, n)
    present = first != none
    years = np.subtract(idx, first, dtype=np.float64)  # in place from here: no temporaries of k x n
    years /= 365.25
    years[~present] = np.nan
    out: dict[str, np.ndarray] = {}
    for j, c in enumerate(CONDITION_CODES):
        out[f"ltc_{c}"] = present[j].astype(np.uint8)
    for j, c in enumerate(CONDITION_CODES):
        out[f"years_since_{c}"] = years[j]
    disease = [j for j, c in enumerate(CONDITION_CODES) if c not in NON_DISEASE_CODES]
    out["ltc_count"] = present[disease].sum(axis=0).astype(np.int32)
    return out


# --- A data folder, one person_id range at a time --------------------------------------

def partition_features(part, *, run: RunContext) -> tuple[dict[str, object] | None, LoadSummary]:
    """Load and check one person_id range (:func:`~riskcap.data.load.load_partition`) and build
    its features at ``run.index_date``, as columns (None when its data were rejected): the
    partition function of :func:`features_at`."""
    tables, summary = load_partition(run.data_dir, part, run.as_of, run.on_invalid, run.scans)
    return (None if tables is None else _feature_columns(tables, to_day(run.index_date))), summary


def features_at(data_dir, index_date, *, parts=None, engine=None, on_invalid: str = "reject",
                progress=None) -> tuple[pd.DataFrame, LoadSummary]:
    """Everyone's features at ``index_date`` from the data folder ``data_dir``, and its load summary.

    The one way a data folder becomes a features frame (train, evaluate, the demo, the
    benchmarks): each person_id range of ``parts`` (:func:`~riskcap.stream.plan.plan_partitions`
    when None) is read, checked and built by :func:`partition_features` on ``engine`` (local
    when None), and the ranges are joined in order. ``progress(stage, done, total)`` is called
    after each. Data problems (reject mode, or file-level) raise
    :class:`~riskcap.errors.LoadRejected` listing every problem of every range; in quarantine
    mode the summary's ``rejected_rows`` are for :func:`~riskcap.data.load.write_rejects`.
    """
    parts = plan_partitions(data_dir, PARTITION_PEOPLE) if parts is None else list(parts)
    engine = LocalEngine() if engine is None else engine
    # a Dask worker elsewhere needs an absolute path; locally the folder is named as the user gave it
    where = str(data_dir) if engine.name == "local" else str(Path(data_dir).resolve())
    run = RunContext(data_dir=where, index_date=index_date, on_invalid=on_invalid, scans=scans_for(data_dir, parts))
    columns, summaries = [], []
    for part_columns, summary in engine.map(partition_features, parts, run=run):
        summaries.append(summary)
        if part_columns is not None:
            columns.append(part_columns)
        if progress is not None:
            progress("features", len(summaries), len(parts))
    summary = LoadSummary.combine(summaries)
    if summary.status == "rejected":
        raise LoadRejected(summary)
    return _joined(columns), summary


def _joined(parts: list[dict[str, object]]) -> pd.DataFrame:
    """The frame of consecutive person_id ranges' :func:`_feature_columns`, in order."""
    if len(parts) == 1:
        return _frame(parts[0])
    whole = {c: union_categoricals([p[c] for p in parts]) if isinstance(parts[0][c], pd.Categorical)
             else np.concatenate([p[c] for p in parts]) for c in COLUMNS if c not in _BLOCK_COLUMNS}
    whole[_BLOCK] = np.concatenate([p[_BLOCK] for p in parts], axis=1)
    return _frame(whole)


# --- The activity kernel ---------------------------------------------------------------

_EMERGENCY = SETTING_CODES.index("emergency_inpatient")
_ELECTIVE = SETTING_CODES.index("elective_inpatient")
_AE = SETTING_CODES.index("ae")
_SPELL = np.array([s in SPELL_SETTINGS for s in SETTING_CODES])
#: The kernel's integer and float outputs, one row of its output matrices each, in this order
#: (the integers start with the frame's block, :data:`_BLOCK_COLUMNS`).
_KERNEL_INTS: list[str] = _BLOCK_COLUMNS + ["acs_admissions_0_12"]
_KERNEL_FLOATS: list[str] = COST_FEATURES + [f"cost_next_12m_{s}" for s in SETTING_CODES] + [COST_LABEL]
#: Measure (position in :data:`MEASURES`) counting each setting's rows, -1 for none.
_SETTING_MEASURE = np.array([list(MEASURES.values()).index(s) if s in MEASURES.values() else -1
                             for s in SETTING_CODES], dtype=np.int64)
_BED_DAYS = list(MEASURES).index("bed_days")
#: Row of :data:`_KERNEL_INTS` holding the last emergency date (the last A&E date follows, then ACS).
_LAST_ROW = _KERNEL_INTS.index("days_since_emergency")
#: People per parallel task of :func:`_add_activity` (their cells stay in the core's cache).
_BLOCK_PEOPLE = 512


def _activity_features(activity: pd.DataFrame, ids: np.ndarray, idx: int) -> dict[str, np.ndarray]:
    """The activity columns of people ``ids`` (sorted, unique) in one parallel pass over the rows
    (numba, :func:`_add_activity`, summing straight into the output matrices; rows of other people
    are ignored)."""
    n, missing = len(ids), np.iinfo(np.int32).min
    bounds = np.array([months_before(idx, 36), months_before(idx, 24), months_before(idx, 12), idx,
                       idx + OUTCOME_DAYS], dtype=np.int64)
    ints = np.zeros((len(_KERNEL_INTS), n), dtype=np.int32)
    ints[_LAST_ROW:_LAST_ROW + 2] = missing  # no last event yet
    floats = np.zeros((len(_KERNEL_FLOATS), n))
    label = np.zeros(n, dtype=np.int8)
    person = activity["person_id"].to_numpy(dtype=np.int64)
    if len(person) and n:
        start = _date_days(activity["start_date"], missing, np.int32)
        end = _date_days(activity["end_date"], missing, np.int32) if "end_date" in activity.columns else start
        setting, setting_lookup = _coded(activity["setting"], SETTING_CODES, "activity", "setting")
        quantity = _numbers(activity["quantity"], 1.0) if "quantity" in activity.columns else np.ones(len(person))
        cost_gbp = _numbers(activity["cost_gbp"], np.nan)
        diag, acs_table = _acs_codes(activity, setting, setting_lookup, start, bounds)
        if not is_sorted(person):  # a parallel task finds its people's rows by binary search
            order = np.argsort(person, kind="stable")
            person, start, end, setting, quantity, cost_gbp, diag = (
                a[order] for a in (person, start, end, setting, quantity, cost_gbp, diag))
        first = np.searchsorted(ids, person[0])
        stop = np.searchsorted(ids, person[-1], side="right")
        blocks = np.append(np.arange(first, stop, _BLOCK_PEOPLE, dtype=np.int64), stop)
        with kernel_threads(len(person)):
            _add_activity(person, ids, blocks, start, end, setting, setting_lookup, quantity, cost_gbp, diag,
                          acs_table, bounds, _SPELL, _SETTING_MEASURE, _BED_DAYS, _EMERGENCY, _ELECTIVE, _AE,
                          _LAST_ROW, ints, floats, label)
    _finish_activity(ints, floats, _LAST_ROW, idx, NO_EVENT_DAYS, len(SETTING_CODES))
    out = {c: ints[j] for j, c in enumerate(_KERNEL_INTS)}
    out[_BLOCK] = ints[:len(_BLOCK_COLUMNS)]  # the frame's block as it is
    out.update({c: floats[j] for j, c in enumerate(_KERNEL_FLOATS)})
    out[LABEL] = label
    return out


def _acs_codes(activity: pd.DataFrame, setting: np.ndarray, setting_lookup: np.ndarray, start: np.ndarray,
               bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, table)`` with ``table[codes]`` true for rows whose primary diagnosis is ACS.

    A categorical column is judged once per category (code -1, missing, picks the appended
    False); text is judged only on emergency admissions of the last 12 months, the rows the
    kernel asks about.
    """
    diag = activity["primary_diagnosis"] if "primary_diagnosis" in activity.columns else None
    if diag is not None and isinstance(diag.dtype, pd.CategoricalDtype):
        table = np.array([is_acs(str(c)) for c in diag.cat.categories] + [False], dtype=np.bool_)
        return diag.cat.codes.to_numpy(), table
    acs = np.zeros(len(setting), dtype=np.int8)
    if diag is None or not len(setting):
        return acs, np.array([False, True])
    candidates = np.flatnonzero((setting_lookup[setting] == _EMERGENCY) & (start >= bounds[2]) & (start < bounds[3]))
    if len(candidates):
        uniq, inv = np.unique(diag.iloc[candidates].astype("string").fillna("").to_numpy(dtype=object),
                              return_inverse=True)
        acs[candidates] = np.array([is_acs(u) for u in uniq], dtype=np.int8)[inv]
    return acs, np.array([False, True])


@njit(parallel=True, cache=True, nogil=True)
def _add_activity(person, ids, blocks, start, end, setting, setting_lookup, quantity, cost_gbp, diag, acs_table,
                  bounds, spell, setting_measure, bed_days, emergency, elective, ae, last_row, ints, floats,
                  label):  # pragma: no cover - compiled
    """Add activity rows to the totals of people ``ids``.

    ``person`` is sorted and ``ids`` sorted and unique. People ``blocks[b]:blocks[b + 1]`` are
    one parallel task: it finds their rows by binary search and adds them to their cells of
    ``ints`` (rows :data:`_KERNEL_INTS`: counts, then the last emergency and A&E dates, then
    ACS admissions), ``floats`` (:data:`_KERNEL_FLOATS`, in whole pence) and ``label``, so
    threads never share a cell. ``bounds`` = [index - 36 months, - 24, - 12, index,
    index + 365 days]; window 0 is the last 12 months, 1 and 2 the years before, and the
    outcome year is ``[index, bounds[4])``. Dates are days, ``setting_lookup[setting]`` the
    position in ``SETTING_CODES``, ``acs_table[diag]`` whether the diagnosis is ACS.
    """
    far, b24, b12, idx, stop = bounds[0], bounds[1], bounds[2], bounds[3], bounds[4]
    s_count = len(spell)
    for b in prange(len(blocks) - 1):
        k0, k_stop = blocks[b], blocks[b + 1]
        k = k0
        i_first = np.searchsorted(person, ids[k0])
        i_stop = len(person) if k_stop == len(ids) else np.searchsorted(person, ids[k_stop])
        for i in range(i_first, i_stop):
            p = person[i]
            while k < k_stop and ids[k] < p:
                k += 1
            if k == k_stop:
                break
            if ids[k] != p:
                continue
            s = np.int64(start[i])
            if s >= stop:
                continue
            code = setting_lookup[setting[i]]
            # nights of emergency and elective spells inside each look-back window, before the index
            if (code == emergency or code == elective) and s < idx:
                e = np.int64(end[i])
                if e < s:
                    e = s
                for w in range(3):
                    lo = bounds[2 - w]
                    hi = bounds[3 - w]
                    nights = (e if e < hi else hi) - (s if s > lo else lo)
                    if nights > 0:
                        ints[bed_days * 3 + w, k] += nights
            if s >= idx:  # the outcome year
                floats[s_count + 1 + code, k] += np.rint(cost_gbp[i] * 100.0)
                if code == emergency:
                    label[k] = 1
                continue
            if s < far:
                continue
            w = 0 if s >= b12 else (1 if s >= b24 else 2)
            mi = setting_measure[code]
            if mi >= 0:
                q = quantity[i]
                ints[mi * 3 + w, k] += np.int32(1 if spell[code] or q != q else q)  # whole by contract
            if w == 0:
                floats[code, k] += np.rint(cost_gbp[i] * 100.0)
                if code == emergency and acs_table[diag[i]]:
                    ints[last_row + 2, k] += 1
            if code == emergency and s > ints[last_row, k]:
                ints[last_row, k] = s
            elif code == ae and s > ints[last_row + 1, k]:
                ints[last_row + 1, k] = s


@njit(parallel=True, cache=True, nogil=True)
def _finish_activity(ints, floats, last_row, idx, no_event, s_count):  # pragma: no cover - compiled
    """Turn :func:`_add_activity`'s totals into the columns in place: last dates into days
    before ``idx`` (``no_event`` when none), pence into pounds, and each period's total cost."""
    for k in prange(ints.shape[1]):
        for t in range(2):
            last = ints[last_row + t, k]
            ints[last_row + t, k] = no_event if last == np.iinfo(np.int32).min else idx - last
        for period in range(2):
            base = period * (s_count + 1)
            total = 0.0
            for c in range(s_count):
                total += floats[base + c, k]
                floats[base + c, k] = floats[base + c, k] / 100.0
            floats[base + s_count, k] = total / 100.0
