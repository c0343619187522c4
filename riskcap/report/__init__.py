"""The commissioner HTML report and the finance Excel workbook, built from a run directory.

:func:`build_report` reads a run's outputs (:func:`riskcap.report.outputs.read_run`), renders
``report.html`` (one self-contained file: charts embedded, each with a one-line reading) and
``workbook.xlsx``, and writes both atomically. The same run outputs give byte-identical files.
``docs/report.md`` describes the sections and sheets.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPORT_FILE = "report.html"
WORKBOOK_FILE = "workbook.xlsx"


@dataclass(frozen=True)
class ReportFiles:
    """Where :func:`build_report` wrote the report and the workbook."""

    report: Path
    workbook: Path
    sections_not_run: tuple[str, ...]


def build_report(run_dir: str | Path, out: str | Path | None = None, workbook: str | Path | None = None) -> ReportFiles:
    """Build ``report.html`` and ``workbook.xlsx`` from a run directory's outputs.

    Parameters
    ----------
    run_dir : path
        A run directory (``riskcap demo`` output); parts it lacks are reported as "not run".
    out : path, optional
        The HTML file to write (default ``RUN_DIR/report.html``).
    workbook : path, optional
        The workbook to write (default: ``workbook.xlsx`` beside ``out``).

    Returns
    -------
    ReportFiles
        The paths written and the ids of sections that were not run.

    Raises
    ------
    riskcap.errors.DataError
        When ``run_dir`` is not a directory or a part that is present cannot be read.
    """
    from riskcap.data.write import write_file
    from riskcap.manifest import claim_file
    from riskcap.report.html import render_html
    from riskcap.report.outputs import read_run
    from riskcap.report.sections import build_sections, headline, provenance
    from riskcap.report.workbook import write_workbook

    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / REPORT_FILE
    workbook = Path(workbook) if workbook is not None else out.parent / WORKBOOK_FILE
    claim_file(out, _is_report, "report")  # replace only riskcap's own report and workbook
    claim_file(workbook, _is_workbook, "workbook")
    run = read_run(run_dir)
    sections = build_sections(run)
    html = render_html(
        "Risk stratification and Year of Care capitation",
        f"Emergency-admission risk, case-finding and capitation scenarios at {run.index_date_text}",
        headline(run), sections, provenance(run))
    write_file(html, out)
    write_workbook(run, workbook)
    return ReportFiles(out, workbook, tuple(s.id for s in sections if s.not_run))


def _is_report(path: Path) -> bool:
    """Whether ``path`` is a report this module wrote (its "About this report" section)."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
        fh.seek(max(0, path.stat().st_size - (1 << 16)))
        tail = fh.read()
    return head.startswith(b"<!DOCTYPE html>") and b'<section id="about"' in tail


def _is_workbook(path: Path) -> bool:
    """Whether ``path`` is a workbook riskcap wrote (an XLSX whose creator is riskcap)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return b"<dc:creator>riskcap</dc:creator>" in archive.read("docProps/core.xml")
