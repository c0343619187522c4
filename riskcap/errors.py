"""The errors riskcap raises on purpose, and the exit code each gets on the command line.

Every error a user can fix is a :class:`RiskcapError`: its message says what is wrong and
how to fix it, so the command line prints it in one line (no traceback) and exits with
:attr:`RiskcapError.exit_code`. Anything else is a bug and keeps its traceback.

- :class:`DataError`: bad input data (the message names the file, column, rows, examples);
  :class:`LoadRejected` when a data folder fails the contract, carrying its load summary.
- :class:`ConfigError`: a configuration file or an option value is missing or invalid.
- :class:`EngineError`: a run could not be done on its engine (no scheduler, dying workers);
  :class:`EngineUnavailable` when the engine's optional extra is not installed.
- :class:`DiskFull`: the disk or quota ran out while writing (:func:`as_riskcap_error`).
- :class:`UnusablePath`: a path cannot be used as given (permissions, a read-only disk, a file
  in the way, no such place; :func:`as_riskcap_error`), or an output place riskcap refuses to
  write into because it holds what riskcap did not write (``docs/security.md``).
"""
from __future__ import annotations

import errno


class RiskcapError(Exception):
    """An error the user can fix; the message says how."""

    #: The command line's exit status for this error (2: bad input or usage, as click uses).
    exit_code = 2


class DataError(RiskcapError):
    """Bad input data: the message names the file, column, row count and examples."""


class LoadRejected(DataError):
    """A data folder cannot be used: every problem found, with the load summary they came from
    (a :class:`riskcap.data.summary.LoadSummary`, not imported here: errors depend on nothing)."""

    def __init__(self, summary):
        super().__init__(summary.error_message())
        self.summary = summary


class ConfigError(RiskcapError):
    """A configuration file or option is missing or invalid: the message names file, key and allowed values."""


class EngineError(RiskcapError):
    """A run could not be done on its engine (unreachable scheduler, workers that keep dying)."""


class EngineUnavailable(EngineError, ImportError):
    """The engine's optional extra is not installed; the message says what to install."""


#: What to install for ``--engine dask``.
INSTALL_DASK = "pip install 'riskcap[dask]'"


class DiskFull(RiskcapError):
    """The disk (or the user's quota) filled up while writing."""


class UnusablePath(RiskcapError):
    """A path cannot be used: the message names it, says why and what to do instead."""


#: errno values of a full disk or an exhausted quota (EDQUOT is missing on some platforms).
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
#: errno values of a path that cannot be used (permissions, a read-only disk, a file in the way, no such place).
_NOT_USABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG,
               errno.ENOENT, errno.ELOOP}


def as_riskcap_error(exc: BaseException) -> RiskcapError | None:
    """``exc`` as the RiskcapError the user should see, or None when it is a bug (keep the traceback)."""
    if isinstance(exc, RiskcapError):
        return exc
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return DiskFull(f"the disk is full ({exc}). Free some space, or write --out to another disk "
                        f"(streamed runs keep their temporary files beside it), and run again.")
    if isinstance(exc, OSError) and exc.errno in _NOT_USABLE and exc.filename:
        return UnusablePath(f"{exc.filename}: {exc.strerror}. Check the path: inputs must exist and be "
                            f"readable, and --out must be somewhere you can write.")
    return None
