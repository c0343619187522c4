"""The fast XLSX row writer gives the same bytes as openpyxl's own write-only writer."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from riskcap.report.xlsx import xlsx_bytes

pytestmark = pytest.mark.unit

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(-10**9, 10**9), TEXT, st.one_of(st.none(), st.integers(0, 99)), TEXT),
                min_size=0, max_size=15))
def test_fast_rows_match_openpyxl_bytes(rows):
    frame = pd.DataFrame({"rank": pd.Series([r[0] for r in rows], dtype=np.int64),
                          "reason": pd.Series([r[1] for r in rows], dtype=object),
                          "previous_rank": pd.array([r[2] for r in rows], dtype="Int64"),
                          "note": pd.Series([r[3] for r in rows], dtype=object)})
    notes = [("Practice", "A81001 <Riverside> & Co"), ("Columns", " padded ")]
    fast = xlsx_bytes(frame, notes)
    assert fast == xlsx_bytes(frame, notes, fast=False)


def test_workbook_reads_back():
    frame = pd.DataFrame({"rank": [1, 2], "reason": ["=1+1", "a & b"], "n": pd.array([None, 4], dtype="Int64")})
    wb = load_workbook(io.BytesIO(xlsx_bytes(frame, [("a", "b")])))
    ws = wb["List"]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == "A1:C3"
    # a formula-like text is marked with ' (riskcap.data.write), so editing the cell keeps it text too
    assert [[c.value for c in r] for r in ws.iter_rows()] == [["rank", "reason", "n"], [1, "'=1+1", None], [2, "a & b", 4]]
    assert ws["B2"].data_type == "s"  # text, not a formula
    assert ws["A1"].font.b
    with zipfile.ZipFile(io.BytesIO(xlsx_bytes(frame, []))) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
