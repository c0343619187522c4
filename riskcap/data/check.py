"""The row checks of the contract's tables: vectorised functions of one parsed frame.

:func:`check_practices`, :func:`check_persons`, :func:`check_conditions`,
:func:`check_activity`, :func:`check_practice_changes` and :func:`check_registrations` each
return the :class:`~riskcap.data.parse.Problem` records of one frame; rules that look a row's
person up use a :class:`PersonIndex` of the persons frame. They run on whatever rows they
are given, the whole table or one ``person_id`` range (:mod:`riskcap.data.load`).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from riskcap.data.parse import _KIND_TEXT, Problem, _ordered, _true, parse_column, row_problem
from riskcap.names import ALLOWED, is_safe_name
from riskcap.schema import CONDITION_CODES, MAX_COST_ENV, PRACTICE_CHANGE_KINDS, SETTING_CODES, SEXES, max_cost_gbp

# --- Vectorised rules ----------------------------------------------------------------

_NHS_WEIGHTS = np.arange(10, 1, -1)


def nhs_number_checks(numbers: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised NHS number checks: (not ten digits, fails modulus 11); nulls pass both.

    Same rule as :func:`riskcap.schema.nhs_number_valid`, on whole columns.
    """
    text = numbers.astype("string")
    present = text.notna().to_numpy()
    ten_digits = text.str.fullmatch(r"[0-9]{10}").to_numpy(dtype=bool, na_value=False)
    bad_format = present & ~ten_digits
    bad_check = np.zeros(len(text), dtype=bool)
    if ten_digits.any():
        raw = text[ten_digits].to_numpy(dtype=object).astype("S10")
        digits = raw.view(np.uint8).reshape(-1, 10).astype(np.int64) - ord("0")
        check = 11 - (digits[:, :9] @ _NHS_WEIGHTS) % 11
        check[check == 11] = 0
        bad_check[ten_digits] = (check == 10) | (check != digits[:, 9])
    return bad_format, bad_check


def _as_of(as_of) -> pd.Timestamp:
    return pd.Timestamp(dt.date.today() if as_of is None else as_of).normalize()


def _future(df, cols, name, file, as_of: pd.Timestamp) -> list[Problem]:
    out = []
    for c in cols:
        out.append(row_problem(df, after(df[c], as_of), name, file, c, "future_date",
                               f"date after the as-of date {as_of.date().isoformat()}"))
    return out


def after(dates: pd.Series, as_of: pd.Timestamp) -> np.ndarray | pd.Series:
    """``dates > as_of`` (missing dates are not after it); a ``datetime64[s]`` column is compared
    as its integers (NaT is the smallest int64, so never after), without pandas' NaT masking."""
    if isinstance(dates.dtype, np.dtype) and dates.dtype == np.dtype("datetime64[s]") and as_of.tz is None:
        return dates.to_numpy().view(np.int64) > np.datetime64(as_of.to_datetime64(), "s").astype(np.int64)
    return dates > as_of


def _before(df, later: str, earlier: str, name, file, rule: str) -> Problem | None:
    return row_problem(df, df[later] < df[earlier], name, file, [later, earlier], rule,
                       f"{later} is before {earlier}")


def _not_in(df, col: str, allowed, name, file, rule: str, message: str) -> Problem | None:
    return row_problem(df, outside(df[col], allowed), name, file, col, rule, message)


