"""Shared fixtures: real servers on loopback for the whole test session."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

# Graph/auth modules loaded by `langgraph dev`, and node's files: not test modules.
collect_ignore_glob = ["*/server/*", "interop/oidc_provider/*", "mcp/conformance/*", "mcp/conformance_client.py"]

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def require(flag: str) -> bool:
    """Whether CI demands a component a developer machine may lack (then: fail, not skip)."""
    return os.environ.get(flag, "") not in ("", "0", "false")


def unavailable(reason: str, flag: str) -> None:
    """Skip with ``reason`` on a developer machine; fail when CI demands the component."""
    if require(flag):
        pytest.fail(f"{reason} (required: {flag} is set)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The independent node-oidc-provider, CIBA poll interval 1 s."""
    from tests.support.node_idp import NodeIdP, node_available

    why = node_available()
    if why:
        unavailable(f"node-oidc-provider unavailable: {why}", "AGENT_AUTH_REQUIRE_INTEROP")
    server = NodeIdP(tmp_path_factory.mktemp("node-idp"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A throwaway PostgreSQL cluster (Debian's package) on loopback for the session; skips
    when the binaries are absent, fails then if AGENT_AUTH_REQUIRE_POSTGRES is set."""
    from tests.support.postgres import PostgresCluster, postgres_available

    why = postgres_available()
    if why:
        unavailable(f"PostgreSQL unavailable: {why}", "AGENT_AUTH_REQUIRE_POSTGRES")
    import tempfile

    # Not under pytest's tmp dir: that one is private to this user, and the server may run
    # as the postgres system user.
    cluster = PostgresCluster(pathlib.Path(tempfile.mkdtemp(prefix="agent-auth-pg-")))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[object]:
    """The vault tests' stand-in upstream (tests/support/upstream.py), one per session (per
    xdist worker); tests reset it through their ``upstream`` fixture."""
    from tests.support.upstream import UpstreamServer

    server = UpstreamServer()
    yield server
    server.stop()
