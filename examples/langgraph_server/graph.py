"""The deployed agent: identity from the server's authenticated user, fga-checked reads and a
CIBA-approved bank transfer. The server provides the checkpointer and the store.

Settings (environment): ``AGENT_AUTH_ISSUER``, ``AGENT_AUTH_CLIENT_ID`` and
``AGENT_AUTH_CLIENT_SECRET`` (the agent's client at the provider; else read from the
``agent-auth dev`` data directory ``AGENT_AUTH_DEV_DIR``), ``AGENT_AUTH_ENCRYPTION_KEYS``
(seals pending approvals; required on the server, and the resumer needs the same keys) and optionally ``AGENT_MODEL``
(``provider:model`` for ``init_chat_model``; default: a rule-based stand-in, no API key).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import uuid
from typing import Any

import httpx
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

from langchain_agent_auth import (
    EmbeddedAuthorizer,
    FGAMiddleware,
    IdentityMiddleware,
    OAuthClient,
    get_current_user,
)
from langchain_agent_auth.approval import ApprovalMiddleware, CIBAApprover, get_approval_token
from langchain_agent_auth.oauth import ClientCredentialsAuth


def provider_settings() -> dict[str, str]:
    """The provider and the agent's client there: from the environment, else `agent-auth dev`'s files."""
    if os.environ.get("AGENT_AUTH_ISSUER"):
        return {"issuer": os.environ["AGENT_AUTH_ISSUER"], "client_id": os.environ["AGENT_AUTH_CLIENT_ID"],
                "client_secret": os.environ["AGENT_AUTH_CLIENT_SECRET"]}
    dev = pathlib.Path(os.environ.get("AGENT_AUTH_DEV_DIR", ".agent-auth/dev"))
    secrets = json.loads((dev / "secrets.json").read_text())
    return {"issuer": json.loads((dev / "server.json").read_text())["url"], "client_id": "agent-client",
            "client_secret": secrets["clients"]["agent-client"]}


SETTINGS = provider_settings()
BANK = SETTINGS["issuer"] + "/api/bank/transfers"  # the local provider's demo bank API
DOCS = {"roadmap": "2030 roadmap: the agent platform launches in Q3.", "salaries": "Salary bands for 2030."}

fga = EmbeddedAuthorizer("""
model
  schema 1.1
type user
type document
  relations
    define viewer: [user]
""")
fga.write([("user:alice", "viewer", "document:roadmap")])

AGENT = OAuthClient(SETTINGS["issuer"], SETTINGS["client_id"], SETTINGS["client_secret"])
ciba = CIBAApprover(
    AGENT,
    audience="urn:agent-auth:demo-api",
    binding_message="Pay {amount} EUR to {to}",
    authorization_details=lambda tool_name, a: [{
        "type": "payment_initiation", "creditorName": a["to"],
        "instructedAmount": {"amount": f"{a['amount']}.00", "currency": "EUR"}}],
)

# How the resumer signs in to this server (`agent-auth resumer --auth graph:service_auth`): the agent
# client's own client-credentials token, which auth.py's trusted_services accepts.
service_auth = ClientCredentialsAuth(AGENT, resource=os.environ.get("AGENT_AUTH_AUDIENCE", "urn:example:api"))


@tool
def whoami() -> str:
    """Say who the signed-in user is."""
    return f"You are {get_current_user().subject}."


@tool
def read_doc(doc_id: str) -> str:
    """Read a company document."""
    return DOCS.get(doc_id, "no such document")


@tool
def transfer(amount: int, to: str) -> str:
    """Transfer euros from the user's bank account."""
    token = get_approval_token(required=True)
    r = httpx.post(BANK, json={"amount": f"{amount}.00", "currency": "EUR", "creditorName": to},
                   headers={"Authorization": f"Bearer {token.access_token}"}, timeout=10)
    r.raise_for_status()
    return f"sent {r.json()['amount']} EUR to {to} from {get_current_user().subject}'s account"


class RuleModel(GenericFakeChatModel):
    """Stands in for an LLM: maps a few phrasings to tool calls, then reports the result."""

    messages: Any = iter(())

    def bind_tools(self, tools: Any, **kwargs: Any) -> RuleModel:
        return self

    def _generate(self, messages: list, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(("Sorry: " if last.status == "error" else "Done: ") + str(last.content))
        else:
            text, call = str(last.content).lower(), None
            if "who am i" in text:
                call = ("whoami", {})
            elif m := re.search(r"pay (\w+) (\d+)", text):
                call = ("transfer", {"amount": int(m[2]), "to": m[1].title()})
            elif m := re.search(r"read the (\w+)", text):
                call = ("read_doc", {"doc_id": m[1]})
            reply = AIMessage("I can say who you are, read documents and pay people.") if call is None else \
                AIMessage("", tool_calls=[{"name": call[0], "args": call[1], "id": f"call_{uuid.uuid4().hex[:12]}"}])
        return ChatResult(generations=[ChatGeneration(message=reply)])


def model() -> Any:
    if os.environ.get("AGENT_MODEL"):
        from langchain.chat_models import init_chat_model

        return init_chat_model(os.environ["AGENT_MODEL"])
    return RuleModel()


graph = create_agent(
    model(),
    [whoami, read_doc, transfer],
    middleware=[
        IdentityMiddleware(),  # the server's authenticated user (auth.py), never the client's word
        FGAMiddleware(fga, {"read_doc": {"relation": "viewer", "object": "document:{doc_id}"}}),
        ApprovalMiddleware({"transfer": ciba}),
    ],
)
