"""Model directories: plain-text artefacts plus ``metadata.json``; loading never runs code.

A model directory holds

- ``metadata.json``: format, kind, the input features in order, the training index date,
  the data fingerprint, training details and metrics, package versions, and the SHA-256
  of every model file (checked on load);
- ``model.json`` (logistic: transform spec, standardisation and coefficients, plus
  ``coefficients.csv`` for people to read), or ``model.txt`` (LightGBM's text format) plus
  ``calibration.json`` for gbm.

Nothing is pickled: files are parsed as JSON or LightGBM text, straight from their bytes.
Loading only reads, and only the files its kind has (:data:`MODEL_FILES`) that
``metadata.json`` lists: each must be a regular file directly in the folder (never a
symbolic link, directory, device or pipe) of at most :data:`MAX_FILE_BYTES`. Numbers must be
finite (a NaN or infinity in a model file is refused). Every problem is a DataError naming
the folder and file.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from riskcap.data.write import sha256_file, write_json
from riskcap.errors import DataError
from riskcap.models.base import finite_json
from riskcap.untrusted import Refused, read_regular

FORMAT = "riskcap-model/1"
METADATA_FILE = "metadata.json"
#: The files a model of each kind may list in ``metadata.json`` (the first is required).
MODEL_FILES: dict[str, tuple[str, ...]] = {
    "logistic": ("model.json", "coefficients.csv"),
    "gbm": ("model.txt", "calibration.json"),
    "cost": ("model.txt",),
}
#: Required files beyond the first, per kind.
_ALSO_REQUIRED = {"gbm": ("calibration.json",)}
#: Largest model file read: LightGBM text of thousands of trees is tens of megabytes.
MAX_FILE_BYTES = 256 * 2**20


def _model_class(kind: str):
    """The class of a model kind (one of :data:`MODEL_FILES`), importing only its own module:
    scoring a gbm never imports scikit-learn, which only the logistic model uses."""
    if kind == "logistic":
        from riskcap.models.logistic import LogisticModel
        return LogisticModel
    if kind == "gbm":
        from riskcap.models.gbm import GBMModel
        return GBMModel
    from riskcap.models.cost import CostModel
    return CostModel


def save_model(model, model_dir: str | Path) -> Path:
    """Write the model's files and ``metadata.json`` (with the files' SHA-256) to ``model_dir``."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    files = model.save(model_dir)
    metadata = {**model.metadata, "format": FORMAT, "kind": model.kind, "features": list(model.features),
                "files": {p.name: sha256_file(p) for p in files}}
    model.metadata = metadata
    return write_json(metadata, model_dir / METADATA_FILE)


def _parse_metadata(data: bytes, path) -> dict:
    metadata = finite_json(data, path)
    if not isinstance(metadata, dict):
        raise DataError(f"{path}: expected a JSON object")
    if metadata.get("format") != FORMAT:
        raise DataError(f"{path}: unknown model format {metadata.get('format')!r} (expected {FORMAT})")
    return metadata


def _listed(metadata: dict, origin: Path) -> dict[str, str]:
    """The model files ``metadata.json`` lists (name -> SHA-256), checked against the kind's own files."""
    where = origin / METADATA_FILE
    kind = metadata.get("kind")
    if kind not in MODEL_FILES:
        raise DataError(f"{where}: unknown model kind {kind!r} (expected one of {', '.join(MODEL_FILES)})")
    files = metadata.get("files")
    if not isinstance(files, dict) or not all(isinstance(n, str) and isinstance(d, str) for n, d in files.items()):
        raise DataError(f"{where}: key 'files' must map file names to their SHA-256")
    allowed = MODEL_FILES[kind]
    for name in files:
        if name not in allowed:
            raise DataError(f"{where}: lists {name!r}, which is not a file of a {kind} model "
                            f"(allowed: {', '.join(allowed)}); a model folder names only its own files")
    for name in (allowed[0], *_ALSO_REQUIRED.get(kind, ())):
        if name not in files:
            raise DataError(f"{where}: does not list {name!r}, which a {kind} model needs")
    return files


