"""The previous list, read back from an earlier ``riskcap casefind`` output, and what changed.

With ``--previous``, each listed person is new, up or down a tier, or unchanged, and keeps
their previous rank; people who left are counted in the summary. Pseudonyms only match when
the same key made both lists, so a different or one-off key is refused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from riskcap.casefinding.files import PRACTICE_DIR, SUMMARY_FILE
from riskcap.errors import ConfigError, DataError
from riskcap.names import is_safe_name
from riskcap.pseudonymise import KEY_ENV, PseudonymKey
from riskcap.tiers import Pyramid
from riskcap.untrusted import read_output_csv, read_output_json

CHANGES: tuple[str, ...] = ("new", "up", "down", "unchanged")

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
    summary = read_output_json(summary_path)
    try:
        fingerprint = summary["pseudonym_key"]["fingerprint"]
        codes = list(summary["practices"])
    except (KeyError, TypeError) as exc:
        raise DataError(f"{summary_path}: not a riskcap casefind summary ({exc})") from exc
    if fingerprint != key.fingerprint:
        raise ConfigError(f"{summary_path}: the previous list was made with a different pseudonymisation key "
                          f"(fingerprint {fingerprint}, now {key.fingerprint}); pseudonyms cannot be compared")
    unsafe = [c for c in codes if not is_safe_name(c)]
    if unsafe:  # a code is never joined to a path as given (riskcap.names)
        raise DataError(f"{summary_path}: not a riskcap casefind summary (practice code {unsafe[0]!r})")
    out: dict[str, pd.DataFrame] = {}
    for code in codes:
        path = previous_dir / PRACTICE_DIR / f"{code}.csv"
        if not path.exists():
            raise DataError(f"{path}: listed in {summary_path} but missing")
        frame = read_output_csv(path, dtype={"pseudo_id": str, "tier": str},
                                usecols=lambda c: c in ("pseudo_id", "rank", "tier"))
        missing = {"pseudo_id", "rank", "tier"} - set(frame.columns)
        if missing:
            raise DataError(f"{path}: column(s) {sorted(missing)} missing")
        unknown = sorted(set(frame["tier"].dropna()) - set(pyramid.names))
        if unknown:
            raise DataError(f"{path}: column 'tier': {unknown} not in the pyramid ({', '.join(pyramid.names)}); "
                            f"use the previous run's --pyramid")
        out[code] = frame
    return out

def add_changes(lists: pd.DataFrame, previous: dict[str, pd.DataFrame], pyramid: Pyramid) -> pd.DataFrame:
    """``lists`` with ``change`` filled in and ``previous_rank`` after it, against the previous
    lists (:func:`read_previous`); tiers are ordered by ``pyramid``."""
    out = lists.copy()
    out["change"], previous_rank = _changes(out, previous, pyramid)
    out.insert(out.columns.get_loc("change") + 1, "previous_rank", previous_rank)
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
