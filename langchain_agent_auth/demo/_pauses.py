"""How the demo answers the run's pauses: ``connect_account`` (the vault: the user connects the
demo upstream, in a browser or played by the demo) and ``approval_pending`` (CIBA: approved or
denied here, on the provider's approval page, or through its API in ``--approve auto`` mode),
and the resumer passes that run while it waits (a mixin of
:class:`~langchain_agent_auth.demo._runner.Demo`).

Example:
    >>> sorted(name for name in vars(Pauses) if not name.startswith("__"))[:3]
    ['_answers', '_approval', '_approve_interactively']
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from langchain_agent_auth.core.errors import AgentAuthError
from langchain_agent_auth.demo._console import Answers
from langchain_agent_auth.demo._support import (
    AUTO_TIMEOUT,
    CIBA_INTERVAL,
    DemoError,
    Step,
    StopWaiting,
    short,
    time_left,
)

__all__ = ["Pauses"]


class Pauses:
    """Answering pauses; needs the demo's ``console``, ``idp``, ``vault``, ``resumer``,
    ``callback`` and its transcript helpers."""

    console: Any
    idp: Any
    vault: Any
    resumer: Any
    callback: Any
    interactive: bool
    answers: Answers | None
    state: dict[str, Any]
    _stdin: Any
    _identity: Any
    _waiting: str | None
    _waits: dict[str, dict[str, Any]]
    _seen_interrupts: set[str]

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
            return base if expires_at is None else f"{base}, {time_left(expires_at - time.time())} left"

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
                    raise StopWaiting
                return False

            try:
                self._wait_resumed(cfg, interrupt.id, "waiting for the account connection (browser)", on_tick=tick,
                                   expires_at=self._expires_at(value))
                self.console.blank()
                self.console.label("vault", "the browser finished the connect flow; the run resumed")
                self._connected_fact(user, value, scopes)
                self._waiting = None
                return
            except StopWaiting:
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
                                   + (f" (reason: \"{short(line, 80)}\")" if line.strip() else ""))
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
