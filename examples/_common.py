"""Plumbing shared by the examples: the provider, a scripted chat model, a browser and the transcript.

Nothing here is part of the toolkit: every example makes the toolkit's calls itself. This
module only spares each script the same fifty lines of set-up.

* :func:`parse_args` / :func:`provider`: run the local OpenID provider in-process
  (``LocalProvider()``, the default), or use an ``agent-auth dev`` that runs elsewhere
  (``--dev-dir DIR``: the server's data directory, where it writes ``server.json`` and
  ``secrets.json``).
* ``--store URL``: where checkpoints and the toolkit's records live
  (:func:`langchain_agent_auth.storage.open_storage`; ``memory:`` by default).
* :func:`chat_model`: a scripted chat model (no API key, the same transcript every run), or
  a real one with ``--model provider:model`` (``langchain.chat_models.init_chat_model``).
* :class:`Browser`: the user's browser, over real HTTP: it signs in and clicks "Allow".
* :class:`LoopbackServer`: serves an ASGI app (e.g. the vault's callback) on 127.0.0.1.
* :func:`say` / :class:`Transcript`: who did what, one line each. Never a token.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import itertools
import json
import os
import pathlib
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import httpx
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_agent_auth import LocalProvider
from langchain_agent_auth.devserver import AdminClient

# --------------------------------------------------------------------------- command line


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options every example takes: ``--dev-dir`` and ``--model``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dev-dir", nargs="?", metavar="DIR", const=os.environ.get("AGENT_AUTH_DEV_DIR") or ".agent-auth/dev",
        help="use the `agent-auth dev` running on this data directory (default: $AGENT_AUTH_DEV_DIR or "
             "./.agent-auth/dev) instead of starting a provider in-process",
    )
    parser.add_argument(
        "--model", metavar="PROVIDER:MODEL",
        help="a real chat model for init_chat_model (e.g. openai:gpt-4o-mini; needs its API key); "
             "default: a scripted model, no key needed",
    )
    parser.add_argument("--ciba-interval", type=int, default=1, help="in-process provider only (default 1 s)")
    parser.add_argument(
        "--store", metavar="URL", default=os.environ.get("AGENT_AUTH_STORE") or "memory:",
        help="where checkpoints and the toolkit's records live: memory: (default), sqlite:///DIR or "
             "postgresql://USER@HOST:PORT/DB (default: $AGENT_AUTH_STORE, else memory:)",
    )
    return parser.parse_args(argv)


def run_id(args: argparse.Namespace) -> str:
    """A suffix for thread ids: empty in memory, unique per run in a durable store (a rerun
    must not continue an old run's threads)."""
    return "" if args.store == "memory:" else "-" + os.urandom(4).hex()


# --------------------------------------------------------------------------- the provider


class RunningProvider(LocalProvider):
    """``LocalProvider``'s helpers (``login``, ``approve``, ``link_connection``...) for an
    ``agent-auth dev`` started elsewhere, found through its data directory."""

    def __init__(self, dev_dir: str | os.PathLike[str]) -> None:
        super().__init__()
        self.dev_dir = pathlib.Path(dev_dir)
        self._client: AdminClient | None = None

    def start(self) -> RunningProvider:
        try:
            url = json.loads((self.dev_dir / "server.json").read_text())["url"]
            secrets = json.loads((self.dev_dir / "secrets.json").read_text())
        except (OSError, ValueError, KeyError):
            raise SystemExit(f"no running `agent-auth dev` found in {self.dev_dir} (start one, or drop --dev-dir)") \
                from None
        # The READY document `agent-auth dev` prints, rebuilt from what it wrote to disk.
        self.info = {
            "issuer": url, "client_id": "agent-client", "client_secret": secrets["clients"]["agent-client"],
            "users": secrets["users"], "approval_url": url + "/approvals", "admin_token": secrets["admin_token"],
            "upstream_issuer": url + "/upstream", "upstream_client_id": "vault-connect",
            "upstream_client_secret": secrets["clients"]["vault-connect"], "upstream_connection": "demo-upstream",
            "api_url": url + "/api", "api_audience": "urn:agent-auth:demo-api", "data_dir": str(self.dev_dir),
        }
        self._client = AdminClient(url, secrets["admin_token"])
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def admin(self) -> AdminClient:
        assert self._client is not None, "start() first"
        return self._client


@contextlib.contextmanager
def provider(args: argparse.Namespace) -> Iterator[LocalProvider]:
    """The local OpenID provider: in-process by default, or the one ``--dev-dir`` names."""
    if args.dev_dir:
        with RunningProvider(args.dev_dir) as idp:
            say("provider", "using the running `agent-auth dev` (its data directory: --dev-dir)")
            yield idp
    else:
        with LocalProvider(ciba_interval=args.ciba_interval) as idp:
            say("provider", "local OpenID provider started in-process (LocalProvider)")
            yield idp


# --------------------------------------------------------------------------- chat models

_call_ids = itertools.count(1)


def calls(*specs: tuple[str, dict[str, Any]]) -> AIMessage:
    """A scripted model turn that calls tools: ``calls(("read_doc", {"doc_id": "roadmap"}))``."""
    return AIMessage("", tool_calls=[
        {"name": name, "args": args, "id": f"call_{next(_call_ids)}", "type": "tool_call"} for name, args in specs
    ])


class ScriptedModel(GenericFakeChatModel):
    """A chat model that plays a script: each user message gets the next scripted turn
    (tool calls or text); after the tools answered it sums up what they said.

    ``bind_tools`` returns the model itself, which is all ``create_agent`` needs.
    """

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        if messages and isinstance(messages[-1], ToolMessage):
            results = list(itertools.takewhile(lambda m: isinstance(m, ToolMessage), reversed(messages)))[::-1]
            failed = [m for m in results if m.status == "error"]
            text = (f"I could not do that: {failed[0].content}" if failed
                    else "Done. " + " ".join(str(m.content) for m in results))
            return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


def chat_model(args: argparse.Namespace, script: Sequence[AIMessage | str]) -> Any:
    """The scripted model, or the real one ``--model`` names (then the script is ignored)."""
    if args.model:
        from langchain.chat_models import init_chat_model

        return init_chat_model(args.model)
    return ScriptedModel(messages=iter(list(script)))


# --------------------------------------------------------------------------- the user's browser


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"), "fields": {},
                               "buttons": {}})
        elif self.forms and tag in ("input", "button") and a.get("name"):
            kind = a.get("type", "text" if tag == "input" else "submit")
            self.forms[-1]["buttons" if kind == "submit" else "fields"][a["name"]] = a.get("value", "")


