"""The demo's run: data directory, provider, agent, the conversation and its pauses.

The conversation is a list of steps (who says what). Progress is saved in
``<data dir>/demo.json`` (the step, whether its message was sent, the threads, the
provider's port: the issuer, hence every user key in the vault and the approvals, depends
on it). Everything else that must survive a stop is already durable: the checkpoints
(``SqliteSaver``), pending approvals and connect flows (``SqliteStore``, sealed with the
keyring in ``keys``) and the provider's own SQLite database (the CIBA request stays
pending there). A rerun signs the user in again, finds the paused thread and carries on.

Layout of the data directory::

    demo.json            progress of the conversation
    provider/            the local identity provider (provider.sqlite3, secrets.json, server.json)
    agent_auth.sqlite    LangGraph store: vault records, approvals, connect flows
    checkpoints.sqlite   LangGraph checkpoints (SqliteSaver)
    keys                 the keyring that seals what the store holds
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from langchain_agent_auth.core.errors import AgentAuthError, ConfigurationError, ProtocolError
from langchain_agent_auth.demo._console import Answers, Console

__all__ = ["Demo", "DemoError", "ProviderStopped", "Step", "main", "script"]

STATE_VERSION = 1
CIBA_INTERVAL = 1
#: How long an unattended run waits for a paused run to resume before it gives up.
AUTO_TIMEOUT = 60.0
SYSTEM_PROMPT = (
    "You are a helpful assistant in a demo of langchain-agent-auth. Use the tools to read the user's "
    "calendar, send bank transfers in EUR and search the company documents. Say plainly when something "
    "was not approved or not allowed. Keep answers short."
)


class DemoError(Exception):
    """Something the user can fix; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class ProviderStopped(DemoError):
    """The local identity provider stopped answering during the run."""

    def __init__(self, message: str = "the local identity provider stopped") -> None:
        super().__init__(message, code=1)


@dataclass(frozen=True)
class Step:
    """One user message of the conversation, and how an approval it raises is answered
    in ``--approve auto`` mode."""

    user: str
    text: str
    decision: str | None = None
    reason: str | None = None


def script(user: str) -> list[Step]:
    """The conversation: ``user`` talks to the assistant; the other user shows the fga difference.

    Example:
        >>> [s.user for s in script("alice")]
        ['alice', 'alice', 'alice', 'alice', 'alice', 'bob']
    """
    other = "bob" if user == "alice" else "alice"
    payee = other.capitalize()
    question = "Search the documents for our plans."
    return [
        Step(user, "Hi! Who am I talking to?"),
        Step(user, "What's on my calendar this week?"),
        Step(user, f"Please pay {payee} 250 EUR for the concert tickets.", decision="approve"),
        Step(user, "Also send 5,000 EUR to Mallory.", decision="deny",
             reason="I don't know any Mallory. Not me!"),
        Step(user, question),
        Step(other, question),
    ]


def _time_left(seconds: float) -> str:
    """``4m05s``, ``1h02m``: the time left before a request expires.

    Example:
        >>> _time_left(245.2), _time_left(3720), _time_left(-3)
        ('4m05s', '1h02m', '0m00s')
    """
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _jwt_header(token: str) -> dict[str, Any]:
    segment = token.split(".", 1)[0]
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _short(value: Any, limit: int = 160) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _args_text(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())


class _CallbackServer:
    """The app's web server for the vault's connect-account callback (a thread, loopback)."""

    def __init__(self, port: int = 0) -> None:
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError:
            if not port:
                raise
            self.sock.bind(("127.0.0.1", 0))  # the saved port is taken: links of the earlier run break
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, app: Any) -> None:
        import asyncio

        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
        server, sock = self._server, self.sock
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                                        name="agent-auth-demo-callback", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise DemoError("the demo's callback server did not start", code=1)
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()


