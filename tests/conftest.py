"""The test session's shape: shared fixtures (real servers on loopback, one per session, i.e.
one per xdist worker), the ``slow`` marker, and the order modules are handed to xdist workers.

The README's test command runs the suite on 4 workers (``-n 4``, ``--dist loadscope`` from the
pytest settings): each module runs on one worker (its module-scoped servers and example runs
start once), and the longest modules are handed out first so that no worker finishes the run
alone on one of them.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

# Graph/auth modules loaded by `langgraph dev`, and node's files: not test modules.
collect_ignore_glob = ["*/server/*", "interop/oidc_provider/*", "mcp/conformance/*", "mcp/conformance_client.py"]

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


# ``slow`` (deselect with ``-m "not slow"``): every test of these markers (they drive servers
# and programs outside this process) and these modules or tests (examples, subprocesses,
# many-request runs): each takes more than a second or two.
SLOW_MARKERS = ("interop", "langgraph_server", "browser", "conformance")
SLOW_TESTS = (
    "tests/examples/",
    "tests/demo/test_demo_cli.py",
    "tests/demo/test_demo_inprocess.py",
    "tests/mcp/test_conformance.py",
    "tests/mcp/test_mcp_example.py",
    "tests/approval/test_scaleout.py",
    "tests/approval/test_exactly_once.py::test_three_processes",
    "tests/storage/test_open_storage.py::test_examples_run_on_postgres",
    "tests/storage/test_open_storage.py::test_the_demo",
    "tests/storage/test_open_storage.py::test_a_bad_store_url_stops_the_demo",
    "tests/test_docs_snippets.py",
    "tests/test_server_keys.py::test_resumer",
    "tests/vault/test_concurrency.py::test_cross_process_lease",
    "tests/vault/test_concurrency.py::test_100_parallel",
    "tests/fga/test_fga_differential",
    "tests/fga/test_fga_model.py::test_every_conformance_model",
    "tests/devserver/test_devserver_load.py",
)

# The longest modules (wall seconds in a full `-n 4` run, longest first), handed out first under
# xdist (`--no-loadscope-reorder` keeps this order).
FIRST = (
    "tests/interop/test_protocol.py",
    "tests/approval/test_scaleout.py",
    "tests/demo/test_demo_inprocess.py",
    "tests/storage/test_open_storage.py",
    "tests/approval/test_interop.py",
    "tests/demo/test_demo_cli.py",
    "tests/examples/test_langgraph_server_readme.py",
    "tests/examples/test_examples.py",
    "tests/devserver/test_devserver_fuzz.py",
    "tests/test_cli_startup.py",
    "tests/vault/test_concurrency.py",
    "tests/examples/test_notebooks.py",
    "tests/test_docs_snippets.py",
)


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark the slow tests."""
    if item.nodeid.startswith(SLOW_TESTS) or any(item.get_closest_marker(m) for m in SLOW_MARKERS):
        item.add_marker(pytest.mark.slow)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the longest modules first (stable: the order within a module stays)."""
    rank = {module: i for i, module in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(_module(item), len(FIRST)))


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
def demo_upstream() -> Iterator[object]:
    """The vault tests' third-party provider: the local provider's demo upstream
    (tests/support/demo_upstream.py), one per session (per xdist worker); tests reset it
    through their ``upstream`` fixture."""
    from tests.support import demo_upstream as demo

    upstream = demo.start()
    yield upstream
    upstream.stop()
    upstream.idp.stop()




@pytest.fixture(scope="session")
def prefork() -> Iterator[object]:
    """A pre-imported Python that runs a script or module in a forked child, as ``python
    SCRIPT`` would (tests/support/prefork.py): one per session (per xdist worker), for the
    tests that check what examples, doc snippets and the demo print."""
    from tests.support.prefork import Zygote

    zygote = Zygote()
    yield zygote
    zygote.close()
