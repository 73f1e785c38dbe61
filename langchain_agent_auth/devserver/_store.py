"""SQLite state of the local provider: users, clients, keys, grants, tokens, CIBA requests...

Everything lives in ``<data_dir>/provider.sqlite3`` so a restart loses nothing. Opaque
credentials (refresh tokens, opaque access tokens, authorization codes, ``auth_req_id``,
session ids, client secrets) are stored as SHA-256 hashes, never as values. The few
secrets the operator needs to read back (the admin token, the seeded users' passwords and
the seeded clients' secrets) are in ``<data_dir>/secrets.json`` (mode 0600); tokens the
provider holds for linked upstream accounts are encrypted with AES-GCM under a key kept in
that file.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import ECKey, KeySet, RSAKey

from langchain_agent_auth.core.crypto import ENV_VAR, Keyring, default_keyring, private_dir, private_file
from langchain_agent_auth.core.errors import ConfigurationError, VaultDecryptionError
from langchain_agent_auth.devserver._util import (
    GT_CIBA,
    GT_DEVICE,
    GT_FEDERATED,
    GT_TOKEN_EXCHANGE,
    Clock,
    dumps,
    hash_password,
    loads,
    new_token,
    token_hash,
)

SCHEMA_VERSION = 1
BUSY_TIMEOUT = 2.0  # seconds a statement waits for another writer before answering 503
KEYS_KEPT = 3  # signing keys published per algorithm (the newest signs)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS users (
  sub TEXT PRIMARY KEY, email TEXT UNIQUE, name TEXT, password_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
  client_id TEXT PRIMARY KEY, realm TEXT NOT NULL, metadata TEXT NOT NULL,
  secret_hash TEXT, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
  kid TEXT PRIMARY KEY, alg TEXT NOT NULL, private_jwk TEXT NOT NULL, created_at INTEGER NOT NULL,
  seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
  identifier TEXT PRIMARY KEY, scopes TEXT NOT NULL, alg TEXT NOT NULL, ttl INTEGER NOT NULL,
  description TEXT);
CREATE TABLE IF NOT EXISTS sessions (
  id_hash TEXT PRIMARY KEY, realm TEXT NOT NULL, sub TEXT NOT NULL, csrf TEXT NOT NULL,
  auth_time INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS auth_codes (
  code_hash TEXT PRIMARY KEY, realm TEXT NOT NULL, client_id TEXT NOT NULL, sub TEXT NOT NULL,
  data TEXT NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER, grant_id TEXT);
CREATE TABLE IF NOT EXISTS grants (
  grant_id TEXT PRIMARY KEY, realm TEXT NOT NULL, sub TEXT, client_id TEXT NOT NULL,
  scope TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER);
CREATE INDEX IF NOT EXISTS grants_sub ON grants (realm, sub);
CREATE TABLE IF NOT EXISTS refresh_tokens (
  token_hash TEXT PRIMARY KEY, grant_id TEXT NOT NULL, client_id TEXT NOT NULL, scope TEXT NOT NULL,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER, rotated_at INTEGER);
CREATE INDEX IF NOT EXISTS refresh_grant ON refresh_tokens (grant_id);
CREATE TABLE IF NOT EXISTS access_tokens (
  jti TEXT PRIMARY KEY, token_hash TEXT UNIQUE, realm TEXT NOT NULL, grant_id TEXT,
  client_id TEXT NOT NULL, sub TEXT, scope TEXT NOT NULL, data TEXT NOT NULL,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER);
CREATE INDEX IF NOT EXISTS access_grant ON access_tokens (grant_id);
CREATE TABLE IF NOT EXISTS ciba_requests (
  id TEXT PRIMARY KEY, auth_req_id_hash TEXT UNIQUE NOT NULL, client_id TEXT NOT NULL,
  sub TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, interval INTEGER NOT NULL, last_poll_at REAL, decided_at INTEGER,
  grant_id TEXT);
CREATE INDEX IF NOT EXISTS ciba_sub ON ciba_requests (sub, status);
CREATE TABLE IF NOT EXISTS device_requests (
  id TEXT PRIMARY KEY, device_code_hash TEXT UNIQUE NOT NULL, user_code_hash TEXT UNIQUE NOT NULL,
  client_id TEXT NOT NULL, sub TEXT, status TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, interval INTEGER NOT NULL, last_poll_at REAL, decided_at INTEGER,
  grant_id TEXT);
CREATE TABLE IF NOT EXISTS assertion_jtis (
  key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS connections (
  sub TEXT NOT NULL, connection TEXT NOT NULL, status TEXT NOT NULL, scope TEXT NOT NULL,
  secret_blob TEXT NOT NULL, access_expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL, PRIMARY KEY (sub, connection));
CREATE TABLE IF NOT EXISTS connect_states (
  state_hash TEXT PRIMARY KEY, sub TEXT NOT NULL, connection TEXT NOT NULL, data TEXT NOT NULL,
  expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS calendar_events (
  id TEXT PRIMARY KEY, sub TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bank_accounts (
  sub TEXT PRIMARY KEY, balance_cents INTEGER NOT NULL, currency TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bank_transfers (
  id TEXT PRIMARY KEY, sub TEXT NOT NULL, jti TEXT UNIQUE NOT NULL, data TEXT NOT NULL,
  created_at INTEGER NOT NULL);
"""

