"""``python -m langchain_agent_auth.cli``: the same as ``agent-auth``."""

from langchain_agent_auth.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
