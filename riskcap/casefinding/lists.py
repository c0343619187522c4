"""The rows of a case-finding list: what an MDT reads about each listed person.

:data:`LIST_COLUMNS` names and explains every column (the notes sheet and the docs show
these words). People appear by pseudonym (text that a spreadsheet would run is neutralised
where it is written, ``riskcap.data.write``); :func:`check_reasons` confirms each reason from the scores file still
describes the person's own data at the list date.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from riskcap.errors import ConfigError, DataError
from riskcap.pseudonymise import KEY_ENV, PseudonymKey, pseudonymise
from riskcap.schema import CONDITION_CODES, CONDITIONS

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
                reidentify: bool = False) -> pd.DataFrame:
    """The rows MDTs read, for every practice, in list order.

    Parameters
    ----------
    listed : DataFrame
        Output of :func:`riskcap.casefinding.selection.select` with ``tier`` and optionally ``reason_1..3`` and
        ``nhs_number`` columns.
    features : DataFrame
        :func:`riskcap.features.build_features` rows covering (at least) the listed people.
    key : PseudonymKey
    reidentify : bool
        Add ``nhs_number`` (requires a stable key and the column in ``listed``).

    Returns
    -------
    DataFrame
        ``practice_code`` plus :func:`list_columns` (``change`` blank: with a previous list,
        :func:`riskcap.casefinding.previous.add_changes` fills it).
    """
    if reidentify and not key.stable:
        raise ConfigError("re-identification needs a pseudonymisation key kept between runs "
                          f"(${KEY_ENV} or --key-file); refusing to re-identify with a one-off random key")
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
    out["change"] = ""
    for col in REASON_COLUMNS:
        out[col] = (listed[col].astype("string").fillna("").to_numpy(dtype=object)
                    if col in listed.columns else np.full(len(out), "", dtype=object))
    out["long_term_conditions"] = ltc_text(feat)
    out["ltc_count"] = feat["ltc_count"].to_numpy(dtype=np.int64)
    for col, source in ACTIVITY_COLUMNS.items():
        out[col] = feat[source].to_numpy(dtype=np.int64)
    out["impactable"] = np.where(out["acs_admissions_12m"].to_numpy() > 0, "yes", "no")
    dup = out.duplicated(["practice_code", "pseudo_id"])
    if dup.any():  # 64-bit pseudonyms: practically impossible, but never merge two people
        raise DataError(f"{int(dup.sum())} pseudo_id collision(s) within a practice; use a different key")
    return out[["practice_code"] + list_columns(reidentify=reidentify)]



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