def outside(values: pd.Series, allowed) -> np.ndarray:
    """Values present and not in ``allowed``; a categorical column is judged by its categories,
    then each row by its code, instead of a set look-up per row."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        bad = np.append(~values.cat.categories.isin(list(allowed)), False)  # code -1 (missing) is not outside
        return bad[values.cat.codes.to_numpy()]
    return _true(values.notna() & ~values.isin(list(allowed)))


def _duplicates(df, cols: list[str], name, file, rule: str, message: str) -> Problem | None:
    keyed = df[cols]
    return row_problem(df, keyed.notna().all(axis=1) & keyed.duplicated(keep=False), name, file, cols, rule, message)


def check_practices(df: pd.DataFrame, file: str, as_of=None) -> list[Problem]:
    """Row checks of a parsed practices frame; the optional contract-v2 columns ``opened_on``
    (parsed to dates in ``df``, none after the as-of date) and ``pcn_code`` (a safe code) too."""
    name = "practices"
    problems = [
        _duplicates(df, ["practice_code"], name, file, "duplicate_key", "duplicate practice_code"),
        row_problem(df, df["list_size"] < 0, name, file, "list_size", "negative", "negative list size"),
        row_problem(df, df["need_index"] <= 0, name, file, "need_index", "not_positive", "need index must be > 0"),
    ]
    if "opened_on" in df.columns:
        raw_values = df["opened_on"]
        df["opened_on"], bad = parse_column(raw_values, "date")
        problems.append(row_problem(df, bad, name, file, "opened_on", "wrong_type", f"not a valid {_KIND_TEXT['date']}",
                                    values=raw_values))
        problems += _future(df, ["opened_on"], name, file, _as_of(as_of))
    if "pcn_code" in df.columns:
        codes = df["pcn_code"]
        problems.append(row_problem(df, codes.notna().to_numpy() & ~codes.map(is_safe_name, na_action="ignore")
                                    .fillna(True).to_numpy(dtype=bool), name, file, "pcn_code", "unsafe_code",
                                    f"pcn_code must be {ALLOWED}"))
    return _ordered(problems, 1)


def check_persons(df: pd.DataFrame, file: str, as_of=None, practice_codes=None,
                  practices_file: str = "practices") -> list[Problem]:
    """Row checks of a parsed persons frame.

    ``practice_codes``: the codes in the practices table (None skips that check).
    """
    name = "persons"
    as_of = _as_of(as_of)
    bad_format, bad_check = nhs_number_checks(df["nhs_number"])
    problems = [
        _duplicates(df, ["person_id"], name, file, "duplicate_key", "duplicate person_id"),
        row_problem(df, bad_format, name, file, "nhs_number", "nhs_number_format",
                    "NHS number is not 10 digits (no spaces)"),
        row_problem(df, bad_check, name, file, "nhs_number", "nhs_number_mod11",
                    "NHS number fails the modulus-11 check"),
        _not_in(df, "sex", SEXES, name, file, "unknown_code", f"sex must be one of {', '.join(SEXES)}"),
        row_problem(df, (df["imd_decile"] < 1) | (df["imd_decile"] > 10), name, file, "imd_decile",
                    "out_of_range", "IMD decile must be 1 to 10"),
        *_future(df, ["birth_date", "registered_from", "died_on"], name, file, as_of),
        _before(df, "registered_from", "birth_date", name, file, "date_order"),
        _before(df, "registered_to", "registered_from", name, file, "date_order"),
        _before(df, "died_on", "birth_date", name, file, "date_order"),
    ]
    if practice_codes is not None:
        problems.append(_not_in(df, "practice_code", practice_codes, name, file, "unknown_key",
                                f"practice_code not in {practices_file}"))
    return _ordered(problems, 1)


@dataclass
class PersonIndex:
    """Sorted person ids with their birth dates, for vectorised look-ups from event tables."""

    ids: np.ndarray  # int64, sorted, unique
    birth: np.ndarray  # datetime64[s], aligned with ids

    @classmethod
    def from_persons(cls, persons: pd.DataFrame) -> "PersonIndex":
        keep = persons["person_id"].notna().to_numpy()
        ids = persons["person_id"].to_numpy()[keep].astype(np.int64)
        birth = persons["birth_date"].to_numpy(dtype="datetime64[s]")[keep]
        order = np.argsort(ids, kind="stable")
        ids, birth = ids[order], birth[order]
        first = np.ones(len(ids), dtype=bool)
        first[1:] = ids[1:] != ids[:-1]
        return cls(ids[first], birth[first])

    def lookup(self, person_id: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(found, birth_date) for each person_id; birth is NaT where not found.

        One pass of :func:`_lookup_kernel` (numba; near-linear when the ids come sorted, as
        event tables usually do); ``tests/reference/validate.py`` has the plain numpy twin.
        """
        values, present = _int_ids(person_id)
        found = np.zeros(len(values), dtype=bool)
        birth = np.empty(len(values), dtype="datetime64[s]")
        _lookup_kernel(*self._arrays(), values, present, found, birth.view(np.int64), _NO_DATES, _NO_FLAGS)
        return found, birth

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.ascontiguousarray(self.ids, dtype=np.int64),
                np.ascontiguousarray(self.birth, dtype="datetime64[s]").view(np.int64))

    def lookup_before(self, person_id: pd.Series, dates: list[pd.Series]) -> tuple[np.ndarray, list[np.ndarray]]:
        """(found, [dates < birth_date for each of ``dates``]) for each person_id: :meth:`lookup`
        and the comparisons in one pass per date column, without the birth dates array."""
        values, present = _int_ids(person_id)
        found = None
        out = []
        for column in dates:
            d = column.to_numpy() if isinstance(column.dtype, np.dtype) else None
            if d is None or d.dtype != np.dtype("datetime64[s]"):  # not the parsed dtype: compare as datetimes
                found, birth = self.lookup(person_id)
                out.append(_true(column.to_numpy() < birth))
                continue
            before = np.zeros(len(values), dtype=bool)
            found = np.zeros(len(values), dtype=bool)
            _lookup_kernel(*self._arrays(), values, present, found, _NO_DATES,
                           np.ascontiguousarray(d).view(np.int64), before)
            out.append(before)
        if found is None:
            found, _ = self.lookup(person_id)
        return found, out


