"""The OpenFGA modeling language (DSL, schema 1.1) <-> :class:`AuthorizationModel`.

A hand-written tokenizer and recursive-descent parser following OpenFGA's grammar:
``model`` / ``schema``, ``type``, ``relations``, ``define name: ...`` with direct type
restrictions (``[user, user:*, group#member, user with cond]``) first, then one kind of
operator per level (``or``, ``and``, or a single ``but not``; parentheses to mix),
``x from y``, and ``condition name(p: type, ...) { CEL }``. Modules (``module name``,
``extend type``) are combined by :func:`combine_modules` / :func:`load_model_file`
(``fga.mod``). Every error carries a line and a column. The printer is :mod:`._dsl_print`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from langchain_agent_auth.core.errors import ModelError
from langchain_agent_auth.fga._model import AuthorizationModel
from langchain_agent_auth.fga._model_parts import (
    ComputedUserset,
    Condition,
    Difference,
    Intersection,
    ParamType,
    Position,
    Relation,
    RelationRef,
    Rewrite,
    This,
    TupleToUserset,
    TypeDefinition,
    Union,
)

__all__ = ["combine_modules", "load_model_file", "parse_dsl"]

MAX_MODEL_BYTES = 1024 * 1024
MAX_NESTING = 32

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./]*")
_VERSION_RE = re.compile(r"\d+\.\d+")
_PUNCT = set(":[](),*#{}<>")


@dataclass(slots=True)
class _Tok:
    kind: str  # ident, version, punct, nl, eof
    value: str
    line: int
    col: int


def _error(
    message: str, tok: _Tok | None = None, line: int | None = None, col: int | None = None
) -> ModelError:
    if tok is not None:
        line, col = tok.line, tok.col
    return ModelError(f"syntax error: {message}", line=line, column=col)


def _describe(tok: _Tok) -> str:
    if tok.kind == "eof":
        return "end of input"
    if tok.kind == "nl":
        return "end of line"
    return repr(tok.value)


class _Lexer:
    """Tokens for the structural part; condition bodies are taken raw."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.col = 1

    def _advance(self, n: int) -> None:
        for ch in self.text[self.pos : self.pos + n]:
            if ch == "\n":
                self.line += 1
                self.col = 1
            else:
                self.col += 1
        self.pos += n

    def next(self) -> _Tok:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in " \t\f\r":
                self._advance(1)
                continue
            if ch == "#":
                prev = text[self.pos - 1] if self.pos else "\n"
                if prev in " \t\n\r\f":
                    end = text.find("\n", self.pos)
                    self._advance((len(text) if end < 0 else end) - self.pos)
                    continue
            break
        if self.pos >= len(text):
            return _Tok("eof", "", self.line, self.col)
        line, col = self.line, self.col
        ch = text[self.pos]
        if ch == "\n":
            self._advance(1)
            return _Tok("nl", "\n", line, col)
        m = _VERSION_RE.match(text, self.pos)
        if m and ch.isdigit():
            self._advance(m.end() - self.pos)
            return _Tok("version", m.group(), line, col)
        m = _IDENT_RE.match(text, self.pos)
        if m:
            value = m.group()
            self._advance(len(value))
            return _Tok("ident", value, line, col)
        if ch in _PUNCT:
            self._advance(1)
            return _Tok("punct", ch, line, col)
        raise _error(f"unexpected character {ch!r}", line=line, col=col)

    def raw_block(self) -> tuple[str, int, int]:
        """Text up to the matching '}' (strings and // comments respected)."""
        text, start = self.text, self.pos
        line, col = self.line, self.col
        depth, i = 0, self.pos
        while i < len(text):
            ch = text[i]
            if ch in "\"'":
                quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else ch
                j = i + len(quote)
                while j < len(text) and text[j : j + len(quote)] != quote:
                    if text[j] == "\\":
                        j += 1
                    elif text[j] == "\n" and len(quote) == 1:
                        break
                    j += 1
                i = j + len(quote)
                continue
            if text.startswith("//", i):
                end = text.find("\n", i)
                i = len(text) if end < 0 else end
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                if depth == 0:
                    body = text[start:i]
                    self._advance(i - start + 1)
                    return body, line, col
                depth -= 1
            i += 1
        raise _error("condition body has no closing '}'", line=line, col=col)


@dataclass
class _TypeBlock:
    name: str
    extend: bool
    pos: Position
    relations: list[tuple[Relation, Position]] = field(default_factory=list)


