"""``agent-auth demo`` in-process through ``main([...])`` (faster than a subprocess): another
user, answers typed in the terminal, the approval page, a provider that stops mid-run,
and bad input that must fail before anything starts."""

from __future__ import annotations

import io
import json
import re
import threading
import time

import pytest

from langchain_agent_auth.cli import main
from langchain_agent_auth.demo import _runner
from tests.demo.helpers import approve_on_page, assert_no_secrets, bank_transfers, lines, provider

pytestmark = pytest.mark.slow


def demo(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["demo", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bob_talks_and_pays_alice_with_a_model_from_init_chat_model(tmp_path, capsys, monkeypatch):
    """``--model`` goes through ``init_chat_model`` (here answering with the scripted
    assistant, so no API key is needed): same tools, same middleware."""
    import langchain.chat_models

    from langchain_agent_auth.demo._model import ScriptedAssistant

    asked = []
    monkeypatch.setattr(langchain.chat_models, "init_chat_model",
                        lambda spec, **kw: asked.append(spec) or ScriptedAssistant())
    data_dir = tmp_path / "bob"
    code, out, err = demo(capsys, "--non-interactive", "--user", "bob", "--data-dir", str(data_dir), "--no-color",
                          "--model", "test:scripted")
    assert code == 0, out + err
    assert asked == ["test:scripted"]
    assert "model      test:scripted (through init_chat_model)" in out
    assert "assistant: Hello Bob Example!" in out
    assert "GET /api/calendar/events with bob's vaulted token -> 200, 3 events (owner: bob)" in out
    assert '[approval] CIBA request sent to bob\'s device: "Pay 250.00 EUR to Alice"' in out
    assert "assistant: Done: 250.00 EUR sent to Alice" in out
    # the wait shows the time left, taken from the run's agent_auth_progress event
    assert re.search(r"waiting for the provider to report bob's decision \(CIBA poll every \d+ s\), "
                     r"\d+(m\d\ds|h\d\dm) left", out), out
    assert lines(out, "[fga] bob may read 3 of 5") and lines(out, "[fga] alice may read 3 of 5")
    assert "approvals  auto: the demo approves and denies through the provider's API" in out
    with provider(data_dir) as idp:
        assert [(t["amount"], t["creditorName"]) for t in bank_transfers(idp, "bob")] == [("250.00", "Alice")]
        assert bank_transfers(idp, "alice") == []


def test_interactive_answers_in_the_terminal_and_on_the_approval_page(tmp_path, capsys, monkeypatch):
    """Enter lets the demo connect the calendar; [w]ait leaves the first approval to the
    approval page (a "phone" in another thread approves it there); [d]eny with a reason
    refuses the second one from the terminal."""
    data_dir = tmp_path / "interactive"
    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setattr("sys.stdin", io.StringIO("\nw\nd\nNot me, really\n"))  # typed ahead
    errors: list[BaseException] = []

    def phone() -> None:
        try:
            deadline = time.monotonic() + 90
            # approve only once the demo asked (an approval that lands before the question
            # would leave the typed-ahead "w" to answer the next one)
            while 'Approve "Pay 250.00 EUR to Bob"?' not in terminal.text:
                assert time.monotonic() < deadline, "the demo never asked about the first payment"
                time.sleep(0.05)
            server = data_dir / "provider" / "server.json"
            url = json.loads(server.read_text())["url"]
            password = json.loads((data_dir / "provider" / "secrets.json").read_text())["users"]["alice"]
            approve_on_page(url, "alice", password, "Pay 250.00 EUR to Bob", timeout=60)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=phone, daemon=True)
    thread.start()
    code = main(["demo", "--approve", "interactive", "--data-dir", str(data_dir), "--no-color"])
    out, err = terminal.text, capsys.readouterr().err
    thread.join(timeout=30)
    assert not errors, errors
    assert code == 0, out + err
    assert "Open it in your browser (sign in as alice, password" in out
    assert "Approve \"Pay 250.00 EUR to Bob\"? [a]pprove / [d]eny here, or [w]ait" in out
    assert '[approval] alice approved "Pay 250.00 EUR to Bob" on the approval page' in out
    assert '[approval] alice denies "Pay 5,000.00 EUR to Mallory" (reason: "Not me, really")' in out
    assert "assistant: Done: 250.00 EUR sent to Bob" in out
    assert "The transfer of 5,000.00 EUR to Mallory was not approved" in out
    assert_no_secrets(out + err, data_dir, passwords_allowed=True)  # interactive mode shows the demo passwords
    with provider(data_dir) as idp:
        assert [(t["amount"], t["creditorName"]) for t in bank_transfers(idp)] == [("250.00", "Bob")]


def test_a_provider_that_stops_mid_run_loses_nothing(tmp_path, capsys, monkeypatch):
    data_dir = tmp_path / "stopped"
    original = _runner.Demo._approval

    def provider_dies_first(self, cfg, step, interrupt):
        self.idp.stop()  # the provider goes away while the run waits for the approval
        return original(self, cfg, step, interrupt)

    monkeypatch.setattr(_runner.Demo, "_approval", provider_dies_first)
    code, out, err = demo(capsys, "--approve", "auto", "--data-dir", str(data_dir))
    assert code == 1, out + err
    assert "error: the local identity provider stopped" in err
    assert f"Nothing was lost: your conversation is saved in {data_dir}; run the same command again to resume." in err
    assert "Traceback" not in err
    state = json.loads((data_dir / "demo.json").read_text())
    assert (state["step"], state["sent"], state["done"]) == (2, True, False)

    monkeypatch.setattr(_runner.Demo, "_approval", original)
    code, out, err = demo(capsys, "--approve", "auto", "--data-dir", str(data_dir))
    assert code == 0, out + err
    assert "resuming the conversation saved in" in out
    assert "assistant: Done: 250.00 EUR sent to Bob" in out
    with provider(data_dir) as idp:
        assert [(t["amount"], t["creditorName"]) for t in bank_transfers(idp)] == [("250.00", "Bob")]
        assert len(idp.approvals(user="alice", status="all")) == 2


def test_ctrl_c_that_a_library_turned_into_its_own_error_is_still_an_interruption(tmp_path, capsys, monkeypatch):
    """Seen under load: Ctrl-C landed while LangGraph read a checkpoint, and msgpack's ext_hook
    wrapper turned the KeyboardInterrupt into ``ValueError: ext_hook failed``. It is still the
    user's Ctrl-C: exit 130, the conversation kept for a rerun."""
    import signal

    data_dir = tmp_path / "ctrl-c"
    original = _runner.Demo._approval

    def ctrl_c_inside_a_callback(self, cfg, step, interrupt):
        try:
            signal.raise_signal(signal.SIGINT)  # the user presses Ctrl-C while a library runs our hook
        except KeyboardInterrupt:
            raise ValueError("ext_hook failed") from None
        return original(self, cfg, step, interrupt)

    monkeypatch.setattr(_runner.Demo, "_approval", ctrl_c_inside_a_callback)
    code, out, err = demo(capsys, "--approve", "auto", "--data-dir", str(data_dir))
    assert code == 130, out + err
    assert f"Interrupted. Your conversation is saved in {data_dir}; run the same command again to resume." in err
    assert "the demo failed" not in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the demo's handler is gone again

    monkeypatch.setattr(_runner.Demo, "_approval", original)
    code, out, err = demo(capsys, "--approve", "auto", "--data-dir", str(data_dir))
    assert code == 0, out + err
    assert "assistant: Done: 250.00 EUR sent to Bob" in out


def test_a_finished_data_dir_starts_a_new_conversation_with_the_account_still_connected(tmp_path, capsys):
    data_dir = tmp_path / "twice"
    assert demo(capsys, "--approve", "auto", "--data-dir", str(data_dir))[0] == 0
    code, out, err = demo(capsys, "--approve", "auto", "--data-dir", str(data_dir))
    assert code == 0, out + err
    assert "connect_account" not in out  # the vault still holds alice's calendar token
    assert "GET /api/calendar/events with alice's vaulted token -> 200" in out
    assert "the calendar token came from the vault (connected earlier)" in out


def test_a_corrupt_state_file_is_a_clear_error(tmp_path, capsys):
    data_dir = tmp_path / "corrupt"
    data_dir.mkdir()
    (data_dir / "demo.json").write_text("{not json")
    code, _, err = demo(capsys, "--approve", "auto", "--data-dir", str(data_dir))
    assert code == 2
    assert f"error: cannot read {data_dir / 'demo.json'}" in err and "Delete it to start over" in err


def test_a_saved_conversation_belongs_to_its_user(tmp_path, capsys):
    data_dir = tmp_path / "owned"
    data_dir.mkdir()
    (data_dir / "demo.json").write_text(json.dumps({"version": 1, "user": "alice", "run": "r1", "step": 2,
                                                    "sent": True, "done": False, "port": None, "facts": {}}))
    code, _, err = demo(capsys, "--approve", "auto", "--user", "bob", "--data-dir", str(data_dir))
    assert code == 2
    assert "is alice's: rerun with --user alice" in err


@pytest.mark.parametrize("spec", ["not-a-model", "no-such-provider:some-model"])
def test_a_bad_model_is_a_clear_error(tmp_path, capsys, spec):
    code, out, err = demo(capsys, "--approve", "auto", "--model", spec, "--data-dir", str(tmp_path / "m"))
    assert code == 2, out + err
    assert "error:" in err and spec in err and "Traceback" not in err


def test_bad_options_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--port", "70000"])
    assert exc.value.code == 2
    assert "0-65535" in capsys.readouterr().err


class _Terminal:
    """stdout for the demo that a test can read while the demo runs."""

    def __init__(self) -> None:
        import queue

        self.text = ""
        self.lines: queue.Queue[str] = queue.Queue()
        self._partial = ""

    def write(self, data: str) -> int:
        self.text += data
        self._partial += data
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            self.lines.put(line)
        return len(data)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def wait_for(self, prefix: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except Exception:
                continue
            if line.startswith(prefix) or prefix in line:
                return line
        raise AssertionError(f"no line with {prefix!r}")


def test_interactive_connect_in_the_browser_and_answers_typed_later(tmp_path, monkeypatch):
    """The user opens the printed authorize URL in a browser (the demo only waits), then
    types [a]pprove for the first payment and [d]eny for the second."""
    import os

    from langchain_agent_auth.demo._world import sign_in_and_consent

    data_dir = tmp_path / "browser"
    terminal = _Terminal()
    read_end, write_end = os.pipe()
    keyboard = os.fdopen(write_end, "w")
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setattr("sys.stdin", os.fdopen(read_end))
    errors: list[BaseException] = []

    def user() -> None:
        try:
            line = terminal.wait_for("[vault] authorize URL")
            url = line.split(": ", 1)[1]
            password = json.loads((data_dir / "provider" / "secrets.json").read_text())["users"]["alice"]
            import httpx

            page = httpx.get(sign_in_and_consent(url, "alice", password), timeout=15)  # the browser
            assert page.status_code == 200 and "connected" in page.text
            terminal.wait_for('Approve "Pay 250.00 EUR to Bob"?')
            keyboard.write("a\n")
            keyboard.flush()
            terminal.wait_for('Approve "Pay 5,000.00 EUR to Mallory"?')
            keyboard.write("d\n\n")  # no reason
            keyboard.flush()
        except BaseException as exc:
            errors.append(exc)
        finally:
            keyboard.close()

    thread = threading.Thread(target=user, daemon=True)
    thread.start()
    code = main(["demo", "--approve", "interactive", "--data-dir", str(data_dir)])
    thread.join(timeout=30)
    out = terminal.text
    assert not errors, errors
    assert code == 0, out
    assert "[vault] the browser finished the connect flow; the run resumed" in out
    assert "the demo plays alice's browser" not in out
    assert '[approval] alice approves "Pay 250.00 EUR to Bob"' in out
    assert '[approval] alice denies "Pay 5,000.00 EUR to Mallory"\n' in out
    assert "calendar connected for alice (calendar.read)" in out