def _int_ids(person_id: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ids with nulls as 0, present) without copying a plain int64 column."""
    if isinstance(person_id.dtype, np.dtype) and person_id.dtype == np.int64:
        return person_id.to_numpy(), np.ones(len(person_id), dtype=bool)
    present = person_id.notna().to_numpy()
    values = person_id.to_numpy(dtype=np.int64, na_value=0) if present.any() else np.zeros(len(person_id), np.int64)
    return np.ascontiguousarray(values, dtype=np.int64), present


_NAT = np.iinfo(np.int64).min  # NaT as int64
_NO_DATES = np.zeros(0, dtype=np.int64)
_NO_FLAGS = np.zeros(0, dtype=bool)


@numba.njit(cache=True)
def _lookup_kernel(ids, birth, values, present, found, out, dates, before):  # pragma: no cover - compiled
    """``found[i]``: values[i] is in ``ids`` (sorted, unique); ``out[i]`` (when ``out`` is not
    empty): its birth (int64), else NaT; ``before[i]`` (when ``dates`` is not empty): ``dates[i]``
    is before that birth (both not NaT), i.e. ``dates < out`` as datetimes.

    Keeps the lower bound of the previous id, so a row whose id is not smaller than the
    previous row's moves forward a few steps (then gallops) instead of searching all ids.
    """
    m = ids.shape[0]
    with_birth = out.shape[0] > 0
    with_dates = dates.shape[0] > 0
    pos = 0  # lower bound of prev in ids
    prev = ids[0] if m else 0
    for i in range(values.shape[0]):
        if with_birth:
            out[i] = _NAT
        if not present[i] or m == 0:
            continue
        v = values[i]
        if v >= prev:  # lower bound of v >= pos
            lo = pos
            if lo >= m or ids[lo] >= v:
                hi = lo
            else:
                step = 1
                while lo + step < m and ids[lo + step] < v:  # gallop, keeping ids[lo] < v
                    lo += step
                    step *= 2
                hi = min(lo + step, m)
                while lo + 1 < hi:  # invariant: ids[lo] < v, lower bound in (lo, hi]
                    mid = (lo + hi) // 2
                    if ids[mid] < v:
                        lo = mid
                    else:
                        hi = mid
        else:
            lo, hi = 0, m  # lower bound in [lo, hi]
            while lo < hi:
                mid = (lo + hi) // 2
                if ids[mid] < v:
                    lo = mid + 1
                else:
                    hi = mid
        pos, prev = hi, v
        if hi < m and ids[hi] == v:
            found[i] = True
            if with_birth:
                out[i] = birth[hi]
            if with_dates:
                d, b = dates[i], birth[hi]
                before[i] = d != _NAT and b != _NAT and d < b


def _person_checks(df, name, file, persons: PersonIndex | None, date_cols: list[str],
                   persons_file: str) -> list[Problem]:
    if persons is None:
        return []
    found, befores = persons.lookup_before(df["person_id"], [df[col] for col in date_cols])
    problems = [row_problem(df, df["person_id"].notna().to_numpy() & ~found, name, file, "person_id",
                            "unknown_key", f"person_id not in {persons_file}")]
    for col, before in zip(date_cols, befores):
        problems.append(row_problem(df, before, name, file, col, "before_birth",
                                    f"{col} is before the person's birth_date"))
    return problems


def check_conditions(df: pd.DataFrame, file: str, as_of=None, persons: PersonIndex | None = None,
                     persons_file: str = "persons") -> list[Problem]:
    """Row checks of a parsed conditions frame (``persons`` None skips person look-ups)."""
    name = "conditions"
    problems = [
        _not_in(df, "condition", CONDITION_CODES, name, file, "unknown_code",
                f"unknown condition code (allowed: {', '.join(CONDITION_CODES)})"),
        *_future(df, ["diagnosed_on"], name, file, _as_of(as_of)),
        _duplicates(df, ["person_id", "condition"], name, file, "duplicate_key",
                    "duplicate (person_id, condition)"),
        *_person_checks(df, name, file, persons, ["diagnosed_on"], persons_file),
    ]
    return _ordered(problems, 1)


def check_activity(df: pd.DataFrame, file: str, as_of=None, persons: PersonIndex | None = None,
                   persons_file: str = "persons") -> list[Problem]:
    """Row checks of a parsed activity frame (``persons`` None skips person look-ups)."""
    name = "activity"
    problems = [
        _not_in(df, "setting", SETTING_CODES, name, file, "unknown_code",
                f"unknown setting code (allowed: {', '.join(SETTING_CODES)})"),
        *_future(df, ["start_date", "end_date"], name, file, _as_of(as_of)),
        row_problem(df, df["end_date"] < df["start_date"], name, file, ["end_date", "start_date"],
                    "date_order", "end_date is before start_date (negative length of stay)"),
        row_problem(df, df["cost_gbp"] < 0, name, file, "cost_gbp", "negative", "negative cost"),
        _implausible_cost(df, name, file),
        row_problem(df, df["quantity"] < 0, name, file, "quantity", "negative", "negative quantity"),
        *_person_checks(df, name, file, persons, ["start_date"], persons_file),
    ]
    return _ordered(problems, 1)


def _implausible_cost(df, name, file) -> Problem | None:
    """Rows costing more than the contract's plausible maximum (riskcap.schema.max_cost_gbp)."""
    limit = max_cost_gbp()
    return row_problem(df, df["cost_gbp"] > limit, name, file, "cost_gbp", "implausible",
                       f"cost above the plausible maximum of £{limit:,.0f} a row (pence in the pounds column? "
                       f"if such costs are real, set ${MAX_COST_ENV} to the largest)")


