"""Helpers for the demo tests: run ``agent-auth demo`` as a user would, read what it left
in its data directory, and play the user on the approval page."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import httpx

from tests.support.prefork import Zygote

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def command() -> list[str]:
    """The ``agent-auth`` console script of this environment (``python -m`` if absent)."""
    script = pathlib.Path(sys.executable).with_name("agent-auth")
    return [str(script)] if script.exists() else [sys.executable, "-m", "langchain_agent_auth.cli"]


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "AGENT_AUTH_ENCRYPTION_KEYS")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_demo(*args: str, timeout: float = 120, zygote: Zygote | None = None,
             **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``agent-auth demo ARGS`` in a subprocess, stdin closed (as in CI); with a ``zygote``
    (``tests/support/prefork.py``), ``python -m langchain_agent_auth.cli demo ARGS`` forked
    from it: for the tests where neither the console script nor start-up is under test."""
    if zygote is not None:
        return zygote.run(["-m", "langchain_agent_auth.cli", "demo", *args], timeout=timeout, env=demo_env(),
                          **kwargs)
    return subprocess.run([*command(), "demo", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=demo_env(), **kwargs)


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def secrets_of(data_dir: pathlib.Path) -> list[str]:
    """Every secret the provider keeps in ``secrets.json`` (admin token, client secrets, passwords)."""
    raw = json.loads((data_dir / "provider" / "secrets.json").read_text())
    return [raw["admin_token"], raw["vault_key"], *raw.get("clients", {}).values(), *raw.get("users", {}).values()]


def vaulted_tokens(data_dir: pathlib.Path, user: str = "alice") -> list[str]:
    """The upstream tokens the demo stored in its vault for ``user`` (decrypted)."""
    from langchain_agent_auth.core.crypto import Keyring
    from langchain_agent_auth.vault import open_default_store
    from langchain_agent_auth.vault._records import TokenRecord, user_ns

    port = json.loads((data_dir / "demo.json").read_text())["port"]
    key = f"http://127.0.0.1:{port}|-|{user}"
    store = open_default_store(data_dir / "agent_auth.sqlite")
    try:
        item = store.get(user_ns(key), "calendar")
        if item is None:
            return []
        record = TokenRecord.from_value(Keyring.from_file(data_dir / "keys"), item.value, user=key,
                                        connection="calendar")
        return [t for t in (record.access_token, record.refresh_token) if t]
    finally:
        store.conn.close()


@contextmanager
def provider(data_dir: pathlib.Path) -> Iterator[Any]:
    """The demo's local provider, started again on its data directory (any free port)."""
    from langchain_agent_auth.devserver import LocalProvider

    with LocalProvider(data_dir / "provider") as idp:
        yield idp


def bank_transfers(idp: Any, user: str = "alice") -> list[dict[str, Any]]:
    """``GET /api/bank/transfers`` for ``user``, with a token from the provider."""
    token = idp.login(user, scope="openid bank:read", resource=idp.api_audience)["access_token"]
    r = httpx.get(f"{idp.api_url}/bank/transfers", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    r.raise_for_status()
    return list(r.json()["transfers"])


def assert_no_secrets(output: str, data_dir: pathlib.Path, *, passwords_allowed: bool = False) -> None:
    """No token, secret or auth_req_id in what the demo printed."""
    assert not JWT.search(output), JWT.search(output)
    assert "auth_req_id" not in output
    raw = json.loads((data_dir / "provider" / "secrets.json").read_text())
    users = set(raw.get("users", {}).values())
    for secret in secrets_of(data_dir):
        if passwords_allowed and secret in users:
            continue
        assert secret not in output
    for token in vaulted_tokens(data_dir):
        assert token not in output


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "fields": {}})
        elif self.forms and tag == "input" and a.get("name") and a.get("type") != "submit":
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")


def approve_on_page(base_url: str, user: str, password: str, binding_message: str, *,
                    timeout: float = 30.0) -> None:
    """The user on their "device": sign in to the approval page and press Approve on the
    request showing ``binding_message``."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, follow_redirects=True, timeout=10) as browser:
        page = browser.get("/approvals")
        parser = _Forms()
        parser.feed(page.text)
        login = next((f for f in parser.forms if "password" in f["fields"]), None)
        if login is not None:
            page = browser.post(urljoin(str(page.url), login["action"]),
                                data={**login["fields"], "username": user, "password": password})
        while binding_message not in page.text:
            if time.monotonic() > deadline:
                raise AssertionError(f"{binding_message!r} never showed on the approval page")
            time.sleep(0.2)
            page = browser.get("/approvals")
        section = page.text[page.text.index(binding_message):]
        match = re.search(r'action="(/approvals/[^"]+/approve)"', section)
        assert match, "no Approve button next to the binding message"
        parser = _Forms()
        parser.feed(page.text)
        form = next(f for f in parser.forms if f["action"] == match.group(1))
        done = browser.post(match.group(1), data=form["fields"])
        assert done.status_code == 200 and "approved" in str(done.url)
