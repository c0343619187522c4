"""Risk tiers (the pyramid) and case-finding lists for multidisciplinary teams.

Tiers
    :func:`load_pyramid` reads the pyramid (``configs/tiers.yaml`` by default);
    :func:`risk_percentiles` turns probabilities into population percentiles (100 = highest
    risk) and :func:`assign_tiers` places people in tiers. ``riskcap score`` uses these, so
    the tiers in a scores file and on a case-finding list follow the same rule.

Case-finding
    :func:`eligibility` judges every scored person at the list date, with a reason for each
    exclusion; :func:`select` picks people per practice (top k%, top N or a score threshold)
    in a deterministic order; :func:`build_lists` adds the columns MDTs read (age, sex, tier,
    reasons, LTCs, last-12-month activity, impactable flag, change since the previous list);
    :func:`write_lists` writes one CSV and one XLSX per practice, ``index.csv`` and
    ``summary.json``, readable by their owner only. :func:`casefind` runs the whole job from
    files. ``docs/casefinding.md`` is the user's guide.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskcap.config import ConfigError
from riskcap.features import age_on, to_date, to_day
from riskcap.io import (DataError, Tables, atomic_path, coerce, days, read_raw, read_table, table_path, write_csv,
                        write_json)
from riskcap.pseudonymise import KEY_ENV, PseudonymKey, pseudonymise
from riskcap.schema import CONDITION_CODES, CONDITIONS, TABLES
from riskcap.report.xlsx import xlsx_bytes
from riskcap.tiers import Pyramid, assign_tiers, load_pyramid

# --- Eligibility -------------------------------------------------------------------

#: Exclusion reasons, in the order they are judged: a person is counted once, under the
#: first reason that applies. Opted-out people are never listed, whatever the options.
EXCLUSIONS: tuple[str, ...] = (
    "not in persons table",
    "deceased",
    "deregistered",
    "not yet registered",
    "registered with another practice",
    "national data opt-out",
    "under 18",
    "palliative care register",
    "care home",
)
ADULT_AGE = 18


@dataclass
class Eligibility:
    """Who of the scored people may be listed, and why the others may not.

    Attributes
    ----------
    exclusion : numpy.ndarray of int8
        Per scored row: -1 when eligible, else the position of the reason in
        :data:`EXCLUSIONS`.
    age : numpy.ndarray of int64
        Age in whole years at the list date (-1 when the person is not in ``persons``).
    person_row : numpy.ndarray of int64
        Row of the person in the ``persons`` frame (-1 when absent).
    """

    exclusion: np.ndarray
    age: np.ndarray
    person_row: np.ndarray

    @property
    def eligible(self) -> np.ndarray:
        return self.exclusion < 0

    def counts(self, mask: np.ndarray | None = None) -> dict[str, int]:
        """Number excluded for each reason (every reason present, zeros included)."""
        codes = self.exclusion if mask is None else self.exclusion[mask]
        tally = np.bincount(codes[codes >= 0].astype(np.int64), minlength=len(EXCLUSIONS))
        return {reason: int(n) for reason, n in zip(EXCLUSIONS, tally)}


def palliative_ids(conditions: pd.DataFrame, list_date) -> np.ndarray:
    """Sorted ids of people on the palliative care register before ``list_date``.

    Uses the feature builder's convention: a condition counts when recorded strictly
    before the date.
    """
    day = to_day(list_date)
    on = (conditions["condition"].astype("str") == "palliative").to_numpy()
    diagnosed = days(conditions["diagnosed_on"]).astype(np.int64)
    on = on & (diagnosed != np.iinfo(np.int32).min) & (diagnosed < day)
    return np.unique(conditions["person_id"].to_numpy(dtype=np.int64)[on])


def eligibility(scores: pd.DataFrame, persons: pd.DataFrame, list_date, *, include_children: bool = False,
                exclude_palliative: bool = False, exclude_care_home: bool = False,
                palliative: np.ndarray | None = None) -> Eligibility:
    """Judge every scored person at the list date.

    Parameters
    ----------
    scores : DataFrame
        ``person_id`` and ``practice_code`` of every scored person.
    persons : DataFrame
        The contract's persons table (contract dtypes).
    list_date : date-like
        The date the list is for (the scores' index date).
    include_children : bool
        List people under 18 too (default: exclude them).
    exclude_palliative, exclude_care_home : bool
        Also exclude people on the palliative care register (``palliative`` ids) or
        living in a care home.
    palliative : array of int, optional
        Ids on the palliative register (see :func:`palliative_ids`); needed with
        ``exclude_palliative``.

    Returns
    -------
    Eligibility
        Registration follows the feature builder: registered on ``[registered_from,
        registered_to)``, alive before ``died_on``. A missing ``opted_out`` value counts
        as opted out.
    """
    if exclude_palliative and palliative is None:
        raise ValueError("exclude_palliative needs the palliative register ids")
    day = to_day(list_date)
    pid = persons["person_id"].to_numpy(dtype=np.int64)
    index = pd.Index(pid)
    if not index.is_unique:
        dup = index[index.duplicated()].unique()[:5]
        raise DataError(f"persons: column 'person_id': {int(index.duplicated().sum())} duplicate id(s), "
                        f"e.g. {', '.join(map(str, dup))}")
    scored_ids = scores["person_id"].to_numpy(dtype=np.int64)
    row = index.get_indexer(scored_ids).astype(np.int64)
    n = len(scored_ids)
    if len(pid) == 0:  # nobody can be found
        return Eligibility(np.zeros(n, dtype=np.int8), np.full(n, -1, dtype=np.int64), row)
    found = row >= 0
    take = np.where(found, row, 0)
    big = np.iinfo(np.int64).max
    died = _days_or(persons["died_on"], big)[take]
    reg_to = _days_or(persons["registered_to"], big)[take]
    reg_from = _days_or(persons["registered_from"], big)[take]
    other_practice = (persons["practice_code"].astype("str").to_numpy(dtype=object)[take]
                      != scores["practice_code"].astype("str").to_numpy(dtype=object))
    opted = persons["opted_out"].fillna(True).to_numpy(dtype=bool)[take]
    care_home = persons["care_home"].fillna(False).to_numpy(dtype=bool)[take]
    age = np.where(found, age_on(persons["birth_date"], day)[take], -1)
    under_age = (age < ADULT_AGE) & found & (not include_children)
    on_palliative = (np.isin(scored_ids, palliative) if exclude_palliative else np.zeros(n, dtype=bool))
    conditions = [
        ~found,
        died <= day,
        reg_to <= day,
        reg_from > day,
        other_practice,
        opted,
        under_age,
        on_palliative,
        care_home & exclude_care_home,
    ]
    exclusion = np.select(conditions, list(range(len(EXCLUSIONS))), default=-1).astype(np.int8)
    return Eligibility(exclusion, age.astype(np.int64), row)


def _days_or(dates: pd.Series, missing: int) -> np.ndarray:
    out = days(dates).astype(np.int64)
    out[out == np.iinfo(np.int32).min] = missing
    return out


# --- Selection -----------------------------------------------------------------------

@dataclass(frozen=True)
class SelectionRule:
    """How many people to list: the top k%, the top N, or everyone at or above a score.

    Exactly one of ``top_percent``, ``top_n`` and ``min_score`` is set. ``within`` is
    ``"practice"`` (the rule applies to each practice's eligible list) or ``"population"``
    (to everyone eligible, then split by practice).
    """

    top_percent: Fraction | None = None
    top_n: int | None = None
    min_score: int | None = None
    within: str = "practice"

    @classmethod
    def parse(cls, top: str | float | None = None, top_n: int | None = None, min_score: int | None = None,
              within: str = "practice") -> "SelectionRule":
        """Build a rule from command-line values; default top 2% per practice.

        ``top`` may be written ``"2%"``, ``"2"`` or ``"0.5%"``; it is kept as an exact
        fraction so ``ceil(k% x n)`` has no float error.
        """
        given = [name for name, v in (("--top", top), ("--top-n", top_n), ("--min-score", min_score)) if v is not None]
        if len(given) > 1:
            raise ConfigError(f"give only one of --top, --top-n, --min-score (got {', '.join(given)})")
        if within not in ("practice", "population"):
            raise ConfigError(f"within must be 'practice' or 'population', got {within!r}")
        if top_n is not None:
            if isinstance(top_n, bool) or int(top_n) != top_n or top_n < 1:
                raise ConfigError(f"--top-n must be a whole number >= 1, got {top_n!r}")
            return cls(top_n=int(top_n), within=within)
        if min_score is not None:
            if isinstance(min_score, bool) or int(min_score) != min_score or not 0 <= min_score <= 100:
                raise ConfigError(f"--min-score must be a whole number from 0 to 100, got {min_score!r}")
            return cls(min_score=int(min_score), within=within)
        text = "2" if top is None else str(top).strip().rstrip("%").strip()
        try:
            percent = Fraction(text)
        except (ValueError, ZeroDivisionError) as exc:
            raise ConfigError(f"--top must be a percentage such as 2% or 0.5%, got {top!r}") from exc
        if not 0 < percent <= 100:
            raise ConfigError(f"--top must be more than 0% and at most 100%, got {top!r}")
        return cls(top_percent=percent, within=within)

    def count(self, n_eligible: int, scores_desc: np.ndarray | None = None) -> int:
        """How many of ``n_eligible`` people (in risk order, ``scores_desc``) are listed."""
        if self.top_percent is not None:
            return min(n_eligible, math.ceil(self.top_percent * n_eligible / 100))
        if self.top_n is not None:
            return min(n_eligible, self.top_n)
        assert scores_desc is not None, "a score threshold needs the scores"
        return int((np.asarray(scores_desc) >= self.min_score).sum())

    def describe(self) -> str:
        """The rule in plain English, e.g. ``"top 2% of each practice's eligible list"``."""
        scope = "each practice's eligible list" if self.within == "practice" else "the whole eligible population"
        if self.top_percent is not None:
            return f"top {_fraction_text(self.top_percent)}% of {scope} (rounded up to a whole person)"
        if self.top_n is not None:
            return f"top {self.top_n} of {scope}"
        return f"everyone eligible with a score of {self.min_score} or more"

    def as_dict(self) -> dict:
        if self.top_percent is not None:
            rule, value = "top_percent", float(self.top_percent)
        elif self.top_n is not None:
            rule, value = "top_n", self.top_n
        else:
            rule, value = "min_score", self.min_score
        return {"rule": rule, "value": value, "within": self.within, "description": self.describe()}


def _fraction_text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"


def risk_order(practice_code, score, probability, person_id) -> np.ndarray:
    """Row order of a case-finding list: practice code, then score (high first), then
    probability (high first), then ``person_id`` (low first), so ties are broken the same
    way every run."""
    codes, _ = pd.factorize(np.asarray(practice_code, dtype=object), sort=True)
    return np.lexsort((np.asarray(person_id, dtype=np.int64), -np.asarray(probability, dtype=np.float64),
                       -np.asarray(score, dtype=np.int64), codes))


def select(eligible: pd.DataFrame, rule: SelectionRule) -> pd.DataFrame:
    """Pick the people to list from the eligible ones.

    Parameters
    ----------
    eligible : DataFrame
        One row per eligible person with ``practice_code``, ``person_id``, ``score`` and
        ``probability`` (other columns are carried along).
    rule : SelectionRule

    Returns
    -------
    DataFrame
        The listed rows in list order (practice code, then rank), with ``rank``: the
        person's position in the practice's eligible list in :func:`risk_order` (1 = highest
        risk). Each practice's listed people are ranks 1..k.
    """
    order = risk_order(eligible["practice_code"], eligible["score"], eligible["probability"], eligible["person_id"])
    ranked = eligible.iloc[order].reset_index(drop=True)
    code = ranked["practice_code"].astype("str").to_numpy(dtype=object)
    n = len(ranked)
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if n else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes) + 1
    score = ranked["score"].to_numpy(dtype=np.int64)
    keep = np.zeros(n, dtype=bool)
    if rule.within == "practice":
        for start, size in zip(starts.tolist(), sizes.tolist()):
            k = rule.count(size, score[start:start + size])
            keep[start:start + k] = True
    else:
        population = np.lexsort((ranked["person_id"].to_numpy(dtype=np.int64),
                                 -ranked["probability"].to_numpy(dtype=np.float64), -score))
        k = rule.count(n, score[population])
        keep[population[:k]] = True
    listed = ranked.loc[keep].copy()
    listed.insert(0, "rank", rank[keep].astype(np.int64))
    return listed.reset_index(drop=True)


# --- The lists -----------------------------------------------------------------------

#: Last-12-month activity columns on a list: list column -> feature column.
ACTIVITY_COLUMNS: dict[str, str] = {
    "emergency_admissions_12m": "emergency_admissions_0_12",
    "acs_admissions_12m": "acs_admissions_0_12",
    "bed_days_12m": "bed_days_0_12",
    "ae_attendances_12m": "ae_0_12",
    "outpatient_attendances_12m": "outpatient_0_12",
    "gp_consultations_12m": "gp_0_12",
}
REASON_COLUMNS: tuple[str, ...] = ("reason_1", "reason_2", "reason_3")
CHANGES: tuple[str, ...] = ("new", "up", "down", "unchanged")

#: Columns of a practice's list and what they mean (the notes sheet and docs use this).
LIST_COLUMNS: dict[str, str] = {
    "rank": "Position in the practice's eligible list by risk (1 = highest). Ties on score are broken by "
            "the unrounded probability, then by the internal person key, so the order is the same every run.",
    "pseudo_id": "Pseudonymised identifier: the first 16 hex characters of HMAC-SHA256(key, practice:person). "
                 "The practice's data controller re-identifies with the key; the same key gives the same "
                 "pseudo_id every month.",
    "nhs_number": "NHS number (only with --reidentify, only in the practice's own files).",
    "age": "Age in whole years on the list date.",
    "sex": "Sex as recorded (F or M).",
    "score": "Risk score 0-100: the model's probability of one or more emergency admissions in the next "
             "12 months, as a percentage (e.g. 37 = a 37% chance).",
    "tier": "Risk tier from the pyramid, by the person's percentile in the whole scored population.",
    "change": "Since the previous list (with --previous): new = not on it; up / down = moved to a higher / "
              "lower tier; unchanged = same tier. Blank without --previous.",
    "previous_rank": "Rank on the previous list (with --previous; blank when new).",
    "reason_1": "The strongest reason for the score, in plain English.",
    "reason_2": "The second reason.",
    "reason_3": "The third reason.",
    "long_term_conditions": "Long-term condition registers the person is on (before the list date), plus "
                            "frailty and palliative care flags.",
    "ltc_count": "Number of disease registers (not counting frailty and palliative care).",
    "emergency_admissions_12m": "Emergency hospital admissions in the 12 months before the list date.",
    "acs_admissions_12m": "Of those, admissions for a chronic ambulatory-care-sensitive condition (angina, "
                          "asthma, heart failure, epilepsy, COPD, dementia, diabetes complications, "
                          "hypertension, iron-deficiency anaemia, nutritional deficiency).",
    "impactable": "yes when at least one recent emergency admission was for an ambulatory-care-sensitive "
                  "condition: admissions that proactive care can often prevent.",
    "bed_days_12m": "Nights in hospital in the 12 months before the list date.",
    "ae_attendances_12m": "A&E attendances in the 12 months before the list date.",
    "outpatient_attendances_12m": "Outpatient attendances in the 12 months before the list date.",
    "gp_consultations_12m": "GP consultations in the 12 months before the list date.",
}


def list_columns(*, reidentify: bool = False, with_previous: bool = False) -> list[str]:
    """Columns of a practice's list file, in order."""
    cols = list(LIST_COLUMNS)
    if not reidentify:
        cols.remove("nhs_number")
    if not with_previous:
        cols.remove("previous_rank")
    return cols


def ltc_text(features: pd.DataFrame) -> np.ndarray:
    """Plain-English list of each person's conditions (``schema.CONDITIONS`` names, ``; ``-separated)."""
    names = [CONDITIONS[c][0] for c in CONDITION_CODES]
    flags = np.column_stack([features[f"ltc_{c}"].to_numpy(dtype=bool) for c in CONDITION_CODES]) \
        if len(features) else np.zeros((0, len(CONDITION_CODES)), dtype=bool)
    return np.array(["; ".join(n for n, on in zip(names, row) if on) for row in flags.tolist()], dtype=object)


def build_lists(listed: pd.DataFrame, features: pd.DataFrame, key: PseudonymKey, *,
                previous: dict[str, pd.DataFrame] | None = None, pyramid: Pyramid | None = None,
                reidentify: bool = False) -> pd.DataFrame:
    """The rows MDTs read, for every practice, in list order.

    Parameters
    ----------
    listed : DataFrame
        Output of :func:`select` with ``tier`` and optionally ``reason_1..3`` and
        ``nhs_number`` columns.
    features : DataFrame
        :func:`riskcap.features.build_features` rows covering (at least) the listed people.
    key : PseudonymKey
    previous : dict, optional
        Practice code -> previous list (``pseudo_id``, ``rank``, ``tier``) for the
        ``change`` and ``previous_rank`` columns.
    pyramid : Pyramid, optional
        For ordering tiers in ``change`` (default :func:`load_pyramid`).
    reidentify : bool
        Add ``nhs_number`` (requires a stable key and the column in ``listed``).

    Returns
    -------
    DataFrame
        ``practice_code`` plus :func:`list_columns`.
    """
    if reidentify and not key.stable:
        raise ConfigError("re-identification needs a pseudonymisation key kept between runs "
                          f"(${KEY_ENV} or --key-file); refusing to re-identify with a one-off random key")
    pyramid = pyramid or load_pyramid()
    pid = listed["person_id"].to_numpy(dtype=np.int64)
    fidx = pd.Index(features["person_id"].to_numpy(dtype=np.int64)).get_indexer(pid)
    if (fidx < 0).any():
        missing = pid[fidx < 0][:5]
        raise DataError(f"features: {int((fidx < 0).sum())} listed person(s) have no feature row "
                        f"(not registered and alive at the list date?), e.g. person_id {', '.join(map(str, missing))}")
    feat = features.iloc[fidx].reset_index(drop=True)
    practice = listed["practice_code"].astype("str").to_numpy(dtype=object)
    out = pd.DataFrame({"practice_code": practice, "rank": listed["rank"].to_numpy(dtype=np.int64)})
    out["pseudo_id"] = pseudonymise(key, practice, pid)
    if reidentify:
        if "nhs_number" not in listed.columns:
            raise DataError("persons: column 'nhs_number' is needed for --reidentify but is absent")
        out["nhs_number"] = listed["nhs_number"].astype("string").fillna("").to_numpy(dtype=object)
    out["age"] = feat["age"].to_numpy(dtype=np.int64)
    out["sex"] = feat["sex"].astype("str").to_numpy(dtype=object)
    out["score"] = listed["score"].to_numpy(dtype=np.int64)
    out["tier"] = listed["tier"].astype("str").to_numpy(dtype=object)
    if previous is not None:
        out["change"], out["previous_rank"] = _changes(out, previous, pyramid)
    else:
        out["change"] = ""
    for col in REASON_COLUMNS:
        out[col] = (_inert_text(listed[col].astype("string").fillna("").to_numpy(dtype=object))
                    if col in listed.columns else np.full(len(out), "", dtype=object))
    out["long_term_conditions"] = ltc_text(feat)
    out["ltc_count"] = feat["ltc_count"].to_numpy(dtype=np.int64)
    for col, source in ACTIVITY_COLUMNS.items():
        out[col] = feat[source].to_numpy(dtype=np.int64)
    out["impactable"] = np.where(out["acs_admissions_12m"].to_numpy() > 0, "yes", "no")
    dup = out.duplicated(["practice_code", "pseudo_id"])
    if dup.any():  # 64-bit pseudonyms: practically impossible, but never merge two people
        raise DataError(f"{int(dup.sum())} pseudo_id collision(s) within a practice; use a different key")
    return out[["practice_code"] + list_columns(reidentify=reidentify, with_previous=previous is not None)]


def _inert_text(values: np.ndarray) -> np.ndarray:
    """Text from an input file made safe for spreadsheets: a value starting with = + - @ (a
    formula to Excel) gets a leading apostrophe, so it is shown, never run."""
    out = values.copy()
    for i, v in enumerate(values.tolist()):
        if v and v[0] in "=+-@\t\r":
            out[i] = "'" + v
    return out


def _changes(current: pd.DataFrame, previous: dict[str, pd.DataFrame], pyramid: Pyramid):
    """(change, previous_rank) per row of ``current`` against the previous lists."""
    change = np.full(len(current), "new", dtype=object)
    prev_rank = pd.array([pd.NA] * len(current), dtype="Int64")
    tier_pos = {name: i for i, name in enumerate(pyramid.names)}
    for code, rows in current.groupby("practice_code", sort=False).indices.items():
        before = previous.get(code)
        if before is None or before.empty:
            continue
        lookup = before.set_index("pseudo_id")
        pos = lookup.index.get_indexer(current["pseudo_id"].to_numpy()[rows])
        seen = pos >= 0
        now_tier = np.array([tier_pos.get(t, -1) for t in current["tier"].to_numpy()[rows]])
        was_tier = np.array([tier_pos.get(t, -1) for t in lookup["tier"].astype("str").to_numpy()[np.maximum(pos, 0)]]) \
            if len(lookup) else np.zeros(len(rows), dtype=np.int64)
        text = np.where(now_tier < was_tier, "up", np.where(now_tier > was_tier, "down", "unchanged"))
        change[rows[seen]] = text[seen]
        ranks = lookup["rank"].to_numpy(dtype=np.int64)[np.maximum(pos, 0)]
        prev_rank[rows[seen]] = ranks[seen]
    return change, prev_rank


def check_reasons(lists: pd.DataFrame, features: pd.DataFrame, person_ids: np.ndarray) -> dict:
    """Check that each listed reason still describes the person's own data.

    A reason from the scores file matches when it is one of the phrases
    :mod:`riskcap.models.explain` makes from the person's features at the list date (e.g.
    "3 emergency admissions in the last 12 months" needs exactly 3). Mismatches mean the
    scores were made from different data than ``--data``.

    Returns
    -------
    dict
        ``checked`` (non-empty reasons), ``not_matching`` and up to 5 ``examples`` of
        reasons that did not match (text only, no identifiers).
    """
    from riskcap.features import MODEL_FEATURES
    from riskcap.models.explain import reasons_for

    fidx = pd.Index(features["person_id"].to_numpy(dtype=np.int64)).get_indexer(np.asarray(person_ids, dtype=np.int64))
    feat = features.iloc[fidx].reset_index(drop=True)
    n = len(feat)
    phrases = []
    for reason in reasons_for([f for f in MODEL_FEATURES if f in feat.columns]):
        value = feat[reason.shown].to_numpy(dtype=np.float64, na_value=np.nan)
        shown = reason.bucket(value) if reason.bucket else value
        present = np.asarray(reason.present(value), dtype=bool)
        text = np.full(n, "", dtype=object)
        if present.any():
            uniq, inv = np.unique(shown[present], return_inverse=True)
            text[present] = np.array([reason.phrase(v) for v in uniq], dtype=object)[inv]
        phrases.append(text)
    allowed = np.column_stack(phrases) if phrases else np.empty((n, 0), dtype=object)
    checked = bad = 0
    examples: list[str] = []
    for col in REASON_COLUMNS:
        given = lists[col].to_numpy(dtype=object)
        used = given != ""
        ok = (allowed == given[:, None]).any(axis=1) if allowed.shape[1] else np.zeros(n, dtype=bool)
        wrong = used & ~ok
        checked += int(used.sum())
        bad += int(wrong.sum())
        examples += [str(v) for v in given[wrong][:5]]
    return {"checked": checked, "not_matching": bad, "examples": sorted(set(examples))[:5]}


# --- Previous lists ------------------------------------------------------------------

SUMMARY_FILE = "summary.json"
INDEX_FILE = "index.csv"
PRACTICE_DIR = "practices"


def read_previous(previous_dir: str | Path, key: PseudonymKey, pyramid: Pyramid) -> dict[str, pd.DataFrame]:
    """The previous run's lists by practice code (``pseudo_id``, ``rank``, ``tier``).

    Raises
    ------
    ConfigError
        The key is a one-off random key, or differs from the previous run's key
        (pseudonyms would not match).
    DataError
        ``previous_dir`` is not a ``riskcap casefind`` output, or a list is malformed.
    """
    previous_dir = Path(previous_dir)
    if not key.stable:
        raise ConfigError(f"--previous needs the pseudonymisation key used for the previous list "
                          f"(${KEY_ENV} or --key-file): a one-off random key cannot match pseudonyms")
    summary_path = previous_dir / SUMMARY_FILE
    if not summary_path.exists():
        raise DataError(f"{previous_dir}: not a riskcap casefind output (no {SUMMARY_FILE})")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        fingerprint = summary["pseudonym_key"]["fingerprint"]
        codes = list(summary["practices"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{summary_path}: not a riskcap casefind summary ({exc})") from exc
    if fingerprint != key.fingerprint:
        raise ConfigError(f"{summary_path}: the previous list was made with a different pseudonymisation key "
                          f"(fingerprint {fingerprint}, now {key.fingerprint}); pseudonyms cannot be compared")
    out: dict[str, pd.DataFrame] = {}
    for code in codes:
        path = previous_dir / PRACTICE_DIR / f"{code}.csv"
        if not path.exists():
            raise DataError(f"{path}: listed in {summary_path} but missing")
        frame = pd.read_csv(path, usecols=lambda c: c in ("pseudo_id", "rank", "tier"), dtype={"pseudo_id": str, "tier": str})
        missing = {"pseudo_id", "rank", "tier"} - set(frame.columns)
        if missing:
            raise DataError(f"{path}: column(s) {sorted(missing)} missing")
        unknown = sorted(set(frame["tier"].dropna()) - set(pyramid.names))
        if unknown:
            raise DataError(f"{path}: column 'tier': {unknown} not in the pyramid ({', '.join(pyramid.names)}); "
                            f"use the previous run's --pyramid")
        out[code] = frame
    return out


# --- Writing -------------------------------------------------------------------------

#: Column widths (characters) in the XLSX list sheet; unlisted columns get 12.
_WIDTHS = {"rank": 6, "pseudo_id": 18, "nhs_number": 12, "age": 5, "sex": 5, "score": 6, "tier": 10,
           "change": 10, "previous_rank": 8, "reason_1": 44, "reason_2": 44, "reason_3": 44,
           "long_term_conditions": 50, "ltc_count": 6, "impactable": 10}


def make_private_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) readable by the owner only (mode 0o700)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


#: Case-finding files are readable by their owner only.
PRIVATE_FILE_MODE = 0o600


def _write_private_bytes(data: bytes, path: Path) -> Path:
    """Write bytes atomically; the file is created with mode 0o600 (owner only)."""
    with atomic_path(path, PRIVATE_FILE_MODE) as tmp:
        tmp.write_bytes(data)
    return path


def practice_notes(code: str, name: str, summary: dict, pyramid: Pyramid, columns: list[str]) -> list[tuple[str, str]]:
    """The "Notes" sheet of a practice's workbook: what the list is, how it was made, the columns."""
    practice = summary["practices"][code]
    excluded = "; ".join(f"{reason}: {n}" for reason, n in practice["excluded"].items() if n) or "none"
    key = summary["pseudonym_key"]
    notes = [
        ("Practice", f"{code} {name}".strip()),
        ("What this list is", "People registered with the practice who are most at risk of an emergency "
         "hospital admission in the next 12 months, with the reasons, for proactive care planning by the "
         "multidisciplinary team. A score is a probability, not a certainty, and a high score does not mean "
         "an admission can be prevented: use clinical judgement (see 'impactable')."),
        ("List date", summary["list_date"]),
        ("Selection", f"{summary['selection']['description']}. Scored: {practice['scored']}; eligible: "
         f"{practice['eligible']}; listed: {practice['listed']}."),
        ("Never listed", "People who have died, left the practice, registered a national data opt-out, "
         "or (by default) are under 18; optionally people on the palliative care register or in a care home. "
         f"Options used: {summary['eligibility']['description']}. Excluded here: {excluded}."),
        ("How the score was made", summary["score_method"]),
        ("Tiers", "; ".join(pyramid.describe()) + ". Percentiles are over the whole scored population, so a "
         "practice can have more or fewer than its share in each tier."),
        ("Pseudonyms", "pseudo_id is a keyed hash (HMAC-SHA256) of the practice and the person's internal key; "
         "it cannot be reversed without the key. "
         + ("The key is kept between runs, so pseudo_ids are stable from list to list."
            if key["source"] != "random" else
            "This run used a one-off random key: pseudo_ids will differ next time.")),
        ("Confidentiality", "Personal confidential data about patients of this practice. Keep it inside the "
         "practice's secure systems; do not e-mail or share it outside the care team."),
    ]
    notes.append(("Columns", "What each column of the List sheet means:"))
    notes.extend((col, LIST_COLUMNS[col]) for col in columns)
    return notes


def write_lists(lists: pd.DataFrame, summary: dict, out_dir: str | Path, pyramid: Pyramid, *,
                practice_names: dict[str, str] | None = None, progress=None) -> list[Path]:
    """Write each practice's CSV and XLSX, ``index.csv`` and ``summary.json`` under ``out_dir``.

    Every practice in ``summary["practices"]`` gets both files, even with nobody listed;
    list files of other practices left in ``practices/`` by an earlier run are removed.
    Directories are created with mode 0o700 and files with 0o600, each written atomically.
    ``progress(done, total, practice_code)`` is called after each practice.

    Returns
    -------
    list of Path
        The files written.
    """
    out_dir = Path(out_dir)
    make_private_dir(out_dir)
    practice_dir = make_private_dir(out_dir / PRACTICE_DIR)
    names = practice_names or {}
    columns = [c for c in lists.columns if c != "practice_code"]
    created = dt.datetime.combine(dt.date.fromisoformat(summary["list_date"]), dt.time())
    groups = lists.groupby("practice_code", sort=False).indices
    codes = sorted(summary["practices"])
    written: list[Path] = []
    index_rows = []
    for done, code in enumerate(codes, start=1):
        rows = groups.get(code, np.zeros(0, dtype=np.int64))
        frame = lists.iloc[rows][columns].reset_index(drop=True)
        csv_path = practice_dir / f"{code}.csv"
        xlsx_path = practice_dir / f"{code}.xlsx"
        written.append(write_csv(frame, csv_path, mode=PRIVATE_FILE_MODE))
        notes = practice_notes(code, names.get(code, ""), summary, pyramid, columns)
        written.append(_write_private_bytes(xlsx_bytes(frame, notes, widths=_WIDTHS, created=created), xlsx_path))
        p = summary["practices"][code]
        row = {"practice_code": code, "practice_name": names.get(code, ""), "scored": p["scored"],
               "eligible": p["eligible"], "excluded": p["scored"] - p["eligible"], "listed": p["listed"]}
        row.update({f"listed_{t.replace(' ', '_')}": n for t, n in p["listed_by_tier"].items()})
        row["impactable"] = p["impactable"]
        if "change" in p:
            row.update(p["change"])
        row.update({"csv": f"{PRACTICE_DIR}/{csv_path.name}", "xlsx": f"{PRACTICE_DIR}/{xlsx_path.name}"})
        index_rows.append(row)
        if progress is not None:
            progress(done, len(codes), code)
    for stale in sorted(practice_dir.glob("*.csv")) + sorted(practice_dir.glob("*.xlsx")):
        if stale.stem not in summary["practices"]:  # a practice from an earlier run into the same folder
            stale.unlink()
    index = pd.DataFrame(index_rows)
    written.append(write_csv(index, out_dir / INDEX_FILE, mode=PRIVATE_FILE_MODE))
    written.append(write_json(summary, out_dir / SUMMARY_FILE, mode=PRIVATE_FILE_MODE))
    return written


# --- The whole job -------------------------------------------------------------------

SCORE_REQUIRED: tuple[str, ...] = ("person_id", "practice_code", "probability")
_SAFE_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def read_scores(path: str | Path) -> tuple[pd.DataFrame, pa.Table]:
    """Read and check a scores file (``riskcap score`` output, parquet or CSV).

    Returns
    -------
    (DataFrame, pyarrow.Table)
        The frame has ``person_id``, ``practice_code``, ``probability``, ``score`` (computed
        as ``round(100 x probability)`` when absent) and ``tier`` / ``percentile`` /
        ``model`` / ``index_date`` when present, plus ``_row`` (row number in the file);
        the arrow table is the file as read (reason columns are taken from it for the
        listed rows only).

    Raises
    ------
    DataError
        A required column is missing, ids are missing or repeated, a probability is not in
        [0, 1], a score is not a whole number 0-100, or a practice code is unusable as a
        file name.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: scores file not found")
    table = _read_text_as_codes(path)
    missing = [c for c in SCORE_REQUIRED if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: column(s) {', '.join(missing)} missing; expected a `riskcap score` output "
                        f"with {', '.join(SCORE_REQUIRED)}, score, tier, percentile, reason_1..3")
    keep = [c for c in ("person_id", "practice_code", "probability", "score", "tier", "percentile", "model",
                        "index_date") if c in table.column_names]
    frame = table.select(keep).to_pandas()

    def bad(column: str, mask: np.ndarray, what: str) -> None:
        if mask.any():
            examples = ", ".join(repr(v) for v in frame.loc[mask, column].head(5).tolist())
            raise DataError(f"{path}: column '{column}': {int(mask.sum())} row(s) {what}; examples: {examples}")

    ids = pd.to_numeric(frame["person_id"], errors="coerce")
    bad("person_id", (ids.isna() | (ids != np.floor(ids))).to_numpy(), "are not whole numbers")
    frame["person_id"] = ids.astype(np.int64)
    bad("person_id", frame["person_id"].duplicated().to_numpy(), "repeat a person_id")
    prob = pd.to_numeric(frame["probability"], errors="coerce").astype(np.float64)
    bad("probability", (prob.isna() | (prob < 0) | (prob > 1)).to_numpy(), "are not probabilities in [0, 1]")
    frame["probability"] = prob
    if "score" in frame.columns:
        score = pd.to_numeric(frame["score"], errors="coerce")
        bad("score", (score.isna() | (score != np.floor(score)) | (score < 0) | (score > 100)).to_numpy(),
            "are not whole numbers from 0 to 100")
        frame["score"] = score.astype(np.int64)
    else:
        frame["score"] = np.round(100 * prob.to_numpy()).astype(np.int64)
    code = frame["practice_code"].astype("string").str.strip()
    bad("practice_code", code.isna().to_numpy(), "are empty")
    frame["practice_code"] = code.astype(str)
    unsafe = ~frame["practice_code"].str.match(_SAFE_CODE).to_numpy(dtype=bool)
    bad("practice_code", unsafe, "are not ODS-style codes (letters, digits, - and _ only)")
    if "percentile" in frame.columns:
        pct = pd.to_numeric(frame["percentile"], errors="coerce")
        bad("percentile", (pct.isna() | (pct < 0) | (pct > 100)).to_numpy(), "are not percentiles in [0, 100]")
    frame["_row"] = np.arange(len(frame), dtype=np.int64)
    return frame, table


def _read_text_as_codes(path: Path) -> pa.Table:
    """A parquet file with its text columns read dictionary-encoded (several times faster
    for a million rows of repeated reasons); CSV as :func:`riskcap.io.read_raw` reads it."""
    if path.suffix == ".csv":
        return read_raw(path)
    try:
        schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
        text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        return pq.read_table(path, read_dictionary=text)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise DataError(f"{path}: cannot read ({str(exc).splitlines()[0]}); is the file truncated or not parquet?") from exc


def list_date_of(scores: pd.DataFrame, index_date=None, default=None) -> tuple[dt.date, str]:
    """The list date and where it came from: ``index_date`` if given, else the scores'
    ``index_date`` column, else ``default`` (the synthetic EVAL_INDEX_DATE)."""
    if index_date is not None:
        return to_date(to_day(index_date)), "given"
    if "index_date" in scores.columns:
        values = pd.to_datetime(scores["index_date"].dropna().unique())
        if len(values) == 1:
            return values[0].date(), "scores file"
        if len(values) > 1:
            raise DataError(f"scores: column 'index_date' holds {len(values)} different dates; pass --index-date")
    if default is None:
        from riskcap.synthetic.calendar import EVAL_INDEX_DATE as default
    return to_date(to_day(default)), "default (synthetic evaluation index date)"


def _tiers_for(scores: pd.DataFrame, pyramid: Pyramid, recompute: bool) -> np.ndarray:
    """Tier of every scored person: from the scores file unless ``recompute`` or absent."""
    if not recompute and "tier" in scores.columns:
        tiers = scores["tier"].astype("string").fillna("").to_numpy(dtype=object)
        unknown = sorted(set(tiers.tolist()) - set(pyramid.names))
        if unknown:
            raise DataError(f"scores: column 'tier': {unknown} not in the pyramid ({', '.join(pyramid.names)}); "
                            f"pass the --pyramid the scores were made with")
        return tiers
    if "percentile" in scores.columns:
        return assign_tiers(scores["percentile"].to_numpy(dtype=np.float64), pyramid)
    return assign_tiers(scores["probability"].to_numpy(), pyramid, basis="probability")


def score_method(scores: pd.DataFrame) -> str:
    """Plain-English account of how the scores were made (for notes and the summary)."""
    from riskcap.models.base import KINDS

    models = sorted(str(m) for m in scores["model"].dropna().unique()) if "model" in scores.columns else []
    def kind(m: str) -> str:  # "... (CPM-style logistic regression)" -> "CPM-style logistic regression"
        text = KINDS.get(m, "")
        return f" ({text[text.rfind('(') + 1:-1]})" if text.endswith(")") else ""

    model = ("the " + "; ".join(f"'{m}'{kind(m)}" for m in models) + " model") if models else "a risk model"
    return (f"Scores come from {model}: the predicted probability of one or more emergency hospital admissions "
            "in the 12 months after the list date, from the person's age, sex, deprivation, care home status, "
            "long-term conditions and their use of hospital, A&E, outpatient, GP, community, mental health, "
            "social care and prescribing in the previous 3 years (riskcap score). Score = probability x 100, "
            "rounded. Reasons are the factors that raised this person's score the most, with their own values.")


@dataclass
class CasefindResult:
    """What :func:`casefind` made: the summary, the lists and the files written."""

    summary: dict
    lists: pd.DataFrame
    files: list[Path]
    out_dir: Path
    timings: dict[str, float]


def casefind(scores_path: str | Path, data_dir: str | Path, out_dir: str | Path,
             rule: SelectionRule | None = None, *, key: PseudonymKey, index_date=None,
             previous_dir: str | Path | None = None, reidentify: bool = False, include_children: bool = False,
             exclude_palliative: bool = False, exclude_care_home: bool = False,
             pyramid_path: str | Path | None = None, progress=None, features_fn=None,
             engine=None) -> CasefindResult:
    """Build and write case-finding lists for every practice in a scores file.

    Parameters
    ----------
    scores_path : path
        ``riskcap score`` output.
    data_dir : path
        The contract tables the scores were made from (persons for eligibility,
        conditions and activity for the listed people's LTCs and activity counts).
    out_dir : path
        Where to write ``practices/<code>.csv|.xlsx``, ``index.csv`` and ``summary.json``.
    rule : SelectionRule, optional
        Default: top 2% of each practice's eligible list.
    key : PseudonymKey
        See :func:`riskcap.pseudonymise.load_key`.
    index_date : date-like, optional
        The list date; default from the scores (see :func:`list_date_of`).
    previous_dir : path, optional
        A previous ``casefind`` output for the ``change`` column (needs the same key).
    reidentify : bool
        Add NHS numbers to each practice's own files (needs a stable key).
    include_children, exclude_palliative, exclude_care_home : bool
        Eligibility options (see :func:`eligibility`).
    pyramid_path : path, optional
        Recompute tiers with this pyramid instead of using the scores' tiers.
    progress : callable, optional
        ``progress(done, total, practice_code)`` while writing.
    features_fn : callable, optional
        Feature builder (default :func:`riskcap.features.build_features`).
    engine : riskcap.engines engine, optional
        Reads and builds the listed people's features in blocks of :data:`LISTED_BLOCK`
        people on this engine (:func:`listed_features_mapped`); default: in one go here.

    Returns
    -------
    CasefindResult
    """
    if reidentify and not key.stable:
        raise ConfigError(f"--reidentify needs a pseudonymisation key (${KEY_ENV} or --key-file); "
                          "refusing to re-identify without one")
    clock = _Clock()
    rule = rule or SelectionRule.parse()
    pyramid = load_pyramid(pyramid_path)
    scores, scores_table = read_scores(scores_path)
    list_date, date_source = list_date_of(scores, index_date)
    previous = read_previous(previous_dir, key, pyramid) if previous_dir is not None else None

    persons = read_table(data_dir, "persons", columns=_present(data_dir, "persons", TABLES["persons"].names))
    practices = read_table(data_dir, "practices")
    _check("persons", persons, table_path(data_dir, "persons"),
           practice_codes=practices["practice_code"].astype("str").tolist())
    if reidentify and "nhs_number" not in persons.columns:
        raise DataError(f"{table_path(data_dir, 'persons')}: column 'nhs_number' is needed for --reidentify "
                        "but is absent")
    palliative = None
    if exclude_palliative:
        conditions = read_table(data_dir, "conditions", filters=[("condition", "=", "palliative")])
        palliative = palliative_ids(conditions, list_date)
    clock.lap("read scores and persons")
    elig = eligibility(scores, persons, list_date, include_children=include_children,
                       exclude_palliative=exclude_palliative, exclude_care_home=exclude_care_home,
                       palliative=palliative)
    scores["tier"] = _tiers_for(scores, pyramid, recompute=pyramid_path is not None)
    eligible = scores.loc[elig.eligible]
    listed = select(eligible, rule)
    rows = listed["_row"].to_numpy(dtype=np.int64)
    for col in REASON_COLUMNS:
        if col in scores_table.column_names:
            column = scores_table.column(col).take(pa.array(rows))
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            listed[col] = column.to_pandas()
    if reidentify:
        listed["nhs_number"] = persons["nhs_number"].to_numpy(dtype=object)[elig.person_row[rows]]
    clock.lap("eligibility and selection")
    listed_ids = listed["person_id"].to_numpy(dtype=np.int64)
    if engine is None:
        features = listed_features(data_dir, persons, listed_ids, list_date, features_fn=features_fn,
                                   practices=practices)
    else:
        features = listed_features_mapped(engine, data_dir, persons, listed_ids, list_date, practices)
    clock.lap("features of listed people")
    lists = build_lists(listed, features, key, previous=previous, pyramid=pyramid, reidentify=reidentify)
    reasons_present = all(c in scores_table.column_names for c in REASON_COLUMNS)
    reasons = (check_reasons(lists, features, listed["person_id"].to_numpy()) if reasons_present
               else {"checked": 0, "not_matching": 0, "examples": []})

    summary = _summary(scores, elig, lists, rule, pyramid, key, list_date, date_source, previous,
                       include_children=include_children, exclude_palliative=exclude_palliative,
                       exclude_care_home=exclude_care_home, reidentify=reidentify,
                       reasons_present=reasons_present, reasons_check=reasons)
    clock.lap("lists, reasons check and summary")
    names = _practice_names(practices)
    files = write_lists(lists, summary, out_dir, pyramid, practice_names=names, progress=progress)
    clock.lap("write CSV, XLSX, index and summary")
    return CasefindResult(summary, lists, files, Path(out_dir), clock.laps)


class _Clock:
    """Wall-clock seconds per phase (reported by benchmarks; never written to outputs)."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def _present(data_dir, name: str, wanted: list[str]) -> list[str] | None:
    """``wanted`` columns that exist in a parquet table (CSV: None = all)."""
    path = table_path(data_dir, name)
    if path.suffix == ".csv":
        return None
    schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
    return [c for c in wanted if c in schema.names]


def _practice_names(practices: pd.DataFrame) -> dict[str, str]:
    if "practice_name" not in practices.columns:
        return {}
    return {str(c): ("" if pd.isna(n) else str(n)) for c, n in zip(practices["practice_code"], practices["practice_name"])}


def _check(name: str, frame: pd.DataFrame, path: Path, **kwargs) -> None:
    """Run :mod:`riskcap.validate`'s row checks of table ``name`` on ``frame``; DataError
    listing every problem (``riskcap validate`` gives the full report)."""
    from riskcap import validate

    check = {"persons": validate.check_persons, "conditions": validate.check_conditions,
             "activity": validate.check_activity}[name]
    frame = frame.copy(deep=False)
    for col in TABLES[name].columns:  # optional columns the checks look at
        if col.name not in frame.columns:
            frame[col.name] = 1 if col.name == "quantity" else pd.Series(None, index=frame.index, dtype="object")
    problems = check(frame, str(path), **kwargs)
    if problems:
        raise DataError("\n".join([f"{path}: {len(problems)} problem(s); run `riskcap validate` for the full report:"]
                                   + [str(p) for p in problems]))


def read_rows_of(data_dir, name: str, person_ids, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows of contract table ``name`` belonging to ``person_ids``, with contract dtypes.

    For parquet the person filter is pushed down and text columns are read
    dictionary-encoded (decoded after filtering), which is several times faster than
    decoding every row's strings of a large activity table. CSV tables are read whole.
    """
    ids = np.unique(np.asarray(person_ids, dtype=np.int64))
    path = table_path(data_dir, name)
    if path.suffix == ".csv":
        frame = read_table(data_dir, name, columns=columns)
        return frame.loc[frame["person_id"].isin(ids)].reset_index(drop=True)
    schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    wanted = ids.tolist() if len(ids) else [int(np.iinfo(np.int64).min)]
    try:
        table = pq.read_table(path, columns=columns, filters=[("person_id", "in", wanted)], read_dictionary=text)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise DataError(f"{path}: cannot read ({str(exc).splitlines()[0]}); is the file truncated or not parquet?") from exc
    table = table.unify_dictionaries()
    coded = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
    frame = coerce(table.drop_columns(coded), name, path)
    for col in coded:  # keep codes as categories (fast downstream); clean like the contract's text
        frame[col] = _clean_text_categories(table.column(col).to_pandas())
    return frame[table.column_names]


def _clean_text_categories(values: pd.Series) -> pd.Series:
    """Categorical text with stripped categories and empty text as null (as :func:`riskcap.io.coerce`)."""
    cats = pd.Series(values.cat.categories).astype("string").str.strip()
    if cats.duplicated().any() or (cats == "").any() or cats.isna().any():
        out = values.astype("string").str.strip()
        return out.mask(out == "")
    return values.cat.rename_categories(cats.tolist())


def listed_features(data_dir, persons: pd.DataFrame, person_ids: np.ndarray, list_date,
                    features_fn=None, practices: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features at the list date for the listed people only (reads and checks only their rows)."""
    from riskcap.validate import PersonIndex

    if features_fn is None:
        from riskcap.features import build_features as features_fn
    ids = np.unique(person_ids)
    subset = persons.loc[persons["person_id"].isin(ids)].reset_index(drop=True)
    conditions = read_rows_of(data_dir, "conditions", ids)
    activity = read_rows_of(data_dir, "activity", ids)
    people = PersonIndex.from_persons(subset)
    _check("conditions", conditions, table_path(data_dir, "conditions"), persons=people)
    _check("activity", activity, table_path(data_dir, "activity"), persons=people)
    if practices is None:
        practices = read_table(data_dir, "practices")
    return features_fn(Tables(practices, subset, conditions, activity), list_date)


#: Listed people per task when an engine builds their features.
LISTED_BLOCK = 20_000


def _listed_block_features(block: pd.DataFrame, *, data_dir: str, list_date, practices: pd.DataFrame) -> pd.DataFrame:
    """Partition function: :func:`listed_features` of one block of listed persons' rows."""
    return listed_features(data_dir, block, block["person_id"].to_numpy(dtype=np.int64), list_date,
                           practices=practices)


def listed_features_mapped(engine, data_dir, persons: pd.DataFrame, person_ids: np.ndarray, list_date,
                           practices: pd.DataFrame) -> pd.DataFrame:
    """:func:`listed_features` with the reads and features done on ``engine``, in blocks of
    :data:`LISTED_BLOCK` listed people (in persons-file order), concatenated in order: a
    person's features depend only on their own rows, so the frame equals the one-go result.
    This is casefind's heavy step (scanning conditions and activity for the listed people)."""
    subset = persons.loc[persons["person_id"].isin(np.unique(person_ids))].reset_index(drop=True)
    blocks = [subset.iloc[lo:lo + LISTED_BLOCK] for lo in range(0, max(len(subset), 1), LISTED_BLOCK)]
    parts = list(engine.map(_listed_block_features, blocks, data_dir=str(Path(data_dir).resolve()),
                            list_date=list_date, practices=practices))
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _summary(scores, elig: Eligibility, lists: pd.DataFrame, rule: SelectionRule, pyramid: Pyramid,
             key: PseudonymKey, list_date: dt.date, date_source: str, previous, *, include_children: bool,
             exclude_palliative: bool, exclude_care_home: bool, reidentify: bool, reasons_present: bool,
             reasons_check: dict) -> dict:
    """summary.json: counts that reconcile (scored = eligible + excluded; listed <= eligible)."""
    codes, uniques = pd.factorize(scores["practice_code"].to_numpy(dtype=object), sort=True)
    k, r = len(uniques), len(EXCLUSIONS)
    scored = np.bincount(codes, minlength=k)
    eligible = np.bincount(codes[elig.eligible], minlength=k)
    out = ~elig.eligible
    excluded = np.bincount(codes[out] * r + elig.exclusion[out].astype(np.int64), minlength=k * r).reshape(k, r)
    by_practice = lists.groupby("practice_code", sort=False).indices
    practices = {}
    for i, c in enumerate(uniques.tolist()):
        mine = lists.iloc[by_practice.get(c, np.zeros(0, dtype=np.int64))]
        entry = {
            "scored": int(scored[i]),
            "eligible": int(eligible[i]),
            "excluded": {reason: int(n) for reason, n in zip(EXCLUSIONS, excluded[i])},
            "listed": int(len(mine)),
            "listed_by_tier": {t: int((mine["tier"] == t).sum()) for t in pyramid.names},
            "impactable": int((mine["impactable"] == "yes").sum()),
        }
        if previous is not None:
            counts = {ch: int((mine["change"] == ch).sum()) for ch in CHANGES}
            before = previous.get(c)
            kept = counts["up"] + counts["down"] + counts["unchanged"]
            counts["left"] = (0 if before is None else len(before)) - kept
            entry["change"] = counts
        practices[c] = entry
    options = []
    options.append("children included" if include_children else "under 18s excluded")
    if exclude_palliative:
        options.append("palliative care register excluded")
    if exclude_care_home:
        options.append("care home residents excluded")
    summary = {
        "list_date": list_date.isoformat(),
        "list_date_source": date_source,
        "selection": rule.as_dict(),
        "eligibility": {"include_children": include_children, "exclude_palliative": exclude_palliative,
                        "exclude_care_home": exclude_care_home, "description": ", ".join(options),
                        "reasons_in_order": list(EXCLUSIONS)},
        "pyramid": pyramid.as_dict(),
        "pseudonym_key": {"source": key.source, "fingerprint": key.fingerprint,
                          "linkable_across_runs": key.stable},
        "reidentified": reidentify,
        "reasons_from_scores": reasons_present,
        "reasons_check": reasons_check,
        "score_method": score_method(scores),
        "scored": int(len(scores)),
        "eligible": int(elig.eligible.sum()),
        "excluded": elig.counts(),
        "listed": int(len(lists)),
        "listed_by_tier": {t: int((lists["tier"] == t).sum()) for t in pyramid.names},
        "impactable": int((lists["impactable"] == "yes").sum()),
        "practices": practices,
    }
    if previous is not None:
        summary["change"] = {k: sum(p["change"][k] for p in practices.values()) for k in (*CHANGES, "left")}
        summary["change"]["left"] += sum(len(v) for k, v in previous.items() if k not in practices)
    return summary
