"""Fixtures of the fga tests.

An OpenFGA-API server on loopback for the session, and ``authorizer``: the same data
behind the embedded engine and behind the OpenFGA backend (the real openfga-sdk against
that server), so the guard and retriever tests run on each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from langchain_agent_auth.fga import EmbeddedAuthorizer, OpenFGAAuthorizer
from tests.fga._fga_support import DOCS_MODEL, SEED_TUPLES, ServerThread, new_store


@pytest.fixture(scope="session")
def fga_server() -> Iterator[ServerThread]:
    server = ServerThread()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "openfga"])
def authorizer(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "embedded":
        auth: Any = EmbeddedAuthorizer(DOCS_MODEL)
        auth.write(SEED_TUPLES)
        yield auth
        return
    server = request.getfixturevalue("fga_server")
    store_id, model_id = new_store(server.url)
    auth = OpenFGAAuthorizer(server.url, store_id, authorization_model_id=model_id)
    auth.write(SEED_TUPLES)
    yield auth
    auth.close()
