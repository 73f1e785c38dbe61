"""``agent-auth dev``: run the local identity provider, and manage its data directory.

::

    agent-auth dev [--host 127.0.0.1] [--port 0] [--data-dir DIR] [--ciba-interval 5]
    agent-auth dev add-user NAME [--password P] [--email E] [--display-name N] [--data-dir DIR]
    agent-auth dev add-client [--client-id ID] [--grant-type G ...] [--auth-method M] ...
    agent-auth dev rotate-keys [--data-dir DIR]

When it is ready, ``agent-auth dev`` prints one line to stdout, ``READY {json}`` (issuer,
client credentials, seeded users and passwords, approval page URL, admin token...), then
human-readable logs. The data directory defaults to ``$AGENT_AUTH_DEV_DIR`` or
``./.agent-auth/dev``; a restart on the same directory loses nothing.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="agent-auth dev")
    >>> configure(parser)
    >>> args = parser.parse_args(["--port", "0", "--ciba-interval", "1"])
    >>> (args.port, args.ciba_interval, args.func.__name__)
    (0, 1, 'run')
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import secrets
import sys
from typing import Any

from langchain_agent_auth.cli import shared_options
from langchain_agent_auth.core.logs import install_log_redaction

DEFAULT_DATA_DIR = ".agent-auth/dev"


def default_data_dir() -> str:
    """``$AGENT_AUTH_DEV_DIR`` or ``./.agent-auth/dev``."""
    return os.environ.get("AGENT_AUTH_DEV_DIR") or DEFAULT_DATA_DIR


#: on ``dev`` and on each of its sub-commands
_DATA_DIR = (("--data-dir", "state directory (default: $AGENT_AUTH_DEV_DIR or ./.agent-auth/dev)"),)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``dev`` options and sub-commands to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default 0)")
    shared_options(parser, _DATA_DIR, sub=False)
    parser.add_argument(
        "--ciba-interval",
        type=int,
        default=5,
        help="CIBA polling interval in seconds; faster polls get slow_down (default 5)",
    )
    parser.add_argument("--public-url", help="base URL clients use, if not http://HOST:PORT")
    parser.set_defaults(func=run)
    sub = parser.add_subparsers(dest="dev_command", metavar="COMMAND")

    add_user = sub.add_parser("add-user", help="add a user to the data directory")
    add_user.add_argument("username")
    add_user.add_argument("--password", help="password (default: generated and printed)")
    add_user.add_argument("--email")
    add_user.add_argument("--display-name", dest="display_name")
    shared_options(add_user, _DATA_DIR, sub=True, func=run_add_user)

    add_client = sub.add_parser("add-client", help="register a client in the data directory")
    add_client.add_argument("--client-id")
    add_client.add_argument("--client-name")
    add_client.add_argument(
        "--grant-type",
        action="append",
        dest="grant_types",
        help="repeatable; default authorization_code and refresh_token",
    )
    add_client.add_argument("--redirect-uri", action="append", dest="redirect_uris", default=None)
    add_client.add_argument(
        "--auth-method",
        default="client_secret_basic",
        choices=["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
    )
    add_client.add_argument("--jwks", help="file with the client's public JWKS (private_key_jwt)")
    add_client.add_argument("--scope", help="scopes the client may request (default: any)")
    add_client.add_argument("--ciba-mode", choices=["poll", "ping"], dest="ciba_mode")
    add_client.add_argument("--notification-endpoint", help="CIBA ping callback URL")
    add_client.add_argument("--realm", choices=["main", "upstream"], default="main")
    add_client.add_argument(
        "--no-pkce", action="store_true", help="allow the code flow without PKCE (required otherwise)"
    )
    add_client.add_argument(
        "--exchange-from",
        action="append",
        default=None,
        metavar="CLIENT_ID",
        help="may exchange tokens issued to this client (RFC 8693 may-act; repeatable)",
    )
    shared_options(add_client, _DATA_DIR, sub=True, func=run_add_client)

    rotate = sub.add_parser("rotate-keys", help="add new signing keys; the old ones stay published")
    shared_options(rotate, _DATA_DIR, sub=True, func=run_rotate_keys)


def _store(args: argparse.Namespace) -> Any:
    from langchain_agent_auth.devserver._store import Store

    return Store(args.data_dir or default_data_dir())


def run_add_user(args: argparse.Namespace) -> int:
    """``agent-auth dev add-user``."""
    password = args.password or secrets.token_urlsafe(9)
    store = _store(args)
    try:
        store.add_user(args.username, password, email=args.email, name=args.display_name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(json.dumps({"sub": args.username, "password": password}))
    return 0


def run_add_client(args: argparse.Namespace) -> int:
    """``agent-auth dev add-client``."""
    jwks = None
    if args.jwks:
        try:
            jwks = json.loads(pathlib.Path(args.jwks).read_text())
        except (OSError, ValueError) as exc:
            print(f"error: cannot read the JWKS file: {exc}", file=sys.stderr)
            return 1
    grant_types = args.grant_types
    if args.ciba_mode and grant_types is None:
        grant_types = ["urn:openid:params:grant-type:ciba", "refresh_token"]
    client_id = args.client_id or f"client-{secrets.token_hex(6)}"
    store = _store(args)
    try:
        secret = store.add_client(
            client_id,
            realm=args.realm,
            client_name=args.client_name,
            grant_types=grant_types,
            redirect_uris=args.redirect_uris,
            token_endpoint_auth_method=args.auth_method,
            scope=args.scope,
            jwks=jwks,
            backchannel_token_delivery_mode=args.ciba_mode,
            backchannel_client_notification_endpoint=args.notification_endpoint,
            require_pkce=not args.no_pkce,
            token_exchange_from_clients=args.exchange_from,
        )
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(json.dumps({"client_id": client_id, "client_secret": secret}))
    return 0


def run_rotate_keys(args: argparse.Namespace) -> int:
    """``agent-auth dev rotate-keys``."""
    store = _store(args)
    try:
        added = store.add_signing_keys()
        published = [key["kid"] for key in store.public_jwks()["keys"]]
    finally:
        store.close()
    print(json.dumps({"added": added, "published": published}))
    return 0


def _configure_logging() -> None:
    logger = logging.getLogger("langchain_agent_auth.devserver")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    install_log_redaction(handlers=[handler])


def run(args: argparse.Namespace) -> int:
    """``agent-auth dev``: serve in the foreground until interrupted."""
    import asyncio

    import uvicorn

    from langchain_agent_auth.core._serving import bind_socket
    from langchain_agent_auth.devserver._app import build_app
    from langchain_agent_auth.devserver._core import Provider
    from langchain_agent_auth.devserver._provider import base_url_for
    from langchain_agent_auth.devserver._store import Store

    if args.ciba_interval < 0:
        print("error: --ciba-interval must be >= 0", file=sys.stderr)
        return 2
    data_dir = pathlib.Path(args.data_dir or default_data_dir())
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    store = Store(data_dir)
    base_url = args.public_url or base_url_for(args.host, sock.getsockname()[1])
    provider = Provider(store, base_url, ciba_interval=args.ciba_interval)
    config = uvicorn.Config(
        build_app(provider), log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)
    log = logging.getLogger("langchain_agent_auth.devserver")
    server_file = data_dir / "server.json"

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn only exposes a flag
            await asyncio.sleep(0.01)
        if server.started:
            info = provider.info()
            server_file.write_text(json.dumps({"url": base_url, "pid": os.getpid()}))
            print("READY " + json.dumps(info), flush=True)
            _configure_logging()
            log.info("local identity provider at %s (data dir %s)", base_url, data_dir)
            log.info(
                "approval page: %s - sign in as %s (passwords: READY line, %s)",
                info["approval_url"],
                " or ".join(sorted(info["users"])),
                data_dir / "secrets.json",
            )
            log.info("demo upstream at %s, demo API at %s", info["upstream_issuer"], info["api_url"])
        await task

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        store.close()
        if server_file.exists():
            server_file.unlink()
    return 0
