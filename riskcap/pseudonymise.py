"""Keyed pseudonyms for people on case-finding lists.

A pseudonym is the first 16 hex characters of HMAC-SHA256(key, "<practice_code>:<person_id>").
Without the key nobody can link a pseudonym back to a person or across practices; with the
same key, the same person at the same practice always gets the same pseudonym, so lists
from different runs can be compared (``riskcap casefind --previous``).

The key comes from the environment variable ``RISKCAP_PSEUDONYM_KEY`` or a key file (at
least 16 bytes; surrounding whitespace is ignored). Without either, :func:`load_key` can
make a random key for one run: pseudonyms are then not linkable across runs, and
re-identification and comparison with a previous list are refused.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from riskcap.errors import ConfigError
from riskcap.untrusted import Refused, read_regular

#: Environment variable holding the pseudonymisation key.
KEY_ENV = "RISKCAP_PSEUDONYM_KEY"
#: Hex characters kept from the HMAC digest (64 bits).
PSEUDO_ID_CHARS = 16
MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class PseudonymKey:
    """A secret key and where it came from (``"environment"``, ``"file"`` or ``"random"``).

    ``repr`` never shows the key; :attr:`fingerprint` identifies it without revealing it.
    """

    secret: bytes
    source: str
    path: str = ""

    def __repr__(self) -> str:
        return f"PseudonymKey(source={self.source!r}, fingerprint={self.fingerprint!r})"

    @property
    def stable(self) -> bool:
        """True when the key outlives this run (pseudonyms are linkable across runs)."""
        return self.source != "random"

    @property
    def fingerprint(self) -> str:
        """8 hex characters identifying the key (an HMAC of a fixed label, not the key)."""
        return hmac.new(self.secret, b"riskcap key fingerprint", hashlib.sha256).hexdigest()[:8]


def load_key(key_file: str | Path | None = None, *, allow_random: bool = True,
             environ: dict | None = None) -> PseudonymKey:
    """The pseudonymisation key: from ``key_file`` if given, else ``$RISKCAP_PSEUDONYM_KEY``.

    Parameters
    ----------
    key_file : path, optional
        A file holding the key (its bytes, whitespace-stripped); should be readable by its
        owner only.
    allow_random : bool
        When no key is configured, return a fresh random key (``source="random"``) instead
        of raising.
    environ : mapping, optional
        Environment to read (default ``os.environ``; for tests).

    Raises
    ------
    ConfigError
        The key file is missing, the key is shorter than 16 bytes, or no key is configured
        and ``allow_random`` is False.
    """
    env = os.environ if environ is None else environ
    if key_file is not None:
        path = Path(key_file)
        try:
            secret = read_regular(path, 1 << 16).strip()  # a key is bytes, not a device or a pipe
        except Refused as exc:
            raise ConfigError(f"{path}: cannot read the pseudonymisation key file ({exc.reason})") from None
        _check_length(secret, str(path))
        return PseudonymKey(secret, "file", str(path))
    value = env.get(KEY_ENV, "")
    if value.strip():
        secret = value.strip().encode("utf-8")
        _check_length(secret, f"${KEY_ENV}")
        return PseudonymKey(secret, "environment")
    if not allow_random:
        raise ConfigError(
            f"no pseudonymisation key: set ${KEY_ENV} or pass --key-file (a file of at least "
            f"{MIN_KEY_BYTES} random bytes, e.g. made with: python -c \"import secrets; "
            f"print(secrets.token_hex(32))\" > riskcap.key && chmod 600 riskcap.key)"
        )
    return PseudonymKey(secrets.token_bytes(32), "random")


def _check_length(secret: bytes, where: str) -> None:
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigError(f"{where}: the pseudonymisation key must be at least {MIN_KEY_BYTES} bytes, got {len(secret)}")


def key_file_is_private(path: str | Path) -> bool:
    """True when a key file is not readable or writable by group or others (POSIX)."""
    mode = Path(path).stat().st_mode
    return not mode & (stat.S_IRWXG | stat.S_IRWXO)


def pseudonymise(key: PseudonymKey, practice_codes, person_ids) -> np.ndarray:
    """Pseudonyms for (practice_code, person_id) pairs.

    Parameters
    ----------
    key : PseudonymKey
    practice_codes : array-like of str, or a single str for all rows
    person_ids : array-like of int

    Returns
    -------
    numpy.ndarray of str (object dtype)
        ``PSEUDO_ID_CHARS`` lower-case hex characters each.
    """
    ids = np.asarray(person_ids, dtype=np.int64)
    if isinstance(practice_codes, str):
        codes = [practice_codes] * len(ids)
    else:
        codes = list(practice_codes)
        if len(codes) != len(ids):
            raise ValueError(f"{len(codes)} practice codes for {len(ids)} person ids")
    secret = key.secret
    out = np.empty(len(ids), dtype=object)
    for i, (code, pid) in enumerate(zip(codes, ids.tolist())):
        out[i] = hmac.new(secret, f"{code}:{pid}".encode(), hashlib.sha256).hexdigest()[:PSEUDO_ID_CHARS]
    return out