@dataclass
class _ParsedFile:
    kind: str  # "model" | "module"
    schema: str | None
    module: str | None
    types: list[_TypeBlock]
    conditions: list[tuple[Condition, Position]]


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text.encode("utf-8", "replace")) > MAX_MODEL_BYTES:
            raise ModelError(f"the model is larger than {MAX_MODEL_BYTES // 1024} KiB")
        self.lex = _Lexer(text)
        self.tok = self.lex.next()
        self.brackets = 0

    # -- token helpers -------------------------------------------------------------------

    def advance(self) -> _Tok:
        tok = self.tok
        self.tok = self.lex.next()
        while self.brackets > 0 and self.tok.kind == "nl":
            self.tok = self.lex.next()
        return tok

    def close(self) -> None:
        """Step past a closing bracket (newlines count again unless still inside one)."""
        self.tok = self.lex.next()
        while self.brackets > 0 and self.tok.kind == "nl":
            self.tok = self.lex.next()

    def skip_newlines(self) -> None:
        while self.tok.kind == "nl":
            self.advance()

    def expect_punct(self, ch: str) -> _Tok:
        if self.tok.kind != "punct" or self.tok.value != ch:
            raise _error(f"expected {ch!r} but found {_describe(self.tok)}", self.tok)
        return self.advance()

    def expect_ident(self, what: str) -> _Tok:
        if self.tok.kind != "ident":
            raise _error(f"expected {what} but found {_describe(self.tok)}", self.tok)
        return self.advance()

    def expect_keyword(self, word: str) -> _Tok:
        if self.tok.kind != "ident" or self.tok.value != word:
            raise _error(f"expected '{word}' but found {_describe(self.tok)}", self.tok)
        return self.advance()

    def end_of_statement(self) -> None:
        if self.tok.kind not in ("nl", "eof"):
            raise _error(f"unexpected {_describe(self.tok)}", self.tok)
        self.skip_newlines()

    def is_kw(self, word: str) -> bool:
        return self.tok.kind == "ident" and self.tok.value == word

    def accept_punct(self, ch: str) -> bool:
        """Step past ``ch`` if it is the current token; whether it was."""
        if self.tok.kind == "punct" and self.tok.value == ch:
            self.advance()
            return True
        return False

    def end_list(self, closer: str) -> None:
        """After a bracketed list's last item: leave the bracket, step past ``closer``."""
        self.brackets -= 1
        if self.tok.kind != "punct" or self.tok.value != closer:
            raise _error(f"expected ',' or {closer!r} but found {_describe(self.tok)}", self.tok)
        self.close()

    # -- file ---------------------------------------------------------------------------

    def parse_file(self) -> _ParsedFile:
        self.skip_newlines()
        schema: str | None = None
        module: str | None = None
        if self.is_kw("model"):
            self.advance()
            self.end_of_statement()
            self.expect_keyword("schema")
            if self.tok.kind != "version":
                raise _error(f"expected a schema version but found {_describe(self.tok)}", self.tok)
            schema = self.advance().value
            self.end_of_statement()
            kind = "model"
        elif self.is_kw("module"):
            self.advance()
            module = self.expect_ident("a module name").value
            self.end_of_statement()
            kind = "module"
        else:
            raise _error(f"a model starts with 'model' (or 'module'), found {_describe(self.tok)}", self.tok)
        types: list[_TypeBlock] = []
        conditions: list[tuple[Condition, Position]] = []
        while self.tok.kind != "eof":
            if self.is_kw("type"):
                types.append(self.parse_type(extend=False))
            elif self.is_kw("extend"):
                self.advance()
                if kind != "module":
                    raise _error("'extend type' is only allowed in a module", self.tok)
                types.append(self.parse_type(extend=True))
            elif self.is_kw("condition"):
                conditions.append(self.parse_condition())
            else:
                raise _error(f"expected 'type' or 'condition' but found {_describe(self.tok)}", self.tok)
            self.skip_newlines()
        return _ParsedFile(kind, schema, module, types, conditions)

    def parse_type(self, *, extend: bool) -> _TypeBlock:
        self.expect_keyword("type")
        name_tok = self.expect_ident("a type name")
        block = _TypeBlock(name_tok.value, extend, (name_tok.line, name_tok.col))
        self.end_of_statement()
        if not self.is_kw("relations"):
            if extend:
                raise _error("'extend type' needs a 'relations' block", self.tok)
            return block
        rel_tok = self.advance()
        self.end_of_statement()
        if not self.is_kw("define"):
            raise _error("'relations' must be followed by at least one 'define'", rel_tok)
        seen: set[str] = set()
        while self.is_kw("define"):
            self.advance()
            rname = self.expect_ident("a relation name")
            if rname.value in seen:
                raise _error(f"'{rname.value}' is already defined in '{block.name}'", rname)
            seen.add(rname.value)
            self.expect_punct(":")
            refs: list[RelationRef] = []
            rewrite = self.parse_relation_def(refs, allow_direct=True, depth=0)
            self.end_of_statement()
            block.relations.append((Relation(rname.value, rewrite, tuple(refs)), (rname.line, rname.col)))
        return block

    # -- relation definitions --------------------------------------------------------------

    def parse_relation_def(self, refs: list[RelationRef], *, allow_direct: bool, depth: int) -> Rewrite:
        if depth > MAX_NESTING:
            raise _error(f"relation definitions nest more than {MAX_NESTING} levels", self.tok)
        first = self.parse_term(refs, allow_direct=allow_direct, depth=depth)
        op: str | None = None
        members = [first]
        while self.tok.kind == "ident" and self.tok.value in ("or", "and", "but"):
            tok = self.tok
            word = self.advance().value
            if word == "but":
                self.expect_keyword("not")
                word = "but not"
            if op is None:
                op = word
            elif op == "but not" and word == "but not":
                raise _error("only one 'but not' per level; add parentheses", tok)
            elif op != word or op == "but not":
                raise _error(f"cannot mix '{op}' and '{word}' at the same level; add parentheses", tok)
            members.append(self.parse_term(refs, allow_direct=False, depth=depth))
        if op is None:
            return first
        if op == "or":
            return Union(tuple(members))
        if op == "and":
            return Intersection(tuple(members))
        return Difference(members[0], members[1])

    def parse_term(self, refs: list[RelationRef], *, allow_direct: bool, depth: int) -> Rewrite:
        tok = self.tok
        if tok.kind == "punct" and tok.value == "[":
            if not allow_direct:
                raise _error("direct type restrictions [...] must come first in a definition", tok)
            if refs:
                raise _error("a relation can have only one list of direct type restrictions", tok)
            refs.extend(self.parse_direct())
            return This()
        if tok.kind == "punct" and tok.value == "(":
            self.brackets += 1
            self.advance()
            inner = self.parse_relation_def(refs, allow_direct=allow_direct, depth=depth + 1)
            self.brackets -= 1
            self.expect_punct(")")
            return inner
        if tok.kind == "ident" and tok.value not in ("or", "and", "but", "from", "with"):
            name = self.advance().value
            if self.is_kw("from"):
                self.advance()
                tupleset = self.expect_ident("a relation name after 'from'").value
                if self.is_kw("from"):
                    raise _error(
                        "'x from y from z' is not allowed; define an intermediate relation", self.tok
                    )
                return TupleToUserset(tupleset, name)
            return ComputedUserset(name)
        raise _error(f"expected a relation, '[' or '(' but found {_describe(tok)}", tok)

    def parse_direct(self) -> list[RelationRef]:
        self.brackets += 1
        self.expect_punct("[")
        refs: list[RelationRef] = []
        while True:
            type_tok = self.expect_ident("a type name")
            wildcard, relation, condition = False, None, None
            if self.accept_punct(":"):
                self.expect_punct("*")
                wildcard = True
            elif self.accept_punct("#"):
                relation = self.expect_ident("a relation name after '#'").value
            if self.is_kw("with"):
                self.advance()
                condition = self.expect_ident("a condition name after 'with'").value
            refs.append(RelationRef(type_tok.value, relation, wildcard, condition))
            if not self.accept_punct(","):
                break
        self.end_list("]")
        return refs

    # -- conditions ---------------------------------------------------------------------------

    def parse_condition(self) -> tuple[Condition, Position]:
        self.expect_keyword("condition")
        name_tok = self.expect_ident("a condition name")
        self.brackets += 1
        self.expect_punct("(")
        params: dict[str, ParamType] = {}
        while True:
            ptok = self.expect_ident("a parameter name")
            if ptok.value in params:
                raise _error(f"parameter '{ptok.value}' is declared twice", ptok)
            self.expect_punct(":")
            ttok = self.expect_ident("a parameter type")
            text = ttok.value
            if self.accept_punct("<"):
                gtok = self.expect_ident("a generic type")
                self.expect_punct(">")
                text = f"{text}<{gtok.value}>"
            try:
                ptype = ParamType.parse(text)
            except ModelError:
                raise _error(f"unknown parameter type '{text}'", ttok) from None
            if ptype.name in ("map", "list") and ptype.generic and ptype.generic.name in ("map", "list"):
                raise _error("nested generic types are not supported", ttok)
            if ptype.name == "any":
                raise _error("unknown parameter type 'any'", ttok)
            params[ptok.value] = ptype
            if not self.accept_punct(","):
                break
        self.end_list(")")
        self.skip_newlines()
        if self.tok.kind != "punct" or self.tok.value != "{":
            raise _error(f"expected '{{' but found {_describe(self.tok)}", self.tok)
        body, line, col = self.lex.raw_block()
        self.tok = self.lex.next()
        expression = body.strip()
        if not expression:
            raise _error("the condition expression is empty", line=line, col=col)
        return (Condition(name_tok.value, expression, params), (name_tok.line, name_tok.col))


