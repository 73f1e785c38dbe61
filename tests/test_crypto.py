import os

import pytest

from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.core.errors import ConfigurationError, VaultDecryptionError


def test_round_trip_and_aad_binding():
    ring = Keyring.generate()
    box = ring.seal(b"secret", aad=b"a")
    assert b"secret" not in repr(box).encode() and ring.open(box, aad=b"a") == b"secret"
    with pytest.raises(VaultDecryptionError):
        ring.open(box, aad=b"b")


def test_rotation_keeps_old_records_readable():
    old = Keyring.generate("old")
    box = old.seal(b"v1", aad=b"x")
    new = old.with_new_active_key("new")
    assert new.active == "new" and new.open(box, aad=b"x") == b"v1"
    assert new.needs_rotation(box) and not new.needs_rotation(new.seal(b"v2", aad=b"x"))


def test_foreign_key_and_corruption_are_clear_errors():
    box = Keyring.generate("k1").seal(b"v", aad=b"x")
    with pytest.raises(VaultDecryptionError, match="wrong key or tampered"):
        Keyring.generate("k1").open(box, aad=b"x")
    with pytest.raises(VaultDecryptionError, match="does not hold"):
        Keyring.generate("other").open(box, aad=b"x")
    for broken in ({}, {"v": 1}, {**box, "ct": "!!"}, {**box, "n": box["n"][:-2]}, "nope", None):
        with pytest.raises(VaultDecryptionError):
            Keyring.generate("k1").open(broken, aad=b"x")  # type: ignore[arg-type]


def test_configuration(tmp_path, monkeypatch):
    with pytest.raises(ConfigurationError):
        Keyring({})
    with pytest.raises(ConfigurationError):
        Keyring({"k": b"short"})
    with pytest.raises(ConfigurationError):
        Keyring.from_string("no-colon")
    monkeypatch.delenv("AGENT_AUTH_ENCRYPTION_KEYS", raising=False)
    with pytest.raises(ConfigurationError, match="AGENT_AUTH_ENCRYPTION_KEYS"):
        Keyring.from_env()
    path = tmp_path / "keys"
    ring = Keyring.from_file(path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert Keyring.from_file(path).open(ring.seal(b"z", aad=b""), aad=b"") == b"z"
    assert "key" not in repr(ring).lower().replace("key_ids", "").replace("keyring", "")
