"""The package's shape is checked, not hoped for (issue 11).

* Layers: data flows down, imports point down (CONTRIBUTING.md draws them)::

      dev           devserver/  demo/  cli/
      integrations  mcp/  toolkit.py
      pillars       identity/  vault/  approval/  fga/  resume/
      protocol      oauth/
      core          core/

  ``core`` imports nothing of ours outside ``core``; ``oauth`` imports only ``core``; a pillar
  imports ``core``, ``oauth`` and ``resume``, never another pillar; integrations import pillars
  only through their public packages; nothing but dev imports dev. The top-level public modules
  (``errors.py``, ``guards.py`` ...) are facades over ``core`` for users: no module of the
  package imports them.
* Size: no module over 600 lines, no function over 80 (route tables excepted, not their
  handlers); sync/async twin pairs (``x`` / ``ax`` with bodies >= 80 % alike) stay rare.

Every import counts, including those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import difflib
import re
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "langchain_agent_auth"
ROOT = "langchain_agent_auth"

LAYER = {
    "core": 0, "_version": 0,
    "oauth": 1,
    "identity": 2, "vault": 2, "approval": 2, "fga": 2, "resume": 2,
    "mcp": 3, "toolkit": 3,
    "devserver": 4, "demo": 4, "cli": 4,
}
LAYER_NAME = {0: "core", 1: "protocol", 2: "pillar", 3: "integration", 4: "dev"}
PILLARS = {"identity", "vault", "approval", "fga"}
FACADES = {"errors", "crypto", "guards", "pause", "storage", "store_cas", "logs", "progress", "audit"}
#: Functions that are route tables (a list of routes built from handlers defined elsewhere).
ROUTE_TABLES: set[str] = set()
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
MAX_TWINS = 5


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _imports(name: str, path: Path) -> set[str]:
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # ``from langchain_agent_auth import errors`` imports the submodule
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m == ROOT or m.startswith(ROOT + ".")}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_module(module: str) -> bool:
    rel = Path(*module.split("."))
    return (PACKAGE.parent / rel.with_suffix(".py")).exists() or (PACKAGE.parent / rel / "__init__.py").exists()


def why_not(source: str, target: str) -> str | None:
    """Why ``source`` may not import ``target`` (both dotted module names), or ``None``."""
    src, dst = _top(source), _top(target)
    if source == ROOT or src in FACADES or dst == src:
        return None  # the public surface may re-export anything public
    if target == ROOT or dst in FACADES:
        return "imports a public facade (import from core instead)"
    if src not in LAYER or dst not in LAYER:
        return f"a module outside the layer map ({src if src not in LAYER else dst})"
    if LAYER[dst] > LAYER[src]:
        return f"points up ({LAYER_NAME[LAYER[src]]} -> {LAYER_NAME[LAYER[dst]]})"
    if LAYER[src] == 2 and LAYER[dst] == 2 and dst != "resume":
        return "a pillar imports another pillar"
    if LAYER[src] == 3 and LAYER[dst] == 2 and any(p.startswith("_") for p in target.split(".")[2:]):
        return "an integration imports a pillar's private module"
    return None


def layering_violations() -> list[str]:
    bad = []
    for name, path in _modules():
        for target in sorted(_imports(name, path)):
            if _is_module(target) and (why := why_not(name, target)):
                bad.append(f"{name} -> {target}: {why}")
    return bad


def test_imports_point_down_the_layers() -> None:
    assert layering_violations() == []


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        ("langchain_agent_auth.core.guards", "langchain_agent_auth.core.errors", True),
        ("langchain_agent_auth.core.guards", "langchain_agent_auth.oauth.jwt", False),
        ("langchain_agent_auth.oauth.jwt", "langchain_agent_auth.vault", False),
        ("langchain_agent_auth.vault._vault", "langchain_agent_auth.oauth.flows", True),
        ("langchain_agent_auth.vault._vault", "langchain_agent_auth.approval", False),
        ("langchain_agent_auth.vault._vault", "langchain_agent_auth.resume", True),
        ("langchain_agent_auth.vault._vault", "langchain_agent_auth.errors", False),
        ("langchain_agent_auth.mcp._guard", "langchain_agent_auth.vault", True),
        ("langchain_agent_auth.mcp._guard", "langchain_agent_auth.vault._vault", False),
        ("langchain_agent_auth.fga._engine", "langchain_agent_auth.devserver", False),
        ("langchain_agent_auth.cli._dev", "langchain_agent_auth.devserver._app", True),
        ("langchain_agent_auth.errors", "langchain_agent_auth.core.errors", True),
    ],
)
def test_the_contract_tells_down_from_up(source: str, target: str, allowed: bool) -> None:
    assert (why_not(source, target) is None) is allowed


def _functions() -> list[tuple[int, str]]:
    out = []
    for name, path in _modules():
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = f"{name}.{node.name}"
                if qual not in ROUTE_TABLES:
                    out.append((node.end_lineno - node.lineno + 1, qual))
    return out


def test_no_module_is_over_600_lines() -> None:
    long = {name: n for name, path in _modules() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_is_over_80_lines() -> None:
    assert sorted(f for f in _functions() if f[0] > MAX_FUNCTION_LINES) == []


def _norm(text: str) -> list[str]:
    text = re.sub(r"\bawait\s+", "", text)
    text = re.sub(r"\basync\s+(def|with|for)\b", r"\1", text)
    return [line.strip() for line in text.splitlines() if line.strip()]


def _body(fn: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> list[str]:
    stmts = fn.body
    if stmts and isinstance(stmts[0], ast.Expr) and isinstance(stmts[0].value, ast.Constant):
        stmts = stmts[1:]  # the docstring
    return _norm("\n".join(lines[stmts[0].lineno - 1 : fn.end_lineno])) if stmts else []


def twin_pairs() -> list[str]:
    """``x`` / ``ax`` pairs in one scope whose bodies (``await``/``async`` aside) are >= 80 % alike."""
    pairs = []
    for name, path in _modules():
        lines = path.read_text().splitlines()
        tree = _tree(path)
        for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef))]:
            funcs = {n.name: n for n in scope.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            for fname, fn in funcs.items():
                names = ("a" + fname, "_a" + fname.lstrip("_"))
                twin = next((funcs[a] for a in names if a in funcs and a != fname), None)
                if twin is None:
                    continue
                body = [_body(f, lines) for f in (fn, twin)]
                body[1] = [line.replace(twin.name, fname) for line in body[1]]
                if max(len(body[0]), len(body[1])) >= 3 and difflib.SequenceMatcher(None, *body).ratio() >= 0.8:
                    pairs.append(f"{name}.{fname}/{twin.name}")
    return pairs


def test_sync_async_twins_are_rare() -> None:
    pairs = twin_pairs()
    assert len(pairs) <= MAX_TWINS, pairs


@pytest.mark.parametrize("facade", sorted(FACADES))
def test_public_facades_re_export_core(facade: str) -> None:
    import importlib

    public = importlib.import_module(f"{ROOT}.{facade}")
    core = importlib.import_module(f"{ROOT}.core.{facade}")
    assert list(public.__all__) == list(core.__all__)
    for name in public.__all__:
        assert getattr(public, name) is getattr(core, name)