def forms(html: str) -> list[dict[str, Any]]:
    """The forms of a page: action, method, fields and submit buttons."""
    parser = _Forms()
    parser.feed(html)
    return parser.forms


class Browser:
    """The user's web browser: follows redirects, signs in when asked, clicks "Allow" on
    consent pages. Real HTTP with cookies, as a person would (only faster)."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.http = httpx.Client(timeout=15, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, url: str, *, consent: str = "allow") -> httpx.Response:
        """Open ``url`` and go through sign-in and consent until a page asks for neither."""
        response = self.http.get(url)
        for _ in range(15):
            if response.is_redirect:
                response = self.http.get(urljoin(str(response.url), response.headers["location"]))
                continue
            form = next((f for f in forms(response.text)
                         if "password" in f["fields"] or "decision" in f["buttons"]), None)
            if form is None:
                return response
            data = dict(form["fields"])
            if "password" in data:
                data.update(username=self.username, password=self.password)
            else:
                data["decision"] = consent
            response = self.http.post(urljoin(str(response.url), form["action"]), data=data)
        raise RuntimeError("too many pages")

    def submit(self, page: httpx.Response, action: str, **fields: str) -> httpx.Response:
        """Submit the form of ``page`` whose action is ``action`` (hidden fields included)."""
        form = next(f for f in forms(page.text) if f["action"] == action)
        response = self.http.post(urljoin(str(page.url), action), data={**form["fields"], **fields})
        while response.is_redirect:
            response = self.http.get(urljoin(str(response.url), response.headers["location"]))
        return response


class Phone(Browser):
    """The user's phone: the provider's approval page (``idp.approval_url``), where the user
    signs in and approves or denies the requests an agent sent through CIBA."""

    def __init__(self, approval_url: str, username: str, password: str) -> None:
        super().__init__(username, password)
        self.approval_url = approval_url

    def _request_id(self, page: httpx.Response, binding_message: str) -> str:
        for rid, card in re.findall(r'data-request-id="([^"]+)"(.*?)</section>', page.text, re.S):
            if html.escape(binding_message) in card:
                return rid
        raise LookupError(f"no pending request shows {binding_message!r}")

    def wait_for(self, binding_message: str, timeout: float = 10.0) -> tuple[httpx.Response, str]:
        """The approval page once it shows the request with ``binding_message``."""
        deadline = time.monotonic() + timeout
        while True:
            page = self.open(self.approval_url)
            try:
                return page, self._request_id(page, binding_message)
            except LookupError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def approve(self, binding_message: str) -> None:
        """Tap "Approve" on the request that shows ``binding_message``."""
        page, rid = self.wait_for(binding_message)
        self.submit(page, f"/approvals/{rid}/approve")

    def deny(self, binding_message: str, reason: str = "") -> None:
        """Type a reason and tap "Deny" on the request that shows ``binding_message``."""
        page, rid = self.wait_for(binding_message)
        self.submit(page, f"/approvals/{rid}/deny", reason=reason)


# --------------------------------------------------------------------------- a web app on loopback


class LoopbackServer:
    """Serve an ASGI app on 127.0.0.1 in a background thread. The port is known before the
    app exists (a redirect URI needs it): ``url`` first, ``start(app)`` later."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, app: Any, *, lifespan: str = "off") -> LoopbackServer:
        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan=lifespan))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        while not self._server.started:
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- the transcript