def _build(
    files: Sequence[tuple[str | None, _ParsedFile]], schema: str, id: str | None
) -> AuthorizationModel:
    types: dict[str, TypeDefinition] = {}
    conditions: dict[str, Condition] = {}
    positions: dict[tuple[str, ...], Position] = {}
    extensions: list[tuple[str | None, _ParsedFile, _TypeBlock]] = []
    for filename, pf in files:
        for block in pf.types:
            if block.extend:
                extensions.append((filename, pf, block))
                continue
            if block.name in types:
                raise ModelError(
                    f"type '{block.name}' is defined more than once", line=block.pos[0], column=block.pos[1]
                )
            td = TypeDefinition(block.name, module=pf.module, source_file=filename)
            positions[("type", block.name)] = block.pos
            for rel, pos in block.relations:
                td.relations[rel.name] = rel
                positions[("relation", block.name, rel.name)] = pos
            types[block.name] = td
        for cond, pos in pf.conditions:
            if cond.name in conditions:
                raise ModelError(
                    f"condition '{cond.name}' is defined more than once", line=pos[0], column=pos[1]
                )
            cond.module, cond.source_file = pf.module, filename
            conditions[cond.name] = cond
            positions[("condition", cond.name)] = pos
    for filename, pf, block in extensions:
        td = types.get(block.name)
        if td is None:
            raise ModelError(
                f"'extend type {block.name}' extends a type no module defines",
                line=block.pos[0],
                column=block.pos[1],
            )
        for rel, pos in block.relations:
            if rel.name in td.relations:
                raise ModelError(
                    f"relation '{rel.name}' is already defined in type '{block.name}'",
                    line=pos[0],
                    column=pos[1],
                )
            if pf.module != td.module:
                rel.module, rel.source_file = pf.module, filename
            td.relations[rel.name] = rel
            positions[("relation", block.name, rel.name)] = pos
    return AuthorizationModel(types, conditions, schema_version=schema, id=id, positions=positions)