# Resource servers the provider issues RFC 9068 JWT access tokens for. The two ``urn:example``
# ones mirror the node-oidc-provider reference setup so protocol tests can run against both.
DEMO_API_AUDIENCE = "urn:agent-auth:demo-api"
_SEED_RESOURCES = [
    ("urn:example:api", "api:read api:write", "RS256", 600, "Example API"),
    ("urn:example:downstream", "downstream:read downstream:write", "ES256", 300, "Example downstream API"),
    (DEMO_API_AUDIENCE, "bank:read bank:transfer", "RS256", 600, "Demo bank API"),
]

SEED_USERS = [
    ("alice", "alice@example.com", "Alice Example"),
    ("bob", "bob@example.com", "Bob Example"),
]
AGENT_CLIENT_ID = "agent-client"
UPSTREAM_CONNECT_CLIENT_ID = "vault-connect"
UPSTREAM_IDP_CLIENT_ID = "agent-auth-idp"
UPSTREAM_CONNECTION = "demo-upstream"
UPSTREAM_SCOPES = ("calendar.read", "calendar.write", "profile")

ALL_MAIN_GRANTS = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    GT_CIBA,
    GT_DEVICE,
    GT_TOKEN_EXCHANGE,
    GT_FEDERATED,
]


@dataclass
class Secrets:
    """What the operator reads back from ``secrets.json``."""

    admin_token: str
    vault_key: bytes
    users: dict[str, str] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=dict)


def _seed_clients() -> list[tuple[str, dict[str, Any]]]:
    """The clients a new data directory starts with: the agent, and the demo upstream's two."""
    loopback = ["http://127.0.0.1/callback", "http://localhost/callback"]
    code_flow = {"grant_types": ["authorization_code", "refresh_token"], "scope": " ".join(UPSTREAM_SCOPES)}
    basic = {"token_endpoint_auth_method": "client_secret_basic"}
    return [
        (AGENT_CLIENT_ID, {"client_name": "Your assistant", "grant_types": ALL_MAIN_GRANTS, "redirect_uris": loopback,
                           "backchannel_token_delivery_mode": "poll", **basic}),
        (UPSTREAM_CONNECT_CLIENT_ID, {"realm": "upstream", "client_name": "Agent token vault",
                                      "redirect_uris": loopback, **code_flow, **basic}),
        (UPSTREAM_IDP_CLIENT_ID, {"realm": "upstream",
                                  "client_name": "agent-auth local provider (Token Vault connections)",
                                  "redirect_uris": ["/connections/callback"], **code_flow, **basic}),
    ]


class Store:
    """Thread-safe access to the provider's SQLite database under ``data_dir``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     store = Store(d)
        ...     sorted(store.user_subjects())
        ['alice', 'bob']
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        keyring: Keyring | None = None,
        busy_timeout: float = BUSY_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = Clock(clock)  # the provider's time (tests advance it instead of sleeping)
        self.data_dir = private_dir(data_dir)
        self.path = private_file(self.data_dir / "provider.sqlite3")
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._key_cache: tuple[int, dict[str, Any], KeySet] | None = None
        self._key_checked = 0.0
        self._resources: dict[str, sqlite3.Row] | None = None
        self.secrets = self._load_or_create_secrets()
        # Private signing keys are sealed with the same keyring as the vault (``<data dir>/keys``
        # or $AGENT_AUTH_ENCRYPTION_KEYS): a copy of the database alone cannot forge tokens.
        self.keyring = keyring or default_keyring(self.data_dir)
        self._seed()
        self._seal_plain_keys()
        self.purge_expired()

    # ------------------------------------------------------------------ plumbing
    @property
    def _db(self) -> sqlite3.Connection:
        # One connection per thread: SQLite (WAL) lets readers run beside a writer, and a
        # busy database stalls only the thread that waits, never every request behind a lock.
        db = getattr(self._local, "db", None)
        if db is None:
            if self._closed:
                raise sqlite3.ProgrammingError("the store is closed")
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=self.busy_timeout)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        """Close the database connections."""
        self._closed = True
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run statements atomically (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error). Nested
        use on the same thread joins the outer transaction."""
        db = self._db
        if db.in_transaction:
            yield db
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        return self._db.execute(sql, params).fetchone()

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._db.execute(sql, params).fetchall()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        return self._db.execute(sql, params).rowcount

    def purge_expired(self, grace: int = 3600) -> dict[str, int]:
        """Delete rows nobody can use any more (expired more than ``grace`` seconds ago), so a
        long-running provider under load does not grow without bound."""
        cutoff = self.clock.now() - grace
        statements = {
            "access_tokens": "DELETE FROM access_tokens WHERE expires_at<?",
            "refresh_tokens": "DELETE FROM refresh_tokens WHERE expires_at<?",
            "auth_codes": "DELETE FROM auth_codes WHERE expires_at<?",
            "sessions": "DELETE FROM sessions WHERE expires_at<?",
            "assertion_jtis": "DELETE FROM assertion_jtis WHERE expires_at<?",
            "connect_states": "DELETE FROM connect_states WHERE expires_at<?",
            "ciba_requests": "DELETE FROM ciba_requests WHERE expires_at<?",
        }
        return {table: self.execute(sql, (cutoff,)) for table, sql in statements.items()}

    # ------------------------------------------------------------------ secrets & seed
    def _load_or_create_secrets(self) -> Secrets:
        path = self.data_dir / "secrets.json"
        if path.exists():
            raw = json.loads(path.read_text())
            return Secrets(
                admin_token=raw["admin_token"],
                vault_key=base64.b64decode(raw["vault_key"]),
                users=dict(raw.get("users", {})),
                clients=dict(raw.get("clients", {})),
            )
        created = Secrets(admin_token=new_token(32), vault_key=AESGCM.generate_key(bit_length=256))
        self._write_secrets(created)
        return created

    def _write_secrets(self, value: Secrets) -> None:
        path = self.data_dir / "secrets.json"
        body = json.dumps(
            {
                "admin_token": value.admin_token,
                "vault_key": base64.b64encode(value.vault_key).decode(),
                "users": value.users,
                "clients": value.clients,
            },
            indent=2,
        )
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
        os.replace(tmp, path)

    def _seed(self) -> None:
        if self.one("SELECT value FROM meta WHERE key='seeded'"):
            return
        with self.transaction():
            for sub, email, name in SEED_USERS:
                password = f"{sub}-{secrets.token_hex(4)}"
                self.add_user(sub, password, email=email, name=name)
                self.secrets.users[sub] = password
            for identifier, scopes, alg, ttl, description in _SEED_RESOURCES:
                self.execute(
                    "INSERT OR IGNORE INTO resources VALUES (?,?,?,?,?)",
                    (identifier, scopes, alg, ttl, description),
                )
            for client_id, metadata in _seed_clients():
                self.secrets.clients[client_id] = self.add_client(client_id, **metadata) or ""
            if not self.all("SELECT kid FROM keys"):
                self.add_signing_keys()
            self.execute("INSERT OR REPLACE INTO meta VALUES ('seeded', '1')")
            self.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._write_secrets(self.secrets)

    # ------------------------------------------------------------------ users
    def add_user(self, sub: str, password: str, *, email: str | None = None, name: str | None = None) -> None:
        """Create a user (``sub`` is the login name and subject). Raises ValueError if taken."""
        if not sub or not password:
            raise ValueError("a user needs a subject and a password")
        try:
            self.execute(
                "INSERT INTO users VALUES (?,?,?,?,?)",
                (sub, email, name or sub, hash_password(password), self.clock.now()),
            )
        except sqlite3.IntegrityError as exc:
            raise ValueError(
                f"a user {sub!r} already exists" + (f" (or the email {email})" if email else "")
            ) from exc
        self.execute("INSERT OR IGNORE INTO bank_accounts VALUES (?,?,?)", (sub, 100_000, "EUR"))

    def get_user(self, sub: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM users WHERE sub=?", (sub,))

    def find_user(self, hint: str) -> sqlite3.Row | None:
        """A user by subject or email address."""
        return self.one("SELECT * FROM users WHERE sub=? OR email=?", (hint, hint))

    def user_subjects(self) -> list[str]:
        return [row["sub"] for row in self.all("SELECT sub FROM users ORDER BY sub")]

    # ------------------------------------------------------------------ clients
    def add_client(
        self,
        client_id: str | None = None,
        *,
        realm: str = "main",
        client_name: str | None = None,
        grant_types: list[str] | None = None,
        redirect_uris: list[str] | None = None,
        token_endpoint_auth_method: str = "client_secret_basic",
        scope: str | None = None,
        jwks: dict[str, Any] | None = None,
        backchannel_token_delivery_mode: str | None = None,
        backchannel_client_notification_endpoint: str | None = None,
        authorization_details_types: list[str] | None = None,
        client_secret: str | None = None,
        require_pkce: bool = True,
        token_exchange_from_clients: list[str] | None = None,
    ) -> str | None:
        """Register a client; returns its secret (None for public and private_key_jwt clients).

        ``require_pkce=False`` lets a client use the code flow without PKCE (OAuth 2.1 requires
        it otherwise); ``token_exchange_from_clients`` names the clients whose users' tokens this
        client may exchange (RFC 8693 may-act policy)."""
        client_id = client_id or f"client-{secrets.token_hex(6)}"
        method = token_endpoint_auth_method
        if method not in ("client_secret_basic", "client_secret_post", "private_key_jwt", "none"):
            raise ValueError(f"unsupported token_endpoint_auth_method {method!r}")
        if method == "private_key_jwt" and not (jwks and jwks.get("keys")):
            raise ValueError("a private_key_jwt client needs a JWKS with its public key")
        if jwks:
            KeySet.import_key_set(jwks)  # validates
            if any("d" in key for key in jwks["keys"]):
                raise ValueError("register the client's PUBLIC keys only")
        mode = backchannel_token_delivery_mode
        if mode not in (None, "poll", "ping"):
            raise ValueError("backchannel_token_delivery_mode must be poll or ping")
        if mode == "ping" and not backchannel_client_notification_endpoint:
            raise ValueError("a ping client needs backchannel_client_notification_endpoint")
        secret = None
        if method in ("client_secret_basic", "client_secret_post"):
            secret = client_secret or new_token(32)
        grant_types = list(grant_types or ["authorization_code", "refresh_token"])
        metadata = {
            "client_id": client_id,
            "client_name": client_name or client_id,
            "grant_types": grant_types,
            "response_types": ["code"] if "authorization_code" in grant_types else [],
            "redirect_uris": list(redirect_uris or []),
            "token_endpoint_auth_method": method,
            "scope": scope,
            "jwks": jwks,
            "backchannel_token_delivery_mode": mode or ("poll" if GT_CIBA in grant_types else None),
            "backchannel_client_notification_endpoint": backchannel_client_notification_endpoint,
            "authorization_details_types": authorization_details_types
            if authorization_details_types is not None
            else ["payment_initiation", "agent_action"],
            "require_pkce": bool(require_pkce),
            "token_exchange_from_clients": list(token_exchange_from_clients or []),
        }
        try:
            self.execute(
                "INSERT INTO clients VALUES (?,?,?,?,?)",
                (client_id, realm, dumps(metadata), token_hash(secret) if secret else None, self.clock.now()),
            )
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"client {client_id!r} already exists") from exc
        return secret

    def get_client(self, client_id: str, realm: str) -> dict[str, Any] | None:
        row = self.one("SELECT * FROM clients WHERE client_id=? AND realm=?", (client_id, realm))
        if row is None:
            return None
        metadata = loads(row["metadata"])
        metadata["_secret_hash"] = row["secret_hash"]
        return metadata

    # ------------------------------------------------------------------ resources
    def resources(self) -> dict[str, sqlite3.Row]:
        """Resource servers by identifier (seeded once; cached)."""
        if self._resources is None:
            self._resources = {row["identifier"]: row for row in self.all("SELECT * FROM resources")}
        return self._resources

    def add_resource(self, identifier: str, scopes: str, *, alg: str = "RS256", ttl: int = 600,
                     description: str | None = None) -> None:
        """Register (or update) a resource server, e.g. an MCP server's URL (RFC 8707)."""
        if alg not in ("RS256", "ES256"):
            raise ValueError("alg must be RS256 or ES256")
        if not isinstance(ttl, int) or not 30 <= ttl <= 86400:
            raise ValueError("ttl must be 30 to 86400 seconds")
        if not scopes.split() or any(not s.isprintable() or len(s) > 100 for s in scopes.split()):
            raise ValueError("scopes must be a non-empty space-separated list")
        with self.transaction():
            self.execute("INSERT OR REPLACE INTO resources VALUES (?,?,?,?,?)",
                         (identifier, " ".join(scopes.split()), alg, ttl, description))
        self._resources = None

    # ------------------------------------------------------------------ keys
    def add_signing_keys(self) -> list[str]:
        """Generate a new RS256 and a new ES256 key. Older keys stay published (the newest
        :data:`KEYS_KEPT` per algorithm), so tokens they signed keep verifying."""
        created = []
        seq = (self.one("SELECT COALESCE(MAX(seq), 0) AS s FROM keys")["s"] or 0) + 1
        for alg in ("RS256", "ES256"):
            key = RSAKey.generate_key(2048) if alg == "RS256" else ECKey.generate_key("P-256")
            kid = f"{alg.lower()}-{self.clock.now()}-{secrets.token_hex(3)}"
            private = key.as_dict(private=True)
            private.update({"kid": kid, "alg": alg, "use": "sig"})
            sealed = self._seal_key(kid, private)
            self.execute("INSERT INTO keys VALUES (?,?,?,?,?)", (kid, alg, sealed, self.clock.now(), seq))
            self.execute(
                "DELETE FROM keys WHERE alg=? AND kid NOT IN "
                "(SELECT kid FROM keys WHERE alg=? ORDER BY seq DESC LIMIT ?)",
                (alg, alg, KEYS_KEPT),
            )
            created.append(kid)
        self._key_cache = None
        return created

    def _keys(self) -> tuple[dict[str, Any], KeySet]:
        # Another process (``agent-auth dev rotate-keys``) may add keys: look again at most once a second.
        if self._key_cache is not None and time.monotonic() - self._key_checked < 1.0:
            return self._key_cache[1], self._key_cache[2]
        self._key_checked = time.monotonic()
        marker = self.one("SELECT COUNT(*) AS n, COALESCE(MAX(seq), 0) AS s FROM keys")
        stamp = marker["n"] * 100_000 + marker["s"]
        if self._key_cache is None or self._key_cache[0] != stamp:
            rows = self.all("SELECT * FROM keys ORDER BY seq DESC, kid")
            private = [self._open_key(row["kid"], row["private_jwk"]) for row in rows]
            current: dict[str, Any] = {}
            for row, jwk in zip(rows, private, strict=True):
                current.setdefault(row["alg"], KeySet.import_key_set({"keys": [jwk]}))
            self._key_cache = (stamp, current, KeySet.import_key_set({"keys": private}))
        return self._key_cache[1], self._key_cache[2]

    def _seal_key(self, kid: str, jwk: dict[str, Any]) -> str:
        box = self.keyring.seal(json.dumps(jwk).encode(), aad=f"devserver|signing-key|{kid}".encode())
        return json.dumps({"sealed": box})

    def _open_key(self, kid: str, text: str) -> dict[str, Any]:
        value = json.loads(text)
        if "sealed" not in value:  # written by a version that kept keys in plaintext
            return value
        try:
            plain = self.keyring.open(value["sealed"], aad=f"devserver|signing-key|{kid}".encode())
        except VaultDecryptionError as exc:
            raise ConfigurationError(
                f"cannot open the signing keys in {self.path}: {exc} (the data dir's keyring "
                f"{self.data_dir / 'keys'} or ${ENV_VAR} must be the one that sealed them)"
            ) from None
        return json.loads(plain)

    def _seal_plain_keys(self) -> None:
        rows = self.all("SELECT kid, private_jwk FROM keys WHERE private_jwk NOT LIKE '{\"sealed\"%'")
        for row in rows:
            sealed = self._seal_key(row["kid"], json.loads(row["private_jwk"]))
            self.execute("UPDATE keys SET private_jwk=? WHERE kid=?", (sealed, row["kid"]))

    def signing_keyset(self, alg: str) -> KeySet:
        """A KeySet holding only the newest key for ``alg`` (joserfc then sets the ``kid``)."""
        current, _ = self._keys()
        return current[alg]

    def verification_keyset(self) -> KeySet:
        """Every key, private parts included (for verifying our own tokens)."""
        return self._keys()[1]

    def public_jwks(self) -> dict[str, Any]:
        """The JWKS document: every key's public part, newest first."""
        keyset = self._keys()[1]
        return {"keys": [key.as_dict(private=False) for key in keyset.keys]}

    # ------------------------------------------------------------------ vault crypto
    def seal(self, value: dict[str, Any]) -> str:
        """Encrypt a small JSON object with the data dir's AES-GCM key."""
        nonce = secrets.token_bytes(12)
        blob = AESGCM(self.secrets.vault_key).encrypt(nonce, json.dumps(value).encode(), b"connection")
        return base64.b64encode(nonce + blob).decode()

    def unseal(self, text: str) -> dict[str, Any]:
        raw = base64.b64decode(text)
        return json.loads(AESGCM(self.secrets.vault_key).decrypt(raw[:12], raw[12:], b"connection"))