def codes_of(practices: pd.DataFrame | None):
    """The practice codes of a parsed practices frame (None when it could not be parsed)."""
    return None if practices is None else practices["practice_code"].dropna().unique()


def check_practice_changes(df: pd.DataFrame, file: str, practice_codes=None,
                           practices_file: str = "practices") -> list[Problem]:
    """Row checks of a parsed practice_changes frame (``practice_codes`` None skips look-ups)."""
    name = "practice_changes"
    merge = (df["change"] == "merge").to_numpy(dtype=bool, na_value=False)
    into = df["into_practice_code"]
    problems = [
        _duplicates(df, ["practice_code"], name, file, "duplicate_key", "duplicate practice_code: a practice ends once"),
        _not_in(df, "change", PRACTICE_CHANGE_KINDS, name, file, "unknown_code",
                f"change must be one of {', '.join(PRACTICE_CHANGE_KINDS)}"),
        row_problem(df, merge & into.isna().to_numpy(), name, file, ["into_practice_code", "change"], "missing_value",
                    "a merge needs into_practice_code (where the list goes)"),
        row_problem(df, ~merge & into.notna().to_numpy(), name, file, ["into_practice_code", "change"],
                    "not_null", "into_practice_code must be empty unless change is merge"),
        row_problem(df, into.notna() & (into == df["practice_code"]), name, file, ["into_practice_code", "practice_code"],
                    "self_reference", "into_practice_code is the practice itself"),
    ]
    if practice_codes is not None:
        for col in ("practice_code", "into_practice_code"):
            problems.append(_not_in(df, col, practice_codes, name, file, "unknown_key", f"{col} not in {practices_file}"))
    return _ordered(problems, 1)


