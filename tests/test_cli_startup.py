"""``agent-auth`` starts without LangChain: the parser is built from light modules and each
subcommand imports what it uses when it runs (issue 15). Checked through ``sys.modules`` in a
fresh interpreter, never by timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("langchain", "langchain_core", "langgraph", "httpx", "starlette", "uvicorn", "authlib")


def _loaded_after(code: str) -> list[str]:
    probe = (
        "import contextlib, io, json, sys\n"
        f"{code}\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=os.environ.copy()
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_heavy_dependency() -> None:
    assert _loaded_after("import langchain_agent_auth.cli") == []


@pytest.mark.parametrize("argv", [[], ["dev"], ["approvals"], ["vault"], ["resumer"], ["fga"], ["demo"], ["audit"]])
def test_help_of_every_command_loads_no_heavy_dependency(argv: list[str]) -> None:
    code = (
        "from langchain_agent_auth.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as buf, contextlib.suppress(SystemExit):\n"
        f"    main({[*argv, '--help']!r})\n"
        "assert 'usage: agent-auth' in buf.getvalue(), buf.getvalue()\n"
    )
    assert _loaded_after(code) == []


def test_the_help_lists_every_subcommand() -> None:
    from langchain_agent_auth.cli import build_parser

    text = build_parser().format_help()
    for name in ("demo", "dev", "approvals", "vault", "resumer", "fga", "audit"):
        assert name in text


def test_the_vault_command_names_the_keyring_variable() -> None:
    from langchain_agent_auth import crypto
    from langchain_agent_auth.cli import _vault as _cli

    assert _cli._KEYS_ENV == crypto.ENV_VAR


@pytest.mark.parametrize("package", ["vault", "approval", "fga", "devserver", "audit", "resume", "mcp"])
def test_pillar_packages_load_their_names_on_first_use(package: str) -> None:
    code = (
        f"import langchain_agent_auth.{package} as pkg\n"
        "assert not [m for m in sys.modules if m.startswith('langchain_core')]\n"
        "names = list(pkg.__all__)\n"
        "assert sorted(set(dir(pkg)) & set(names)) == sorted(names)\n"
        "import importlib\n"
        "from langchain_agent_auth.core._lazy import public_imports\n"
        "core = getattr(pkg, '_core', pkg)  # a public facade over core lists its names there\n"
        "exports = public_imports(core.__file__)\n"
        "assert sorted(exports) == sorted(names)\n"
        "for name in names:\n"
        "    assert getattr(pkg, name) is getattr(importlib.import_module(exports[name]), name)\n"
        "    assert name in vars(pkg)  # cached after the first lookup\n"
    )
    _loaded_after(code)


def test_an_mcp_client_loads_only_the_auth_pieces() -> None:
    """What an MCP client imports (``MCPAuth`` and its authorizers) loads neither the agent
    integration (LangChain's agents and tools, LangGraph's graphs) nor the server side."""
    code = (
        "from langchain_agent_auth.mcp import HeadlessAuthorizer, MCPAuth, MCPServer\n"
        "heavy = ('langchain.', 'langchain_core.tools', 'langchain_core.tracers', 'langgraph.graph',\n"
        "         'langgraph.prebuilt', 'starlette', 'mcp.', 'langchain_agent_auth.mcp._guard',\n"
        "         'langchain_agent_auth.mcp._server', 'langchain_agent_auth.vault')\n"
        "loaded = sorted(m for m in sys.modules if f'{m}.'.startswith(heavy) or m.startswith(heavy))\n"
        "assert not loaded, loaded\n"
    )
    _loaded_after(code)


def test_an_unknown_name_is_an_attribute_error() -> None:
    import langchain_agent_auth.fga as fga

    with pytest.raises(AttributeError, match="no_such_name"):
        fga.no_such_name  # noqa: B018
