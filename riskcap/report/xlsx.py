"""Deterministic XLSX bytes: a table plus a notes sheet, and zips with fixed times.

Case-finding writes one workbook per practice, thousands of rows each, so
:func:`xlsx_bytes` lets openpyxl build only the skeleton (header, widths, filter, notes)
and writes the data rows' XML itself, byte for byte as openpyxl's write-only mode would.
:func:`saved_bytes` saves any openpyxl workbook with every zip entry's time and
attributes fixed, so equal input gives equal bytes; the finance workbook
(:mod:`riskcap.report.workbook`) is saved by it too.
"""
from __future__ import annotations

import datetime as dt
import io
import math
import re
import zipfile
from dataclasses import dataclass

import numpy as np
import pandas as pd


def xlsx_bytes(frame: pd.DataFrame, notes: list[tuple[str, str]], *, sheet: str = "List",
               widths: dict[str, int] | None = None, created: dt.datetime | None = None,
               fast: bool = True) -> bytes:
    """An Excel workbook of ``frame`` plus a "Notes" sheet, as deterministic bytes.

    The list sheet has a bold, frozen header row, an auto-filter and set column widths;
    the notes sheet has two columns (item, explanation). Document dates and zip entry
    times are fixed, so equal input gives equal bytes. Cells hold whole numbers or text
    (text is always text, never a formula: :func:`cell_text`).

    openpyxl builds the workbook. With ``fast`` (default) it writes only the header row and
    :func:`_rows_xml` writes the data rows' XML directly, exactly as openpyxl's write-only
    mode would (tests compare the bytes with ``fast=False``).
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    widths = widths or {}
    stamp = created or dt.datetime(2000, 1, 1)
    wb = Workbook(write_only=True)
    wb.properties.creator = "riskcap"
    wb.properties.created = stamp
    wb.properties.modified = stamp
    ws = wb.create_sheet(sheet)
    ws.freeze_panes = "A2"
    for i, col in enumerate(frame.columns, start=1):
        ws.column_dimensions[get_column_letter(i)].width = widths.get(col, 12)
    if len(frame.columns):
        ws.auto_filter.ref = f"A1:{get_column_letter(len(frame.columns))}{len(frame) + 1}"
    bold = Font(bold=True)
    header = []
    for col in frame.columns:
        cell = _text_cell(ws, cell_text(str(col)))
        cell.font = bold
        header.append(cell)
    ws.append(header)
    columns = [_cell_values(frame[col]) for col in frame.columns]
    rows_xml = ""
    if fast:
        rows_xml = _rows_xml(columns, first_row=2)
    else:
        for row in zip(*columns):
            ws.append([_text_cell(ws, v) if isinstance(v, str) else v for v in row])

    notes_ws = wb.create_sheet("Notes")
    notes_ws.column_dimensions["A"].width = 28
    notes_ws.column_dimensions["B"].width = 110
    wrap = Alignment(wrap_text=True, vertical="top")
    for item, text in notes:
        a = _text_cell(notes_ws, cell_text(item))
        a.font = bold
        a.alignment = wrap
        b = _text_cell(notes_ws, cell_text(text))
        b.alignment = wrap
        notes_ws.append([a, b])

    return saved_bytes(wb, {"xl/worksheets/sheet1.xml": rows_xml} if rows_xml else {})


def saved_bytes(wb, splice: dict[str, str] | None = None) -> bytes:
    """An openpyxl workbook saved as deterministic bytes (:func:`normalise_zip`, with ``splice``)."""
    from openpyxl.writer.excel import ExcelWriter

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        ExcelWriter(wb, archive).save()
    return normalise_zip(buffer.getvalue(), splice)


def _text_cell(ws, text: str):
    """A write-only cell that holds ``text`` (made by :func:`cell_text`) as text, never a
    formula (openpyxl would make "=..." one)."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(ws, value=text)
    cell.data_type = "s"
    return cell


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml_text(text: str) -> str:
    """Text without the control characters XML (and so Excel) cannot hold."""
    return _XML_ILLEGAL.sub("", text)


