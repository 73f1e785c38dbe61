"""Run a script while recording what a tracer (LangSmith or any other) would see.

``python tests/examples/trace_recorder.py OUT.json SCRIPT [ARGS...]`` (or ``-m MODULE
[ARGS...]``) runs ``SCRIPT`` as ``__main__`` with:

* a recording ``BaseCallbackHandler`` attached to every LangChain/LangGraph run through a
  configure hook (inherited by every child run: chains, nodes, tools, models, custom
  events), exactly where a tracer sits;
* a tap on httpx that keeps every credential a server handed out during the run (token
  responses: access, refresh and ID tokens, CIBA ``auth_req_id``).

At exit both go to ``OUT.json``: ``{"events": [...], "tokens": [...]}``. The test then
checks that no token appears in any event.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
import threading
from contextvars import ContextVar
from typing import Any

import httpx
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook

_CREDENTIAL_FIELDS = ("access_token", "refresh_token", "id_token", "auth_req_id", "issued_token")


class Recorder(BaseCallbackHandler):
    """Keeps every callback event, arguments and all, as text."""

    raise_error = True  # a handler that cannot serialize an event must fail the test, not hide it

    def __init__(self) -> None:
        self.events: list[str] = []
        self.lock = threading.Lock()

    def _keep(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        text = json.dumps({"event": event, "args": args, "kwargs": kwargs}, default=repr)
        with self.lock:
            self.events.append(text)

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_") and name != "on_llm_new_token":
            return lambda *args, **kwargs: self._keep(name, *args, **kwargs)
        return super().__getattribute__(name)

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self._keep("on_llm_new_token", token, **kwargs)


RECORDER = Recorder()
_VAR: ContextVar[Recorder | None] = ContextVar("agent_auth_trace_recorder", default=None)
register_configure_hook(_VAR, inheritable=True)
TOKENS: set[str] = set()


def _tap(response: httpx.Response) -> None:
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        return
    if isinstance(data, dict):
        TOKENS.update(v for k, v in data.items() if k in _CREDENTIAL_FIELDS and isinstance(v, str) and v)


def _install_tap() -> None:
    send, asend = httpx.Client.send, httpx.AsyncClient.send

    def tapped(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = send(self, request, **kwargs)
        if not kwargs.get("stream"):
            _tap(response)
        return response

    async def atapped(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = await asend(self, request, **kwargs)
        if not kwargs.get("stream"):
            _tap(response)
        return response

    httpx.Client.send = tapped  # type: ignore[method-assign]
    httpx.AsyncClient.send = atapped  # type: ignore[method-assign]


def _dump(path: str) -> None:
    with open(path, "w") as out:
        json.dump({"events": RECORDER.events, "tokens": sorted(TOKENS)}, out)


def main() -> None:
    out, script, *rest = sys.argv[1:]
    _install_tap()
    _VAR.set(RECORDER)
    atexit.register(_dump, out)
    if script == "-m":  # python -m MODULE ARGS...
        module, *rest = rest
        sys.argv = [module, *rest]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    sys.argv = [script, *rest]
    sys.path[0] = os.path.dirname(os.path.abspath(script))  # as ``python SCRIPT`` would have it
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
