"""Twins of the data checks' kernels (:mod:`riskcap.data.parse`, :mod:`riskcap.data.check`): the text check and the person look-up."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from riskcap.data.check import PersonIndex


def text_is_clean(column: pa.Array | pa.ChunkedArray) -> bool:
    """:func:`riskcap.data.parse.text_is_clean` with Python strings."""
    for value in column.to_pylist():
        if value is None:
            continue
        raw = value.encode("utf-8")
        if not raw or not all(0x20 < b < 0x7F for b in (raw[0], raw[-1])):
            return False
    return True


def person_lookup(index: PersonIndex, person_id: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`riskcap.data.check.PersonIndex.lookup` by a binary search per row with numpy."""
    present = person_id.notna().to_numpy()
    values = person_id.to_numpy(dtype=np.int64, na_value=0) if present.any() else np.zeros(len(person_id), np.int64)
    if len(index.ids) == 0:
        return np.zeros(len(values), bool), np.full(len(values), np.datetime64("NaT", "s"))
    pos = np.searchsorted(index.ids, values).clip(max=len(index.ids) - 1)
    found = present & (index.ids[pos] == values)
    birth = np.where(found, index.birth[pos], np.datetime64("NaT", "s"))
    return found, birth
