"""Encryption at rest for everything secret this toolkit stores (AES-256-GCM).

A :class:`Keyring` holds one or more 256-bit keys by key id; new records are sealed with
the active key, and every record carries the id of the key that sealed it, so keys rotate
without losing data (add a new active key, keep the old ones for reading). The additional
authenticated data (``aad``) binds a sealed record to where it belongs (namespace, user,
connection): a ciphertext copied into another user's record does not open.

Example:
    >>> ring = Keyring.generate()
    >>> box = ring.seal(b"refresh-token", aad=b"vault|alice|calendar")
    >>> ring.open(box, aad=b"vault|alice|calendar")
    b'refresh-token'
    >>> ring.open(box, aad=b"vault|bob|calendar")
    Traceback (most recent call last):
    ...
    langchain_agent_auth.errors.VaultDecryptionError: record cannot be decrypted: wrong key or tampered data
"""

from __future__ import annotations

import base64
import binascii
import os
import pathlib
import secrets
import stat
import sys
import warnings
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from langchain_agent_auth.core.errors import ConfigurationError, VaultDecryptionError

__all__ = [
    "DATA_DIR_ENV",
    "ENV_VAR",
    "Keyring",
    "default_data_dir",
    "default_keyring",
    "private_dir",
    "private_file",
    "require_key_configuration",
    "server_role",
]

ENV_VAR = "AGENT_AUTH_ENCRYPTION_KEYS"
DATA_DIR_ENV = "AGENT_AUTH_DATA_DIR"
_VERSION = 1
_GENERATE = (f"export {ENV_VAR}=k1:$(python -c 'from langchain_agent_auth import Keyring; "
             "print(Keyring.new_key())')")

# Set by require_key_configuration(): the kind of process that must be given its keys.
_required_by: str | None = None


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyring:
    """Named AES-256-GCM keys; ``active`` seals, all of them open.

    Args:
        keys: ``{key_id: 32 raw bytes or their base64url text}``.
        active: the key id new records are sealed with (default: the first key).
    """

    def __init__(self, keys: Mapping[str, bytes | str], active: str | None = None) -> None:
        if not keys:
            raise ConfigurationError("a Keyring needs at least one key")
        parsed: dict[str, AESGCM] = {}
        for kid, raw in keys.items():
            if not kid or not isinstance(kid, str) or ":" in kid or "," in kid:
                raise ConfigurationError("key ids must be non-empty strings without ':' or ','")
            try:
                material = _b64d(raw) if isinstance(raw, str) else bytes(raw)
            except (binascii.Error, ValueError):
                raise ConfigurationError(f"key {kid!r} is not valid base64url") from None
            if len(material) != 32:
                raise ConfigurationError(f"key {kid!r} must be 32 bytes (AES-256), got {len(material)}")
            parsed[kid] = AESGCM(material)
        self._keys = parsed
        self.active = active or next(iter(keys))
        if self.active not in parsed:
            raise ConfigurationError(f"active key {self.active!r} is not in the keyring")

    def __repr__(self) -> str:
        return f"Keyring(key_ids={list(self._keys)!r}, active={self.active!r})"

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    # -- construction

    @classmethod
    def generate(cls, key_id: str = "k1") -> Keyring:
        """A keyring with one fresh random key (tests, throwaway data)."""
        return cls({key_id: secrets.token_bytes(32)})

    @staticmethod
    def new_key() -> str:
        """A fresh key as base64url text (for configuration files and env vars)."""
        return _b64e(secrets.token_bytes(32))

    @classmethod
    def from_string(cls, spec: str) -> Keyring:
        """Parse ``"kid1:base64key,kid2:base64key"``; the first key is active.

        Example:
            >>> Keyring.from_string(f"new:{Keyring.new_key()},old:{Keyring.new_key()}").active
            'new'
        """
        keys: dict[str, str] = {}
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            kid, sep, value = part.partition(":")
            if not sep:
                raise ConfigurationError("expected 'key_id:base64key' entries separated by commas")
            keys[kid.strip()] = value.strip()
        return cls(keys)

    @classmethod
    def from_env(cls, var: str = ENV_VAR) -> Keyring:
        """Read keys from the environment variable ``var`` (``kid:key,...``)."""
        spec = os.environ.get(var)
        if not spec:
            raise ConfigurationError(
                f"set {var}='k1:<32 random bytes, base64url>' (generate one with "
                "python -c 'from langchain_agent_auth.crypto import Keyring; print(Keyring.new_key())')"
            )
        return cls.from_string(spec)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, create: bool = True) -> Keyring:
        """Keys from a file (``kid:key`` per line), created with one new key (mode 0600)."""
        file = pathlib.Path(path)
        if not file.exists():
            if not create:
                raise ConfigurationError(f"no key file at {file}")
            private_dir(file.parent)
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(f"k1:{cls.new_key()}\n")
        return cls.from_string(",".join(line for line in file.read_text().splitlines() if line.strip()))

    def with_new_active_key(self, key_id: str, key: bytes | str | None = None) -> Keyring:
        """A keyring that seals with a new key and still opens records sealed with the old ones."""
        raw: dict[str, bytes | str] = {key_id: key if key is not None else secrets.token_bytes(32)}
        ring = Keyring(raw)
        ring._keys.update({k: v for k, v in self._keys.items() if k != key_id})
        return ring

    # -- use

    def seal(self, plaintext: bytes, *, aad: bytes) -> dict[str, Any]:
        """Encrypt ``plaintext`` bound to ``aad``; a JSON-serializable record."""
        nonce = secrets.token_bytes(12)
        ct = self._keys[self.active].encrypt(nonce, plaintext, aad)
        return {"v": _VERSION, "kid": self.active, "n": _b64e(nonce), "ct": _b64e(ct)}

    def open(self, box: Mapping[str, Any], *, aad: bytes) -> bytes:
        """Decrypt a record from :meth:`seal`; :class:`VaultDecryptionError` if it cannot be."""
        if not isinstance(box, Mapping) or box.get("v") != _VERSION:
            raise VaultDecryptionError("record cannot be decrypted: not a sealed record")
        kid = box.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise VaultDecryptionError(
                f"record cannot be decrypted: sealed with key {str(kid)[:32]!r}, which this keyring does not hold"
            )
        try:
            return key.decrypt(_b64d(str(box["n"])), _b64d(str(box["ct"])), aad)
        except (InvalidTag, KeyError, binascii.Error, ValueError):
            raise VaultDecryptionError("record cannot be decrypted: wrong key or tampered data") from None

    def needs_rotation(self, box: Mapping[str, Any]) -> bool:
        """Whether ``box`` was sealed with a key other than the active one."""
        return box.get("kid") != self.active