def cell_text(text: str) -> str:
    """``text`` as a workbook's text cell holds it: without the characters XML cannot hold,
    and with a ``'`` in front if a spreadsheet would run it (:func:`riskcap.data.write.to_cell`),
    so editing the cell cannot turn it into a formula either."""
    from riskcap.data.write import to_cell

    return to_cell(_xml_text(text))


def _cell_values(values: pd.Series) -> list:
    """A column as Python ints, text or None (missing)."""
    if pd.api.types.is_integer_dtype(values.dtype) and not values.isna().any():
        return values.to_numpy(dtype=np.int64).tolist()
    out = []
    for v in values.astype(object).tolist():
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            out.append(int(v))
        else:
            out.append(cell_text(str(v)))
    return out


def _rows_xml(columns: list[list], first_row: int) -> str:
    """``<row>`` elements for ``columns`` of ints / text / None, as openpyxl's write-only
    worksheet serialises them (inline strings, ``t="n"`` numbers, missing cells omitted)."""
    from xml.sax.saxutils import escape

    from openpyxl.utils import get_column_letter

    letters = [get_column_letter(i + 1) for i in range(len(columns))]
    parts = []
    for r, row in enumerate(zip(*columns), start=first_row):
        cells = [f'<row r="{r}">']
        for letter, v in zip(letters, row):
            if v is None:
                continue
            if isinstance(v, int):
                cells.append(f'<c r="{letter}{r}" t="n"><v>{v}</v></c>')
            elif v == "":
                cells.append(f'<c r="{letter}{r}" t="inlineStr" />')
            else:
                space = ' xml:space="preserve"' if v.strip() and v != v.strip() else ""
                cells.append(f'<c r="{letter}{r}" t="inlineStr"><is><t{space}>{escape(v)}</t></is></c>')
        cells.append("</row>")
        parts.append("".join(cells))
    return "".join(parts)


def normalise_zip(data: bytes, splice: dict[str, str] | None = None) -> bytes:
    """Rewrite a zip with fixed entry times and attributes (deterministic bytes); ``splice``
    inserts XML before ``</sheetData>`` of the named worksheets."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if splice and info.filename in splice:
                text = content.decode("utf-8")
                assert text.count("</sheetData>") == 1, "unexpected worksheet XML from openpyxl"
                content = text.replace("</sheetData>", splice[info.filename] + "</sheetData>").encode("utf-8")
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o600 << 16
            dst.writestr(fixed, content)
    return out.getvalue()


# --- Tables on openpyxl sheets (the finance workbook) --------------------------------

PENCE = "#,##0"
GBP = "#,##0.00"
PCT = "0.0%"
PCT2 = "0.00%"
RATIO = "0.000"
INT = "#,##0"


@dataclass(frozen=True)
class Column:
    """A worksheet column: its header, the frame column or a function of the frame, format, width."""

    header: str
    source: object  # str (column name) or callable(frame) -> array
    fmt: str | None = None
    width: int = 14


def _values(frame: pd.DataFrame, col: Column) -> list:
    raw = col.source(frame) if callable(col.source) else frame[col.source]
    out = []
    for v in pd.Series(raw).astype(object).tolist():
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, (bool, np.bool_)):
            out.append(bool(v))
        elif isinstance(v, (int, np.integer)):
            out.append(int(v))
        elif isinstance(v, (float, np.floating)):
            out.append(float(v))
        else:
            out.append(cell_text(str(v)))
    return out


def sheet_table(ws, frame: pd.DataFrame, columns: list[Column], freeze: str = "B2") -> int:
    """A bold header row then one row per frame row, panes frozen at ``freeze`` and an auto-filter;
    returns the last row written."""
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    for j, col in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=j, value=col.header)
        cell.font = bold
        ws.column_dimensions[get_column_letter(j)].width = col.width
    data = [_values(frame, c) for c in columns]
    for i in range(len(frame)):
        for j, col in enumerate(columns, start=1):
            value = data[j - 1][i]
            if value is None:
                continue
            cell = ws.cell(row=i + 2, column=j, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # text stays text (never a formula)
            elif col.fmt:
                cell.number_format = col.fmt
    ws.freeze_panes = freeze
    if len(frame):
        ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(frame) + 1}"
    return len(frame) + 1


def pounds(col: str):
    """A column of pence as pounds."""
    return lambda f: f[col].astype("float64") / 100
