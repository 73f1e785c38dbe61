"""``agent-auth fga``: test models, ask one-off questions, manage tuples, serve the OpenFGA API.

Subcommands:

* ``test FILE...``: run ``.fga.yaml`` store tests (the format of ``fga model test``) and
  OpenFGA's conformance files; prints ``Checks N/M passing``, ``ListObjects N/M passing``,
  ``ListUsers N/M passing`` and every failure; exits 1 when any assertion fails.
* ``check USER RELATION OBJECT``: one check against a store (``--store`` SQLite file,
  ``--model`` file, or ``--tests`` an ``.fga.yaml`` whose model and tuples form the store).
* ``list-objects USER RELATION TYPE`` and ``list-users OBJECT RELATION FILTER``.
* ``write`` / ``delete`` tuples in a SQLite store; ``model`` writes, validates or transforms.
* ``serve``: the OpenFGA-API subset over the embedded engine (``--port 0`` picks a free
  port). It prints ``READY {"api_url": ..., "api_token": ...}``: every request needs
  ``Authorization: Bearer <api_token>`` (a new random token each start, or ``--api-token``),
  unless started with ``--no-auth``.

Example:
    $ agent-auth fga test ../shared/conformance/openfga/*.yaml
    $ agent-auth fga check --tests store.fga.yaml user:anne viewer document:1
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_agent_auth.core._serving import bind_socket
from langchain_agent_auth.core.errors import AgentAuthError

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``fga`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="fga_command", metavar="COMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    p = sub.add_parser("test", help="run .fga.yaml store tests or OpenFGA conformance files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--verbose", "-v", action="store_true", help="also list passing tests")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_test)

    def store_options(q: argparse.ArgumentParser) -> None:
        q.add_argument("--store", metavar="FILE.sqlite", help="SQLite tuple store")
        q.add_argument("--store-id", default="default", help="store id inside the SQLite file")
        q.add_argument("--model", metavar="FILE", help="model file (.fga, .json or fga.mod)")
        q.add_argument("--tests", metavar="FILE.fga.yaml", help="use this test file's model and tuples")
        q.add_argument("--context", metavar="JSON", help="request context for conditions")
        q.add_argument(
            "--contextual-tuple",
            action="append",
            default=[],
            metavar="USER,RELATION,OBJECT",
            help="a contextual tuple (repeatable)",
        )

    queries = (
        ("check", "check one relationship", ("user", "relation", "object"), _check),
        ("list-objects", "objects of a type a user has a relation on", ("user", "relation", "type"), _list_objects),
        ("list-users", "users with a relation on an object", ("object", "relation", "user_filter"), _list_users),
    )
    for name, helptext, positionals, func in queries:
        p = sub.add_parser(name, help=helptext)
        for arg in positionals:
            if arg == "user_filter":
                p.add_argument(arg, metavar="FILTER", help="'user' or 'group#member'")
            else:
                p.add_argument(arg)
        store_options(p)
        p.set_defaults(func=func)

    for name, helptext in (("write", "write tuples to a SQLite store"), ("delete", "delete tuples")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("tuple", nargs="*", metavar="USER,RELATION,OBJECT")
        p.add_argument("--file", metavar="FILE", help="tuples from a YAML, JSON or CSV file")
        p.add_argument("--store", required=True, metavar="FILE.sqlite")
        p.add_argument("--store-id", default="default")
        p.add_argument("--model", metavar="FILE", help="write this model first (if it changed)")
        p.set_defaults(func=_write if name == "write" else _delete)

    p = sub.add_parser("model", help="validate, transform or store a model")
    p.add_argument("action", choices=["validate", "transform", "write"])
    p.add_argument("file")
    p.add_argument("--output-format", choices=["fga", "json"], default=None)
    p.add_argument("--store", metavar="FILE.sqlite", help="for 'write'")
    p.add_argument("--store-id", default="default")
    p.set_defaults(func=_model)

    p = sub.add_parser("serve", help="serve the OpenFGA API subset over the embedded engine")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--db", metavar="FILE.sqlite", help="persist stores in this SQLite file")
    p.add_argument("--api-token", help="require this bearer token (default: a new random one, printed)")
    p.add_argument(
        "--no-auth", action="store_true", help="accept requests without a bearer token (any local process can write)"
    )
    p.set_defaults(func=_serve)


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


# --------------------------------------------------------------------------- test


def _test(args: argparse.Namespace) -> int:
    from langchain_agent_auth.cli._fga_testfile import format_report, run_test_file

    reports = [run_test_file(f) for f in args.files]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "file": r.path,
                        "error": r.error,
                        "totals": r.totals(),
                        "failures": [vars(x) for x in r.results if not x.passed],
                    }
                    for r in reports
                ],
                default=str,
                indent=2,
            )
        )
    else:
        print(format_report(reports, verbose=args.verbose))
    return 0 if all(r.ok for r in reports) and reports else 1


# --------------------------------------------------------------------------- queries


def _authorizer(args: argparse.Namespace) -> Any:
    from langchain_agent_auth.fga._embedded import EmbeddedAuthorizer
    from langchain_agent_auth.fga._store import SQLiteTupleStore

    if args.tests:
        return EmbeddedAuthorizer.from_store_file(args.tests)
    store = SQLiteTupleStore(args.store, store_id=args.store_id) if args.store else None
    if args.model:
        return EmbeddedAuthorizer(Path(args.model), store)
    if store is None:
        raise AgentAuthError("give --store (with a model written), --model, or --tests")
    return EmbeddedAuthorizer(store=store)


def _query_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if args.context:
        try:
            kwargs["context"] = json.loads(args.context)
        except ValueError as exc:
            raise AgentAuthError(f"--context is not valid JSON: {exc}") from None
    if args.contextual_tuple:
        kwargs["contextual_tuples"] = [_parse_tuple(t) for t in args.contextual_tuple]
    return kwargs


def _parse_tuple(text: str) -> tuple[str, str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(parts):
        raise AgentAuthError(f"expected USER,RELATION,OBJECT, got {text!r}")
    return parts[0], parts[1], parts[2]


def _answer(args: argparse.Namespace, key: str, ask: Callable[[Any, dict[str, Any]], Any]) -> int:
    """Print ``{key: answer}`` for one query on the authorizer the arguments name."""
    try:
        answer = ask(_authorizer(args), _query_kwargs(args))
    except (AgentAuthError, OSError) as exc:
        return _fail(str(exc))
    print(json.dumps({key: answer}))
    return 0


def _check(args: argparse.Namespace) -> int:
    return _answer(args, "allowed", lambda fga, kw: fga.check(args.user, args.relation, args.object, **kw))


def _list_objects(args: argparse.Namespace) -> int:
    return _answer(args, "objects", lambda fga, kw: fga.list_objects(args.user, args.relation, args.type, **kw))


def _list_users(args: argparse.Namespace) -> int:
    return _answer(args, "users", lambda fga, kw: fga.list_users(args.object, args.relation, args.user_filter, **kw))


def _tuples_from(args: argparse.Namespace) -> list[Any]:
    from langchain_agent_auth.fga._storefile import load_tuple_file

    tuples: list[Any] = [_parse_tuple(t) for t in args.tuple]
    if args.file:
        tuples += load_tuple_file(Path(args.file))
    if not tuples:
        raise AgentAuthError("no tuples given")
    return tuples


def _write(args: argparse.Namespace, delete: bool = False) -> int:
    from langchain_agent_auth.fga._embedded import EmbeddedAuthorizer
    from langchain_agent_auth.fga._store import SQLiteTupleStore

    try:
        store = SQLiteTupleStore(args.store, store_id=args.store_id)
        auth = EmbeddedAuthorizer(Path(args.model) if args.model else None, store)
        tuples = _tuples_from(args)
        if delete:
            auth.delete(tuples)
        else:
            auth.write(tuples)
    except (AgentAuthError, OSError) as exc:
        return _fail(str(exc))
    print(json.dumps({"deleted" if delete else "written": len(tuples), "model_id": auth.model_id}))
    return 0


def _delete(args: argparse.Namespace) -> int:
    return _write(args, delete=True)


def _model(args: argparse.Namespace) -> int:
    from langchain_agent_auth.fga._dsl import load_model_file

    try:
        model = load_model_file(args.file)
    except (AgentAuthError, OSError) as exc:
        if args.action == "validate":
            print(json.dumps({"is_valid": False, "error": str(exc)}))
            return 1
        return _fail(str(exc))
    if args.action == "validate":
        print(json.dumps({"is_valid": True}))
    elif args.action == "transform":
        fmt = args.output_format or ("fga" if args.file.endswith(".json") else "json")
        print(model.to_dsl() if fmt == "fga" else json.dumps(model.to_json()))
    else:
        from langchain_agent_auth.fga._embedded import EmbeddedAuthorizer
        from langchain_agent_auth.fga._store import SQLiteTupleStore

        if not args.store:
            return _fail("model write needs --store")
        auth = EmbeddedAuthorizer(model, SQLiteTupleStore(args.store, store_id=args.store_id))
        print(json.dumps({"authorization_model_id": auth.model_id}))
    return 0


# --------------------------------------------------------------------------- serve


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from langchain_agent_auth.cli._fga_server import create_app

    if args.no_auth and args.api_token:
        return _fail("--no-auth and --api-token exclude each other")
    token = None if args.no_auth else (args.api_token or secrets.token_urlsafe(32))
    if token is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: serving on a non-loopback address without authentication", file=sys.stderr)
    app = create_app(db=args.db, api_token=token)
    try:
        sock = bind_socket(args.host, args.port)  # the dev server's helper: TCP_NODELAY included
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror}")
    port = sock.getsockname()[1]
    url = f"http://[{args.host}]:{port}" if ":" in args.host else f"http://{args.host}:{port}"
    print(f"agent-auth fga serve: listening on {url}", flush=True)
    # Like ``agent-auth dev``: one machine-readable line with what a client needs.
    print("READY " + json.dumps({"api_url": url, "api_token": token, "auth": "none" if token is None else "bearer"}),
          flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.run(sockets=[sock])
    return 0
