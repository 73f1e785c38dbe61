"""``agent-auth resumer``: resume threads whose approval completed.

In-process, for a graph built with a durable checkpointer and store (SQLite, Postgres)::

    agent-auth resumer --graph myapp.agent:graph --approver myapp.agent:ciba

Against a LangGraph server (``langgraph dev`` / Platform)::

    agent-auth resumer --url http://127.0.0.1:2024 --approver myapp.agent:ciba [--auth myapp.agent:service_auth]

``module:attr`` names an object or a zero-argument factory returning it; ``--approver``
may name one approver or a list. ``--ping-port`` (with ``--ping-cert`` / ``--ping-key``)
serves the CIBA ping endpoint in the same process. ``--once`` runs one pass and prints
its report as JSON (cron-style use).

Programmatic equivalent: :class:`~langchain_agent_auth.resume.ApprovalResumer` /
:class:`~langchain_agent_auth.resume.RemoteResumer` and their ``run()`` / ``serve()``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import signal
import sys
from typing import Any

from langchain_agent_auth.core.logs import install_log_redaction

__all__ = ["configure", "load_object", "main"]


def load_object(spec: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted); call it if it is a factory.

    Example:
        >>> load_object("json:dumps") is json.dumps
        True
        >>> load_object("langchain_agent_auth.cli._resumer:_example")
        42
    """
    from langchain_agent_auth.core.errors import ConfigurationError

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"expected module:attr, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        hint = ""
        if getattr(exc, "name", None) in (module_name, module_name.split(".")[0]):
            hint = f" (looked in {os.getcwd()}: run from the directory that contains it, or set PYTHONPATH)"
        raise ConfigurationError(f"cannot import {module_name!r} for {spec!r}: {exc}{hint}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(f"{spec!r}: {module_name!r} has no attribute {part!r}") from None
    if callable(obj) and not hasattr(obj, "invoke") and not isinstance(obj, type) and _is_factory(obj):
        obj = obj()
    return obj


def _is_factory(obj: Any) -> bool:
    import inspect

    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in sig.parameters.values())


def _example() -> int:
    return 42


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``resumer`` options to ``parser`` (called by ``agent-auth``)."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--graph", help="module:attr of the compiled graph (in-process resume)")
    where.add_argument("--url", help="LangGraph server URL (remote resume through langgraph-sdk)")
    parser.add_argument("--approver", action="append", default=[],
                        help="module:attr of a CIBAApprover (or a list of them); repeatable")
    parser.add_argument("--source", action="append", default=[],
                        help="module:attr of another PendingSource (e.g. the vault's); repeatable")
    parser.add_argument("--store", help="the BaseStore: a URL (postgresql://USER@HOST:PORT/DB, sqlite:///DIR; "
                        "default $AGENT_AUTH_STORE) or module:attr (default: the graph's / server's)")
    parser.add_argument("--api-key", default=os.environ.get("LANGGRAPH_API_KEY"), help="LangGraph server API key")
    parser.add_argument("--auth", help="with --url: module:attr of the httpx.Auth signing the resumer's requests "
                        "to the server (e.g. a ClientCredentialsAuth); or the --service-* options")
    parser.add_argument("--service-issuer", default=os.environ.get("AGENT_AUTH_SERVICE_ISSUER"),
                        help="with --url: authenticate to the server as a trusted service with a "
                        "client-credentials token from this issuer (see langgraph_auth(trusted_services=...))")
    parser.add_argument("--service-client-id", default=os.environ.get("AGENT_AUTH_SERVICE_CLIENT_ID"))
    parser.add_argument("--service-client-secret", default=os.environ.get("AGENT_AUTH_SERVICE_CLIENT_SECRET"),
                        help="(prefer the env var AGENT_AUTH_SERVICE_CLIENT_SECRET)")
    parser.add_argument("--service-scope", default=os.environ.get("AGENT_AUTH_SERVICE_SCOPE"))
    parser.add_argument("--service-resource", default=os.environ.get("AGENT_AUTH_SERVICE_RESOURCE"),
                        help="resource/audience the server's verifier expects")
    parser.add_argument("--assistant-id", help="assistant to resume with when a thread names none")
    parser.add_argument("--tick", type=float, default=0.5, help="seconds between passes (pings wake it earlier)")
    parser.add_argument("--lease", type=_seconds, default=120.0,
                        help="seconds a worker's claim on a pending item lasts (default 120): run any number of "
                        "workers on one store; a crashed worker's items are taken over after this long. Keep it "
                        "longer than resuming one batch of threads takes")
    parser.add_argument("--once", action="store_true", help="run one pass, print its report, exit")
    parser.add_argument("--ping-host", default="127.0.0.1")
    parser.add_argument("--ping-port", type=int, help="serve the CIBA ping endpoint on this port")
    parser.add_argument("--ping-path", default="/ciba/notify")
    parser.add_argument("--ping-cert", help="TLS certificate (PEM) for the ping endpoint")
    parser.add_argument("--ping-key", help="TLS private key (PEM) for the ping endpoint")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(func=main)


