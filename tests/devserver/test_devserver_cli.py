"""The command line as users run it: ``agent-auth dev`` prints READY then serves;
``agent-auth approvals list/approve/deny`` play the phone; ``add-user``, ``add-client`` and
``rotate-keys`` work on a data directory; the logs never carry a credential."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

import httpx
import pytest

from tests.devserver.devserver_helpers import TOKEN_SHAPED

CLI = [sys.executable, "-m", "langchain_agent_auth.cli"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real entry point in a subprocess (slow: imports the whole package)."""
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """``agent-auth ...`` in-process through ``cli.main`` (what the console script calls)."""
    from langchain_agent_auth.cli import main

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def dev_server(tmp_path_factory: pytest.TempPathFactory):
    """A fresh ``agent-auth dev`` per test (one test stops its server with SIGINT: sharing one
    would make the tests depend on their order)."""
    data_dir = tmp_path_factory.mktemp("dev-data")
    proc = subprocess.Popen(
        [*CLI, "dev", "--port", "0", "--data-dir", str(data_dir), "--ciba-interval", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline()
    assert first.startswith("READY "), first + proc.stderr.read()
    info = json.loads(first[len("READY ") :])
    yield proc, info, data_dir
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


def test_ready_line_and_serving(dev_server) -> None:
    _, info, data_dir = dev_server
    for key in (
        "issuer",
        "client_id",
        "client_secret",
        "users",
        "approval_url",
        "admin_token",
        "upstream_issuer",
        "upstream_client_id",
        "upstream_client_secret",
        "api_url",
    ):
        assert info[key], key
    assert set(info["users"]) == {"alice", "bob"} and all(info["users"].values())
    assert info["approval_url"] == info["issuer"] + "/approvals"
    meta = httpx.get(info["issuer"] + "/.well-known/openid-configuration").json()
    assert meta["issuer"] == info["issuer"]
    assert json.loads((data_dir / "server.json").read_text())["url"] == info["issuer"]
    mode = (data_dir / "secrets.json").stat().st_mode & 0o777
    assert mode == 0o600


def test_approvals_cli(dev_server, cli) -> None:
    proc, info, data_dir = dev_server
    auth = (info["client_id"], info["client_secret"])
    details = [
        {
            "type": "payment_initiation",
            "instructedAmount": {"amount": "12.50", "currency": "EUR"},
            "creditorName": "Cafe",
        }
    ]
    first = httpx.post(
        info["issuer"] + "/bc-authorize",
        auth=auth,
        data={
            "login_hint": "alice",
            "scope": "openid",
            "binding_message": "Coffee for the team",
            "authorization_details": json.dumps(details),
        },
    ).json()
    second = httpx.post(
        info["issuer"] + "/bc-authorize",
        auth=auth,
        data={"login_hint": "bob", "scope": "openid", "binding_message": "Delete repo"},
    ).json()

    listing = _run("approvals", "list", "--data-dir", str(data_dir))  # the real console entry point
    assert listing.returncode == 0, listing.stderr
    assert "Coffee for the team | Pay 12.50 EUR to Cafe" in listing.stdout and "Delete repo" in listing.stdout
    assert first["auth_req_id"] not in listing.stdout and second["auth_req_id"] not in listing.stdout

    as_json = cli(
        "approvals",
        "list",
        "--json",
        "--user",
        "alice",
        "--url",
        info["issuer"],
        env={"AGENT_AUTH_ADMIN_TOKEN": info["admin_token"]},
    )
    items = json.loads(as_json.stdout)
    assert [i["binding_message"] for i in items] == ["Coffee for the team"]
    alice_id = items[0]["id"]
    bob_id = json.loads(
        cli("approvals", "--data-dir", str(data_dir), "list", "--user", "bob", "--json").stdout
    )[0]["id"]

    approved = cli("approvals", "approve", alice_id, "--data-dir", str(data_dir))
    assert approved.returncode == 0 and f"approved {alice_id}" in approved.stdout
    denied = cli("approvals", "deny", bob_id, "--reason", "not today", "--data-dir", str(data_dir))
    assert denied.returncode == 0 and f"denied {bob_id}" in denied.stdout
    again = cli("approvals", "approve", bob_id, "--data-dir", str(data_dir))
    assert again.returncode == 1 and "already_decided" in again.stderr
    wrong = cli("approvals", "list", "--url", info["issuer"], "--admin-token", "wrong")
    assert wrong.returncode == 1 and "invalid_token" in wrong.stderr

    poll = {"grant_type": "urn:openid:params:grant-type:ciba"}
    tok = httpx.post(info["issuer"] + "/token", auth=auth, data={**poll, "auth_req_id": first["auth_req_id"]})
    assert tok.status_code == 200 and tok.json()["authorization_details"] == details
    no = httpx.post(info["issuer"] + "/token", auth=auth, data={**poll, "auth_req_id": second["auth_req_id"]})
    assert no.json() == {"error": "access_denied", "error_description": "not today"}
    assert cli("approvals", "list", "--data-dir", str(data_dir)).stdout.strip() == "no requests"
    # Finished requests: words a person uses, and no countdown
    everything = cli("approvals", "list", "--status", "all", "--data-dir", str(data_dir)).stdout
    assert "approved, used" in everything and "denied" in everything, everything
    assert "consumed" not in everything and "denied_reported" not in everything
    assert all("  -  " in row for row in everything.splitlines()[1:] if row.strip()), everything
    # A binding message that says what the details say is shown once
    same = [{"type": "payment_initiation", "instructedAmount": {"amount": "3.00", "currency": "EUR"},
             "creditorName": "Cafe"}]
    httpx.post(info["issuer"] + "/bc-authorize", auth=auth, data={
        "login_hint": "alice", "scope": "openid", "binding_message": "Pay 3.00 EUR to Cafe",
        "authorization_details": json.dumps(same)})
    row = next(r for r in cli("approvals", "list", "--data-dir", str(data_dir)).stdout.splitlines() if "3.00" in r)
    assert row.count("Pay 3.00 EUR to Cafe") == 1 and "waiting" in row, row

    # stop the server: SIGINT exits cleanly, removes server.json; the logs carry no credential
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert not (data_dir / "server.json").exists()
    logs = out + err
    assert "CIBA request" in logs and "POST /bc-authorize 200" in logs
    secrets = [
        info["client_secret"],
        info["admin_token"],
        info["upstream_client_secret"],
        *info["users"].values(),
        first["auth_req_id"],
        second["auth_req_id"],
        tok.json()["access_token"],
        tok.json()["id_token"],
    ]
    for secret in secrets:
        assert secret not in logs
    for line in logs.splitlines():
        assert not TOKEN_SHAPED.search(line), line


def test_data_dir_commands(tmp_path: pathlib.Path, cli) -> None:
    data_dir = str(tmp_path / "d")
    user = cli("dev", "add-user", "carol", "--email", "carol@example.com", "--data-dir", data_dir)
    assert user.returncode == 0, user.stderr
    password = json.loads(user.stdout)["password"]
    dup = cli("dev", "add-user", "carol", "--data-dir", data_dir)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    client = cli(
        "dev",
        "--data-dir",
        data_dir,
        "add-client",
        "--client-id",
        "cli-app",
        "--grant-type",
        "client_credentials",
        "--auth-method",
        "client_secret_post",
    )
    assert client.returncode == 0, client.stderr
    secret = json.loads(client.stdout)["client_secret"]
    ping = cli("dev", "add-client", "--ciba-mode", "ping", "--data-dir", data_dir)
    assert ping.returncode == 1 and "notification" in ping.stderr
    legacy = cli("dev", "add-client", "--client-id", "legacy", "--no-pkce", "--exchange-from", "agent-client",
                 "--data-dir", data_dir)
    assert legacy.returncode == 0, legacy.stderr
    from langchain_agent_auth.devserver._store import Store

    store = Store(data_dir)
    try:
        meta = store.get_client("legacy", "main") or {}
        assert meta["require_pkce"] is False and meta["token_exchange_from_clients"] == ["agent-client"]
        assert (store.get_client("cli-app", "main") or {})["require_pkce"] is True
    finally:
        store.close()
    rotated = cli("dev", "rotate-keys", "--data-dir", data_dir)
    body = json.loads(rotated.stdout)
    assert len(body["added"]) == 2 and len(body["published"]) == 4

    from langchain_agent_auth.devserver import LocalProvider

    with LocalProvider(data_dir) as idp:
        tok = idp.login("carol", password, scope="openid email")
        assert tok["id_token"]
        r = httpx.post(
            idp.issuer + "/token",
            data={"grant_type": "client_credentials", "client_id": "cli-app", "client_secret": secret},
        )
        assert r.status_code == 200
        kids = {k["kid"] for k in httpx.get(idp.issuer + "/jwks").json()["keys"]}
        assert set(body["published"]) == kids


def test_port_in_use(tmp_path: pathlib.Path, cli) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        result = cli("dev", "--port", str(busy.getsockname()[1]), "--data-dir", str(tmp_path))
    assert result.returncode == 1 and "cannot bind" in result.stderr
    assert "READY" not in result.stdout


def test_help(cli) -> None:
    result = cli("dev", "--help")
    assert result.returncode == 0 and "--ciba-interval" in result.stdout and "rotate-keys" in result.stdout
    result = cli("approvals", "--help")
    assert result.returncode == 0 and "list" in result.stdout and "deny" in result.stdout
    assert cli("approvals").returncode == 2
    assert cli("approvals", "list", "--data-dir", "/nonexistent/dir").returncode == 1