def parse_dsl(text: str, *, id: str | None = None) -> AuthorizationModel:
    """Parse a model written in OpenFGA's DSL.

    Example:
        >>> m = parse_dsl("model\\n  schema 1.1\\ntype user\\n")
        >>> list(m.types)
        ['user']
        >>> try:
        ...     parse_dsl("model\\n  schema 1.1\\ntype doc\\n  relations\\n    define a: [user] or")
        ... except ModelError as e:
        ...     (e.line, e.column)
        (5, 24)
    """
    if not isinstance(text, str):
        raise ModelError("the DSL model must be a string")
    pf = _Parser(text).parse_file()
    if pf.kind != "model":
        raise ModelError("this is a module file: combine modules with an fga.mod file", line=1, column=1)
    return _build([(None, pf)], pf.schema or "1.1", id)


def combine_modules(
    files: Iterable[tuple[str, str]], *, schema: str = "1.2", id: str | None = None
) -> AuthorizationModel:
    """Combine module files (``(filename, text)`` pairs) into one model (schema 1.2)."""
    parsed: list[tuple[str | None, _ParsedFile]] = []
    for name, text in files:
        try:
            pf = _Parser(text).parse_file()
        except ModelError as exc:
            raise ModelError(f"{name}: {exc.message}") from None
        if pf.kind != "module":
            raise ModelError(f"{name}: a module file starts with 'module <name>'", line=1, column=1)
        parsed.append((name, pf))
    if not parsed:
        raise ModelError("no module files to combine")
    return _build(parsed, schema, id)


def load_model_file(path: str | Path) -> AuthorizationModel:
    """Load a model from ``.fga`` (DSL), ``.json`` or ``fga.mod`` (modules).

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.fga"
        >>> _ = path.write_text("model\\n  schema 1.1\\ntype user\\n")
        >>> list(load_model_file(path).types)
        ['user']
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"cannot read model file {p}: {exc.strerror}") from None
    if p.suffix == ".mod" or p.name == "fga.mod":
        import yaml

        try:
            spec = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ModelError(f"{p}: invalid fga.mod: {exc}") from None
        contents = spec.get("contents") if isinstance(spec, dict) else None
        if not isinstance(contents, list) or not contents:
            raise ModelError(f"{p}: fga.mod needs a 'contents' list of module files")
        files = []
        for item in contents:
            module_path = (p.parent / str(item)).resolve()
            if p.parent.resolve() not in module_path.parents:
                raise ModelError(f"{p}: module file {item!r} is outside the fga.mod directory")
            try:
                files.append((str(item), module_path.read_text(encoding="utf-8")))
            except OSError as exc:
                raise ModelError(f"{p}: cannot read module {item!r}: {exc.strerror}") from None
        return combine_modules(files, schema=str(spec.get("schema", "1.2")))
    if p.suffix == ".json" or text.lstrip().startswith("{"):
        return AuthorizationModel.from_json(text)
    return parse_dsl(text)