def check_registrations(df: pd.DataFrame, file: str, as_of=None, persons: PersonIndex | None = None,
                        persons_frame: pd.DataFrame | None = None, practice_codes=None,
                        practice_changes: pd.DataFrame | None = None, persons_file: str = "persons",
                        practices_file: str = "practices") -> list[Problem]:
    """Row checks of a parsed registrations frame (contract v2).

    Each row: its person and practice exist, the period starts on or after birth and not after
    the as-of date, and ends on or after it starts. Each person's periods (in file order):
    sorted by registered_from, not overlapping, only the last open, and agreeing with the
    persons row (first registered_from, last registered_to and last practice_code). A period
    at a practice that merged or closed does not run past its effective_on.
    """
    name = "registrations"
    pid = df["person_id"].to_numpy(dtype=np.float64, na_value=np.nan)
    start = df["registered_from"].to_numpy(dtype="datetime64[s]")
    stop = df["registered_to"].to_numpy(dtype="datetime64[s]")
    same = np.zeros(len(df), dtype=bool)
    same[1:] = pid[1:] == pid[:-1]
    prev_stop = np.concatenate([np.array(["NaT"], dtype="datetime64[s]"), stop[:-1]])
    prev_start = np.concatenate([np.array(["NaT"], dtype="datetime64[s]"), start[:-1]])
    unsorted = np.zeros(len(df), dtype=bool)
    unsorted[1:] = (pid[1:] < pid[:-1]) | (same[1:] & (start[1:] < prev_start[1:]))
    after_open = same & np.isnat(prev_stop)
    overlap = same & ~np.isnat(prev_stop) & ~np.isnat(start) & (start < prev_stop)
    problems = [
        row_problem(df, unsorted, name, file, ["person_id", "registered_from"], "not_sorted",
                    "rows not sorted by person_id, then registered_from"),
        *_future(df, ["registered_from"], name, file, _as_of(as_of)),
        _before(df, "registered_to", "registered_from", name, file, "date_order"),
        row_problem(df, after_open & ~unsorted, name, file, ["registered_from", "person_id"], "after_open_period",
                    "the person's previous period is still open (only the last period may have no registered_to)"),
        row_problem(df, overlap & ~unsorted, name, file, ["registered_from", "person_id"], "overlap",
                    "period starts before the person's previous period ends"),
    ]
    if practice_codes is not None:
        problems.append(_not_in(df, "practice_code", practice_codes, name, file, "unknown_key",
                                f"practice_code not in {practices_file}"))
    problems += _person_checks(df, name, file, persons, ["registered_from"], persons_file)
    if persons_frame is not None and len(df):
        problems += _agrees_with_persons(df, persons_frame, name, file, persons_file)
    if practice_changes is not None and len(practice_changes):
        ends = pd.Series(practice_changes["effective_on"].to_numpy(dtype="datetime64[s]"),
                         index=practice_changes["practice_code"].astype(object)).groupby(level=0).min()
        at = ends.index.get_indexer(df["practice_code"])  # -1 (no change): NaT, the appended last value
        limit = np.append(ends.to_numpy(dtype="datetime64[s]"), np.datetime64("NaT", "s"))[at]
        past = ~np.isnat(limit) & (np.isnat(stop) | (stop > limit))
        problems.append(row_problem(df, past, name, file, ["registered_to", "practice_code"], "after_practice_change",
                                    "period runs past the day its practice merged or closed (practice_changes)"))
    return _ordered(problems, 1)


def _agrees_with_persons(df: pd.DataFrame, persons: pd.DataFrame, name: str, file: str,
                         persons_file: str) -> list[Problem]:
    """Each person's first and last period against their persons row."""
    pid = df["person_id"]
    first = (pid != pid.shift()).to_numpy() & pid.notna().to_numpy()
    last = (pid != pid.shift(-1)).to_numpy() & pid.notna().to_numpy()
    keyed = persons.dropna(subset=["person_id"]).drop_duplicates("person_id").set_index("person_id")
    row = keyed.index.get_indexer(pid)
    known = row >= 0

    def differs(column: str, rows: np.ndarray) -> np.ndarray:
        """Selected rows whose value differs from their person's; missing equals missing."""
        at = np.flatnonzero(rows)
        mine, theirs = df[column].to_numpy()[at], keyed[column].to_numpy()[row[at]]
        if mine.dtype.kind == theirs.dtype.kind == "M":
            mine, theirs = mine.astype("datetime64[s]"), theirs.astype("datetime64[s]")
        missing = pd.isna(mine), pd.isna(theirs)
        both = ~missing[0] & ~missing[1]
        out = np.zeros(len(df), dtype=bool)
        out[at] = missing[0] != missing[1]
        out[at[both]] = np.asarray(mine[both] != theirs[both], dtype=bool)
        return out

    return [
        row_problem(df, differs("registered_from", known & first), name, file,
                    ["registered_from", "person_id"], "persons_mismatch",
                    f"the person's first registered_from differs from {persons_file}"),
        row_problem(df, differs("registered_to", known & last), name, file,
                    ["registered_to", "person_id"], "persons_mismatch",
                    f"the person's last registered_to differs from {persons_file}"),
        row_problem(df, differs("practice_code", known & last), name, file,
                    ["practice_code", "person_id"], "persons_mismatch",
                    f"the person's last practice_code differs from {persons_file}"),
    ]
