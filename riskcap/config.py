"""Locating shipped configuration and loading YAML with errors that name the file."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from riskcap.errors import ConfigError


def shipped_config(relative: str) -> Path:
    """Path of a file in the shipped ``configs/`` folder, e.g. ``scenarios/baseline.yaml``."""
    try:
        path = Path(str(resources.files("riskcap.configs").joinpath(relative)))
    except ModuleNotFoundError:
        # Editable installs map configs/ as a nested namespace package, which the import
        # system cannot find under riskcap's __path__: use the source tree's configs/.
        path = Path(__file__).resolve().parents[1] / "configs" / relative
    if not path.exists():
        raise ConfigError(f"no shipped config '{relative}' (looked in {path.parent})")
    return path


def resolve_config(name_or_path: str | Path, folder: str = "") -> Path:
    """A user's path if it exists, else a shipped config by name (``.yaml`` optional)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    name = path.name if path.suffix else f"{path.name}.yaml"
    return shipped_config(f"{folder}/{name}" if folder else name)


def load_yaml(path: str | Path) -> dict:
    """Parse a YAML mapping; raise ConfigError naming the file on any problem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data
