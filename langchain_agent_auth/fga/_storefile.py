"""OpenFGA store files (``.fga.yaml``): a model and the tuples a store starts from.

The format of ``fga model test`` and ``fga store import``: ``model`` (DSL text) or
``model_file`` (``.fga``, ``.json`` or ``fga.mod``), ``tuples`` and/or ``tuple_file`` /
``tuple_files`` (YAML, JSON or CSV, as ``fga tuple write --file`` reads them), and
``tests`` (``check``, ``list_objects``, ``list_users`` assertions). This module loads the
model and the tuples; the tests are run by ``agent-auth fga test``
(``cli/_fga_testfile.py``, which uses this loader). Files a store file names must lie in
its directory, the rule :func:`~langchain_agent_auth.fga.load_model_file` applies to the
modules of an ``fga.mod``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from langchain_agent_auth.core.errors import ConfigurationError, ModelError
from langchain_agent_auth.fga._dsl import load_model_file
from langchain_agent_auth.fga._model import AuthorizationModel
from langchain_agent_auth.fga._tuple import TupleKey, coerce_tuples

if TYPE_CHECKING:
    from langchain_agent_auth.fga._embedded import EmbeddedAuthorizer

__all__ = [
    "StoreFile",
    "load_store_file",
    "load_tuple_file",
    "read_store_data",
    "read_yaml",
    "store_setup",
    "tuples_in",
    "write_tuples",
]

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: large tuple files


def read_yaml(text: str) -> Any:
    """Parse YAML with a safe loader.

    Example:
        >>> read_yaml("tuples: [{user: 'user:anne'}]")
        {'tuples': [{'user': 'user:anne'}]}
    """
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (C or Python)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def load_tuple_file(path: str | Path) -> list[TupleKey]:
    """Tuples from a YAML, JSON or CSV file (the formats ``fga tuple write --file`` reads).

    Raises :class:`~langchain_agent_auth.errors.ConfigurationError` for a file that cannot
    be read or parsed, :class:`~langchain_agent_auth.errors.TupleError` for a bad tuple.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "tuples.yaml"
        >>> _ = path.write_text("- {user: 'user:anne', relation: viewer, object: 'doc:1'}\\n")
        >>> [str(t) for t in load_tuple_file(path)]
        ['doc:1#viewer@user:anne']
    """
    p = Path(path)
    text = _read_text(p, "tuple file")
    try:
        if p.suffix.lower() == ".csv":
            return [_csv_tuple(row) for row in csv.DictReader(io.StringIO(text))]
        data = json.loads(text) if p.suffix.lower() == ".json" else read_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{p}: invalid YAML: {exc}") from None
    except (ValueError, KeyError) as exc:  # bad JSON, a CSV without a column
        raise ConfigurationError(f"{p}: not a tuple file: {exc!r}") from None
    return coerce_tuples(data or [])


def _csv_tuple(row: Mapping[str, str]) -> TupleKey:
    user = f"{row['user_type']}:{row['user_id']}"
    if row.get("user_relation"):
        user += f"#{row['user_relation']}"
    cond = row.get("condition_name") or None
    ctx = json.loads(row["condition_context"]) if row.get("condition_context") else None
    return TupleKey(user, row["relation"], f"{row['object_type']}:{row['object_id']}", cond, ctx)


def _inside(base: Path, name: str, label: str, error: type[ConfigurationError] = ConfigurationError) -> Path:
    path = (base / name).resolve()
    if base.resolve() not in path.parents:
        raise error(f"{name!r} is outside the {label}'s directory")
    return path


def tuples_in(spec: Mapping[str, Any], base: Path, *, label: str = "store file") -> list[TupleKey]:
    """The tuples a store file (or one of its tests) lists: ``tuples``, ``tuple_file``,
    ``tuple_files``, the files resolved in ``base`` (and refused outside it)."""
    tuples = coerce_tuples(spec.get("tuples") or [])
    names = [spec.get("tuple_file"), *(spec.get("tuple_files") or [])]
    for name in names:
        if name:
            tuples += load_tuple_file(_inside(base, str(name), label))
    return tuples


def store_setup(
    data: Mapping[str, Any], base: Path, *, label: str = "store file"
) -> tuple[AuthorizationModel, list[TupleKey]]:
    """The model of a parsed store file and the tuples every test starts from.

    ``base`` is the store file's directory; ``label`` names the file in errors.
    """
    if data.get("model"):
        from langchain_agent_auth.fga._embedded import coerce_model

        text = data["model"]  # DSL text, or the model's JSON as a mapping
        model = coerce_model(text if isinstance(text, Mapping) else str(text))
    elif data.get("model_file"):
        model = load_model_file(_inside(base, str(data["model_file"]), label, ModelError))
    else:
        raise ModelError(f"the {label} needs 'model' or 'model_file'")
    return model, tuples_in(data, base, label=label)


@dataclass(frozen=True)
class StoreFile:
    """A loaded store file: its model, its tuples (duplicates dropped) and its tests (not run)."""

    path: Path
    model: AuthorizationModel
    tuples: list[TupleKey] = field(default_factory=list)
    tests: list[Mapping[str, Any]] = field(default_factory=list)


def load_store_file(path: str | Path) -> StoreFile:
    """Read a ``.fga.yaml`` store file: its model and tuples, with the files they name.

    Raises :class:`~langchain_agent_auth.errors.ConfigurationError` for a file that cannot
    be read, invalid YAML, or a ``tuple_file`` outside the file's directory;
    :class:`~langchain_agent_auth.errors.ModelError` (a ``ConfigurationError``) for no
    model, an invalid one, or a ``model_file`` outside the directory.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "repo.fga").write_text("model\\n  schema 1.1\\ntype user\\ntype repo\\n"
        ...                                      "  relations\\n    define admin: [user]\\n")
        >>> path = folder / "store.fga.yaml"
        >>> _ = path.write_text('''
        ... model_file: repo.fga
        ... tuples: [{user: "user:anne", relation: admin, object: "repo:site"}]
        ... tests: [{name: admins, check: [{user: "user:anne", object: "repo:site", assertions: {admin: true}}]}]
        ... ''')
        >>> store = load_store_file(path)
        >>> list(store.model.types), [str(t) for t in store.tuples], [t["name"] for t in store.tests]
        (['user', 'repo'], ['repo:site#admin@user:anne'], ['admins'])
    """
    p = Path(path)
    data = read_store_data(p)
    model, tuples = store_setup(data, p.parent)
    tests = data.get("tests") or []
    if not isinstance(tests, list):
        raise ConfigurationError(f"{p}: 'tests' must be a list")
    return StoreFile(p, model, _unique(tuples), list(tests))


def read_store_data(path: Path, *, label: str = "store file") -> Mapping[str, Any]:
    """The parsed mapping of a store file (typed errors for a missing file or bad YAML)."""
    text = _read_text(path, label)
    try:
        data = read_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{path}: not a {label} (a mapping expected)")
    return data


def _unique(tuples: Iterable[TupleKey]) -> list[TupleKey]:
    return list({t.key: t for t in tuples}.values())


def write_tuples(auth: EmbeddedAuthorizer, tuples: Iterable[TupleKey], *, on_duplicate: str = "error") -> None:
    """Write ``tuples`` (duplicates dropped) in requests of at most 1,000."""
    unique = _unique(tuples)
    for start in range(0, len(unique), 1000):
        auth.write(unique[start : start + 1000], on_duplicate=on_duplicate)
