"""Reading files someone else may control (model folders, configs, manifests, inputs to hash):
regular files only, opened without blocking (a pipe never hangs the run), optionally never
through a symbolic link, and never more bytes than the caller allows."""
from __future__ import annotations

import errno
import io
import json
import os
import stat
from pathlib import Path

from riskcap.errors import DataError


class Refused(Exception):
    """``path`` was not read; ``reason`` says why: "missing", "a symbolic link", "not a regular
    file", "larger than N bytes", or the system's reason (e.g. "Permission denied")."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def open_regular(path: str | Path, *, follow_links: bool = True, dir_fd: int | None = None) -> int:
    """A read-only file descriptor of regular file ``path`` (relative to ``dir_fd`` if given)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise Refused(path, "missing") from None
    except OSError as exc:
        raise Refused(path, "a symbolic link" if exc.errno == errno.ELOOP and not follow_links
                      else exc.strerror or str(exc)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Refused(path, "not a regular file")
    return fd


def read_regular(path: str | Path, limit: int, *, follow_links: bool = True, dir_fd: int | None = None) -> bytes:
    """The bytes of regular file ``path`` (as :func:`open_regular`), at most ``limit`` of them."""
    fd = open_regular(path, follow_links=follow_links, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        data = b"" if size > limit else fh.read(limit + 1)
    if size > limit or len(data) > limit:
        raise Refused(path, f"{max(size, len(data)):,} bytes, larger than {limit:,}")
    return data


#: Largest output file of an earlier run that riskcap reads back (lists, budgets, summaries).
MAX_OUTPUT_BYTES = 1 << 30


def read_output(path: str | Path, limit: int = MAX_OUTPUT_BYTES) -> bytes:
    """The bytes of an earlier run's output file (``report``'s run folder, ``casefind --previous``):
    a regular file of at most ``limit`` bytes, else a DataError saying why (a pipe, a device or a
    link to one would hang or never end)."""
    try:
        return read_regular(path, limit)
    except Refused as exc:
        raise DataError(f"{path}: cannot read: {exc.reason}; riskcap reads back regular files it wrote") from None


def read_output_json(path: str | Path):
    """An earlier run's JSON file (:func:`read_output`); DataError when it is not valid JSON."""
    try:
        return json.loads(read_output(path).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def read_output_csv(path: str | Path, **options):
    """An earlier run's CSV file (:func:`read_output`; ``options`` for ``pandas.read_csv``), its
    text as it was before riskcap wrote it (:func:`riskcap.data.write.frame_from_csv`);
    DataError when it cannot be parsed."""
    import pandas as pd

    from riskcap.data.write import frame_from_csv

    try:
        return frame_from_csv(pd.read_csv(io.BytesIO(read_output(path)), **options))
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from exc
