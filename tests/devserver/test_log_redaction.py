"""No token in any log record of a process running the toolkit, whoever's logger emits it.

A capturing handler on the *root* logger at DEBUG (what a developer turning on debug logs
gets: authlib, httpx, httpcore, uvicorn and ours) sees every record while the in-process
LocalProvider serves code + PKCE, refresh, CIBA, token exchange and client credentials to
the toolkit's own OAuth client. No issued token, secret or auth_req_id may appear in any
record, formatted (``getMessage()``) or raw (``args``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from langchain_agent_auth.core.logs import RedactingFilter, install_log_redaction, redact_log_text
from langchain_agent_auth.devserver import LocalProvider
from langchain_agent_auth.oauth import OAuthClient


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        return [f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in self.records]


@pytest.fixture
def root_debug() -> Iterator[Capture]:
    root = logging.getLogger()
    capture, old = Capture(), root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(capture)
    root.setLevel(old)


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalProvider]:
    with LocalProvider(ciba_interval=0) as idp:
        yield idp


def test_every_grant_at_debug_logs_no_token(provider: LocalProvider, root_debug: Capture):
    idp = provider
    client = OAuthClient(idp.issuer, idp.client_id, idp.client_secret)
    secrets_: list[str] = [idp.client_secret, idp.admin_token, *idp.users.values()]
    try:
        login = idp.login("alice", scope="openid offline_access")  # authorization code + PKCE
        secrets_ += [login["access_token"], login["refresh_token"], login["id_token"]]
        refreshed = client.refresh(login["refresh_token"])
        secrets_ += [refreshed.access_token, refreshed.refresh_token or "", refreshed.id_token or ""]
        request = client.ciba_authorize(login_hint="alice", scope="openid offline_access",
                                        binding_message="log test")
        secrets_.append(request.auth_req_id)
        idp.approve(idp.pending_approvals("alice")[-1]["id"])
        ciba = client.ciba_poll(request.auth_req_id)  # approved already: one poll, no waiting
        secrets_ += [ciba.access_token, ciba.refresh_token or "", ciba.id_token or ""]
        exchanged = client.token_exchange(refreshed.access_token)
        secrets_.append(exchanged.access_token)
        machine = client.client_credentials()
        secrets_.append(machine.access_token)
        client.introspect(login["access_token"])
        client.revoke(login["refresh_token"], token_type_hint="refresh_token")
    finally:
        client.close()
    secrets_ = [s for s in secrets_ if s]
    names = {r.name for r in root_debug.records}
    # we are looking at the right records: the libraries' DEBUG output is there
    assert any(n.startswith("authlib") for n in names) and any(n.startswith("httpcore") for n in names)
    assert any("Issue token" in r.getMessage() for r in root_debug.records)
    for text in root_debug.texts():
        for secret in secrets_:
            assert secret not in text, text[:300]


def test_filter_on_a_handler_covers_children_and_json_fields():
    capture = Capture()
    logger = logging.getLogger("some_app.child")
    install_log_redaction(prefixes=(), handlers=[capture])
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("body %s", '{"access_token": "at-value-1", "code_verifier": "ver-1", "scope": "openid"}')
        logger.debug("form refresh_token=rt-value-2&client_secret=cs-3&grant_type=refresh_token")
        logger.debug("header Authorization: Bearer abcdef.ghijk")
        try:
            raise ValueError("subject_token=st-value-4")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(capture)
    # a handler filter runs in Handler.handle, so it sees what the handler emits
    text = "\n".join(capture.texts())
    for secret in ("at-value-1", "ver-1", "rt-value-2", "cs-3", "abcdef.ghijk", "st-value-4"):
        assert secret not in text
    assert "openid" in text and "grant_type=refresh_token" in text  # the rest stays readable


def test_install_is_idempotent_and_reaches_existing_children():
    child = logging.getLogger("authlib.oauth2.rfc6749.grants.refresh_token")
    install_log_redaction()
    install_log_redaction()
    assert sum(isinstance(f, RedactingFilter) for f in child.filters) == 1
    assert redact_log_text("nothing secret here: scope=openid") == "nothing secret here: scope=openid"


def test_a_servers_access_log_is_covered_before_the_server_starts():
    """uvicorn creates ``uvicorn.access`` when it serves; the filter is on it already, so the
    ``?code=...&state=...`` of an OAuth callback never reaches a handler."""
    install_log_redaction()
    capture = Capture()
    access = logging.getLogger("uvicorn.access")
    old = access.level
    access.addHandler(capture)
    access.setLevel(logging.INFO)
    try:
        path = "/callback?code=c0de-value&state=st4te-v"
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200)
    finally:
        access.removeHandler(capture)
        access.setLevel(old)
    [text] = capture.texts()
    assert "c0de-value" not in text and "st4te-v" not in text and "/callback?code=" in text