def _approvers(specs: list[str]) -> list[Any]:
    out: list[Any] = []
    for spec in specs:
        obj = load_object(spec)
        out.extend(obj if isinstance(obj, list | tuple) else [obj])
    for approver in out:
        getattr(approver, "keyring", None)  # keys now, not at the first pending approval
    return out


def build(args: argparse.Namespace) -> Any:
    """The resumer the options describe."""
    from langchain_agent_auth.resume import ApprovalResumer, RemoteResumer

    approvers = _approvers(args.approver)
    sources = [load_object(s) for s in args.source]
    store = _store(args.store)
    if args.graph:
        graph = load_object(args.graph)
        return ApprovalResumer(graph, approvers=approvers, sources=sources, store=store, tick=args.tick)
    auth = load_object(args.auth) if getattr(args, "auth", None) else _service_auth(args)
    return RemoteResumer(args.url, api_key=args.api_key, approvers=approvers, sources=sources, store=store,
                         assistant_id=args.assistant_id, tick=args.tick, auth=auth)


def _service_auth(args: argparse.Namespace) -> Any:
    """A ClientCredentialsAuth when --service-issuer is given, else None."""
    if not getattr(args, "service_issuer", None):
        return None
    from langchain_agent_auth.core.errors import ConfigurationError
    from langchain_agent_auth.oauth import ClientCredentialsAuth, OAuthClient

    if not args.service_client_id or not args.service_client_secret:
        raise ConfigurationError("--service-issuer needs --service-client-id and --service-client-secret")
    client = OAuthClient(args.service_issuer, args.service_client_id, args.service_client_secret)
    return ClientCredentialsAuth(client, scope=args.service_scope, resource=args.service_resource)


async def _serve(resumer: Any, args: argparse.Namespace) -> None:
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(resumer.serve(stop=stop))]
    server = None
    if args.ping_port:
        import uvicorn

        config = uvicorn.Config(resumer.ping_receiver(args.ping_path), host=args.ping_host, port=args.ping_port,
                                ssl_certfile=args.ping_cert, ssl_keyfile=args.ping_key, log_level="warning",
                                lifespan="off")
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        tasks.append(asyncio.create_task(server.serve()))
        print(f"CIBA ping endpoint on {'https' if args.ping_cert else 'http'}://{args.ping_host}:{args.ping_port}"
              f"{args.ping_path}", flush=True)
    print(f"resumer running ({resumer!r})", flush=True)
    await stop.wait()
    if server is not None:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


def _preflight(resumer: Any, args: argparse.Namespace) -> None:
    """Read the pending approvals once, so a store or server that refuses us stops the
    command at start with one line (a server that is not up yet is waited for)."""
    from langchain_agent_auth.core.errors import AgentAuthError, ConfigurationError, redact

    try:
        for source in resumer.sources:
            source.due(resumer.clock(), 1)
    except AgentAuthError:
        raise
    except Exception as exc:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if status is None:
            logging.getLogger("langchain_agent_auth.approval.resumer").warning(
                "pending approvals not readable yet (%s); retrying", type(exc).__name__)
            return
        try:
            detail = redact(str(response.json().get("detail") or "")[:200])
        except Exception:
            detail = ""
        where = args.url or "the store"
        hint = ""
        if status in (401, 403):
            hint = ("; the server requires a trusted service: pass --auth module:attr (an httpx.Auth such as "
                    "ClientCredentialsAuth), or --service-issuer, --service-client-id and --service-client-secret "
                    "(or AGENT_AUTH_SERVICE_*), for a client listed in langgraph_auth(trusted_services=...)")
        raise ConfigurationError(
            f"cannot read pending approvals from {where}: HTTP {status}" + (f" ({detail})" if detail else "") + hint
        ) from None


def main(args: argparse.Namespace) -> int:
    """Run the resumer described by ``args``; returns the exit code."""
    import asyncio  # here, not at module level: `agent-auth --help` stays light

    from langchain_agent_auth.core.crypto import require_key_configuration

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction(handlers=logging.getLogger().handlers)
    previous = require_key_configuration("agent-auth resumer")
    try:
        resumer = build(args)
        resumer.lease = args.lease
        _preflight(resumer, args)
        if args.once:
            report = resumer.run_once()
            print(json.dumps(dataclasses.asdict(report)), flush=True)
            return 1 if report.errors else 0
        asyncio.run(_serve(resumer, args))
        return 0
    finally:
        require_key_configuration(previous)


def _store(value: str | None) -> Any:
    """``--store``: a URL (or ``$AGENT_AUTH_STORE``) through ``open_storage``, else ``module:attr``."""
    from langchain_agent_auth.core.storage import STORE_ENV, open_storage

    value = value or os.environ.get(STORE_ENV) or None
    if value is None:
        return None
    if "://" in value or value == "memory:":
        return open_storage(value).store
    return load_object(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds
