"""``LocalProvider``: run the local OpenID provider in a background thread, and talk to it
over real HTTP (the admin API and the sign-in pages) the way tests, notebooks and the demo do."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from langchain_agent_auth.core._serving import bind_socket
from langchain_agent_auth.core.errors import (
    ConfigurationError,
    InvalidRequestError,
    OAuthError,
    ProtocolError,
    oauth_error_from_response,
)
from langchain_agent_auth.core.logs import install_log_redaction
from langchain_agent_auth.devserver import _browser

log = logging.getLogger("langchain_agent_auth.devserver")

DEFAULT_LOGIN_SCOPE = "openid profile email offline_access"


class AdminClient:
    """A small synchronous client of the provider's admin API (loopback + admin token).

    Errors come back as :class:`~langchain_agent_auth.errors.OAuthError` (``.error`` is the
    admin API's code, e.g. ``not_found`` or ``already_decided``).

    Example:
        >>> with LocalProvider() as idp:
        ...     admin = AdminClient(idp.issuer, idp.admin_token)
        ...     ok = admin.request("GET", "/health")["ok"]
        ...     admin.close()
        >>> ok
        True
    """

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        import httpx  # imported where used so that ``agent-auth dev`` starts without the HTTP client

        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url + "/admin", timeout=timeout, headers={"Authorization": f"Bearer {token}"}
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ProtocolError(
                f"cannot reach the local provider at {self.url}: {type(exc).__name__}"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            raise ProtocolError(
                f"the admin API answered non-JSON (HTTP {response.status_code})",
                status_code=response.status_code,
            ) from None
        if response.status_code >= 400:
            raise oauth_error_from_response(
                body if isinstance(body, dict) else {}, status_code=response.status_code
            )
        return body


class LocalProvider:
    """The local OpenID provider, in-process: ``with LocalProvider() as idp: ...``.

    Starts uvicorn in a background thread on a free loopback port (``port=0``), with its state
    in SQLite under ``data_dir`` (``None``: a temporary directory removed on stop). Everything
    the helpers do goes over real HTTP.

    Attributes (available once started): ``issuer``, ``client_id`` / ``client_secret`` (the
    seeded agent client: client_secret_basic, every grant incl. CIBA poll, token exchange,
    refresh), ``users`` (``{subject: password}``), ``approval_url``, ``upstream_issuer``,
    ``upstream_client_id`` / ``upstream_client_secret`` (the vault's connect-flow client at the
    demo upstream), ``api_url``, ``admin_token`` and ``info`` (the READY document).

    ``clock`` is the provider's time source (default ``time.time``); :meth:`advance` moves it
    forward, so tests and notebooks need not sleep through poll intervals or expiries.

    ``record_upstream_tokens=True`` keeps, in memory, every code and token the demo upstream
    issues, for tests that scan logs, stores and messages for leaked credentials
    (:meth:`upstream_tokens_issued`); off by default.

    Example:
        >>> import httpx
        >>> with LocalProvider(ciba_interval=1) as idp:
        ...     creds = (idp.client_id, idp.client_secret)
        ...     r = httpx.post(idp.issuer + "/bc-authorize", auth=creds,
        ...                    data={"login_hint": "alice", "scope": "openid", "binding_message": "Hi"})
        ...     [p["binding_message"] for p in idp.pending_approvals(user="alice")]
        ...     _ = idp.approve(idp.pending_approvals(user="alice")[0]["id"])
        ...     token = httpx.post(idp.issuer + "/token", auth=creds, data={
        ...         "grant_type": "urn:openid:params:grant-type:ciba",
        ...         "auth_req_id": r.json()["auth_req_id"]}).json()
        ...     sorted(token)
        ['Hi']
        ['access_token', 'expires_in', 'id_token', 'scope', 'token_type']
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ciba_interval: int = 5,
        public_url: str | None = None,
        startup_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        record_upstream_tokens: bool = False,
    ) -> None:
        if not isinstance(ciba_interval, int) or ciba_interval < 0:
            raise ConfigurationError("ciba_interval must be a whole number of seconds >= 0")
        self.host, self.port, self.ciba_interval = host, port, ciba_interval
        self._data_dir_arg, self._public_url, self._clock = data_dir, public_url, clock
        self._startup_timeout = startup_timeout
        self._record_upstream_tokens = record_upstream_tokens
        # set while running: the server thread, uvicorn, its error, the temporary data dir
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._error: BaseException | None = None
        self._tmpdir: str | None = None
        self._store: Any = None
        self._admin: AdminClient | None = None
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalProvider:
        """Start serving; returns once the server accepts connections."""
        if self._thread is not None:
            return self
        import uvicorn

        from langchain_agent_auth.devserver._app import build_app
        from langchain_agent_auth.devserver._core import Provider
        from langchain_agent_auth.devserver._store import Store

        # authlib logs issued tokens at DEBUG: its loggers exist now (build_app imported them).
        install_log_redaction()
        if self._data_dir_arg is None:
            self._tmpdir = tempfile.mkdtemp(prefix="agent-auth-dev-")
            data_dir: str | os.PathLike[str] = self._tmpdir
        else:
            data_dir = self._data_dir_arg
        try:
            sock = bind_socket(self.host, self.port)
        except OSError as exc:
            self._cleanup_files()
            raise ConfigurationError(f"cannot bind {self.host}:{self.port}: {exc}") from exc
        try:
            self.port = sock.getsockname()[1]
            base_url = self._public_url or base_url_for(self.host, self.port)
            self._store = Store(data_dir, clock=self._clock)
            provider = Provider(self._store, base_url, ciba_interval=self.ciba_interval,
                                record_upstream_tokens=self._record_upstream_tokens)
            config = uvicorn.Config(
                build_app(provider),
                log_config=None,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=3,
            )
            self._server = uvicorn.Server(config)
        except BaseException:
            sock.close()
            self._cleanup_files()
            raise
        self.info = provider.info()
        self._thread = threading.Thread(target=self._run, args=(sock,), name="agent-auth-dev", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                self.stop()
                raise ConfigurationError(f"the local provider failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigurationError("the local provider did not start in time")
            time.sleep(0.005)
        self._admin = AdminClient(self.issuer, self.admin_token)
        log.info("local provider ready at %s", self.issuer)
        return self

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[sock]))
        except BaseException as exc:  # surfaced by start()
            self._error = exc
        finally:
            sock.close()

    def stop(self) -> None:
        """Stop serving and release everything (the temporary data dir too)."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        if self._store is not None:
            self._store.close()
            self._store = None
        self._server = None
        self._cleanup_files()

    def _cleanup_files(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> LocalProvider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalProvider:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ attributes
    def _info(self, name: str) -> Any:
        if not self.info:
            raise ConfigurationError("start the provider first (with LocalProvider() as idp: ...)")
        return self.info[name]

    @property
    def issuer(self) -> str:
        return self._info("issuer")

    @property
    def url(self) -> str:
        return self._info("issuer")

    @property
    def client_id(self) -> str:
        return self._info("client_id")

    @property
    def client_secret(self) -> str:
        return self._info("client_secret")

    @property
    def users(self) -> dict[str, str]:
        return dict(self._info("users"))

    @property
    def approval_url(self) -> str:
        return self._info("approval_url")

    @property
    def upstream_issuer(self) -> str:
        return self._info("upstream_issuer")

    @property
    def upstream_client_id(self) -> str:
        return self._info("upstream_client_id")

    @property
    def upstream_client_secret(self) -> str:
        return self._info("upstream_client_secret")

    @property
    def upstream_connection(self) -> str:
        return self._info("upstream_connection")

    @property
    def api_url(self) -> str:
        return self._info("api_url")

    @property
    def api_audience(self) -> str:
        return self._info("api_audience")

    @property
    def admin_token(self) -> str:
        return self._info("admin_token")

    @property
    def data_dir(self) -> str:
        return self._info("data_dir")

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            raise ConfigurationError("start the provider first")
        return self._admin

    # ------------------------------------------------------------------ the user's device
    def pending_approvals(self, user: str | None = None) -> list[dict[str, Any]]:
        """Pending CIBA requests (opaque ``id``, user, client, binding message, details...)."""
        params = {"user": user} if user else {}
        return self.admin.request("GET", "/approvals", params=params)["requests"]

    def approvals(self, user: str | None = None, status: str = "all") -> list[dict[str, Any]]:
        """CIBA requests in any state (``status``: pending, approved, denied, consumed, expired, all)."""
        params = {"status": status, **({"user": user} if user else {})}
        return self.admin.request("GET", "/approvals", params=params)["requests"]

    def approve(
        self, request_id: str, *, authorization_details: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Approve as the user would on their phone (optionally narrowing the details)."""
        body = {} if authorization_details is None else {"authorization_details": authorization_details}
        return self.admin.request("POST", f"/approvals/{request_id}/approve", json=body)

    def deny(self, request_id: str, reason: str | None = None) -> dict[str, Any]:
        """Deny; ``reason`` becomes the ``error_description`` the polling client sees."""
        return self.admin.request(
            "POST", f"/approvals/{request_id}/deny", json={"reason": reason} if reason else {}
        )

    def wait_for_pending(
        self, user: str | None = None, *, timeout: float = 10.0, count: int = 1
    ) -> list[dict[str, Any]]:
        """Wait until ``user`` has at least ``count`` pending requests; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            pending = self.pending_approvals(user)
            if len(pending) >= count or time.monotonic() > deadline:
                return pending
            time.sleep(0.05)

    # ------------------------------------------------------------------ time
    def advance(self, seconds: float) -> float:
        """Move the provider's clock forward by ``seconds`` (poll intervals, expiries, token
        lifetimes) instead of sleeping; returns the provider's new time.

        Example:
            >>> with LocalProvider() as idp:
            ...     before = idp.now()
            ...     idp.advance(3600) - before >= 3600
            True
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 10**7:
            raise InvalidRequestError("seconds must be a number in [0, 10000000]")  # as the admin API says
        return self.admin.request("POST", "/clock", json={"seconds": seconds})["time"]

    def now(self) -> float:
        """The provider's current time (seconds since the epoch, advances included)."""
        return self.admin.request("GET", "/clock")["time"]

    # ------------------------------------------------------------------ counters & admin
    def stats(self) -> dict[str, dict[str, int]]:
        """Request counters: ``requests`` per route, ``grants`` per grant type, ``ciba`` events..."""
        return self.admin.request("GET", "/stats")

    def reset_stats(self) -> None:
        self.admin.request("POST", "/stats/reset")

    def add_user(
        self, username: str, password: str, *, email: str | None = None, name: str | None = None
    ) -> None:
        self.admin.request(
            "POST", "/users", json={"username": username, "password": password, "email": email, "name": name}
        )

    def add_client(self, **metadata: Any) -> dict[str, Any]:
        """Register a client at runtime (RFC 7591 field names); the answer holds its secret."""
        return self.admin.request("POST", "/clients", json=metadata)

    def add_resource(self, identifier: str, scopes: str | list[str], *, ttl: int | None = None,
                     description: str | None = None) -> dict[str, Any]:
        """Register a resource server (an API, an MCP server's URL) whose tokens the provider
        issues with ``aud`` = ``identifier`` when a client asks for it (RFC 8707 ``resource``)."""
        return self.admin.request("POST", "/resources", json={
            "identifier": identifier, "scopes": scopes if isinstance(scopes, str) else " ".join(scopes),
            "ttl": ttl, "description": description})

    def rotate_keys(self) -> list[str]:
        """Add new signing keys (the old ones stay in the JWKS). Returns the new key ids."""
        return self.admin.request("POST", "/keys/rotate")["added"]

    # ------------------------------------------------------------------ upstream & Token Vault
    def link_connection(
        self, user: str, connection: str | None = None, *, scope: str | None = None
    ) -> dict[str, Any]:
        """Link the user's upstream account without a browser (the provider then holds it)."""
        return self.admin.request(
            "POST",
            "/connections",
            json={"user": user, "connection": connection or self.upstream_connection, "scope": scope},
        )

    def unlink_connection(self, user: str, connection: str | None = None) -> bool:
        try:
            self.admin.request("DELETE", f"/connections/{user}/{connection or self.upstream_connection}")
        except OAuthError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    def connections(self, user: str | None = None) -> list[dict[str, Any]]:
        return self.admin.request("GET", "/connections", params={"user": user} if user else {})["connections"]

    def revoke_upstream_tokens(self, user: str) -> int:
        """Revoke every upstream grant of ``user`` (the upstream 'forgets' the consent)."""
        return self.admin.request("POST", f"/upstream/users/{user}/revoke")["affected"]

    def expire_upstream_tokens(self, user: str) -> int:
        """Expire the user's upstream access tokens now (their refresh tokens keep working)."""
        return self.admin.request("POST", f"/upstream/users/{user}/expire")["affected"]

    def upstream_outage(self, *, token: int = 0, api: int = 0) -> None:
        """Make the next ``token`` upstream token requests (Token Vault exchanges included) and ``api``
        demo API calls fail with 503: queued ``503`` faults (:meth:`inject_fault`), up to 100 each."""
        self.admin.request("POST", "/upstream/outage", json={"token": token, "api": api})

    def inject_fault(self, endpoint: str, *faults: str, delay: float | None = None) -> dict[str, Any]:
        """Make the demo upstream misbehave: each of ``faults`` answers one request to
        ``endpoint`` (``"token"``, ``"revoke"`` or ``"api"``, the calendar API), in order;
        ``delay`` makes every request there wait that many seconds first (``0`` ends it). Faults:
        ``500``, ``503``, ``html``, ``slow``, ``invalid_grant``, ``invalid_scope``,
        ``unauthorized`` (docs/devserver.md). Returns what is armed, per endpoint.

        Example:
            >>> import httpx
            >>> with LocalProvider() as idp:
            ...     armed = idp.inject_fault("token", "503", "invalid_grant")
            ...     form = {"grant_type": "refresh_token", "refresh_token": "x"}
            ...     auth = (idp.upstream_client_id, idp.upstream_client_secret)
            ...     answers = [httpx.post(idp.upstream_issuer + "/token", data=form, auth=auth)
            ...                for _ in range(3)]
            >>> armed["token"]["queued"]
            ['503', 'invalid_grant']
            >>> [(r.status_code, r.json()["error"]) for r in answers]
            [(503, 'temporarily_unavailable'), (400, 'invalid_grant'), (400, 'invalid_grant')]
        """
        body: dict[str, Any] = {"endpoint": endpoint, "faults": list(faults)}
        if delay is not None:
            body["delay"] = delay
        return self.admin.request("POST", "/upstream/faults", json=body)

    def clear_faults(self) -> None:
        """Drop every fault and delay :meth:`inject_fault` armed."""
        self.admin.request("DELETE", "/upstream/faults")

    def upstream_tokens_issued(self) -> list[str]:
        """Every code, access and refresh token the demo upstream issued, oldest first (for
        secret scans); needs ``LocalProvider(record_upstream_tokens=True)``."""
        return self.admin.request("GET", "/upstream/issued")["tokens"]

    def forget_upstream_tokens_issued(self) -> None:
        """Empty the record :meth:`upstream_tokens_issued` reads (e.g. between tests)."""
        self.admin.request("DELETE", "/upstream/issued")

    # ------------------------------------------------------------------ sign in like a browser
    def _password(self, username: str, password: str | None) -> str:
        if password is not None:
            return password
        seeded = self.users.get(username)
        if seeded is None:
            raise ConfigurationError(f"no seeded password for {username!r}; pass password=")
        return seeded

    def approve_device(self, verification_uri: str, user_code: str, username: str, password: str | None = None,
                       *, deny: bool = False) -> None:
        """Play the user's browser on the device verification page (RFC 8628): sign in as
        ``username``, type ``user_code``, check the request and approve (or ``deny``)."""
        _browser.approve_device(verification_uri, user_code, username, self._password(username, password), deny=deny)

    def sign_in(self, authorize_url: str, username: str, password: str | None = None, *,
                redirect_uri: str) -> str:
        """Play ``username``'s browser on an authorization URL: sign in, allow, and return the
        URL the provider redirects to (``redirect_uri?code=...&state=...&iss=...``). For flows
        that build their own authorization request (the vault's connect flow, MCP clients);
        :meth:`login` is the whole code flow.

        Raises :class:`OAuthError` for a wrong password and :class:`ProtocolError` when the
        pages do not lead back to ``redirect_uri``.
        """
        return _browser.sign_in(authorize_url, username, self._password(username, password), redirect_uri=redirect_uri)

    def login(
        self,
        username: str,
        password: str | None = None,
        *,
        scope: str = DEFAULT_LOGIN_SCOPE,
        resource: str | list[str] | None = None,
        audience: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        redirect_uri: str = "http://127.0.0.1/callback",
        authorization_details: list[dict[str, Any]] | None = None,
        nonce: str | None = None,
        upstream: bool = False,
    ) -> dict[str, Any]:
        """Sign ``username`` in through the login and consent pages (authorization code + PKCE
        over HTTP) and return the token response. ``upstream=True`` does the same at the demo
        upstream with its connect-flow client (scope e.g. ``calendar.read``)."""
        if client_id is None:
            client_id = self.upstream_client_id if upstream else self.client_id
            client_secret = self.upstream_client_secret if upstream else self.client_secret
        request = _browser.CodeRequest(
            issuer=self.upstream_issuer if upstream else self.issuer,
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=redirect_uri,
            scope=scope,
            resource=[resource] if isinstance(resource, str) else list(resource or []),
            audience=audience,
            authorization_details=authorization_details,
            nonce=nonce,
        )
        return _browser.code_flow(request, username, self._password(username, password))


def base_url_for(host: str, port: int) -> str:
    """The URL clients use: a wildcard bind address is reached through loopback."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - mapping a wildcard bind address, not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