def say(who: str, text: str) -> None:
    """One transcript line: ``[who]`` and what happened."""
    print(f"{'[' + who + ']':<12} {text}", flush=True)


def _args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


class Transcript:
    """Prints a conversation as it happens, each message once: the user, the model's tool
    calls, the tools' answers (a guard's refusal shows as ``refused``) and any pause."""

    def __init__(self, user: str = "user") -> None:
        self.user = user
        self._seen: set[str] = set()

    def run(self, agent: Any, input: Any, config: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """``agent.invoke(input, config, **kwargs)``, printing each step as it happens."""
        final: dict[str, Any] = {}
        for chunk in agent.stream(input, config, stream_mode="values", **kwargs):
            if "__interrupt__" in chunk:
                final["__interrupt__"] = chunk["__interrupt__"]
            else:
                final.update(chunk)
                self.show(chunk, pauses=False)
        self.show({"__interrupt__": final.get("__interrupt__", ())})
        return final

    def show(self, result: dict[str, Any], *, pauses: bool = True) -> None:
        """Print the messages of ``result`` not printed yet, and its pauses."""
        for message in result.get("messages", []):
            key = message.id or str(id(message))
            if key in self._seen:
                continue
            self._seen.add(key)
            if isinstance(message, HumanMessage):
                say(self.user, str(message.content))
            elif isinstance(message, AIMessage):
                for call in message.tool_calls:
                    say("model", f"calls {call['name']}({_args(call['args'])})")
                if message.content:
                    say("model", str(message.content))
            elif isinstance(message, ToolMessage):
                verb = "refused:" if message.status == "error" else "->"
                say("tool", f"{message.name} {verb} {message.content}")
        for pause in result.get("__interrupt__", ()) if pauses else ():
            value = pause.value
            text = value.get("message") or value.get("binding_message") or value.get("description") or ""
            say("paused", f"{value.get('type')}: {text}")