def private_dir(path: str | os.PathLike[str]) -> pathlib.Path:
    """Create ``path`` (and any missing parents) for its owner only (0700). An existing
    directory that group or others can enter is left as it is, with a warning: on a shared
    machine it exposes what it holds.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     oct(private_dir(pathlib.Path(d) / "state").stat().st_mode & 0o777)
        '0o700'
    """
    directory = pathlib.Path(path)
    if directory.is_dir():
        mode = stat.S_IMODE(directory.stat().st_mode)
        if mode & 0o077 and os.name == "posix":
            warnings.warn(
                f"{directory} is accessible to other users (mode {mode:o}); "
                f"secrets kept there are exposed: chmod 700 {directory}",
                stacklevel=2,
            )
        return directory
    missing = [directory, *(p for p in directory.parents if not p.exists())]
    for path in reversed(missing):  # parents we create are ours too: 0700 as well
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return directory


def private_file(path: str | os.PathLike[str]) -> pathlib.Path:
    """Make sure ``path`` exists with mode 0600 (created empty if missing). SQLite gives its
    ``-wal`` and ``-shm`` files the database file's mode, so this covers them too.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     db = private_file(private_dir(pathlib.Path(d) / "state") / "db.sqlite3")
        ...     [oct(p.stat().st_mode & 0o777) for p in (db, db.parent)]
        ['0o600', '0o700']
    """
    file = pathlib.Path(path)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    for candidate in (file, file.with_name(file.name + "-wal"), file.with_name(file.name + "-shm")):
        if candidate.exists() and stat.S_IMODE(candidate.stat().st_mode) & 0o077:
            os.chmod(candidate, 0o600)
    return file


def default_data_dir() -> pathlib.Path:
    """Where the embedded defaults keep their files: ``$AGENT_AUTH_DATA_DIR``, else ``./.agent-auth``.

    Example:
        >>> isinstance(default_data_dir(), pathlib.Path)
        True
    """
    return pathlib.Path(os.environ.get(DATA_DIR_ENV) or ".agent-auth")


def require_key_configuration(role: str | None) -> str | None:
    """Declare this process a server or worker (``role`` names it in errors): from now on
    :func:`default_keyring` needs ``$AGENT_AUTH_ENCRYPTION_KEYS`` and never creates a key file.

    A process that resumes or serves what another process sealed must hold the same keys; a
    fresh key file would only make every record unreadable. ``agent-auth resumer`` calls this
    at start; a LangGraph server is recognised without it.

    Returns the previous role; ``None`` turns it off again.

    Example:
        >>> previous = require_key_configuration("my worker")
        >>> server_role()
        'my worker'
        >>> require_key_configuration(previous)
        'my worker'
    """
    global _required_by
    previous, _required_by = _required_by, role
    return previous


def server_role() -> str | None:
    """The kind of server process this is (``None`` on a laptop script, the demo, a notebook):
    a role given to :func:`require_key_configuration`, or ``"a LangGraph server"`` when
    ``langgraph dev`` / LangGraph Platform runs this process.

    Example:
        >>> server_role() is None or isinstance(server_role(), str)
        True
    """
    if _required_by is not None:
        return _required_by
    if "langgraph_api" in sys.modules:
        return "a LangGraph server"
    return None


def default_keyring(data_dir: str | os.PathLike[str] | None = None) -> Keyring:
    """The keyring of the embedded setup, shared by the vault and the approval pillar:
    ``$AGENT_AUTH_ENCRYPTION_KEYS`` if set, else the key file ``<data dir>/keys`` (created
    with one random key, mode 0600).

    On a server or worker (:func:`server_role`) only the environment variable counts: without
    it this raises :class:`~langchain_agent_auth.errors.ConfigurationError` naming what to set,
    before any disk I/O (a server may call this on its event loop).

    Example:
        >>> import tempfile
        >>> isinstance(default_keyring(tempfile.mkdtemp()), Keyring)  # on a laptop: the key file there
        True
    """
    if os.environ.get(ENV_VAR):
        return Keyring.from_env()
    role = server_role()
    if role is not None:
        raise ConfigurationError(
            f"{ENV_VAR} is not set, and {role} needs the encryption keys of the processes it shares its "
            f"store with (no key file is created here). Generate them once, save them to a file and source "
            f"it in every terminal or service: {_GENERATE}"
        )
    return Keyring.from_file(pathlib.Path(data_dir or default_data_dir()) / "keys")
