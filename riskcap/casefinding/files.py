"""A case-finding output folder: one CSV and one XLSX per practice, ``index.csv``, ``summary.json``.

The lists hold person-level rows, so every file is readable by its owner only (0o600), the
folders this writes are created owner-only (0o700), and each file is written atomically.
Writing never follows a symbolic link, and never deletes or changes the permissions of
anything it did not create (an earlier run's lists of practices no longer scored are
removed by the run's manifest, which can prove they are its own: riskcap.manifest).
Each practice's workbook has a Notes sheet saying what the list is, how it was made and
what each column means.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from riskcap.casefinding.lists import LIST_COLUMNS
from riskcap.data.write import OWNER_ONLY, private_dir, write_csv, write_file, write_json
from riskcap.report.xlsx import xlsx_bytes
from riskcap.tiers import Pyramid

SUMMARY_FILE = "summary.json"
INDEX_FILE = "index.csv"
PRACTICE_DIR = "practices"

#: Column widths (characters) in the XLSX list sheet; unlisted columns get 12.
_WIDTHS = {"rank": 6, "pseudo_id": 18, "nhs_number": 12, "age": 5, "sex": 5, "score": 6, "tier": 10,
           "change": 10, "previous_rank": 8, "reason_1": 44, "reason_2": 44, "reason_3": 44,
           "long_term_conditions": 50, "ltc_count": 6, "impactable": 10}


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

    Every practice in ``summary["practices"]`` gets both files, even with nobody listed.
    Directories are created with mode 0o700 and files with 0o600, each written atomically.
    ``progress(done, total, practice_code)`` is called after each practice.

    Returns
    -------
    list of Path
        The files written.
    """
    out_dir = Path(out_dir)
    private_dir(out_dir)
    practice_dir = private_dir(out_dir / PRACTICE_DIR)
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
        written.append(write_csv(frame, csv_path, mode=OWNER_ONLY))
        notes = practice_notes(code, names.get(code, ""), summary, pyramid, columns)
        written.append(write_file(xlsx_bytes(frame, notes, widths=_WIDTHS, created=created), xlsx_path, OWNER_ONLY))
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
    index = pd.DataFrame(index_rows)
    written.append(write_csv(index, out_dir / INDEX_FILE, mode=OWNER_ONLY))
    written.append(write_json(summary, out_dir / SUMMARY_FILE, mode=OWNER_ONLY))
    return written
