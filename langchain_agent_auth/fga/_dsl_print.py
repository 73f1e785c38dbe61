"""Print an :class:`~langchain_agent_auth.fga._model.AuthorizationModel` in OpenFGA's DSL.

The layout ``fga model transform`` uses; module and file origins become comments, so a
model combined from modules prints as one file. :mod:`._dsl` parses it back to an equal model.

Example:
    >>> from langchain_agent_auth.fga._model import AuthorizationModel
    >>> text = "model\\n  schema 1.1\\ntype user\\ntype doc\\n  relations\\n    define viewer: [user]\\n"
    >>> print_dsl(AuthorizationModel.from_dsl(text)).splitlines()[-3:]
    ['type doc', '  relations', '    define viewer: [user]']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from langchain_agent_auth.fga._model_parts import (
    ComputedUserset,
    Difference,
    Intersection,
    RelationRef,
    Rewrite,
    This,
    TupleToUserset,
    Union,
)

if TYPE_CHECKING:
    from langchain_agent_auth.fga._model import AuthorizationModel

__all__ = ["print_dsl"]


def _print_rewrite(rw: Rewrite, refs: Sequence[RelationRef], top: bool) -> str:
    if isinstance(rw, This):
        return "[" + ", ".join(str(r) for r in refs) + "]"
    if isinstance(rw, ComputedUserset):
        return rw.relation
    if isinstance(rw, TupleToUserset):
        return f"{rw.computed} from {rw.tupleset}"
    if isinstance(rw, (Union, Intersection)):
        word = " or " if isinstance(rw, Union) else " and "
        text = word.join(_print_rewrite(c, refs, False) for c in rw.members)
    else:
        assert isinstance(rw, Difference)
        text = f"{_print_rewrite(rw.base, refs, False)} but not {_print_rewrite(rw.subtract, refs, False)}"
    return text if top else f"({text})"


def _origin(module: str | None, source: str | None) -> str:
    parts = []
    if module:
        parts.append(f"module: {module}")
    if source:
        parts.append(f"file: {source}")
    return ", ".join(parts)


def print_dsl(model: AuthorizationModel) -> str:
    """Print a model in OpenFGA's DSL (the layout ``fga model transform`` uses)."""
    lines = ["model", f"  schema {model.schema_version}"]
    for td in model.types.values():
        lines.append("")
        origin = _origin(td.module, td.source_file)
        lines.append(f"type {td.name}" + (f" # {origin}" if origin else ""))
        if td.relations:
            lines.append("  relations")
            for rel in td.relations.values():
                text = f"    define {rel.name}: {_print_rewrite(rel.rewrite, rel.directly_related, True)}"
                rel_origin = _origin(rel.module, rel.source_file)
                if rel_origin:
                    text += f" # extended by: {rel_origin}"
                lines.append(text)
    for cond in model.conditions.values():
        lines.append("")
        params = ", ".join(f"{k}: {v}" for k, v in cond.parameters.items())
        lines.append(f"condition {cond.name}({params}) {{")
        for expr_line in cond.expression.splitlines():
            lines.append(f"  {expr_line.strip()}" if expr_line.strip() else "")
        origin = _origin(cond.module, cond.source_file)
        lines.append("}" + (f" # {origin}" if origin else ""))
    return "\n".join(lines) + "\n"
