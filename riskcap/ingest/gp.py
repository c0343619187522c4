"""GP extracts: practices; registrations to the contract's ``registrations`` and ``persons``; the
coded journal to ``conditions`` (registers from codelists, with QOF-style exclusions); and GP
appointments and prescriptions to ``activity``. How persons are made from registrations and
the register rules: ``docs/import.md``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from riskcap.data.check import nhs_number_checks
from riskcap.ingest.activity import ActivityRows, date_array, monthly
from riskcap.ingest.codelists import Codelists
from riskcap.ingest.costs import Pricing
from riskcap.ingest.extracts import INT32_NULL, Parsed
from riskcap.ingest.rows import Rows
from riskcap.schema import CONDITION_CODES

#: Sex codes of GP extracts (and the NHS Data Dictionary's 1 = male, 2 = female) -> F or M.
SEX_CODES = {"F": "F", "FEMALE": "F", "2": "F", "M": "M", "MALE": "M", "1": "M"}
NOT_REGISTERED = "person not in the GP registrations"
NOT_IMPORTED = "person not imported (sex not recorded as F or M)"
PERSON_QUARANTINED = "person quarantined (see gp/registrations)"


# --- people of a partition ---------------------------------------------------------------------

@dataclass
class People:
    """The people of one partition: sorted ids, birth days, and each one's state:
    0 imported, 1 quarantined (rows rejected), 2 not imported (sex not F or M)."""

    ids: np.ndarray
    birth: np.ndarray
    state: np.ndarray
    written: np.ndarray | None = None  # in the persons table (reject mode leaves out people with problems)
    period_pos: np.ndarray | None = None  # each registration period's person (position in ids), sorted
    period_from: np.ndarray | None = None  # ... and its registered_from day, sorted within the person
    _table: np.ndarray | None = field(default=None, repr=False)  # position by id - ids[0], when dense

    def __post_init__(self):
        if len(self.ids):
            lo, span = int(self.ids[0]), int(self.ids[-1]) - int(self.ids[0]) + 1
            if span <= 4 * len(self.ids) + 1024:
                self._table = np.full(span + 1, -1, dtype=np.int64)
                self._table[self.ids - lo] = np.arange(len(self.ids))

    def positions(self, person_id: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Each id's position in ``ids`` (-1: not there). Ids of a range are usually dense, so a
        table indexed by id is used when it is small (searching sorted ids otherwise)."""
        if self._table is not None:
            lo, span = int(self.ids[0]), len(self._table) - 1
            offset = person_id - lo
            offset[(offset < 0) | (offset >= span) | ~present] = span  # the last slot stays -1
            return self._table[offset]
        pos = np.searchsorted(self.ids, person_id).clip(max=len(self.ids) - 1)
        return np.where(present & (self.ids[pos] == person_id), pos, -1)

    def period_of(self, pos: np.ndarray, day: np.ndarray) -> np.ndarray:
        """For each (person position, day): how many of the person's registration periods start
        on or before the day, so rows of one person on either side of a move differ."""
        if self.period_pos is None or len(self.period_pos) == 0 or len(pos) == 0:
            return np.zeros(len(pos), dtype=np.int64)
        lo = min(int(self.period_from.min()), int(day.min()))
        span = max(int(self.period_from.max()), int(day.max())) - lo + 1
        periods = self.period_pos.astype(np.int64) * span + (self.period_from.astype(np.int64) - lo)
        rows = pos.astype(np.int64) * span + (day.astype(np.int64) - lo)
        return np.searchsorted(periods, rows, side="right") - np.searchsorted(periods, pos.astype(np.int64) * span)

    def match(self, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
        """Look up each row's person: (position in ``ids`` or -1, birth day or INT32_NULL).

        Rows of people not registered or not imported are unmapped; rows of quarantined
        people are rejected (quarantine mode only: then the people are quarantined)."""
        pid = rows.col("person_id")
        present = ~pid.null & ~pid.bad
        if len(self.ids) == 0:
            rows.unmapped(present, NOT_REGISTERED)
            return np.full(rows.n, -1, dtype=np.int64), np.full(rows.n, INT32_NULL, dtype=np.int32)
        pos = self.positions(pid.values, present)
        found = pos >= 0
        state = np.where(found, self.state[pos], -1)
        rows.unmapped(present & ~found, NOT_REGISTERED)
        rows.unmapped(state == 2, NOT_IMPORTED)
        rows.problem(state == 1, "person_id", "person_quarantined", PERSON_QUARANTINED)
        return pos, np.where(found, self.birth[pos], INT32_NULL).astype(np.int32)


# --- practices -----------------------------------------------------------------------------------

def practices(rows: Rows) -> list[str]:
    """Check the practices extract; returns the practice codes of its rows (None for a missing one)."""
    code = rows.col("practice_code")
    rows.col("icb_code")
    rows.duplicate(["practice_code"], [code.values], ~code.null, "duplicate practice_code")
    if rows.has("list_size"):
        rows.not_negative("list_size")
    if rows.has("need_index"):
        need = rows.col("need_index")
        rows.problem(~need.null & ~need.bad & (need.values <= 0), "need_index", "not_positive",
                     "need index must be > 0")
    if rows.has("opened_on"):
        rows.col("opened_on")
    if rows.has("pcn_code"):
        rows.col("pcn_code")
    if rows.has("practice_name"):
        rows.col("practice_name")
    return [code.categories[i] if i >= 0 else None for i in code.values]


def practices_table(rows: Rows, list_sizes: Counter | None) -> pa.Table:
    """The contract's practices table from the kept rows; ``list_sizes`` fills a missing list_size."""
    keep = rows.keep
    code = rows.col("practice_code")
    codes = [code.categories[i] for i in code.values[keep]]
    icb = rows.col("icb_code")
    columns = {"practice_code": pa.array(codes, pa.string()),
               "icb_code": pa.array([icb.categories[i] for i in icb.values[keep]], pa.string())}
    if rows.has("list_size"):
        columns["list_size"] = pa.array(rows.col("list_size").values[keep], pa.int64())
    else:
        columns["list_size"] = pa.array([int(list_sizes.get(c, 0)) for c in codes], pa.int64())
    for name, kind in (("need_index", pa.float64()), ("practice_name", pa.string()), ("opened_on", pa.date32()),
                       ("pcn_code", pa.string())):
        if not rows.has(name):
            continue
        col = rows.col(name)
        if name == "pcn_code":
            values = [col.categories[i] if i >= 0 else None for i in col.values[keep]]
            columns[name] = pa.array(values, kind)
        elif name == "opened_on":
            columns[name] = pa.array(col.values[keep], pa.int32(), mask=col.null[keep]).cast(pa.date32())
        else:
            columns[name] = pa.array(col.values[keep], kind, mask=col.null[keep] if name != "practice_name" else None,
                                     from_pandas=True)
    order = np.argsort(np.array(codes, dtype=object), kind="stable") if codes else np.zeros(0, np.int64)
    return pa.table(columns).take(pa.array(order, type=pa.int64()))


def practice_changes(rows: Rows, known: set[str]) -> dict[str, int]:
    """Check practice changes; returns practice code -> first day it holds no patients."""
    code = rows.col("practice_code")
    change = rows.col("change")
    on = rows.col("effective_on")
    into = rows.col("into_practice_code")
    codes = np.array([code.categories[i] if i >= 0 else None for i in code.values], dtype=object)
    targets = np.array([into.categories[i] if i >= 0 else None for i in into.values], dtype=object)
    kinds = np.array([change.categories[i].lower() if i >= 0 else None for i in change.values], dtype=object)
    rows.problem(~code.null & ~np.isin(codes, list(known)), "practice_code", "unknown_key",
                 "practice_code not in gp/practices")
    rows.duplicate(["practice_code"], [code.values], ~code.null, "duplicate practice_code")
    rows.problem(~change.null & ~np.isin(kinds, ["merge", "close"]), "change", "unknown_code",
                 "change must be merge or close")
    merge = kinds == "merge"
    rows.problem(merge & into.null, ["into_practice_code", "change"], "missing_value",
                 "a merge needs into_practice_code")
    rows.problem((kinds == "close") & ~into.null, ["into_practice_code", "change"], "unexpected_value",
                 "a closed practice has no into_practice_code")
    rows.problem(~into.null & (~np.isin(targets, list(known)) | (targets == codes)), "into_practice_code",
                 "unknown_key", "into_practice_code is not another practice in gp/practices")
    keep = rows.keep
    return {codes[i]: int(on.values[i]) for i in np.flatnonzero(keep)}


def practice_changes_table(rows: Rows) -> pa.Table:
    keep = rows.keep
    cols = {}
    for name in ("practice_code", "change", "into_practice_code"):
        c = rows.col(name)
        values = [c.categories[i] if i >= 0 else None for i in c.values[keep]]
        cols[name] = pa.array([v.lower() if v and name == "change" else v for v in values], pa.string())
    on = rows.col("effective_on")
    cols["effective_on"] = pa.array(on.values[keep], pa.int32()).cast(pa.date32())
    table = pa.table({k: cols[k] for k in ("practice_code", "change", "effective_on", "into_practice_code")})
    return table.sort_by("practice_code")


# --- registrations -> persons, registrations -----------------------------------------------------

@dataclass
class RegistrationStats:
    """What the registrations of a partition did that the report should say."""

    closed_at_death: int = 0  # open last periods ended on the date of death
    cut_at_death: int = 0  # last periods ending after the death, ended on it
    several_periods: int = 0  # people with more than one period
    list_sizes: Counter = field(default_factory=Counter)  # registered on the last day covered, per practice

    def add(self, other: "RegistrationStats") -> None:
        self.closed_at_death += other.closed_at_death
        self.cut_at_death += other.cut_at_death
        self.several_periods += other.several_periods
        self.list_sizes.update(other.list_sizes)


def registrations(rows: Rows, known: dict[str, int], changes: dict[str, int], last_day: int,
                  quarantine: bool) -> tuple[People, pa.Table, pa.Table, RegistrationStats]:
    """Check a partition's registration rows and make its persons and registrations tables.

    ``known``: practice code -> 0 usable, 1 quarantined. Returns (people, persons,
    registrations, stats).
    """
    pid = rows.col("person_id")
    practice = rows.col("practice_code")
    rf = rows.dates_in_window("registered_from", None, last_day)
    rt = rows.col("registered_to")
    sex = rows.col("sex")
    birth = rows.col("birth_date")
    imd = rows.col("imd_decile")
    died = rows.dates_in_window("died_on", None, last_day)
    care, opted = rows.col("care_home"), rows.col("opted_out")
    nhs = _digits_only(rows.col("nhs_number"))

    codes = practice.categories
    state = np.array([known.get(c, 2) for c in codes] + [0], dtype=np.int8)[practice.values]
    rows.problem(state == 2, "practice_code", "unknown_key", "practice_code not in gp/practices")
    rows.problem(state == 1, "practice_code", "practice_quarantined", "practice quarantined (see gp/practices)")
    ok = lambda c: ~c.null & ~c.bad  # noqa: E731 - a value present and valid
    rows.problem(ok(imd) & ((imd.values < 1) | (imd.values > 10)), "imd_decile", "out_of_range",
                 "IMD decile must be 1 to 10")
    rows.problem(ok(birth) & (birth.values > last_day), "birth_date", "future_date",
                 f"date on or after the extract date {np.datetime64(last_day + 1, 'D')}")
    both = ok(rf) & ok(birth)
    rows.problem(both & (rf.values < birth.values), ["registered_from", "birth_date"], "date_order",
                 "registered_from is before birth_date")
    rows.problem(ok(rt) & ok(rf) & (rt.values < rf.values), ["registered_to", "registered_from"], "date_order",
                 "registered_to is before registered_from")
    rows.problem(ok(died) & ok(birth) & (died.values < birth.values), ["died_on", "birth_date"], "date_order",
                 "died_on is before birth_date")
    rows.problem(ok(died) & ok(rf) & (rf.values > died.values), ["registered_from", "died_on"], "date_order",
                 "registered_from is after died_on")
    if rows.has("nhs_number"):
        text = pd.Series(_decode(nhs).to_pandas(), dtype="string")
        bad_format, bad_check = nhs_number_checks(text)
        rows.problem(bad_format, "nhs_number", "nhs_number_format", "NHS number is not 10 digits")
        rows.problem(bad_check, "nhs_number", "nhs_number_mod11", "NHS number fails the modulus-11 check")
    if changes:
        ends = np.array([changes.get(c, np.iinfo(np.int32).max) for c in codes] + [np.iinfo(np.int32).max],
                        dtype=np.int64)[practice.values]
        late = (ends < np.iinfo(np.int32).max) & ok(rf) & (rt.null | (rt.values > ends))
        rows.problem(late, ["practice_code", "registered_to"], "after_change",
                     "registration continues past the practice's change date in gp/practice_changes")
    sex_code = np.array([SEX_CODES.get(c.upper(), "") for c in sex.categories] + [""], dtype=object)[sex.values]

    # the person's rows together: agreement and no overlaps
    present = ok(pid)
    to_key = np.where(rt.null, np.iinfo(np.int32).max, rt.values)
    order = np.lexsort((to_key, rf.values, pid.values))
    order = order[present[order]]
    p_sorted = pid.values[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = p_sorted[1:] != p_sorted[:-1]
    group = np.cumsum(first) - 1

    def disagree(values: np.ndarray) -> np.ndarray:
        """Rows (in file order) of people whose rows do not all share one value."""
        v = values[order]
        differs = np.zeros(len(order), dtype=bool)
        differs[1:] = ~first[1:] & (v[1:] != v[:-1])
        bad_group = np.zeros(group[-1] + 1 if len(group) else 0, dtype=bool)
        bad_group[group[differs]] = True
        out = np.zeros(rows.n, dtype=bool)
        out[order] = bad_group[group] if len(group) else False
        return out

    for name, values in (("sex", sex.values), ("birth_date", birth.values), ("died_on", died.values),
                         ("nhs_number", nhs.values)):
        if rows.has(name):
            rows.problem(disagree(values), ["person_id", name], "conflicting_values",
                         f"{name} differs between the person's registration rows", column=name)
    to_sorted = to_key[order]
    overlap_row = np.zeros(len(order), dtype=bool)
    overlap_row[1:] = ~first[1:] & (to_sorted[:-1] > rf.values[order][1:])
    bad_group = np.zeros(group[-1] + 1 if len(group) else 0, dtype=bool)
    bad_group[group[overlap_row]] = True
    overlap = np.zeros(rows.n, dtype=bool)
    overlap[order] = bad_group[group] if len(group) else False
    rows.problem(overlap, ["person_id", "practice_code", "registered_from", "registered_to"], "overlap",
                 "registration periods of the person overlap (only the last may be open)", column="registered_to")
    if quarantine:  # a person is imported whole or not at all
        rejected_group = np.zeros(group[-1] + 1 if len(group) else 0, dtype=bool)
        rejected_group[group[rows.rejected[order]]] = True
        others = np.zeros(rows.n, dtype=bool)
        others[order] = rejected_group[group] if len(group) else False
        rows.problem(others & ~rows.rejected, "person_id", "person_quarantined",
                     "another registration row of the person has a problem")
    no_sex = np.zeros(rows.n, dtype=bool)
    no_sex[order] = (np.bincount(group, weights=(sex_code[order] == ""), minlength=group[-1] + 1 if len(group) else 0)
                     [group] > 0) if len(group) else False
    rows.unmapped(no_sex, "sex not recorded as F or M (the contract has no other code)", column="sex")

    # people of the partition and their state
    ids = p_sorted[first]
    rejected_of = np.zeros(len(ids), dtype=bool)
    np.logical_or.at(rejected_of, group, rows.rejected[order])
    unmapped_of = np.zeros(len(ids), dtype=bool)
    np.logical_or.at(unmapped_of, group, no_sex[order])
    people_state = np.where(rejected_of, 1, np.where(unmapped_of, 2, 0)).astype(np.int8)
    if not quarantine:
        people_state[people_state == 1] = 0  # reject mode: the run fails anyway; keep look-ups quiet
    birth_of = birth.values[order][first]
    people = People(ids, np.where(birth.null[order][first], INT32_NULL, birth_of).astype(np.int32), people_state)

    # persons and registrations from the kept rows (sorted by person, then registered_from)
    keep = rows.keep[order]
    k = order[keep]
    kp = pid.values[k]
    stats = RegistrationStats()
    people.written = np.isin(ids, kp)
    people.period_pos, people.period_from = np.searchsorted(ids, kp), rf.values[k].astype(np.int64)
    if len(k) == 0:
        return people, _persons_table(empty=True), _registrations_empty(), stats
    starts = np.ones(len(k), dtype=bool)
    starts[1:] = kp[1:] != kp[:-1]
    last = np.ones(len(k), dtype=bool)
    last[:-1] = starts[1:]
    group_k = np.cumsum(starts) - 1
    d_died = np.where(died.null[k], INT32_NULL, died.values[k])
    end = np.where(rt.null[k], INT32_NULL, rt.values[k]).astype(np.int32)
    dead = d_died != INT32_NULL
    close = last & dead & (end == INT32_NULL)
    cut = last & dead & (end != INT32_NULL) & (end > d_died)
    stats.closed_at_death, stats.cut_at_death = int(close.sum()), int(cut.sum())
    end = np.where(close | cut, d_died, end).astype(np.int32)
    stats.several_periods = int((np.bincount(group_k) > 1).sum())
    on_day = (rf.values[k] <= last_day) & ((end == INT32_NULL) | (end > last_day)) & \
        (~dead | (d_died > last_day))
    practice_k = practice.values[k]
    for index, n in zip(*np.unique(practice_k[on_day], return_counts=True)):
        stats.list_sizes[codes[index]] += int(n)
    first_k = np.flatnonzero(starts)
    last_k = np.flatnonzero(last)
    code_text = pa.array(codes, pa.string())
    persons = _persons_table(
        person_id=kp[first_k],
        nhs=_decode(nhs, k[last_k]),
        practice=pa.DictionaryArray.from_arrays(pa.array(practice_k[last_k].astype(np.int32)), code_text)
        .dictionary_decode(),
        sex=sex_code[k][last_k].tolist(),
        birth=birth.values[k][last_k], imd=imd.values[k][last_k],
        registered_from=rf.values[k][first_k], registered_to=end[last_k], died=d_died[last_k],
        care=care.values[k][last_k], opted=opted.values[k][last_k])
    registrations_table = pa.table({
        "person_id": pa.array(kp),
        "practice_code": pa.DictionaryArray.from_arrays(pa.array(practice_k.astype(np.int32)), code_text)
        .dictionary_decode(),
        "registered_from": date_array(rf.values[k]),
        "registered_to": date_array(end),
    })
    return people, persons, registrations_table, stats


def _digits_only(code: Parsed) -> Parsed:
    """NHS numbers as they are shown to people (``482 009 6753``) as the 10 digits the contract keeps."""
    if not code.categories or not any(" " in c for c in code.categories):
        return code
    compact = [c.replace(" ", "") for c in code.categories]
    categories = sorted(set(compact))
    position = {c: k for k, c in enumerate(categories)}
    remap = np.array([position[c] for c in compact] + [-1], dtype=np.int32)  # -1 (null) stays -1
    return Parsed(remap[code.values], code.null, code.bad, categories)


def _decode(code, rows: np.ndarray | None = None) -> pa.Array:
    """A parsed code column (of ``rows``) back to text, nulls as null."""
    values = code.values if rows is None else code.values[rows]
    return pa.DictionaryArray.from_arrays(pa.array(np.maximum(values, 0).astype(np.int32), mask=values < 0),
                                          pa.array(code.categories or [""], pa.string())).dictionary_decode()


PERSONS_SCHEMA = pa.schema([("person_id", pa.int64()), ("nhs_number", pa.string()), ("practice_code", pa.string()),
                            ("sex", pa.string()), ("birth_date", pa.date32()), ("imd_decile", pa.int64()),
                            ("registered_from", pa.date32()), ("registered_to", pa.date32()),
                            ("died_on", pa.date32()), ("care_home", pa.bool_()), ("opted_out", pa.bool_())])
REGISTRATIONS_SCHEMA = pa.schema([("person_id", pa.int64()), ("practice_code", pa.string()),
                                  ("registered_from", pa.date32()), ("registered_to", pa.date32())])


def _registrations_empty() -> pa.Table:
    return REGISTRATIONS_SCHEMA.empty_table()


def _persons_table(person_id=None, nhs=None, practice=None, sex=None, birth=None, imd=None, registered_from=None,
                   registered_to=None, died=None, care=None, opted=None, empty: bool = False) -> pa.Table:
    if empty:
        return PERSONS_SCHEMA.empty_table()
    return pa.table([
        pa.array(person_id, pa.int64()), nhs, practice, pa.array(sex, pa.string()),
        date_array(birth), pa.array(imd, pa.int64()), date_array(registered_from), date_array(registered_to),
        date_array(died),
        pa.array(care, pa.bool_()), pa.array(opted, pa.bool_()),
    ], schema=PERSONS_SCHEMA)


# --- the coded journal -> conditions --------------------------------------------------------------

@dataclass
class RegisterStats:
    """Per register: people put on it and people taken off by a later exclude code; per
    codelist, the journal rows matched."""

    on_register: Counter = field(default_factory=Counter)
    excluded: Counter = field(default_factory=Counter)
    rows_matched: Counter = field(default_factory=Counter)  # by codelist id

    def add(self, other: "RegisterStats") -> None:
        for name in ("on_register", "excluded", "rows_matched"):
            getattr(self, name).update(getattr(other, name))


CONDITIONS_SCHEMA = pa.schema([("person_id", pa.int64()), ("condition", pa.string()),
                               ("diagnosed_on", pa.date32())])
_CONDITIONS = pa.array(list(CONDITION_CODES), type=pa.string())


def is_snomed(code: str) -> bool:
    return 6 <= len(code) <= 18 and code.isascii() and code.isdigit()


def conditions(rows: Rows, people: People, codelists: Codelists, last_day: int
               ) -> tuple[pa.Table, RegisterStats]:
    """The registers of a partition's people from their coded journal (see the module notes)."""
    stats = RegisterStats()
    pos, birth = people.match(rows)
    code = rows.col("snomed_code")
    date = rows.dates_in_window("event_date", birth, last_day)
    snomed = np.array([is_snomed(c) for c in code.categories] + [True], dtype=bool)
    rows.problem(~snomed[code.values], "snomed_code", "not_a_code", "not a SNOMED CT concept id (6 to 18 digits)")
    values = np.array([int(c) if is_snomed(c) else 0 for c in code.categories] or [0], dtype=np.int64)
    category_mask = np.append(codelists.lookup(values), np.uint64(0))
    mask = category_mask[code.values]
    in_no_list = (mask == 0) & ~code.null & snomed[code.values]
    rows.unmapped(in_no_list, "SNOMED CT code in no codelist of the mapping", column="snomed_code")
    mapped = rows.keep & (mask != 0)
    m_person, m_date, m_mask = pos[mapped], date.values[mapped], mask[mapped]
    for k, cid in enumerate(codelists.snomed):
        n = int(((m_mask >> np.uint64(k)) & np.uint64(1)).sum())
        if n:
            stats.rows_matched[cid] += n
    persons, conditions_, diagnosed = [], [], []
    for j, register in enumerate(CONDITION_CODES):
        inc_bits = np.uint64(codelists.include_bits.get(register, 0))
        if not inc_bits:
            continue
        inc = (m_mask & inc_bits) != 0
        if not inc.any():
            continue
        latest_exclusion = np.full(len(people.ids), INT32_NULL, dtype=np.int32)
        exc_bits = np.uint64(codelists.exclude_bits.get(register, 0))
        if exc_bits:
            exc = (m_mask & exc_bits) != 0
            np.maximum.at(latest_exclusion, m_person[exc], m_date[exc])
        p, d = m_person[inc], m_date[inc]
        after = d > latest_exclusion[p]
        first = np.full(len(people.ids), np.iinfo(np.int32).max, dtype=np.int32)
        np.minimum.at(first, p[after], d[after])
        on = (first < np.iinfo(np.int32).max) & people.written
        had = np.zeros(len(people.ids), dtype=bool)
        had[p] = True
        stats.on_register[register] += int(on.sum())
        stats.excluded[register] += int((had & ~on).sum())
        who = np.flatnonzero(on)
        persons.append(who)
        conditions_.append(np.full(len(who), j, dtype=np.int32))
        diagnosed.append(first[who])
    if not persons:
        return CONDITIONS_SCHEMA.empty_table(), stats
    who, cond, day = np.concatenate(persons), np.concatenate(conditions_), np.concatenate(diagnosed)
    order = np.lexsort((cond, who))
    return pa.table([pa.array(people.ids[who[order]]),
                     pa.DictionaryArray.from_arrays(pa.array(cond[order]), _CONDITIONS).dictionary_decode(),
                     date_array(day[order])], schema=CONDITIONS_SCHEMA), stats


# --- GP activity ----------------------------------------------------------------------------------

def appointments(rows: Rows, people: People, pricing: Pricing, last_day: int) -> ActivityRows:
    """GP consultations: one activity row per attended appointment."""
    pos, birth = people.match(rows)
    day = rows.dates_in_window("appointment_date", birth, last_day)
    if rows.has("attended"):
        attended = rows.col("attended")
        rows.unmapped(~attended.null & ~attended.bad & ~attended.values, "not attended")
    cost = rows.not_negative("cost_gbp")
    keep = rows.keep
    pence = pricing.pence(cost.values[keep], cost.null[keep], "gp")
    return ActivityRows.point(people.ids[pos[keep]], "gp", day.values[keep], 1, pence)


def prescriptions(rows: Rows, people: People, pricing: Pricing, last_day: int) -> ActivityRows:
    """Prescribing: items and cost summed per person, calendar month and registration period."""
    return monthly_totals(rows, people, pricing, last_day, "issue_date", "items", "prescribing")


def monthly_totals(rows: Rows, people: People, pricing: Pricing, last_day: int, date: str, amount: str,
                   setting: str) -> ActivityRows:
    """``amount`` (the quantity) and cost summed per person, calendar month and registration
    period: one activity row each, dated on its first row (a move splits the month, so every
    pound stays on the day's practice)."""
    pos, birth = people.match(rows)
    day = rows.dates_in_window(date, birth, last_day)
    units = rows.not_negative(amount)
    cost = rows.not_negative("cost_gbp")
    keep = rows.keep
    pence = pricing.pence(cost.values[keep], cost.null[keep], setting, units.values[keep])
    person, start, quantity, pence = monthly(people.ids[pos[keep]], day.values[keep], units.values[keep], pence,
                                             people.period_of(pos[keep], day.values[keep]))
    return ActivityRows.point(person, setting, start, quantity, pence)
