"""``riskcap casefind`` as a function: scores and data in, a folder of lists out.

:func:`casefind` reads the scores and the persons table, judges eligibility, selects,
builds the listed people's features and their list rows, and writes the folder with a
``summary.json`` whose counts reconcile (scored = eligible + excluded; listed <= eligible).
Each phase's wall-clock time is returned for the benchmarks, never written.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from riskcap.casefinding.eligibility import EXCLUSIONS, Eligibility, eligibility, palliative_ids
from riskcap.casefinding.files import write_lists
from riskcap.casefinding.inputs import listed_features, listed_features_mapped, read_persons
from riskcap.casefinding.lists import REASON_COLUMNS, build_lists, check_reasons
from riskcap.casefinding.previous import CHANGES, add_changes, read_previous
from riskcap.casefinding.selection import SelectionRule, select
from riskcap.data.dates import IndexDate, index_date_for
from riskcap.data.read import read_table, table_path
from riskcap.data.scores import read_scores
from riskcap.errors import ConfigError, DataError
from riskcap.features import to_date, to_day
from riskcap.pseudonymise import KEY_ENV, PseudonymKey
from riskcap.tiers import Pyramid, assign_tiers, load_pyramid

def list_date_of(scores: pd.DataFrame, data_dir, index_date=None) -> IndexDate:
    """The list date and where it came from: ``index_date`` if given, else the scores'
    ``index_date`` column, else the data's end (:func:`riskcap.data.dates.index_date_for`)."""
    if index_date is None and "index_date" in scores.columns:
        values = pd.to_datetime(scores["index_date"].dropna().unique())
        if len(values) == 1:
            return IndexDate(values[0].date(), "scores file")
        if len(values) > 1:
            raise DataError(f"scores: column 'index_date' holds {len(values)} different dates; pass --index-date")
    return index_date_for("casefind", data_dir, None if index_date is None else to_date(to_day(index_date)))


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
    list_date: IndexDate


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
        The list date; default from the scores, else the data (see :func:`list_date_of`).
    previous_dir : path, optional
        A previous ``casefind`` output for the ``change`` column (needs the same key).
    reidentify : bool
        Add NHS numbers to each practice's own files (needs a stable key).
    include_children, exclude_palliative, exclude_care_home : bool
        Eligibility options (see :func:`riskcap.casefinding.eligibility.eligibility`).
    pyramid_path : path, optional
        Recompute tiers with this pyramid instead of using the scores' tiers.
    progress : callable, optional
        ``progress(done, total, practice_code)`` while writing.
    features_fn : callable, optional
        Feature builder (default :func:`riskcap.features.build_features`).
    engine : riskcap.stream.engines engine, optional
        Reads and builds the listed people's features in blocks of
        :data:`riskcap.casefinding.inputs.LISTED_BLOCK` people on this engine
        (:func:`~riskcap.casefinding.inputs.listed_features_mapped`); default: in one go here.

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
    listed_on = list_date_of(scores, data_dir, index_date)
    list_date = listed_on.date
    previous = read_previous(previous_dir, key, pyramid) if previous_dir is not None else None

    persons, practices = read_persons(data_dir)
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
    lists = build_lists(listed, features, key, reidentify=reidentify)
    if previous is not None:
        lists = add_changes(lists, previous, pyramid)
    reasons_present = all(c in scores_table.column_names for c in REASON_COLUMNS)
    reasons = (check_reasons(lists, features, listed["person_id"].to_numpy()) if reasons_present
               else {"checked": 0, "not_matching": 0, "examples": []})

    summary = _summary(scores, elig, lists, rule, pyramid, key, list_date, listed_on.source, previous,
                       include_children=include_children, exclude_palliative=exclude_palliative,
                       exclude_care_home=exclude_care_home, reidentify=reidentify,
                       reasons_present=reasons_present, reasons_check=reasons)
    clock.lap("lists, reasons check and summary")
    names = _practice_names(practices)
    files = write_lists(lists, summary, out_dir, pyramid, practice_names=names, progress=progress)
    clock.lap("write CSV, XLSX, index and summary")
    return CasefindResult(summary, lists, files, Path(out_dir), clock.laps, listed_on)


class _Clock:
    """Wall-clock seconds per phase (reported by benchmarks; never written to outputs)."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now

def _practice_names(practices: pd.DataFrame) -> dict[str, str]:
    if "practice_name" not in practices.columns:
        return {}
    return {str(c): ("" if pd.isna(n) else str(n)) for c, n in zip(practices["practice_code"], practices["practice_name"])}

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
