"""Model directories: plain-text artefacts plus ``metadata.json``; loading never runs code.

A model directory holds

- ``metadata.json``: format, kind, the input features in order, the training index date,
  the data fingerprint, training details and metrics, package versions, and the SHA-256
  of every model file (checked on load);
- ``model.json`` (logistic: transform spec, standardisation and coefficients), or
  ``model.txt`` (LightGBM's text format) plus ``calibration.json`` for gbm.

Nothing is pickled: files are parsed as JSON or LightGBM text.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from riskcap.errors import DataError
from riskcap.io import sha256_file, write_json

FORMAT = "riskcap-model/1"
METADATA_FILE = "metadata.json"


def _classes():
    from riskcap.models.cost import CostModel
    from riskcap.models.gbm import GBMModel
    from riskcap.models.logistic import LogisticModel

    return {"logistic": LogisticModel, "gbm": GBMModel, "cost": CostModel}


def save_model(model, model_dir: str | Path) -> Path:
    """Write the model's files and ``metadata.json`` (with the files' SHA-256) to ``model_dir``."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    files = model.save(model_dir)
    metadata = {**model.metadata, "format": FORMAT, "kind": model.kind, "features": list(model.features),
                "files": {p.name: sha256_file(p) for p in files}}
    model.metadata = metadata
    return write_json(metadata, model_dir / METADATA_FILE)


def read_metadata(model_dir: str | Path) -> dict:
    """The parsed ``metadata.json`` of a model directory; DataError when absent or invalid."""
    path = Path(model_dir) / METADATA_FILE
    if not path.exists():
        raise DataError(f"{model_dir}: not a riskcap model directory (no {METADATA_FILE}); "
                        "create one with 'riskcap train'")
    return _parse_metadata(path.read_bytes(), path)


def _parse_metadata(data: bytes, path) -> dict:
    try:
        metadata = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if metadata.get("format") != FORMAT:
        raise DataError(f"{path}: unknown model format {metadata.get('format')!r} (expected {FORMAT})")
    return metadata


def read_model_files(model_dir: str | Path) -> dict[str, bytes]:
    """A model directory's ``metadata.json`` and model files as bytes, checked (SHA-256).

    This is how a model reaches partition workers (:func:`load_model_files` parses it
    there): plain file bytes, never a pickle of compiled objects.
    """
    model_dir = Path(model_dir)
    metadata = read_metadata(model_dir)
    files = {METADATA_FILE: (model_dir / METADATA_FILE).read_bytes()}
    files.update({name: (model_dir / name).read_bytes() for name in metadata.get("files", {})
                  if (model_dir / name).exists()})
    _check_files(files, metadata, model_dir)  # a missing file is named there
    return files


def _check_files(files: dict[str, bytes], metadata: dict, origin: Path) -> None:
    """DataError unless the kind is known and every file listed in the metadata has its SHA-256."""
    classes = _classes()
    kind = metadata.get("kind")
    if kind not in classes:
        raise DataError(f"{origin / METADATA_FILE}: unknown model kind {kind!r} (expected one of {', '.join(classes)})")
    for name, digest in metadata.get("files", {}).items():
        if name not in files:
            raise DataError(f"{origin / name}: missing model file")
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise DataError(f"{origin / name}: changed since the model was saved "
                            f"(SHA-256 differs from {METADATA_FILE})")


def _build(metadata: dict, model_dir: Path, origin: Path):
    """The model class's own loader on checked files in ``model_dir``, features cross-checked."""
    model = _classes()[metadata["kind"]].load(model_dir, metadata)
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
    return _build(_parse_metadata(files[METADATA_FILE], model_dir / METADATA_FILE), model_dir, model_dir)


_LOADED: dict[str, object] = {}
_LOADED_MAX = 4


def load_model_files(files: dict[str, bytes], origin: str | Path = "model"):
    """Load a model from :func:`read_model_files`' bytes, with the same checks as :func:`load_model`.

    Parsed once per process: later calls with the same bytes return the same model object.
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
    with tempfile.TemporaryDirectory(prefix="riskcap-model-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        model = _build(metadata, Path(tmp), origin)
    if len(_LOADED) >= _LOADED_MAX:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = model
    return model
