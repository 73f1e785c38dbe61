"""Lazy package attributes (PEP 562), so that importing a light submodule or running
``agent-auth --help`` does not load LangChain, LangGraph or the HTTP stack.

A package lists its public names once: in its ``if TYPE_CHECKING:`` block, as the imports a
type checker or an IDE reads. :func:`lazy_exports` reads that block from the package's source
and gives the package its ``__all__`` and a ``__getattr__`` that imports a name on first use.

Example:
    >>> import pathlib, sys, tempfile, types
    >>> source = "from typing import TYPE_CHECKING\\nif TYPE_CHECKING:\\n    from math import sqrt\\n"
    >>> init = pathlib.Path(tempfile.mkdtemp()) / "__init__.py"
    >>> _ = init.write_text(source)
    >>> getattr_, dir_, public = lazy_exports("pkg", str(init))
    >>> public, getattr_("sqrt")(9.0)
    (['sqrt'], 3.0)
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["lazy_exports", "public_imports"]


def public_imports(init_file: str) -> dict[str, str]:
    """``{name: module}`` for every ``from module import name`` under the file's top-level
    ``if TYPE_CHECKING:`` (names starting with ``_`` are not public and are left out)."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
                    for alias in stmt.names:
                        name = alias.asname or alias.name
                        if not name.startswith("_"):
                            found[name] = stmt.module
    return found


def lazy_exports(
    package: str, init_file: str, eager: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` from its ``TYPE_CHECKING`` imports.

    ``eager`` names the public names the package defines or imports itself (``__version__``).
    A resolved name is cached in the package's namespace, so later lookups cost nothing.
    """
    exports = public_imports(init_file)
    public = sorted({*exports, *eager}, key=str)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace = sys.modules.get(package)
        if namespace is not None:
            setattr(namespace, name, value)
        return value

    def __dir__() -> list[str]:
        namespace = sys.modules.get(package)
        return sorted(set(vars(namespace) if namespace else ()) | set(public))

    return __getattr__, __dir__, public
