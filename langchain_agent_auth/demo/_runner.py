"""The demo's run: data directory, provider, agent, the conversation, and the summary.

The pauses are answered by :mod:`~langchain_agent_auth.demo._pauses`, the transcript printed by
:mod:`~langchain_agent_auth.demo._transcript`; the script, errors and plumbing are in
:mod:`~langchain_agent_auth.demo._support`.

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
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from langchain_agent_auth.core.errors import ConfigurationError, ProtocolError
from langchain_agent_auth.demo._console import Answers, Console
from langchain_agent_auth.demo._pauses import Pauses
from langchain_agent_auth.demo._support import (
    CIBA_INTERVAL,
    STATE_VERSION,
    SYSTEM_PROMPT,
    CallbackServer,
    DemoError,
    ProviderStopped,
    Step,
    StopSignals,
    ignore_sigint,
    isatty,
    jwt_header,
    port_free,
    script,
    short,
)
from langchain_agent_auth.demo._transcript import Transcript

__all__ = ["Demo", "main"]


class Demo(Transcript, Pauses):
    """One run of ``agent-auth demo`` (see the package docstring)."""

    def __init__(self, args: argparse.Namespace, console: Console | None = None,
                 stdin: Any = None) -> None:
        self.args = args
        self.console = console or Console(color=False if args.no_color else None)
        self._stdin = stdin if stdin is not None else sys.stdin
        approve = args.approve
        self.approve_given = approve is not None
        if approve is None:
            approve = "interactive" if isatty(self._stdin) else "auto"
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
        stops = StopSignals.install()
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
            with ignore_sigint():
                self._interrupted()
        except ProviderStopped as exc:
            code = exc.code
            self.console.error(f"{exc}.{self._saved_note('Nothing was lost: your conversation')}")
        except DemoError as exc:
            code = exc.code
            self.console.error(str(exc))
        except Exception as exc:
            code = 1
            if stops.seen:  # Ctrl-C inside a library's callback, which made it an error of its own
                code = 130
                with ignore_sigint():
                    self._interrupted()
            elif self.idp is not None and not self.idp.running:
                self.console.error("the local identity provider stopped during the run."
                                   + self._saved_note("Nothing was lost: your conversation"))
            else:
                self.console.error(f"the demo failed: {type(exc).__name__}: {short(exc, 400)}."
                                   + self._saved_note("Your conversation"))
        finally:
            with ignore_sigint():
                self._close(keep=code != 0 and self._worth_keeping())
            stops.restore()
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
            if not self._resumed_run and not port_free(port):
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
                raise ProviderStopped(f"the local identity provider stopped answering ({short(exc, 120)})") \
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
            raise DemoError(f"cannot use the model {spec}: {type(exc).__name__}: {short(exc, 200)}") from None

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
        callback = self.callback = CallbackServer(int(self.state.get("callback_port") or 0))
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
        from langchain_agent_auth.demo._world import DOCUMENTS, calendar_events, seed_calendar

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
                                    f"({sum(1 for _ in self.fga.read())} tuples)")

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
        alg = jwt_header(tokens["id_token"]).get("alg", "?")
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


def main(args: argparse.Namespace) -> int:
    """``agent-auth demo``."""
    return Demo(args).run()