class _Folder:
    """A model folder opened once: its files are read relative to it, never through a link."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> "_Folder":
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise DataError(f"{self.path}: not a riskcap model directory (it does not exist); "
                            "create one with 'riskcap train'") from None
        except NotADirectoryError:
            raise DataError(f"{self.path}: not a riskcap model directory (not a folder)") from None
        except PermissionError as exc:
            raise DataError(f"{self.path}: cannot open the model folder ({exc.strerror})") from None
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)

    def read(self, name: str) -> bytes:
        """The bytes of regular file ``name`` directly in the folder (no link, device, pipe or folder)."""
        try:
            return read_regular(name, MAX_FILE_BYTES, follow_links=False, dir_fd=self.fd)
        except Refused as exc:
            if exc.reason == "missing" and name == METADATA_FILE:
                raise DataError(f"{self.path}: not a riskcap model directory (no {METADATA_FILE}); "
                                "create one with 'riskcap train'") from None
            if exc.reason == "missing":
                raise DataError(f"{self.path / name}: missing model file") from None
            raise DataError(f"{self.path / name}: cannot read the model file: {exc.reason}; a model folder holds "
                            "plain files only") from None


def read_model_files(model_dir: str | Path) -> dict[str, bytes]:
    """A model directory's ``metadata.json`` and model files as bytes, checked (SHA-256).

    This is how a model reaches partition workers (:func:`load_model_files` parses it
    there): plain file bytes, never a pickle of compiled objects. Only the files the
    metadata lists are read, each as described in the module docstring, and they are
    parsed once here, so a bad model is refused (naming ``model_dir``) before any work.
    """
    model_dir = Path(model_dir)
    with _Folder(model_dir) as folder:
        files = {METADATA_FILE: folder.read(METADATA_FILE)}
        metadata = _parse_metadata(files[METADATA_FILE], model_dir / METADATA_FILE)
        files.update({name: folder.read(name) for name in _listed(metadata, model_dir)})
    load_model_files(files, model_dir)
    return files


def _check_files(files: dict[str, bytes], metadata: dict, origin: Path) -> None:
    """DataError unless the kind is known, its files are the listed ones and each has its SHA-256."""
    listed = _listed(metadata, origin)
    extra = sorted(set(files) - set(listed) - {METADATA_FILE})
    if extra:
        raise DataError(f"{origin / extra[0]}: not listed in {METADATA_FILE}")
    for name, digest in listed.items():
        if name not in files:
            raise DataError(f"{origin / name}: missing model file")
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise DataError(f"{origin / name}: changed since the model was saved "
                            f"(SHA-256 differs from {METADATA_FILE})")


def _build(metadata: dict, files: dict[str, bytes], origin: Path):
    """The model class's own parser on checked file bytes, features cross-checked."""
    kind = metadata["kind"]
    try:
        model = _model_class(kind).from_files(files, metadata, origin)
    except DataError as exc:
        if str(origin) in str(exc):
            raise
        raise DataError(f"{origin}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as exc:
        raise DataError(f"{origin}: the {kind} model's files are not valid ({type(exc).__name__}: {exc})") from None
    if list(model.features) != list(metadata.get("features", [])):
        ours, theirs = list(model.features), list(metadata.get("features", []))
        diff = sorted(set(ours) ^ set(theirs)) or ["(same names, different order)"]
        raise DataError(f"{origin}: the model file's features do not match {METADATA_FILE}: {', '.join(diff[:10])}")
    return model


def load_model(model_dir: str | Path):
    """Load a model directory written by :func:`save_model`.

    Checks the format, the kind, each file's SHA-256 and that the model's own feature list
    matches the metadata; raises DataError naming the problem.
    """
    model_dir = Path(model_dir)
    files = read_model_files(model_dir)
    return _build(_parse_metadata(files[METADATA_FILE], model_dir / METADATA_FILE), files, model_dir)


_LOADED: dict[str, object] = {}
_LOADED_MAX = 4


def load_model_files(files: dict[str, bytes], origin: str | Path = "model"):
    """Load a model from :func:`read_model_files`' bytes, with the same checks as :func:`load_model`.

    Parsed once per process: later calls with the same bytes return the same model object.
    Nothing is written anywhere: the files are parsed from the bytes.
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    key = digest.hexdigest()
    if key in _LOADED:
        return _LOADED[key]
    origin = Path(origin)
    if METADATA_FILE not in files:
        raise DataError(f"{origin}: not a riskcap model (no {METADATA_FILE})")
    metadata = _parse_metadata(files[METADATA_FILE], origin / METADATA_FILE)
    _check_files(files, metadata, origin)
    model = _build(metadata, files, origin)
    if len(_LOADED) >= _LOADED_MAX:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = model
    return model
