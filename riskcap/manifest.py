"""Run manifests: what went into a run and what came out, so it can be audited and verified.

Every run directory holds ``manifest.json`` with the command line, riskcap and dependency
versions, seed, the index dates used and where each came from, input fingerprints (size and
SHA-256), config contents, model fingerprints, output files with their SHA-256, and
start/end times. :func:`verify_run` re-checks outputs. What riskcap may write into (a run
folder it made, or a single output file it recognises: :func:`claim_file`) is in
``docs/security.md``, "How ``--out`` is treated".
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import stat
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from riskcap import __version__
from riskcap.data.write import OWNER_ONLY, private_dir, sha256_of, write_file, write_json
from riskcap.errors import DataError, UnusablePath
from riskcap.untrusted import Refused, open_regular, read_regular

MANIFEST = "manifest.json"
DEPENDENCIES = ("numpy", "pandas", "pyarrow", "scikit-learn", "lightgbm", "numba", "click", "openpyxl", "matplotlib")
#: Largest manifest.json read back (a run with a million output files fits).
MAX_MANIFEST_BYTES = 256 * 2**20
#: The temporary files riskcap's atomic writers leave if killed mid-write (riskcap.data.write.atomic_path).
_LEFTOVER = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def fingerprint(path: str | Path) -> dict:
    """Size and SHA-256 of a file, or of every regular file below a directory (sorted by path).

    Links to regular files are followed (readers follow them); links to folders, devices and
    pipes are not read.
    """
    path = Path(path)
    if not path.is_dir():
        return {path.name: _hashed(path)}
    out = {}
    for name, info in sorted(_entries(path, follow_files=True).items()):
        if stat.S_ISREG(info.st_mode):
            out[name] = _hashed(path / name)
    return out


def _hashed(path: Path) -> dict:
    """Size and SHA-256 of a regular file (opened without blocking: a pipe or device is refused)."""
    try:
        fd = open_regular(path)
    except Refused as exc:
        raise DataError(f"{path}: {exc.reason}; riskcap reads and fingerprints regular files only") from None
    info = os.fstat(fd)
    with os.fdopen(fd, "rb") as fh:
        return {"bytes": info.st_size, "sha256": sha256_of(fh)}


def _entries(folder: Path, follow_files: bool = False) -> dict[str, os.stat_result]:
    """Everything below ``folder`` but folders, as {relative posix path: stat}, never descending
    into a linked folder. Links are reported as links (``lstat``) unless ``follow_files`` and
    they point to a regular file."""
    out = {}
    for root, dirs, files in os.walk(folder, followlinks=False):
        base = Path(root)
        for name in files + [d for d in dirs if (base / d).is_symlink()]:
            p = base / name
            info = p.lstat()
            if follow_files and stat.S_ISLNK(info.st_mode):
                try:
                    target = p.stat()
                    info = target if stat.S_ISREG(target.st_mode) else info
                except OSError:
                    pass
            out[p.relative_to(folder).as_posix()] = info
    return out


def _identity(info: os.stat_result) -> tuple:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _in_background(fn, *args) -> Future:
    """``fn(*args)`` on a daemon thread (so a run that fails exits without waiting for it)."""
    future: Future = Future()

    def target():
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            future.set_exception(exc)

    threading.Thread(target=target, name="riskcap-fingerprint", daemon=True).start()
    return future


def versions() -> dict[str, str]:
    """Versions of riskcap, Python and the main dependencies."""
    out = {"riskcap": __version__, "python": sys.version.split()[0]}
    for name in DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# --- what riskcap may write into ------------------------------------------------------------

def read_manifest(run_dir: str | Path) -> dict:
    """A run folder's parsed ``manifest.json``; DataError naming the problem when it is absent,
    not a regular file, too large, not JSON or not a riskcap manifest."""
    path = Path(run_dir) / MANIFEST
    try:
        data = read_regular(path, MAX_MANIFEST_BYTES, follow_links=False)
    except Refused as exc:
        if exc.reason == "missing":
            raise DataError(f"{path}: no manifest: is this a riskcap run directory?") from None
        raise DataError(f"{path}: {exc.reason}, so not a riskcap manifest") from None
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: not a riskcap manifest (not valid JSON: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("riskcap_manifest") != 1:
        raise DataError(f"{path}: not a riskcap manifest (no \"riskcap_manifest\": 1)")
    outputs = manifest.get("outputs")
    if not isinstance(outputs, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) and isinstance(v.get("sha256"), str)
            and isinstance(v.get("bytes"), int) for k, v in outputs.items()):
        raise DataError(f"{path}: not a riskcap manifest ('outputs' must map file names to their bytes and sha256)")
    return manifest


def _refuse(run_dir: Path, why: str) -> UnusablePath:
    return UnusablePath(f"{run_dir}: {why}. riskcap writes a run only into a new or empty folder, or into the "
                        f"folder of an earlier riskcap run (it never overwrites, deletes or changes files it did "
                        f"not write): choose another --out, or empty this folder")


@dataclass
class _Claim:
    """A run folder as the run found it: its entries' identities, the earlier run's outputs and
    manifest bytes, and whether the folder is new."""

    before: dict[str, tuple]
    earlier: dict[str, dict]
    earlier_manifest: bytes | None
    created: bool
    manifest_mode: int = OWNER_ONLY


def claim_run_folder(run_dir: Path) -> _Claim:
    """Check that ``run_dir`` may hold this run (see the module docstring) and note what is in it."""
    if run_dir.is_symlink() and not run_dir.is_dir():
        raise _refuse(run_dir, "is a symbolic link to something that is not a folder")
    if not run_dir.exists():
        return _Claim({}, {}, None, True)
    if not run_dir.is_dir():
        raise _refuse(run_dir, "is a file, not a folder")
    entries = _entries(run_dir)
    earlier: dict[str, dict] = {}
    earlier_manifest = None
    if entries:
        if MANIFEST not in entries:
            raise _refuse(run_dir, f"is not empty and holds no riskcap {MANIFEST} (e.g. "
                                   f"{', '.join(sorted(entries)[:3])})")
        try:
            earlier = read_manifest(run_dir)["outputs"]
        except DataError as exc:
            raise _refuse(run_dir, f"is not empty and its {MANIFEST} is not riskcap's ({exc})") from None
        earlier_manifest = (run_dir / MANIFEST).read_bytes()
        links = sorted(name for name, info in entries.items() if stat.S_ISLNK(info.st_mode))
        if links:
            raise _refuse(run_dir, f"holds a symbolic link ({links[0]}), which riskcap never writes through")
    mode = stat.S_IMODE(entries[MANIFEST].st_mode) if entries else OWNER_ONLY
    return _Claim({name: _identity(info) for name, info in entries.items()}, earlier, earlier_manifest, False, mode)


def claim_file(path: str | Path, is_ours: Callable[[Path], bool], what: str) -> Path:
    """Check that output file ``path`` may be written: absent, or a regular file (not a link)
    that ``is_ours`` recognises as riskcap's own ``what``; UnusablePath saying what to do otherwise."""
    path = Path(path)
    if not path.is_symlink() and not path.exists():
        return path
    if path.is_symlink() or not path.is_file():
        raise UnusablePath(f"{path}: already exists and is not a regular file; riskcap does not write through "
                           f"links or over folders or devices: choose another name, or remove it")
    try:
        ours = is_ours(path)
    except Exception:  # noqa: BLE001 - any failure to recognise it means it is not ours
        ours = False
    if not ours:
        raise UnusablePath(f"{path}: already exists and is not a riskcap {what}; riskcap does not overwrite files "
                           f"it did not write: choose another name, or remove it")
    return path


