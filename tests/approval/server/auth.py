"""The toolkit's auth handler with a trusted resumer service (env set by the test fixture)."""

import os

from langchain_agent_auth.identity.langgraph_auth import langgraph_auth

auth = langgraph_auth(issuer=os.environ["IDP_ISSUER"], audience=os.environ["API_RESOURCE"],
                      trusted_services=[os.environ["RESUMER_CLIENT_ID"]])
