"""``agent-auth demo`` run the way users run it: a subprocess, stdin closed (CI), or a pipe
standing in for the terminal; then its data directory and the provider's bank API are
checked for what really happened. Where neither a signal, a port, the terminal nor the
console script is under test, the run is ``python -m langchain_agent_auth.cli demo`` forked
from the session's pre-imported Python (``prefork``), a process of its own all the same."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time

import pytest

from tests.demo.helpers import (
    assert_no_secrets,
    bank_transfers,
    command,
    demo_env,
    lines,
    provider,
    run_demo,
)

pytestmark = pytest.mark.slow


def test_unattended_run_shows_every_pillar_and_does_exactly_what_was_approved(prefork, tmp_path):
    data_dir = tmp_path / "missing" / "data"  # created by the demo
    result = run_demo("--approve", "auto", "--data-dir", str(data_dir), zygote=prefork)
    out = result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\x1b[" not in out  # not a terminal: no colors, no spinner

    # says what it runs on
    assert "a scripted assistant: no API key needed" in out
    # identity: the greeting uses the name from the verified token
    assert any("signed in as Alice Example (alice); ID token verified (RS256" in x for x in lines(out, "[identity]"))
    assert "assistant: Hello Alice Example!" in out
    # vault: paused for connect_account, connected, resumed, real data from the API with the vaulted token
    vault = "\n".join(lines(out, "[vault]"))
    assert "[vault] connect_account: list_calendar_events needs alice's calendar account (calendar.read)" in vault
    assert "authorize URL" in vault and "/upstream/authorize?" in vault and "code_challenge_method=S256" in vault
    assert "[vault] calendar connected: the callback redeemed the code with the PKCE verifier" in vault
    assert "GET /api/calendar/events with alice's vaulted token -> 200, 3 events (owner: alice)" in vault
    assert "Team stand-up (Room 4)" in out
    # approval: binding message and amount shown, approved transfer executed once, the other denied
    approval = lines(out, "[approval]")
    assert '[approval] CIBA request sent to alice\'s device: "Pay 250.00 EUR to Bob"' in approval
    assert "[approval] authorization_details: payment_initiation 250.00 EUR to Bob (concert tickets)" in approval
    assert any("/approvals" in x and "approval page" in x for x in approval)
    assert "assistant: Done: 250.00 EUR sent to Bob" in out
    denied = ('[approval] alice denies "Pay 5,000.00 EUR to Mallory" '
              '(auto, reason: "I don\'t know any Mallory. Not me!")')
    assert denied in approval
    assert "assistant: The transfer of 5,000.00 EUR to Mallory was not approved: you denied it" in out
    # fga: alice and bob see different documents
    (alice_docs,) = [x for x in lines(out, "[fga] alice may read")]
    (bob_docs,) = [x for x in lines(out, "[fga] bob may read")]
    assert "3 of 5" in alice_docs and "Q3 budget" in alice_docs and "On-call runbook" not in alice_docs
    assert "3 of 5" in bob_docs and "On-call runbook" in bob_docs and "Q3 budget" not in bob_docs
    assert "Summary" in out
    assert result.stderr.strip() == ""

    # nothing secret reached the terminal
    assert_no_secrets(out + result.stderr, data_dir)
    # the bank executed exactly the approved transfer, once; the provider saw two CIBA requests
    with provider(data_dir) as idp:
        transfers = bank_transfers(idp)
        assert [(t["amount"], t["creditorName"], t["status"]) for t in transfers] == [("250.00", "Bob", "executed")]
        requests = idp.approvals(user="alice", status="all")
        assert sorted(r["binding_message"] for r in requests) == ["Pay 250.00 EUR to Bob",
                                                                   "Pay 5,000.00 EUR to Mallory"]


def test_a_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_demo("--approve", "auto", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert f"error: port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port" in result.stderr and "Traceback" not in result.stderr


def test_a_data_dir_that_cannot_be_created_is_a_clear_error(prefork, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_demo("--approve", "auto", "--data-dir", str(blocker / "data"), zygote=prefork)
    assert result.returncode == 2
    assert f"error: cannot create the data directory {blocker / 'data'}" in result.stderr
    assert "Traceback" not in result.stderr


@contextlib.contextmanager
def read_only(path):
    """A directory nobody can write to, root included (immutable attribute) where possible."""
    import os

    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root without a way to make a directory read-only (chattr +i)")
    try:
        yield path
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_a_read_only_data_dir_is_a_clear_error(prefork, tmp_path):
    with read_only(tmp_path / "ro") as data_dir:
        result = run_demo("--approve", "auto", "--data-dir", str(data_dir), zygote=prefork)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: the data directory {data_dir} is not writable" in result.stderr
    assert "--data-dir" in result.stderr and "Traceback" not in result.stderr


def interrupt_at(data_dir, prompt: str, answers: str = "") -> tuple[int, str, str]:
    """Run the demo with a pipe for a terminal, type ``answers``, press Ctrl-C once a line
    starts with ``prompt``."""
    proc = subprocess.Popen([*command(), "demo", "--approve", "interactive", "--data-dir", str(data_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=demo_env())
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(answers)
        proc.stdin.flush()
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if line.startswith(prompt) or not line:
                break
        assert seen[-1].startswith(prompt), "".join(seen)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(seen) + out, err


def test_ctrl_c_while_waiting_for_approval_keeps_the_request_and_a_rerun_resumes(prefork, tmp_path):
    data_dir = tmp_path / "data"
    # Enter: the demo connects the calendar; Ctrl-C at the approval prompt
    code, out, err = interrupt_at(data_dir, 'Approve "Pay 250.00 EUR to Bob"?', "\n")
    assert code == 130, out + err
    assert f"Interrupted. Your pending approval is saved in {data_dir}; run the same command again to resume." in err
    assert "Traceback" not in err
    state = json.loads((data_dir / "demo.json").read_text())
    assert state["step"] == 2 and state["sent"] is True and state["done"] is False
    with provider(data_dir) as idp:  # the CIBA request is still pending at the provider
        assert [r["binding_message"] for r in idp.pending_approvals(user="alice")] == ["Pay 250.00 EUR to Bob"]
        assert bank_transfers(idp) == []

    rerun = run_demo("--approve", "auto", "--data-dir", str(data_dir), zygote=prefork)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"[demo] resuming the conversation saved in {data_dir} at step 3 of 6" in rerun.stdout
    assert "the CIBA request of the earlier run still waits on alice's device" in rerun.stdout
    assert "assistant: Done: 250.00 EUR sent to Bob" in rerun.stdout
    assert "user (alice): Please pay Bob" not in rerun.stdout  # not asked again
    assert_no_secrets(rerun.stdout + rerun.stderr, data_dir)
    with provider(data_dir) as idp:
        assert [(t["amount"], t["creditorName"]) for t in bank_transfers(idp)] == [("250.00", "Bob")]
        # one request per transfer: the resumed run did not ask again
        assert len(idp.approvals(user="alice", status="all")) == 2


def test_help_lists_the_options_and_loads_no_langchain():
    result = subprocess.run([*command(), "demo", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--approve", "--non-interactive", "--model", "--data-dir", "--port", "--no-color", "--user"):
        assert option in result.stdout
    import sys

    # the demo's own command-line module loads no LangChain (other subcommands are their own business)
    code = ("import argparse, sys; from langchain_agent_auth.demo import configure; "
            "configure(argparse.ArgumentParser()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('langchain', 'langchain_core', 'langgraph')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ctrl_c_while_connecting_then_a_rerun_connects_even_if_the_callback_port_was_taken(tmp_path):
    data_dir = tmp_path / "data"
    code, out, err = interrupt_at(data_dir, "Open it in your browser")
    assert code == 130, out + err
    assert "Interrupted. Your paused conversation (waiting for the account connection) is saved in" in err
    callback_port = json.loads((data_dir / "demo.json").read_text())["callback_port"]
    with socket.socket() as taken:  # the saved link's callback address is gone
        taken.bind(("127.0.0.1", callback_port))
        taken.listen()
        rerun = run_demo("--approve", "auto", "--data-dir", str(data_dir))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    vault = "\n".join(lines(rerun.stdout, "[vault]"))
    assert "this link was made by the earlier run for a callback address that is gone" in vault
    assert "GET /api/calendar/events with alice's vaulted token -> 200, 3 events" in vault
    assert rerun.stdout.count("assistant: You have 3 events coming up") == 1
