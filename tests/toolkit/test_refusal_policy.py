"""AgentAuthToolkit(on_refusal=): the one refusal policy of its guards, sync and async."""

from __future__ import annotations

import asyncio

import pytest

from langchain_agent_auth import AgentAuthToolkit
from langchain_agent_auth.core.errors import AuthorizationError, IdentityError
from langchain_agent_auth.fga import EmbeddedAuthorizer
from langchain_agent_auth.identity import UserIdentity, acting_as

MODEL = "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n"


def _tool(kit: AgentAuthToolkit, name: str):
    return {t.name: t for t in kit.get_tools()}[name]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_message_is_the_default_and_raise_lets_the_typed_error_through(mode):
    def call(tool, args):
        return tool.invoke(args) if mode == "sync" else asyncio.run(tool.ainvoke(args))

    assert "can't tell who you are" in call(_tool(AgentAuthToolkit(), "whoami"), {})
    with pytest.raises(IdentityError):
        call(_tool(AgentAuthToolkit(on_refusal="raise"), "whoami"), {})

    fga = EmbeddedAuthorizer(MODEL)
    strict = AgentAuthToolkit(authorizer=fga, access={"doc": ["viewer"]}, on_refusal="raise")
    with acting_as(UserIdentity(subject="alice")), pytest.raises(AuthorizationError):
        call(_tool(strict, "what_can_i_access"), {"relation": "owner", "type": "doc"})


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError):
        AgentAuthToolkit(on_refusal="ignore")  # type: ignore[arg-type]
