"""Names from configs and data that become file or folder names: checked, never joined as given.

A scenario's ``name`` names its output folder, a need-group scheme's ``name`` its per-person
file, a practice code its case-finding list files. Each must be a *safe name*: 1 to
:data:`MAX_LENGTH` ASCII letters, digits, ``_``, ``-`` and ``.``, starting with a letter or
digit (so never ``.``, ``..``, a hidden file, an absolute path or a path with separators),
and not a name Windows reserves for devices (``CON``, ``NUL``, ``COM1``, ...), so output
folders can be copied to any machine.
"""
from __future__ import annotations

import re

MAX_LENGTH = 64
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
#: What a safe name is, for error messages.
ALLOWED = (f"1 to {MAX_LENGTH} letters (A-Z, a-z), digits, '_', '-' or '.', starting with a letter or digit, "
           "not a Windows device name such as CON or NUL")


def is_safe_name(name) -> bool:
    """Whether ``name`` may be used as a file or folder name as it is (see the module docstring)."""
    return (isinstance(name, str) and len(name) <= MAX_LENGTH and _SAFE.fullmatch(name) is not None
            and name.split(".")[0].upper() not in _RESERVED and not name.endswith("."))

