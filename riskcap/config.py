"""Locating shipped configuration and loading YAML with errors that name the file.

Config files are read by a bounded loader (:func:`load_yaml`): a regular file of at most
:data:`MAX_CONFIG_BYTES`, plain YAML only (no Python tags, no anchors or aliases, whose
expansion is unbounded), at most :data:`MAX_DEPTH` levels of nesting, mapping keys that are
text and unique (a repeated key would silently replace the first), and whole numbers of at
most :data:`MAX_INT_DIGITS` digits. Anything else is a ConfigError naming the file and line.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from riskcap.errors import ConfigError
from riskcap.untrusted import Refused, read_regular

#: Largest config file read (bytes); shipped configs are a few kilobytes.
MAX_CONFIG_BYTES = 1 << 20
#: Deepest nesting of lists and mappings in a config file (shipped configs use 5).
MAX_DEPTH = 32
#: Most digits in a whole number (money in pence needs 15).
MAX_INT_DIGITS = 30


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


class _Refused(yaml.YAMLError):
    """Something the bounded loader does not accept (the message says what, with the line)."""


def _line(node_or_mark) -> str:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return f"line {mark.line + 1}" if mark is not None else "somewhere"


class _BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader without aliases, with bounded nesting, unique text keys and bounded integers."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(f"an alias (*{event.anchor}) at {_line(event)}: anchors and aliases are not "
                           "allowed in riskcap configs; write the values out")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise _Refused(f"an anchor (&{event.anchor}) at {_line(event)}: anchors and aliases are not "
                           "allowed in riskcap configs; write the values out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep at {_line(event)}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise _Refused(f"key {key!r} at {_line(key_node)} is not text; keys are names like 'tariff'")
            if key in seen:
                raise _Refused(f"duplicate key '{key}' at {_line(key_node)} (first at {seen[key]}); "
                               "a repeated key would silently replace the first: keep one")
            seen[key] = _line(key_node)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        digits = sum(ch.isdigit() for ch in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise _Refused(f"the number at {_line(node)} has {digits} digits, more than the "
                           f"{MAX_INT_DIGITS} riskcap reads")
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def parse_yaml(text: str, where: str = "<text>"):
    """Parse YAML text with the bounded loader (see the module docstring); ConfigError naming ``where``."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # e.g. a number Python will not read
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def read_text_file(path: str | Path, limit: int | None = None) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes (default :data:`MAX_CONFIG_BYTES`);
    ConfigError otherwise (a device, a pipe or a folder is never read)."""
    path = Path(path)
    try:
        data = read_regular(path, MAX_CONFIG_BYTES if limit is None else limit)
    except Refused as exc:
        raise ConfigError(f"{path}: file not found" if exc.reason == "missing" else
                          f"{path}: cannot read: {exc.reason}; is it the right file?") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid YAML: not UTF-8 text ({exc})") from None


def load_yaml(path: str | Path) -> dict:
    """Parse a YAML mapping with the bounded loader; raise ConfigError naming the file on any problem."""
    path = Path(path)
    data = parse_yaml(read_text_file(path), str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data
