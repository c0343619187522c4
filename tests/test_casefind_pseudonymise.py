"""Keyed pseudonyms and where the key comes from."""
from __future__ import annotations

import hashlib
import hmac
import os

import pytest

from riskcap.errors import ConfigError
from riskcap.pseudonymise import KEY_ENV, PSEUDO_ID_CHARS, PseudonymKey, key_file_is_private, load_key, pseudonymise

pytestmark = pytest.mark.unit


def test_pseudonyms_are_a_keyed_hash_of_practice_and_person():
    key = PseudonymKey(b"s" * 32, "file")
    out = pseudonymise(key, ["A81001", "A81001", "B82003"], [1, 2, 1])
    expected = [hmac.new(b"s" * 32, f"{c}:{p}".encode(), hashlib.sha256).hexdigest()[:PSEUDO_ID_CHARS]
                for c, p in (("A81001", 1), ("A81001", 2), ("B82003", 1))]
    assert list(out) == expected
    assert len(set(out)) == 3  # same person at another practice gets another pseudonym
    assert all(len(p) == 16 and int(p, 16) >= 0 for p in out)
    assert list(pseudonymise(key, "A81001", [1, 2])) == expected[:2]


def test_different_keys_give_unlinkable_pseudonyms():
    a = pseudonymise(PseudonymKey(b"a" * 32, "file"), "A81001", range(100))
    b = pseudonymise(PseudonymKey(b"b" * 32, "file"), "A81001", range(100))
    assert not set(a) & set(b)


def test_key_from_environment_and_file(tmp_path):
    key = load_key(environ={KEY_ENV: "  " + "x" * 20 + "\n"})
    assert key.secret == b"x" * 20 and key.source == "environment" and key.stable
    path = tmp_path / "riskcap.key"
    path.write_text("y" * 40 + "\n")
    os.chmod(path, 0o600)
    from_file = load_key(path, environ={KEY_ENV: "x" * 20})  # the file wins
    assert from_file.secret == b"y" * 40 and from_file.source == "file"
    assert key_file_is_private(path)
    os.chmod(path, 0o644)
    assert not key_file_is_private(path)


def test_no_key_random_or_refused():
    random_key = load_key(environ={})
    assert random_key.source == "random" and not random_key.stable and len(random_key.secret) == 32
    assert load_key(environ={}).secret != random_key.secret
    with pytest.raises(ConfigError, match="no pseudonymisation key"):
        load_key(environ={}, allow_random=False)


def test_short_or_missing_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        load_key(environ={KEY_ENV: "short"})
    with pytest.raises(ConfigError, match="cannot read"):
        load_key(tmp_path / "absent.key")


def test_key_is_never_shown():
    key = PseudonymKey(b"secret-secret-secret", "file")
    assert "secret" not in repr(key) and key.fingerprint in repr(key)
    assert len(key.fingerprint) == 8
