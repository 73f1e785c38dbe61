"""The toolkit's auth handler, configured from the environment the test fixture sets."""

import os

from langchain_agent_auth.identity.langgraph_auth import langgraph_auth

auth = langgraph_auth(issuer=os.environ["TEST_ISSUER"], audience=os.environ["TEST_AUDIENCE"])