def json_with_keys(*keys: str) -> Callable[[Path], bool]:
    """A recogniser for :func:`claim_file`: a JSON object (of at most 16 MB) holding ``keys``."""
    def recognise(path: Path) -> bool:
        if path.stat().st_size > 16 * 2**20:
            return False
        data = json.loads(path.read_bytes())
        return isinstance(data, dict) and set(keys) <= set(data)
    return recognise


def table_with_columns(*columns: str) -> Callable[[Path], bool]:
    """A recogniser for :func:`claim_file`: a parquet file, or a CSV file whose header, holding ``columns``."""
    def recognise(path: Path) -> bool:
        if path.suffix == ".csv":
            with open(path, encoding="utf-8", newline="") as fh:
                header = next(csv.reader([fh.readline(1 << 20)]), [])
        else:
            import pyarrow.parquet as pq

            header = pq.read_schema(path).names
        return set(columns) <= set(header)
    return recognise


# --- the manifest ----------------------------------------------------------------------------

_OPEN: list["RunManifest"] = []


@dataclass
class RunManifest:
    """Collects a run's provenance; :meth:`write` records outputs' hashes and the end time.

    Creating it claims ``run_dir`` (:func:`claim_run_folder`: UnusablePath when the folder holds
    files riskcap did not write) and marks it unfinished until :meth:`write`.
    """

    run_dir: Path
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    seed: int | None = None
    inputs: dict = field(default_factory=dict)
    configs: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    index_dates: dict = field(default_factory=dict)
    started: str = field(default_factory=lambda: _now())
    private: bool = False

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        self._claim = claim_run_folder(self.run_dir)
        if self._claim.created:
            if self.private:
                private_dir(self.run_dir)
            else:
                self.run_dir.mkdir(parents=True)
        write_json(self._record({}, self._claim.earlier, finished=None), self.run_dir / MANIFEST, OWNER_ONLY)
        _OPEN.append(self)

    def add_input(self, name: str, path: str | Path) -> None:
        """Fingerprint input ``path`` on a background thread, so hashing overlaps the run that
        reads it (whole-population inputs are tens of gigabytes); :meth:`write` waits for it."""
        self.inputs[name] = {"path": str(path), "files": _in_background(fingerprint, path)}

    def add_config(self, name: str, content) -> None:
        self.configs[name] = content

    def add_index_date(self, stage: str, index) -> None:
        """Record the index date ``stage`` used and its source (a :class:`~riskcap.data.dates.IndexDate`)."""
        self.index_dates[stage] = index.as_dict()

    def add_model(self, name: str, path: str | Path) -> None:
        self.models[name] = {"path": str(path), "files": fingerprint(path)}

    def outputs(self) -> dict[str, dict]:
        """The regular files this run wrote (new or replaced since it claimed the folder), hashed."""
        found = {}
        for name, info in sorted(_entries(self.run_dir).items()):
            if name == MANIFEST or not stat.S_ISREG(info.st_mode) or _LEFTOVER.fullmatch(Path(name).name):
                continue
            if self._claim.before.get(name) != _identity(info):
                found[name] = _hashed(self.run_dir / name)
        return found

    def write(self, mode: int | None = None) -> Path:
        """Hash every output file this run wrote, remove the earlier run's outputs it did not
        write again (when unchanged), and write ``manifest.json`` (with file ``mode`` if given,
        e.g. owner-only beside patient lists)."""
        outputs = self.outputs()
        record = self._record({k: {**v, "files": v["files"].result()} for k, v in self.inputs.items()}, outputs,
                              finished=_now())
        self._remove_stale(outputs)
        path = write_json(record, self.run_dir / MANIFEST, mode)
        if self in _OPEN:
            _OPEN.remove(self)
        return path

    def _record(self, inputs: dict, outputs: dict, finished: str | None) -> dict:
        return {
            "riskcap_manifest": 1,
            "command": self.command,
            "versions": versions(),
            "seed": self.seed,
            **({"index_dates": self.index_dates} if self.index_dates else {}),
            "inputs": inputs,
            "configs": self.configs,
            "models": self.models,
            "outputs": outputs,
            "started": self.started,
            "finished": finished,
        }

    def _remove_stale(self, outputs: dict) -> None:
        inputs = [Path(v["path"]).resolve() for v in self.inputs.values()]
        for name, meta in sorted(self._claim.earlier.items()):
            if name in outputs or name == MANIFEST or name not in self._claim.before:
                continue
            path = self.run_dir / name
            if any(path.resolve() == p or p in path.resolve().parents for p in inputs):
                continue  # an input of this run (e.g. --scores OUT/scores.parquet) is kept
            try:
                info = path.lstat()
                if (stat.S_ISREG(info.st_mode) and _identity(info) == self._claim.before[name]
                        and info.st_size == meta["bytes"] and _hashed(path)["sha256"] == meta["sha256"]):
                    path.unlink()
            except (OSError, DataError):
                continue

    def abandon(self) -> None:
        """After a run failed: if it wrote nothing, undo the claim (put the earlier run's
        manifest back, or remove the marker and the folder the run created); otherwise keep
        the unfinished marker, so ``verify`` says the run did not finish."""
        if self in _OPEN:
            _OPEN.remove(self)
        try:
            if any(name != MANIFEST and self._claim.before.get(name) != _identity(info)
                   for name, info in _entries(self.run_dir).items()):
                return
            if self._claim.earlier_manifest is not None:
                write_file(self._claim.earlier_manifest, self.run_dir / MANIFEST, self._claim.manifest_mode)
                return
            (self.run_dir / MANIFEST).unlink(missing_ok=True)
            if self._claim.created:
                self.run_dir.rmdir()
        except OSError:
            pass


