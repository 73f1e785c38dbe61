"""The server's authentication: the toolkit's ``langgraph_sdk.Auth`` handler.

Every request needs ``Authorization: Bearer <access token>`` issued by the provider for this
agent's API; the verified user becomes the run's user (``langgraph_auth_user``, which the
identity pillar trusts above anything a client sends). Threads, runs, assistants and store
namespaces are scoped to their owner. The agent's own client, with a client-credentials token,
is a trusted service: the remote resumer, which may resume a run on its user's behalf.

Settings: ``AGENT_AUTH_ISSUER`` and ``AGENT_AUTH_CLIENT_ID`` (a deployment), else the
``agent-auth dev`` whose data directory ``AGENT_AUTH_DEV_DIR`` names.
"""

import json
import os
import pathlib

from langchain_agent_auth.identity.langgraph_auth import langgraph_auth

DEV_DIR = pathlib.Path(os.environ.get("AGENT_AUTH_DEV_DIR", ".agent-auth/dev"))
ISSUER = os.environ.get("AGENT_AUTH_ISSUER") or json.loads((DEV_DIR / "server.json").read_text())["url"]

auth = langgraph_auth(
    issuer=ISSUER,
    audience=os.environ.get("AGENT_AUTH_AUDIENCE", "urn:example:api"),
    trusted_services=[os.environ.get("AGENT_AUTH_CLIENT_ID", "agent-client")],  # the resumer's client
)