class Demo:
    """One run of ``agent-auth demo`` (see the package docstring)."""

    def __init__(self, args: argparse.Namespace, console: Console | None = None,
                 stdin: Any = None) -> None:
        self.args = args
        self.console = console or Console(color=False if args.no_color else None)
        self._stdin = stdin if stdin is not None else sys.stdin
        approve = args.approve
        self.approve_given = approve is not None
        if approve is None:
            approve = "interactive" if _isatty(self._stdin) else "auto"
        self.interactive = approve == "interactive"
        self.answers: Answers | None = None
        self.main_user = args.user
        self.steps = script(self.main_user)
        self.data_dir: Path = Path()
        self.temporary = args.data_dir is None
        self.state: dict[str, Any] = {}
        self.idp: Any = None
        self.agent: Any = None
        self.resumer: Any = None
        self._closers: list[Callable[[], None]] = []
        self._printed: set[str] = set()
        self._seen_interrupts: set[str] = set()
        self._waits: dict[str, dict[str, Any]] = {}  # tool_call_id -> the latest progress event
        self._signed_in: str | None = None
        self._context: dict[str, Any] = {}
        self._identity: Any = None
        self._waiting: str | None = None
        self._resumed_run = False

    # ------------------------------------------------------------------ the whole run

    def run(self) -> int:
        """Run the demo; returns the exit code (0, 1: failed, 2: bad input, 130: interrupted)."""
        started = time.monotonic()
        code = 1
        previous_term = _install_sigterm()
        try:
            self._prepare_data_dir()
            self._intro()
            self._start_provider()
            self._build()
            self._seed()
            self._conversation()
            self._summary(time.monotonic() - started)
            code = 0
        except KeyboardInterrupt:
            code = 130
            with _ignore_sigint():
                self._interrupted()
        except ProviderStopped as exc:
            code = exc.code
            self.console.error(f"{exc}.{self._saved_note('Nothing was lost: your conversation')}")
        except DemoError as exc:
            code = exc.code
            self.console.error(str(exc))
        except Exception as exc:
            code = 1
            if self.idp is not None and not self.idp.running:
                self.console.error("the local identity provider stopped during the run."
                                   + self._saved_note("Nothing was lost: your conversation"))
            else:
                self.console.error(f"the demo failed: {type(exc).__name__}: {_short(exc, 400)}."
                                   + self._saved_note("Your conversation"))
        finally:
            with _ignore_sigint():
                self._close(keep=code != 0 and self._worth_keeping())
            _restore_sigterm(previous_term)
        return code

    # ------------------------------------------------------------------ data dir and state

    def _prepare_data_dir(self) -> None:
        if self.temporary:
            self.data_dir = Path(tempfile.mkdtemp(prefix="agent-auth-demo-"))
            self.console.add_safe(str(self.data_dir))
        else:
            self.data_dir = Path(self.args.data_dir).expanduser().resolve()
            self.console.add_safe(str(self.data_dir))
            try:
                from langchain_agent_auth.core.crypto import private_dir

                private_dir(self.data_dir)  # 0700: tokens and keys live here
            except OSError as exc:
                raise DemoError(f"cannot create the data directory {self.data_dir}: "
                                f"{exc.strerror or exc}. Choose another one with --data-dir.") from None
        probe = self.data_dir / f".write-test-{os.getpid()}"
        try:
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise DemoError(f"the data directory {self.data_dir} is not writable ({exc.strerror or exc}). "
                            "Choose another one with --data-dir.") from None
        self._load_state()

    @property
    def _state_file(self) -> Path:
        return self.data_dir / "demo.json"

    def _load_state(self) -> None:
        state: dict[str, Any] = {}
        if self._state_file.exists():
            try:
                state = json.loads(self._state_file.read_text())
                if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
                    raise ValueError("unknown format")
            except (OSError, ValueError) as exc:
                raise DemoError(f"cannot read {self._state_file} ({exc}). Delete it to start over, "
                                "or choose another --data-dir.") from None
        in_progress = bool(state) and not state.get("done") and (state.get("step", 0) > 0 or state.get("sent"))
        if in_progress and state.get("user") != self.main_user:
            raise DemoError(f"the conversation saved in {self.data_dir} is {state.get('user')}'s: rerun with "
                            f"--user {state.get('user')}, or choose another --data-dir.")
        if not state or state.get("done") or state.get("user") != self.main_user:
            run = uuid.uuid4().hex[:8]
            state = {"version": STATE_VERSION, "port": state.get("port"), "callback_port": state.get("callback_port"),
                     "seeded": state.get("seeded", []),
                     "user": self.main_user, "run": run, "step": 0, "sent": False, "done": False, "facts": {}}
        self._resumed_run = in_progress
        self.state = state
        self._save()

    def _save(self) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        os.replace(tmp, self._state_file)

    def _fact(self, key: str, value: Any) -> None:
        self.state.setdefault("facts", {})[key] = value
        self._save()

    def _worth_keeping(self) -> bool:
        return bool(self.state) and (self.state.get("step", 0) > 0 or bool(self.state.get("sent")))

    def _kept_message(self, what: str) -> str:
        if self.temporary:
            return f"{what} is saved in {self.data_dir}; run `agent-auth demo --data-dir {self.data_dir}` to resume."
        return f"{what} is saved in {self.data_dir}; run the same command again to resume."

    def _saved_note(self, what: str) -> str:
        """`` <what> is saved in DIR; ...`` when there is something to resume, else nothing."""
        if self.temporary and not self._worth_keeping():
            return ""
        return " " + self._kept_message(what)

    def _interrupted(self) -> None:
        if not self._worth_keeping():
            self.console.notice("Interrupted.")
            return
        what = {"approval": "Your pending approval", "connect": "Your paused conversation (waiting for the "
                "account connection)"}.get(self._waiting or "", "Your conversation")
        self.console.notice("")
        self.console.notice(f"Interrupted. {self._kept_message(what)}")

    # ------------------------------------------------------------------ intro and provider

    def _intro(self) -> None:
        c = self.console
        c.heading(f"agent-auth demo: an assistant acting for {self.main_user}; identity, vault, approval and fga, "
                  "all on this machine")
        if self.args.model:
            c.line(f"  model      {self.args.model} (through init_chat_model)")
        else:
            c.line("  model      a scripted assistant: no API key needed (use --model provider:model for a real one)")
        if self.interactive:
            c.line("  approvals  interactive: you approve or deny here or on the approval page"
                   + ("" if self.approve_given else " (stdin is a terminal; --approve auto to let the demo decide)"))
        else:
            c.line("  approvals  auto: the demo approves and denies through the provider's API"
                   + ("" if self.approve_given else " (stdin is not a terminal; --approve interactive to answer "
                                                    "yourself)"))
        if self.temporary:
            c.line(f"  data       {self.data_dir} (temporary; --data-dir DIR keeps it)")
        else:
            c.line(f"  data       {self.data_dir}")

    def _start_provider(self) -> None:
        from langchain_agent_auth.devserver import LocalProvider

        saved = self.state.get("port")
        port = self.args.port
        if self._resumed_run and saved and port and port != saved:
            raise DemoError(f"the conversation saved in {self.data_dir} ran its provider on port {saved} (its "
                            f"issuer URL names the port): use --port {saved} or leave --port out.")
        if not port and saved:
            port = saved
            if not self._resumed_run and not _port_free(port):
                port = 0  # nothing pending: a new issuer only means connecting the calendar again
        self.idp = LocalProvider(self.data_dir / "provider", port=port, ciba_interval=CIBA_INTERVAL)
        try:
            self.idp.start()
        except ConfigurationError as exc:
            self.idp = None
            if "cannot bind" in str(exc):
                hint = (f"The conversation saved in {self.data_dir} needs this port: stop what uses it and run "
                        "the command again." if self._resumed_run else
                        "Choose another with --port, or --port 0 for any free port.")
                if "in use" in str(exc).lower():
                    raise DemoError(f"port {port} on 127.0.0.1 is already in use. {hint}") from None
                reason = str(exc).rsplit(": ", 1)[-1]
                raise DemoError(f"cannot listen on 127.0.0.1:{port} ({reason}). {hint}") from None
            raise DemoError(f"the local identity provider failed to start: {exc}", code=1) from None
        except OSError as exc:
            self.idp = None
            raise DemoError(f"the local identity provider cannot use {self.data_dir / 'provider'}: "
                            f"{exc.strerror or exc}. Choose another --data-dir.") from None
        self._closers.append(self._stop_provider)
        self.console.add_secrets(self.idp.client_secret, self.idp.upstream_client_secret, self.idp.admin_token)
        if not self.interactive:
            self.console.add_secrets(*self.idp.users.values())
        self.state["port"] = self.idp.port
        self._save()
        server_file = self.data_dir / "provider" / "server.json"
        with contextlib.suppress(OSError):
            server_file.write_text(json.dumps({"url": self.idp.issuer, "pid": os.getpid()}))
        self.console.label("setup", f"local identity provider at {self.idp.issuer} (OpenID, CIBA, a demo upstream "
                                    f"and a demo API; SQLite in {self.data_dir / 'provider'})")

    def _stop_provider(self) -> None:
        if self.idp is None:
            return
        with contextlib.suppress(OSError):
            (self.data_dir / "provider" / "server.json").unlink()
        self.idp.stop()

    def _check_provider(self) -> None:
        if self.idp is None or not self.idp.running:
            raise ProviderStopped()

    @contextlib.contextmanager
    def _talking_to_provider(self) -> Iterator[None]:
        """Turn a lost provider into :class:`ProviderStopped` (nothing else is caught)."""
        try:
            yield
        except (ProtocolError, ConfigurationError) as exc:
            if self.idp is None or not self.idp.running or isinstance(exc, ProtocolError):
                raise ProviderStopped(f"the local identity provider stopped answering ({_short(exc, 120)})") \
                    from None
            raise

    # ------------------------------------------------------------------ the agent

    def _model(self) -> Any:
        if not self.args.model:
            from langchain_agent_auth.demo._model import ScriptedAssistant

            return ScriptedAssistant()
        spec = str(self.args.model)
        if ":" not in spec:
            raise DemoError(f"--model wants provider:model (e.g. openai:gpt-4o-mini), not {spec!r}")
        from langchain.chat_models import init_chat_model

        try:
            return init_chat_model(spec)
        except ImportError as exc:
            raise DemoError(f"cannot load the model {spec}: {exc}") from None
        except Exception as exc:  # a missing API key, an unknown provider...
            raise DemoError(f"cannot use the model {spec}: {type(exc).__name__}: {_short(exc, 200)}") from None

    def _build(self) -> None:
        from langchain.agents import create_agent

        from langchain_agent_auth.approval import ApprovalResumer, CIBAApprover, with_approval
        from langchain_agent_auth.core.crypto import Keyring
        from langchain_agent_auth.core.errors import ConfigurationError
        from langchain_agent_auth.core.storage import open_storage
        from langchain_agent_auth.demo._world import (
            build_tools,
            make_authorizer,
            needs_approval,
            payment_details,
            transfer_message,
        )
        from langchain_agent_auth.identity import IdentityMiddleware, TokenResolver
        from langchain_agent_auth.oauth import JWTVerifier, OAuthClient
        from langchain_agent_auth.vault import (
            Connection,
            ConnectPendingSource,
            TokenVault,
            VaultCallback,
            VaultMiddleware,
        )

        idp = self.idp
        model = self._model()
        keyring = Keyring.from_file(self.data_dir / "keys")
        try:
            storage = open_storage(getattr(self.args, "store", None), default_dir=self.data_dir)
        except ConfigurationError as exc:
            raise DemoError(str(exc), code=2) from None
        self._closers.append(storage.close)
        self.store, checkpointer = storage.store, storage.checkpointer
        if storage.kind != "sqlite":
            self.console.line(f"  store      {storage.url} (checkpoints, vault, approvals)")

        # identity: the ID token is verified against the provider's JWKS
        self.id_verifier = JWTVerifier(idp.issuer, audience=idp.client_id, token_type="id", client_id=idp.client_id)
        identity = IdentityMiddleware([TokenResolver(self.id_verifier, token="id_token")], describe_user=True)

        # vault: the demo upstream's calendar, connected through our callback
        callback = self.callback = _CallbackServer(int(self.state.get("callback_port") or 0))
        self._closers.append(callback.stop)
        self.state["callback_port"] = int(urlsplit(callback.url).port or 0)
        self._save()
        self.vault = TokenVault([Connection("calendar", issuer=idp.upstream_issuer, client_id=idp.upstream_client_id,
                                            client_secret=idp.upstream_client_secret, scopes=["calendar.read"],
                                            redirect_uri=f"{callback.url}/callback")],
                                store=self.store, keyring=keyring)
        from starlette.applications import Starlette
        from starlette.routing import Route

        callback.start(Starlette(routes=[Route("/callback", VaultCallback(self.vault, resolve_user=self._app_user),
                                               methods=["GET"])]))

        # approval: CIBA at the provider, for the demo bank's audience
        client = OAuthClient(idp.issuer, idp.client_id, idp.client_secret)
        self.approver = CIBAApprover(client, scope="openid", audience=idp.api_audience,
                                     binding_message=transfer_message, authorization_details=payment_details,
                                     requested_expiry=300, store=self.store, keyring=keyring)

        # fga: users, teams and documents
        self.fga = make_authorizer()

        calendar, transfer, search = build_tools(idp.api_url, self.fga, self._report)
        transfer = with_approval(transfer, self.approver, when=needs_approval)
        self.agent = create_agent(
            model, [calendar, transfer, search], system_prompt=SYSTEM_PROMPT,
            middleware=[identity, VaultMiddleware(self.vault, {calendar.name: ("calendar", ["calendar.read"])})],
            checkpointer=checkpointer, store=self.store,
        )
        self.resumer = ApprovalResumer(self.agent, approvers=[self.approver],
                                       sources=[ConnectPendingSource(self.vault)], store=self.store,
                                       context=lambda item: dict(self._context), tick=0.2)

    def _app_user(self, request: Any) -> Any:
        """Who is signed in to the demo "app" (the vault callback checks it started the flow)."""
        return self._identity

    # ------------------------------------------------------------------ setup data

    def _seed(self) -> None:
        from langchain_agent_auth.demo._world import DOCUMENTS, FGA_TUPLES, calendar_events, seed_calendar

        seeded = set(self.state.get("seeded") or [])
        user = self.main_user
        events = calendar_events()
        if user not in seeded:
            with self._talking_to_provider():
                token = self.idp.login(user, upstream=True, scope="calendar.read calendar.write")["access_token"]
                seed_calendar(token, self.idp.api_url, events)
            self.state["seeded"] = sorted(seeded | {user})
            self._save()
        self.console.label("setup", f"demo calendar API: {len(events)} events in {user}'s calendar; "
                                    f"{len(DOCUMENTS)} documents; fga model: user, team, document "
                                    f"({len(FGA_TUPLES)} tuples)")

    # ------------------------------------------------------------------ transcript helpers

    def _report(self, pillar: str, text: str, facts: dict[str, Any] | None = None) -> None:
        self.console.label(pillar, text)
        for key, value in (facts or {}).items():
            current = self.state.setdefault("facts", {}).get(key)
            self._fact(key, {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value)

    def _cfg(self, user: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": f"demo-{self.state['run']}-{user}"}}

    def _show(self, message: Any) -> None:
        mid = getattr(message, "id", None)
        if mid is not None:
            if mid in self._printed:
                return
            self._printed.add(mid)
        kind = getattr(message, "type", "")
        if kind == "ai":
            text = message.content if isinstance(message.content, str) else _short(message.content)
            if text.strip():
                self.console.say("assistant", text.strip())
            for call in message.tool_calls or ():
                self.console.say("assistant", f"calls {call['name']}({_args_text(dict(call.get('args') or {}))})")
        elif kind == "tool":
            content = message.content if isinstance(message.content, str) else json.dumps(message.content)
            if message.status == "error":
                self.console.say(f"tool {message.name}", f"refused: {_short(content)}", kind="tool")
            else:
                self.console.say(f"tool {message.name}", _short(content), kind="tool")

    def _show_new(self, cfg: dict[str, Any]) -> None:
        for message in self.agent.get_state(cfg).values.get("messages", []):
            self._show(message)

    def _mark_shown(self, cfg: dict[str, Any]) -> None:
        for message in self.agent.get_state(cfg).values.get("messages", []):
            if getattr(message, "id", None):
                self._printed.add(message.id)

    def _stream(self, value: Any, cfg: dict[str, Any]) -> None:
        from langchain_agent_auth.core.progress import is_progress

        for mode, chunk in self.agent.stream(value, cfg, context=dict(self._context),
                                             stream_mode=["updates", "custom"]):
            if mode == "custom":
                if is_progress(chunk) and chunk.get("tool_call_id"):
                    self._waits[str(chunk["tool_call_id"])] = chunk
                continue
            for node, update in chunk.items():
                if node == "__interrupt__":
                    for interrupt in update or ():
                        self._seen_interrupts.add(interrupt.id)
                    continue
                messages = update.get("messages") if isinstance(update, dict) else None
                if messages is None:
                    continue
                for message in messages if isinstance(messages, list) else [messages]:
                    self._show(message)
        self._show_new(cfg)

    def _interrupt_ids(self, cfg: dict[str, Any]) -> set[str]:
        return {i.id for i in self.agent.get_state(cfg).interrupts}

    def _tool_of(self, cfg: dict[str, Any], tool_call_id: str | None) -> str:
        for message in self.agent.get_state(cfg).values.get("messages", []):
            for call in getattr(message, "tool_calls", None) or ():
                if call.get("id") == tool_call_id:
                    return str(call["name"])
        return "a tool"

    # ------------------------------------------------------------------ the conversation

    def _conversation(self) -> None:
        if self._resumed_run:
            step = self.steps[self.state["step"]]
            self.console.blank()
            self.console.label("demo", f"resuming the conversation saved in {self.data_dir} at step "
                                       f"{self.state['step'] + 1} of {len(self.steps)}: {step.user} asked "
                                       f"\"{step.text}\"")
        while self.state["step"] < len(self.steps):
            step = self.steps[self.state["step"]]
            self._sign_in(step.user)
            self._turn(step)
            self.state["step"] += 1
            self.state["sent"] = False
            self._save()
        self.state["done"] = True
        self._save()

    def _sign_in(self, user: str) -> None:
        if self._signed_in == user:
            return
        from langchain_agent_auth.identity import UserIdentity

        self.console.blank()
        self.console.label("identity", f"{user} signs in at the local provider (authorization code + PKCE "
                                       "through its login page)")
        with self._talking_to_provider():
            tokens = self.idp.login(user, scope="openid profile email")
            claims = self.id_verifier.verify(tokens["id_token"])
        alg = _jwt_header(tokens["id_token"]).get("alg", "?")
        self._identity = UserIdentity.from_claims(claims, source="token")
        self._context = {"id_token": tokens["id_token"]}
        self._signed_in = user
        name = claims.get("name") or user
        self.console.label("identity", f"signed in as {name} ({claims['sub']}); ID token verified ({alg}, "
                                       f"iss={claims['iss']}, aud={self.idp.client_id}); it goes in the "
                                       "runtime context, never in graph state")
        names = dict(self.state.get("facts", {}).get("signed_in") or {})
        names[user] = name
        self._fact("signed_in", names)

    def _turn(self, step: Step) -> None:
        cfg = self._cfg(step.user)
        snapshot = self.agent.get_state(cfg)
        humans = [m for m in snapshot.values.get("messages", []) if getattr(m, "type", "") == "human"]
        already = bool(self.state.get("sent")) and bool(humans) and humans[-1].content == step.text
        if already:
            self._mark_shown(cfg)
        else:
            from langchain_core.messages import HumanMessage

            self.console.blank()
            self.console.say(f"user ({step.user})", step.text)
            message = HumanMessage(step.text, id=f"msg-{uuid.uuid4().hex[:12]}")
            self._printed.add(str(message.id))
            self.state["sent"] = True
            self._save()
            with self._talking_to_provider():
                self._stream({"messages": [message]}, cfg)
        self._settle(cfg, step)
        self._check_provider()

    def _settle(self, cfg: dict[str, Any], step: Step) -> None:
        for _ in range(25):
            snapshot = self.agent.get_state(cfg)
            if snapshot.interrupts:
                interrupt = snapshot.interrupts[0]
                kind = interrupt.value.get("type") if isinstance(interrupt.value, dict) else None
                with self._talking_to_provider():
                    if kind == "connect_account":
                        self._connect(cfg, step, interrupt)
                    elif kind == "approval_pending":
                        self._approval(cfg, step, interrupt)
                    else:
                        raise DemoError(f"the run paused with a request the demo does not handle ({kind})", code=1)
                self._show_new(cfg)
                continue
            if snapshot.next:  # stopped between steps (e.g. the process ended): carry on
                with self._talking_to_provider():
                    self._stream(None, cfg)
                continue
            self._show_new(cfg)
            return
        raise DemoError("the conversation did not settle (too many pauses)", code=1)

    # ------------------------------------------------------------------ waiting

    def _expires_at(self, value: dict[str, Any]) -> float | None:
        """When the pause with payload ``value`` ends, from the run's progress event."""
        event = self._waits.get(str(value.get("tool_call_id")))
        return event.get("expires_at") if event and event.get("state") == "paused" else None

    def _wait_resumed(self, cfg: dict[str, Any], interrupt_id: str, text: str,
                      on_tick: Callable[[], bool] | None = None,
                      before_pass: Callable[[], None] | None = None, timeout: float | None = None,
                      expires_at: float | None = None) -> None:
        """Run resumer passes until the pause ``interrupt_id`` is gone; a status line meanwhile.

        With ``expires_at`` (from the run's ``agent_auth_progress`` event), the status line
        shows the time left before the request expires.

        ``on_tick`` (interactive prompts) is called between passes and does its own waiting;
        it returns ``True`` when it wants the status line shown. ``before_pass`` runs before
        each resumer pass (to report a decision made elsewhere before the run goes on).
        """
        base = text

        def with_left() -> str:
            return base if expires_at is None else f"{base}, {_time_left(expires_at - time.time())} left"

        text = with_left()
        status = None if on_tick is not None else self.console.status(text)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                self._check_provider()
                if deadline is not None and time.monotonic() > deadline:
                    raise DemoError(f"the paused run did not resume within {timeout:.0f} s ({text})", code=1)
                if before_pass is not None:
                    before_pass()
                self.resumer.run_once()
                if interrupt_id not in self._interrupt_ids(cfg):
                    return
                if on_tick is not None and on_tick():
                    on_tick = None
                    status = self.console.status(with_left())
                if on_tick is None:
                    time.sleep(0.1)
                    if status is not None:
                        if self.console.tty:  # elsewhere a changed text would be a new line
                            status.text = with_left()
                        status.tick()
        finally:
            if status is not None:
                status.close()

    def _answers(self) -> Answers:
        if self.answers is None:
            self.answers = Answers(self._stdin)
        return self.answers

    def _password(self, user: str) -> str:
        return self.idp.users.get(user, "?")

    # ------------------------------------------------------------------ connect_account

    def _connect(self, cfg: dict[str, Any], step: Step, interrupt: Any) -> None:
        value = interrupt.value
        self._waiting = "connect"
        user = step.user
        tool = self._tool_of(cfg, value.get("tool_call_id"))
        scopes = " ".join(value.get("missing_scopes") or value.get("scopes") or [])
        self.console.label("vault", f"connect_account: {tool} needs {user}'s {value.get('connection')} account "
                                    f"({scopes}); the run is paused ({value.get('status')})")
        url = str(value.get("authorize_url") or "")
        if not url:
            raise DemoError("the connect request has no authorize URL", code=1)
        if self._stale_link(cfg, interrupt, url):
            return
        self.console.url("vault", "authorize URL (authorization code + PKCE at the demo upstream):", url)
        if self.interactive:
            answers = self._answers()
            self.console.prompt(f"Open it in your browser (sign in as {user}, password {self._password(user)}), "
                                "or press Enter to let the demo sign in for you: ")

            def tick() -> bool:
                try:
                    line = answers.get(timeout=0.2)
                except EOFError:
                    line = ""  # no more input: the demo signs in
                if line is not None:
                    raise _StopWaiting
                return False

            try:
                self._wait_resumed(cfg, interrupt.id, "waiting for the account connection (browser)", on_tick=tick,
                                   expires_at=self._expires_at(value))
                self.console.blank()
                self.console.label("vault", "the browser finished the connect flow; the run resumed")
                self._connected_fact(user, value, scopes)
                self._waiting = None
                return
            except _StopWaiting:
                pass
        from langchain_agent_auth.demo._world import sign_in_and_consent

        self.console.label("vault", f"the demo plays {user}'s browser: signs in at the demo upstream and allows "
                                    f"{scopes}")
        self._deliver(sign_in_and_consent(url, user, self._password(user)))
        self.console.label("vault", f"{value.get('connection')} connected: the callback redeemed the code with the "
                                    "PKCE verifier; tokens sealed in the vault (AES-256-GCM); resuming the run")
        self._wait_resumed(cfg, interrupt.id, "resuming the paused run", timeout=AUTO_TIMEOUT)
        self._connected_fact(user, value, scopes)
        self._waiting = None

    def _connected_fact(self, user: str, value: dict[str, Any], scopes: str) -> None:
        connection = str(value.get("connection"))
        if self.vault.status(self._identity, connection).status == "active":
            self._fact("connected", {"user": user, "connection": connection, "scopes": scopes})

    def _deliver(self, location: str) -> None:
        """Hand the provider's redirect to the app's callback, as the browser would."""
        import httpx

        page = httpx.get(location, timeout=15)
        if page.status_code != 200 or "connected" not in page.text:
            raise DemoError(f"connecting the account failed (the callback answered HTTP {page.status_code})", code=1)

    def _stale_link(self, cfg: dict[str, Any], interrupt: Any, url: str) -> bool:
        """A link made by an earlier run whose callback address is gone (its port was taken):
        the flow is marked failed, so the vault guard pauses again with a fresh link."""
        query = parse_qs(urlsplit(url).query)
        redirect = urlsplit(query.get("redirect_uri", [""])[0])
        ours = urlsplit(self.callback.url)
        if (redirect.scheme, redirect.netloc) == (ours.scheme, ours.netloc):
            return False
        self.console.label("vault", "this link was made by the earlier run for a callback address that is gone; "
                                    "asking the vault for a fresh one")
        with contextlib.suppress(AgentAuthError):
            self.vault.complete_connect(query.get("state", [""])[0], None, user=self._identity,
                                        error="temporarily_unavailable",
                                        error_description="the app's callback address changed")
        self._wait_resumed(cfg, interrupt.id, "waiting for a fresh link", timeout=AUTO_TIMEOUT)
        return True

    # ------------------------------------------------------------------ approval_pending

    def _find_request(self, user: str, binding_message: str | None) -> dict[str, Any] | None:
        deadline = time.monotonic() + 5
        while True:
            pending = self.idp.pending_approvals(user=user)
            matching = [p for p in pending if p.get("binding_message") == binding_message]
            if matching:
                return matching[-1]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def _decision_of(self, request_id: str | None, user: str) -> str | None:
        """``approved``, ``denied``, ``expired`` or ``pending`` for a request at the provider."""
        if request_id is None:
            return None
        for item in self.idp.approvals(user=user, status="all"):
            if item.get("id") == request_id:
                status = str(item.get("status"))
                if status in ("approved", "consumed") or status.startswith("approved"):
                    return "approved"
                return "denied" if status.startswith("denied") else status.split("_")[0]
        return None

    def _approval(self, cfg: dict[str, Any], step: Step, interrupt: Any) -> None:
        value = interrupt.value
        user = step.user
        message = value.get("binding_message")
        self._waiting = "approval"
        if interrupt.id in self._seen_interrupts:
            self.console.label("approval", f"CIBA request sent to {user}'s device: \"{message}\"")
        else:
            self.console.label("approval", f"the CIBA request of the earlier run still waits on {user}'s device: "
                                           f"\"{message}\"")
        for detail in value.get("authorization_details") or ():
            if detail.get("type") == "payment_initiation":
                amount = (detail.get("instructedAmount") or {})
                from langchain_agent_auth.demo._model import format_eur

                ref = detail.get("remittanceInformationUnstructured")
                self.console.label("approval", f"authorization_details: payment_initiation "
                                               f"{format_eur(amount.get('amount'))} to {detail.get('creditorName')}"
                                               + (f" ({ref})" if ref else ""))
        self.console.url("approval", "approval page (the user's device):", self.idp.approval_url)
        request = self._find_request(user, message)
        request_id = request.get("id") if request else None
        if self.interactive:
            self._approve_interactively(cfg, interrupt, user, message, request_id)
        else:
            decision = step.decision or "approve"
            if request_id is None:
                self.console.label("approval", "the request is no longer pending at the provider; waiting for "
                                               "its answer")
            elif decision == "approve":
                self.idp.approve(request_id)
                self.console.label("approval", f"{user} approves \"{message}\" (auto: through the provider's API, "
                                               "like tapping Approve on the phone)")
            else:
                self.idp.deny(request_id, step.reason)
                self.console.label("approval", f"{user} denies \"{message}\" (auto, reason: \"{step.reason}\")")
            self._wait_resumed(cfg, interrupt.id, f"waiting for the provider to report {user}'s decision "
                                                  f"(CIBA poll every {CIBA_INTERVAL} s)", timeout=AUTO_TIMEOUT,
                               expires_at=self._expires_at(value))
        facts = dict(self.state.get("facts", {}).get("approvals") or {})
        facts[str(message)] = self._decision_of(request_id, user) or "unknown"
        self._fact("approvals", facts)
        self._waiting = None

    def _approve_interactively(self, cfg: dict[str, Any], interrupt: Any, user: str, message: str | None,
                               request_id: str | None) -> None:
        answers = self._answers()
        question = (f"Approve \"{message}\"? [a]pprove / [d]eny here, or [w]ait and answer on the approval page "
                    f"(sign in as {user}, password {self._password(user)}): ")
        self.console.prompt(question)
        mode = {"asking": "decision", "answered": False}

        def tick() -> bool:
            try:
                line = answers.get(timeout=0.2)
            except EOFError:
                self.console.blank()
                self.console.label("approval", f"no more input: answer on {self.idp.approval_url}")
                return True
            if line is None:
                return False
            if mode["asking"] == "reason":
                mode["answered"] = True
                self.idp.deny(request_id, line.strip() or None)
                self.console.label("approval", f"{user} denies \"{message}\""
                                   + (f" (reason: \"{_short(line, 80)}\")" if line.strip() else ""))
                return True
            choice = line.strip().lower()[:1]
            if choice == "a" and request_id:
                mode["answered"] = True
                self.idp.approve(request_id)
                self.console.label("approval", f"{user} approves \"{message}\"")
                return True
            if choice == "d" and request_id:
                mode["asking"] = "reason"
                self.console.prompt("Reason (optional; Enter to skip): ")
                return False
            if choice == "w" or not request_id:
                self.console.label("approval", f"waiting for the answer on {self.idp.approval_url}")
                return True
            self.console.prompt(question)
            return False

        def watch() -> None:
            if mode["answered"] or request_id is None:
                return
            decision = self._decision_of(request_id, user)
            if decision and decision != "pending":
                mode["answered"] = True
                self.console.blank()
                self.console.label("approval", f"{user} {decision} \"{message}\" on the approval page")

        self._wait_resumed(cfg, interrupt.id, f"waiting for the provider to report {user}'s decision (CIBA poll every "
                                              f"{CIBA_INTERVAL} s)", on_tick=tick, before_pass=watch,
                           expires_at=self._expires_at(interrupt.value))

    # ------------------------------------------------------------------ the end

    def _bank_statement(self, user: str) -> list[dict[str, Any]]:
        import httpx

        with self._talking_to_provider():
            token = self.idp.login(user, scope="openid bank:read", resource=self.idp.api_audience)["access_token"]
        response = httpx.get(f"{self.idp.api_url}/bank/transfers", headers={"Authorization": f"Bearer {token}"},
                             timeout=10)
        response.raise_for_status()
        return list(response.json().get("transfers") or [])

    def _summary(self, seconds: float) -> None:
        from langchain_agent_auth.demo._model import format_eur

        facts = self.state.get("facts", {})
        user = self.main_user
        statement = self._bank_statement(user)
        self.console.blank()
        self.console.label("approval", f"{user}'s bank statement (GET /api/bank/transfers): "
                                       + ("; ".join(f"{format_eur(t.get('amount'))} to {t.get('creditorName')} "
                                                    f"({t.get('status')})" for t in statement) or "no transfers"))
        self.console.blank()
        self.console.heading(f"Summary ({seconds:.1f} s)")
        names = ", ".join(f"{n} ({u})" for u, n in (facts.get("signed_in") or {}).items())
        self.console.line(f"  identity  signed in: {names}; ID tokens verified; the assistant knew the name only "
                          "from the verified token")
        connected = facts.get("connected")
        if connected:
            self.console.line(f"  vault     {connected['connection']} connected for {connected['user']} "
                              f"({connected['scopes']}); events read from the demo API with the vaulted token")
        else:
            self.console.line("  vault     the calendar token came from the vault (connected earlier)")
        approvals = facts.get("approvals") or {}
        parts = [f"{'approved' if v == 'approved' else v}: \"{k}\"" for k, v in approvals.items()]
        executed = [t for t in statement if t.get("status") == "executed"]
        self.console.line(f"  approval  {'; '.join(parts) or 'no approvals'}; the bank executed "
                          f"{len(executed)} transfer{'s' if len(executed) != 1 else ''}")
        fga = facts.get("fga") or {}
        self.console.line("  fga       " + "; ".join(f"{u} may read {len(d)} of {facts.get('documents', '?')} "
                                                   f"documents ({', '.join(d)})" for u, d in fga.items()))
        self.console.line("Nothing here needed an account or an API key.")

    def _close(self, *, keep: bool) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer()
        self._closers.clear()
        if self.temporary and self.data_dir != Path() and not keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class _StopWaiting(Exception):
    """The user chose to stop waiting for the browser (the demo signs in instead)."""


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the provider binds: TIME_WAIT is fine
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _ignore_sigint() -> Iterator[None]:
    """Let the clean-up finish even if Ctrl-C is pressed again."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _install_sigterm() -> Any:
    """SIGTERM ends the demo like Ctrl-C does (state kept)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def main(args: argparse.Namespace) -> int:
    """``agent-auth demo``."""
    return Demo(args).run()

