"""Person-level features at an index date, built from the four contract tables.

:func:`build_features` turns one partition's :class:`~riskcap.io.Tables` into one row per
person registered with a practice and alive at the index date. It is a pure, vectorised
function (``searchsorted`` to map events to people, ``bincount`` per look-back window), so a
population is processed by calling it once per contiguous ``person_id`` range.

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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from riskcap.io import DataError, Tables, days
from riskcap.schema import CONDITION_CODES, CONDITIONS, INPATIENT_SETTINGS, SETTING_CODES, SETTINGS, is_acs

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


_UNIT_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000, "D": 1}


def _date_days(series: pd.Series, missing: int) -> np.ndarray:
    """Dates as int64 days since 1970-01-01, nulls replaced by ``missing``.

    Datetime columns (as the readers return them) are converted in one integer pass, arrow
    ``date32`` columns (:func:`read_feature_tables`) by a cast; anything else goes through
    :func:`riskcap.io.days`.
    """
    dtype = getattr(series, "dtype", None)
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_date32(dtype.pyarrow_dtype):
        return _date32_days(pa.chunked_array(series.array._pa_array), missing)
    values = series.to_numpy() if hasattr(series, "to_numpy") else np.asarray(series)
    if values.dtype.kind == "M":
        unit = np.datetime_data(values.dtype)[0]
        if unit in _UNIT_PER_DAY:
            raw = values.view(np.int64)
            out = np.floor_divide(raw, _UNIT_PER_DAY[unit])
            out[raw == np.iinfo(np.int64).min] = missing  # NaT
            return out
    out = days(series).astype(np.int64)
    out[out == np.iinfo(np.int32).min] = missing
    return out


def _date32_days(arr: pa.ChunkedArray, missing: int) -> np.ndarray:
    """An arrow date32 column as int64 days (its stored integers), nulls as ``missing``."""
    out = np.empty(len(arr), dtype=np.int64)
    pos = 0
    for chunk in arr.chunks:
        n = len(chunk)
        values = np.frombuffer(chunk.buffers()[1], dtype=np.int32, count=n, offset=chunk.offset * 4)
        out[pos:pos + n] = values
        if chunk.null_count:
            out[pos:pos + n][chunk.is_null().to_numpy(zero_copy_only=False)] = missing
        pos += n
    return out


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
    pos = np.searchsorted(np.asarray(AGE_BAND_LOWER), age, side="right") - 1
    return np.asarray(AGE_BANDS, dtype=object)[np.clip(pos, 0, len(AGE_BANDS) - 1)]


def _rows_of(ids: np.ndarray, person_id: np.ndarray) -> np.ndarray:
    """Row of each ``person_id`` in sorted unique ``ids``, or -1 when absent.

    When ``person_id`` is itself sorted (as the contract's tables are) each person's rows
    are one run: two searches per person and a numba loop filling the runs, instead of a
    search per row (:func:`_rows_of_reference`).
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
    return _rows_of_reference(ids, person_id)


def _rows_of_reference(ids: np.ndarray, person_id: np.ndarray) -> np.ndarray:
    """:func:`_rows_of` by one binary search per row (any order)."""
    if len(ids) == 0:
        return np.full(len(person_id), -1, dtype=np.int64)
    pos = np.searchsorted(ids, person_id)
    pos_c = np.minimum(pos, len(ids) - 1)
    return np.where(ids[pos_c] == person_id, pos_c, -1)


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

def eligible_mask(persons: pd.DataFrame, index_date) -> np.ndarray:
    """People registered with a practice, born and alive on ``index_date``."""
    idx = to_day(index_date)
    big = np.iinfo(np.int64).max
    born = _date_days(persons["birth_date"], big)
    reg_from = _date_days(persons["registered_from"], big)
    reg_to = _date_days(persons["registered_to"], big)
    died = _date_days(persons["died_on"], big)
    return (born <= idx) & (reg_from <= idx) & (idx < reg_to) & (idx < died) & persons["practice_code"].notna().to_numpy()


def build_features(tables: Tables, index_date) -> pd.DataFrame:
    """One row per person registered and alive at ``index_date``, sorted by ``person_id``.

    Parameters
    ----------
    tables
        The contract tables of one partition (or a whole population): ``persons`` plus the
        ``conditions`` and ``activity`` rows of those people. Rows of other people are ignored.
    index_date
        The date features look back from and outcomes look forward from.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`: identifiers and demographics, the model inputs
        :data:`MODEL_FEATURES` (dated strictly before the index date) and the outcome columns
        :data:`OUTCOME_COLUMNS` (dated on or after it).
    """
    idx = to_day(index_date)
    persons = tables.persons
    keep = eligible_mask(persons, idx)
    people = persons.loc[keep]
    ids = people["person_id"].to_numpy(dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    if len(ids) > 1 and (np.diff(ids[order]) == 0).any():
        dup = ids[order][np.flatnonzero(np.diff(ids[order]) == 0)[:5]]
        raise DataError(f"persons: column 'person_id': duplicate ids, e.g. {', '.join(map(str, dup))}")
    people = people.iloc[order]
    ids = ids[order]
    n = len(ids)

    out: dict[str, object] = {"person_id": ids}
    out["practice_code"] = people["practice_code"].astype("str").to_numpy()
    sex = people["sex"].astype("str").to_numpy()
    out["sex"] = sex
    out["male"] = (sex == "M").astype(np.int8)
    age = age_on(people["birth_date"], idx)
    out["age"] = age.astype(np.int32)
    out["age_band"] = age_band(age)
    imd = people["imd_decile"].to_numpy(dtype=np.int64)
    out["imd_decile"] = imd.astype(np.int8)
    out["imd_quintile"] = ((imd + 1) // 2).astype(np.int8)
    out["care_home"] = people["care_home"].to_numpy(dtype=bool)
    out["opted_out"] = people["opted_out"].to_numpy(dtype=bool)

    out.update(_condition_features(tables.conditions, ids, idx))
    out.update(_activity_features(tables.activity, ids, idx))

    reg_to = _date_days(people["registered_to"], np.iinfo(np.int64).max)
    died = _date_days(people["died_on"], np.iinfo(np.int64).max)
    end = np.minimum(np.minimum(reg_to, died), idx + OUTCOME_DAYS)
    out["list_days_next_12"] = np.maximum(end - idx, 0).astype(np.int32)

    frame = pd.DataFrame({c: out[c] for c in COLUMNS})
    frame["practice_code"] = frame["practice_code"].astype("str")
    frame["sex"] = frame["sex"].astype("str")
    frame["age_band"] = frame["age_band"].astype("str")
    return frame


def _condition_features(conditions: pd.DataFrame, ids: np.ndarray, idx: int) -> dict[str, np.ndarray]:
    n, k = len(ids), len(CONDITION_CODES)
    rows = _rows_of(ids, conditions["person_id"].to_numpy(dtype=np.int64))
    diagnosed = _date_days(conditions["diagnosed_on"], np.iinfo(np.int64).max)
    use = (rows >= 0) & (diagnosed < idx)
    code = _codes(conditions["condition"], CONDITION_CODES, "conditions", "condition")[use]
    first = np.full(n * k, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, rows[use] * k + code, diagnosed[use])
    first = first.reshape(n, k)
    present = first != np.iinfo(np.int64).max
    years = np.where(present, (idx - np.where(present, first, idx)) / 365.25, np.nan)
    out: dict[str, np.ndarray] = {}
    for j, c in enumerate(CONDITION_CODES):
        out[f"ltc_{c}"] = present[:, j].astype(np.uint8)
    for j, c in enumerate(CONDITION_CODES):
        out[f"years_since_{c}"] = years[:, j]
    disease = [j for j, c in enumerate(CONDITION_CODES) if c not in NON_DISEASE_CODES]
    out["ltc_count"] = present[:, disease].sum(axis=1).astype(np.int32)
    return out


def _activity_features_reference(activity: pd.DataFrame, ids: np.ndarray, idx: int) -> dict[str, np.ndarray]:
    """The activity columns with numpy (masks and ``bincount``): the kernel's reference."""
    n = len(ids)
    s_count = len(SETTING_CODES)
    far = months_before(idx, 36)
    # bounds ascending: [24_36 start, 12_24 start, 0_12 start, index, outcome end)
    bounds = np.array([far, months_before(idx, 24), months_before(idx, 12), idx, idx + OUTCOME_DAYS])

    person = activity["person_id"].to_numpy(dtype=np.int64)
    start = _date_days(activity["start_date"], np.iinfo(np.int64).min)
    rows = _rows_of(ids, person)
    # Spells that began before the look-back can still add bed days inside it; keep them.
    has_end = "end_date" in activity.columns
    end = _date_days(activity["end_date"], np.iinfo(np.int64).min) if has_end else start
    end = np.maximum(end, start)
    keep = (rows >= 0) & (((start >= far) & (start < bounds[-1])) | ((start < far) & (end > far)))
    sel = np.flatnonzero(keep)
    rows, start, end = rows[sel], start[sel], end[sel]
    setting = _codes(activity["setting"], SETTING_CODES, "activity", "setting")[sel]
    if "quantity" in activity.columns:
        quantity = activity["quantity"].to_numpy(dtype=np.float64, na_value=1.0)[sel]
    else:
        quantity = np.ones(len(sel))
    pence = np.round(activity["cost_gbp"].to_numpy(dtype=np.float64)[sel] * 100.0)
    # window: 0 = 0_12, 1 = 12_24, 2 = 24_36, 3 = outcome year, -1 = before the look-back
    pos = np.searchsorted(bounds, start, side="right")
    window = np.array([-1, 2, 1, 0, 3, -1], dtype=np.int64)[pos]
    spell_codes = np.array([SETTING_CODES.index(s) for s in SPELL_SETTINGS])
    is_spell = np.isin(setting, spell_codes)
    units = np.where(is_spell, 1.0, quantity)

    out: dict[str, np.ndarray] = {}
    past = (window >= 0) & (window <= 2)
    key = (setting[past].astype(np.int64) * 3 + window[past]) * n + rows[past]
    counts = np.bincount(key, weights=units[past], minlength=s_count * 3 * n).reshape(s_count, 3, n)
    names = list(WINDOWS)
    for measure, code in MEASURES.items():
        if not code:
            continue
        s = SETTING_CODES.index(code)
        for w, wname in enumerate(names):
            out[f"{measure}_{wname}"] = counts[s, w].astype(np.int32)
    # Bed days: nights of emergency and elective spells inside each window, never after the index.
    night = np.isin(setting, [SETTING_CODES.index("emergency_inpatient"), SETTING_CODES.index("elective_inpatient")])
    night &= start < idx
    for w, wname in enumerate(names):
        lo, hi = bounds[2 - w], bounds[3 - w]
        nights = np.clip(np.minimum(end[night], hi) - np.maximum(start[night], lo), 0, None)
        out[f"bed_days_{wname}"] = np.bincount(rows[night], weights=nights, minlength=n).astype(np.int32)
    ordered = {f"{m}_{w}": out[f"{m}_{w}"] for m in MEASURES for w in names}

    emergency = setting == SETTING_CODES.index("emergency_inpatient")
    for col, code in (("days_since_emergency", "emergency_inpatient"), ("days_since_ae", "ae")):
        m = (setting == SETTING_CODES.index(code)) & past
        last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last, rows[m], start[m])
        ordered[col] = np.where(last == np.iinfo(np.int64).min, NO_EVENT_DAYS, idx - last).astype(np.int32)

    for period, w in (("0_12", 0), ("next_12m", 3)):
        m = window == w
        cost = np.bincount(setting[m].astype(np.int64) * n + rows[m], weights=pence[m], minlength=s_count * n)
        cost = cost.reshape(s_count, n)
        for s, code in enumerate(SETTING_CODES):
            name = f"cost_{code}_0_12" if period == "0_12" else f"cost_next_12m_{code}"
            ordered[name] = cost[s] / 100.0
        ordered["cost_total_0_12" if period == "0_12" else COST_LABEL] = cost.sum(axis=0) / 100.0

    m = emergency & (window == 0)
    if "primary_diagnosis" in activity.columns and m.any():
        diag = activity["primary_diagnosis"].iloc[sel[m]]
        uniq, inv = np.unique(diag.astype("string").fillna("").to_numpy(dtype=object), return_inverse=True)
        acs = np.array([is_acs(u) for u in uniq], dtype=bool)[inv]
        ordered["acs_admissions_0_12"] = np.bincount(rows[m][acs], minlength=n).astype(np.int32)
    else:
        ordered["acs_admissions_0_12"] = np.zeros(n, dtype=np.int32)
    ordered[LABEL] = (np.bincount(rows[emergency & (window == 3)], minlength=n) > 0).astype(np.int8)
    return ordered


# --- Reading for feature building ---------------------------------------------------------

#: The columns of each table the builder reads.
FEATURE_INPUTS: dict[str, list[str]] = {
    "persons": ["person_id", "practice_code", "sex", "birth_date", "imd_decile", "registered_from",
                "registered_to", "died_on", "care_home", "opted_out"],
    "conditions": ["person_id", "condition", "diagnosed_on"],
    "activity": ["person_id", "setting", "start_date", "end_date", "quantity", "cost_gbp", "primary_diagnosis"],
}


def read_feature_tables(data_dir, person_range: tuple[int, int] | None = None) -> Tables:
    """Read the columns :func:`build_features` uses, as cheaply as arrow allows. No validation.

    Text codes come back as categoricals (parquet's dictionary pages, never decoded to
    Python strings), dates as arrow ``date32`` and numbers as numpy, so a million people's
    fifty million activity rows load in a few seconds. ``person_range = (first, stop)``
    reads one contiguous partition (row groups outside it are skipped).

    This skips :func:`riskcap.validate.load_tables`' checks: use it on data that has been
    validated (or in benchmarks); commands load through ``load_tables``.
    """
    import pyarrow.parquet as pq

    from riskcap.io import read_table, table_path

    def mapper(arrow_type):
        return pd.ArrowDtype(arrow_type) if pa.types.is_date32(arrow_type) else None

    frames = {"practices": read_table(data_dir, "practices")}
    filters = None if person_range is None else [("person_id", ">=", int(person_range[0])),
                                                 ("person_id", "<", int(person_range[1]))]
    for name, wanted in FEATURE_INPUTS.items():
        path = table_path(data_dir, name)
        if path.suffix == ".csv":  # text files: the ordinary reader
            frames[name] = read_table(data_dir, name, filters=filters)
            continue
        schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
        columns = [c for c in wanted if c in schema.names]
        text = [c for c in columns if pa.types.is_string(schema.field(c).type)
                or pa.types.is_large_string(schema.field(c).type)]
        table = pq.read_table(path, columns=columns, filters=filters, read_dictionary=text)
        frames[name] = table.to_pandas(types_mapper=mapper)
    return Tables(**frames)


# --- Partitions ----------------------------------------------------------------------

#: Default number of people per partition when building features for a population.
PARTITION_PEOPLE = 250_000


def iter_partitions(tables: Tables, people: int = PARTITION_PEOPLE):
    """Split tables into contiguous ``person_id`` ranges of about ``people`` persons each.

    Every table must be sorted by ``person_id`` (as :func:`riskcap.validate.load_tables`
    returns them); slices are views found with ``searchsorted``, so this costs no copies.
    """
    ids = tables.persons["person_id"].to_numpy(dtype=np.int64)
    if not is_sorted(ids):
        raise DataError("persons: rows are not sorted by person_id; load the data with riskcap.validate.load_tables")
    others = {}
    for name in ("conditions", "activity"):
        pid = getattr(tables, name)["person_id"].to_numpy(dtype=np.int64)
        if not is_sorted(pid):
            raise DataError(f"{name}: rows are not sorted by person_id; load the data with riskcap.validate.load_tables")
        others[name] = pid
    for lo in range(0, max(len(ids), 1), max(int(people), 1)):
        hi = min(lo + int(people), len(ids))
        first = ids[lo] if hi > lo else 0
        # the last partition takes every later id, so no condition/activity row is lost
        last = ids[hi] if hi < len(ids) else np.iinfo(np.int64).max
        cut = {name: np.searchsorted(pid, [first, last]) for name, pid in others.items()}
        if lo == 0:
            cut = {name: (0, c[1]) for name, c in cut.items()}
        yield Tables(
            practices=tables.practices,
            persons=tables.persons.iloc[lo:hi],
            conditions=tables.conditions.iloc[cut["conditions"][0]:cut["conditions"][1]],
            activity=tables.activity.iloc[cut["activity"][0]:cut["activity"][1]],
        )


def build_features_partitioned(tables: Tables, index_date, people: int = PARTITION_PEOPLE) -> pd.DataFrame:
    """:func:`build_features` one partition at a time, concatenated (same result, less peak memory)."""
    parts = [build_features(part, index_date) for part in iter_partitions(tables, people)]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


# --- The activity kernel ---------------------------------------------------------------

_EMERGENCY = SETTING_CODES.index("emergency_inpatient")
_ELECTIVE = SETTING_CODES.index("elective_inpatient")
_AE = SETTING_CODES.index("ae")
_SPELL = np.array([s in SPELL_SETTINGS for s in SETTING_CODES])


def _activity_features(activity: pd.DataFrame, ids: np.ndarray, idx: int) -> dict[str, np.ndarray]:
    """The activity columns in one pass over the rows (numba; see :func:`_activity_kernel`)."""
    n = len(ids)
    s_count = len(SETTING_CODES)
    bounds = np.array([months_before(idx, 36), months_before(idx, 24), months_before(idx, 12), idx,
                       idx + OUTCOME_DAYS], dtype=np.int64)
    rows = _rows_of(ids, activity["person_id"].to_numpy(dtype=np.int64))
    start = _date_days(activity["start_date"], np.iinfo(np.int64).min)
    end = _date_days(activity["end_date"], np.iinfo(np.int64).min) if "end_date" in activity.columns else start
    setting = _codes(activity["setting"], SETTING_CODES, "activity", "setting")
    if "quantity" in activity.columns:
        quantity = activity["quantity"].to_numpy(dtype=np.float64, na_value=1.0)
    else:
        quantity = np.ones(len(rows))
    pence = np.round(activity["cost_gbp"].to_numpy(dtype=np.float64) * 100.0)
    # ACS: only emergency admissions in the last 12 months need their diagnosis looked at
    acs = np.zeros(len(rows), dtype=np.bool_)
    candidates = np.flatnonzero((setting == _EMERGENCY) & (start >= bounds[2]) & (start < idx) & (rows >= 0))
    if len(candidates) and "primary_diagnosis" in activity.columns:
        diag = activity["primary_diagnosis"].iloc[candidates]
        uniq, inv = np.unique(diag.astype("string").fillna("").to_numpy(dtype=object), return_inverse=True)
        acs[candidates] = np.array([is_acs(u) for u in uniq], dtype=bool)[inv]

    counts = np.zeros((s_count, 3, n))
    bed = np.zeros((3, n))
    cost = np.zeros((2, s_count, n))
    last = np.full((2, n), np.iinfo(np.int64).min, dtype=np.int64)
    acs_count = np.zeros(n, dtype=np.int64)
    label = np.zeros(n, dtype=np.int8)
    _activity_kernel(rows, start, end, setting.astype(np.int64), quantity, pence, acs, bounds, _SPELL,
                     _EMERGENCY, _ELECTIVE, _AE, counts, bed, cost, last, acs_count, label)

    names = list(WINDOWS)
    out: dict[str, np.ndarray] = {}
    for measure, code in MEASURES.items():
        for w, wname in enumerate(names):
            values = bed[w] if measure == "bed_days" else counts[SETTING_CODES.index(code), w]
            out[f"{measure}_{wname}"] = values.astype(np.int32)
    for k, col in enumerate(("days_since_emergency", "days_since_ae")):
        out[col] = np.where(last[k] == np.iinfo(np.int64).min, NO_EVENT_DAYS, idx - last[k]).astype(np.int32)
    for s, code in enumerate(SETTING_CODES):
        out[f"cost_{code}_0_12"] = cost[0, s] / 100.0
    out["cost_total_0_12"] = cost[0].sum(axis=0) / 100.0
    for s, code in enumerate(SETTING_CODES):
        out[f"cost_next_12m_{code}"] = cost[1, s] / 100.0
    out[COST_LABEL] = cost[1].sum(axis=0) / 100.0
    out["acs_admissions_0_12"] = acs_count.astype(np.int32)
    out[LABEL] = label
    return out


@njit(cache=True)
def _activity_kernel(rows, start, end, setting, quantity, pence, acs, bounds, spell, emergency, elective, ae,
                     counts, bed, cost, last, acs_count, label):  # pragma: no cover - compiled
    """Accumulate one partition's activity rows into per-person windows, in row order.

    ``bounds`` = [index - 36 months, - 24, - 12, index, index + 365 days]; window 0 is the
    last 12 months, 1 and 2 the years before, and the outcome year is ``[index, bounds[4])``.
    """
    far, b24, b12, idx, stop = bounds[0], bounds[1], bounds[2], bounds[3], bounds[4]
    for i in range(len(rows)):
        r = rows[i]
        if r < 0:
            continue
        s = start[i]
        if s >= stop:
            continue
        code = setting[i]
        # nights of emergency and elective spells inside each look-back window, before the index
        if (code == emergency or code == elective) and s < idx:
            e = end[i] if end[i] > s else s
            for w in range(3):
                lo = bounds[2 - w]
                hi = bounds[3 - w]
                nights = (e if e < hi else hi) - (s if s > lo else lo)
                if nights > 0:
                    bed[w, r] += nights
        if s >= idx:  # the outcome year
            cost[1, code, r] += pence[i]
            if code == emergency:
                label[r] = 1
            continue
        if s < far:
            continue
        w = 0 if s >= b12 else (1 if s >= b24 else 2)
        counts[code, w, r] += 1.0 if spell[code] else quantity[i]
        if w == 0:
            cost[0, code, r] += pence[i]
            if acs[i]:
                acs_count[r] += 1
        if code == emergency and s > last[0, r]:
            last[0, r] = s
        elif code == ae and s > last[1, r]:
            last[1, r] = s
