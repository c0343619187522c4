"""Where a streamed run keeps its partitions' person-level results until the population-wide step.

A :class:`Spill` holds tables as arrow (feather) files one after another in one unnamed
temporary file: it has no name, so it disappears when closed, or if the process dies, and
nothing person-level is left behind. Memory holds one partition's rows, not everyone's.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather


class Spill:
    """Tables on disk in ``folder`` (the system's temporary folder by default), read back by
    position (:meth:`read`) or one column over all of them (:meth:`column`)."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = folder
        self._file = tempfile.TemporaryFile(dir=folder)
        self._spans: list[tuple[int, int, int]] = []  # (start, size, rows) of each table

    def __enter__(self) -> "Spill":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self._spans)

    @property
    def rows(self) -> int:
        return sum(rows for _, _, rows in self._spans)

    def append(self, table) -> None:
        """Keep the next table (a pyarrow Table or a pandas DataFrame)."""
        fd = self._file.fileno()
        start = os.fstat(fd).st_size
        with open(os.dup(fd), "ab") as sink:  # the dup is closed by the writer; the file stays open
            feather.write_feather(table, sink, compression="uncompressed")
        self._spans.append((start, os.fstat(fd).st_size - start, len(table)))

    def read(self, i: int, columns: list[str] | None = None) -> pa.Table:
        """Table ``i`` (or its ``columns``)."""
        start, size, _ = self._spans[i]
        data = os.pread(self._file.fileno(), size, start)
        if len(data) != size:  # pragma: no cover - a failing disk
            raise OSError(f"temporary file in {self.folder or tempfile.gettempdir()} came back short")
        return feather.read_table(pa.BufferReader(data), columns=columns, memory_map=False)

    def column(self, name: str, dtype) -> np.ndarray:
        """Column ``name`` of every table, in order, as one array."""
        out = np.empty(self.rows, dtype=dtype)
        start = 0
        for i, (_, _, rows) in enumerate(self._spans):
            out[start:start + rows] = self.read(i, [name]).column(0).to_numpy()
            start += rows
        return out
