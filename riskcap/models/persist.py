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

import json
from pathlib import Path

from riskcap.io import DataError, sha256_file, write_json

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
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if metadata.get("format") != FORMAT:
        raise DataError(f"{path}: unknown model format {metadata.get('format')!r} (expected {FORMAT})")
    return metadata


def load_model(model_dir: str | Path):
    """Load a model directory written by :func:`save_model`.

    Checks the format, the kind, each file's SHA-256 and that the model's own feature list
    matches the metadata; raises DataError naming the problem.
    """
    model_dir = Path(model_dir)
    metadata = read_metadata(model_dir)
    classes = _classes()
    kind = metadata.get("kind")
    if kind not in classes:
        raise DataError(f"{model_dir / METADATA_FILE}: unknown model kind {kind!r} (expected one of {', '.join(classes)})")
    for name, digest in metadata.get("files", {}).items():
        path = model_dir / name
        if not path.exists():
            raise DataError(f"{path}: missing model file")
        if sha256_file(path) != digest:
            raise DataError(f"{path}: changed since the model was saved (SHA-256 differs from {METADATA_FILE})")
    model = classes[kind].load(model_dir, metadata)
    if list(model.features) != list(metadata.get("features", [])):
        ours, theirs = list(model.features), list(metadata.get("features", []))
        diff = sorted(set(ours) ^ set(theirs)) or ["(same names, different order)"]
        raise DataError(f"{model_dir}: the model file's features do not match {METADATA_FILE}: {', '.join(diff[:10])}")
    return model

