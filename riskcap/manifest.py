"""Run manifests: what went into a run and what came out, so it can be audited and verified.

Every run directory holds ``manifest.json`` with the command line, riskcap and dependency
versions, seed, the index dates used and where each came from, input fingerprints (size and
SHA-256), config contents, model fingerprints, output files with their SHA-256, and
start/end times. :func:`verify_run` re-checks outputs.
"""
from __future__ import annotations

import datetime as dt
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from riskcap import __version__
from riskcap.io import sha256_file, write_json

MANIFEST = "manifest.json"
DEPENDENCIES = ("numpy", "pandas", "pyarrow", "scikit-learn", "lightgbm", "numba", "click", "openpyxl", "matplotlib")


def fingerprint(path: str | Path) -> dict:
    """Size and SHA-256 of a file, or of every file below a directory (sorted by path)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {
        str(p.relative_to(path) if path.is_dir() else p.name): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in files
    }


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


@dataclass
class RunManifest:
    """Collects a run's provenance; :meth:`write` records outputs' hashes and the end time."""

    run_dir: Path
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    seed: int | None = None
    inputs: dict = field(default_factory=dict)
    configs: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    index_dates: dict = field(default_factory=dict)
    started: str = field(default_factory=lambda: _now())

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

    def write(self, mode: int | None = None) -> Path:
        """Hash every output file in the run directory and write ``manifest.json``
        (with file ``mode`` if given, e.g. owner-only beside patient lists)."""
        run_dir = Path(self.run_dir)
        outputs = {k: v for k, v in fingerprint(run_dir).items() if k != MANIFEST and not k.endswith(".tmp")}
        return write_json(
            {
                "riskcap_manifest": 1,
                "command": self.command,
                "versions": versions(),
                "seed": self.seed,
                **({"index_dates": self.index_dates} if self.index_dates else {}),
                "inputs": {k: {**v, "files": v["files"].result()} for k, v in self.inputs.items()},
                "configs": self.configs,
                "models": self.models,
                "outputs": outputs,
                "started": self.started,
                "finished": _now(),
            },
            run_dir / MANIFEST,
            mode,
        )


def verify_run(run_dir: str | Path) -> list[str]:
    """Problems found re-checking a run's outputs against its manifest (empty = verified)."""
    import json

    run_dir = Path(run_dir)
    manifest_path = run_dir / MANIFEST
    if not manifest_path.exists():
        return [f"{manifest_path}: no manifest: is this a riskcap run directory?"]
    recorded = json.loads(manifest_path.read_text())["outputs"]
    problems = []
    for name, meta in sorted(recorded.items()):
        path = run_dir / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif sha256_file(path) != meta["sha256"]:
            problems.append(f"{name}: changed since the run (SHA-256 differs)")
    current = {k for k in fingerprint(run_dir) if k != MANIFEST}
    for name in sorted(current - set(recorded)):
        problems.append(f"{name}: not produced by the run (not in the manifest)")
    return problems


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
