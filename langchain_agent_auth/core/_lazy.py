"""Lazy package attributes (PEP 562), so that importing a light submodule or running
``agent-auth --help`` does not load LangChain, LangGraph or the HTTP stack.

Example:
    >>> import types
    >>> mod = types.ModuleType("pkg")
    >>> mod.__getattr__, mod.__dir__ = lazy_exports("pkg", {"sqrt": "math"}, ["sqrt"])
    >>> mod.__getattr__("sqrt")(9.0)
    3.0
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package`` resolving ``exports`` (name -> module).

    A resolved name is cached in the package's namespace, so later lookups cost nothing.
    """
    names = sorted(set(public) | set(exports))

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
        return sorted(set(vars(namespace) if namespace else ()) | set(names))

    return __getattr__, __dir__