def abandon_unfinished() -> None:
    """:meth:`RunManifest.abandon` every run claimed in this process and not written (the
    command line calls it when a command fails)."""
    for manifest in list(_OPEN):
        manifest.abandon()


def verify_run(run_dir: str | Path) -> list[str]:
    """Problems found re-checking a run's outputs against its manifest (empty = verified).

    Only paths inside ``run_dir`` are checked (a manifest naming ``../x`` or ``/x`` is a
    problem, not followed), each must be a regular file of the recorded size before it is
    hashed, and leftovers of interrupted writes (``.<name>.XXXXXXXX.tmp``) are not outputs.
    """
    run_dir = Path(run_dir)
    try:
        manifest = read_manifest(run_dir)
    except DataError as exc:
        return [str(exc)]
    if manifest.get("finished") is None:
        return [f"{run_dir / MANIFEST}: the run did not finish (it was stopped or failed): run it again"]
    recorded = manifest["outputs"]
    problems = []
    current = _entries(run_dir)
    for name, meta in sorted(recorded.items()):
        parts = Path(name).parts
        if Path(name).is_absolute() or not parts or ".." in parts or name != Path(name).as_posix() or "\\" in name:
            problems.append(f"{name!r}: not a path inside the run folder (the manifest is not riskcap's)")
            continue
        info = current.get(name)
        if info is None:
            problems.append(f"{name}: missing")
        elif not stat.S_ISREG(info.st_mode):
            problems.append(f"{name}: not a regular file (a link, device or pipe), so not the run's output")
        elif info.st_size != meta["bytes"]:
            problems.append(f"{name}: changed since the run ({info.st_size:,} bytes, recorded {meta['bytes']:,})")
        elif _hashed(run_dir / name)["sha256"] != meta["sha256"]:
            problems.append(f"{name}: changed since the run (SHA-256 differs)")
    for name in sorted(set(current) - set(recorded) - {MANIFEST}):
        if _LEFTOVER.fullmatch(Path(name).name):
            continue
        problems.append(f"{name}: not produced by the run (not in the manifest)")
    return problems


def leftovers(run_dir: str | Path) -> list[str]:
    """Temporary files left in a run folder by interrupted writes (safe to delete)."""
    return sorted(name for name in _entries(Path(run_dir)) if _LEFTOVER.fullmatch(Path(name).name))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
