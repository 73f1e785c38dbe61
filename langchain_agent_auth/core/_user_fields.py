"""Where a tool call's arguments name a user, and whether that user is the signed-in one (part
of the identity model in core: the identity pillar's guard and the approval pillar both apply it).

The rule :class:`~langchain_agent_auth.identity.IdentityGuard` enforces, exactly:

1. **Configured arguments** (``user_args``): a plain name (``"user_id"``) matches a key of
   that name *at any depth* of the arguments (inside nested objects and lists); a dotted
   path (``"recipient.owner_id"``) matches that location only (lists on the way are
   walked element by element). The value must equal the mapped attribute of the trusted
   user.
2. **Identity-named fields** (``identity_fields``, default :data:`IDENTITY_FIELDS`): a key
   whose name, ignoring case, ``_`` and ``-``, is one of these (``owner_id``,
   ``account_owner``, ``on_behalf_of``...) at any depth must hold one of the trusted
   user's identifiers (subject, email, or the per-user key); an object under such a key
   must hold them in its id-like keys (``id``, ``sub``, ``email``...).
3. **Known other users** (``known_users``, opt-in): any string anywhere in the arguments
   that equals (ignoring case) an identifier of a user other than the signed-in one is
   refused, whatever its key is called.

Free text that mentions someone ("send the report to Bob") is not a user reference and is
not checked: tools read the user from :func:`~langchain_agent_auth.identity.get_current_user`,
never from their arguments.

Example:
    >>> from langchain_agent_auth.identity import UserIdentity
    >>> alice = UserIdentity(subject="alice", email="alice@example.com")
    >>> find_foreign({"recipient": {"owner_id": "bob"}}, alice, {"user_id": "subject"}).path
    'recipient.owner_id'
    >>> find_foreign({"account_owner": "ALICE@example.com"}, alice, {}) is None
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from langchain_agent_auth.core.identity import UserIdentity

__all__ = ["IDENTITY_FIELDS", "Foreign", "find_foreign", "norm_field", "replace_at"]

#: Argument names that, at any depth, can only name the signed-in user.
IDENTITY_FIELDS: frozenset[str] = frozenset({
    "user", "user_id", "user_sub", "user_email", "username", "user_name", "owner", "owner_id", "owner_email",
    "account_owner", "account_owner_id", "on_behalf_of", "act_as", "acting_as", "impersonate",
    "impersonate_user", "principal", "principal_id", "requester", "requester_id",
})
_ID_KEYS = frozenset({"id", "sub", "subject", "email", "userid", "key", "login", "username"})
_MAX_DEPTH = 32


def norm_field(name: str) -> str:
    """A field name compared loosely: lower case, letters and digits only.

    Example:
        >>> norm_field("Account-Owner_ID")
        'accountownerid'
    """
    return "".join(ch for ch in name.lower() if ch.isalnum())


class Foreign(NamedTuple):
    """An argument that names someone other than the signed-in user."""

    path: str
    value: Any
    #: The trusted value to put there with ``on_conflict="override"`` (None: refuse only).
    replacement: Any = None
    parts: tuple[str, ...] = ()


def _identifiers(user: UserIdentity) -> set[str]:
    ids = {user.subject, user.key}
    if user.email:
        ids.add(user.email.lower())
    return ids


def _is_user(value: Any, ids: set[str]) -> bool:
    return isinstance(value, str) and (value in ids or value.lower() in ids)


def _entries(value: Any, path: tuple[str, ...], depth: int) -> Iterator[tuple[tuple[str, ...], str, Any]]:
    """Every (path, key, value) of the mappings inside ``value``."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            key = str(k)
            yield (*path, key), key, v
            yield from _entries(v, (*path, key), depth + 1)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _entries(v, (*path, str(i)), depth + 1)


def _strings(value: Any, path: tuple[str, ...], depth: int) -> Iterator[tuple[tuple[str, ...], str]]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, (*path, str(k)), depth + 1)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, str(i)), depth + 1)


def _at(path: tuple[str, ...], dotted: tuple[str, ...]) -> bool:
    """Whether ``path`` is the dotted location (list indexes on the way skipped)."""
    return tuple(p for p in path if not p.isdigit()) == dotted


def replace_at(args: Mapping[str, Any], parts: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``args`` with the value at ``parts`` replaced (copies only along the path).

    Example:
        >>> replace_at({"a": [{"owner": "bob"}], "b": 1}, ("a", "0", "owner"), "alice")
        {'a': [{'owner': 'alice'}], 'b': 1}
    """

    def put(node: Any, rest: tuple[str, ...]) -> Any:
        if not rest:
            return value
        head, tail = rest[0], rest[1:]
        if isinstance(node, Mapping):
            key = next((k for k in node if str(k) == head), head)
            return {**node, key: put(node.get(key), tail)}
        if isinstance(node, list | tuple) and head.isdigit() and int(head) < len(node):
            items = list(node)
            items[int(head)] = put(items[int(head)], tail)
            return items
        return node

    return put(dict(args), parts)


def find_foreign(args: Mapping[str, Any], user: UserIdentity, user_args: Mapping[str, str], *,
                 identity_fields: Iterable[str] = IDENTITY_FIELDS,
                 known_users: Callable[[str], bool] | Iterable[str] | None = None) -> Foreign | None:
    """The first argument that names a user other than ``user`` (see the module rule).

    Example:
        >>> from langchain_agent_auth.identity import UserIdentity
        >>> alice = UserIdentity(subject="alice")
        >>> find_foreign({"items": [{"user_id": "bob"}]}, alice, {"user_id": "subject"})
        Foreign(path='items.0.user_id', value='bob', replacement='alice', parts=('items', '0', 'user_id'))
    """
    ids = _identifiers(user)
    fields = {norm_field(f) for f in identity_fields}
    plain = {name: attr for name, attr in user_args.items() if "." not in name}
    dotted = {tuple(name.split(".")): attr for name, attr in user_args.items() if "." in name}
    for path, key, value in _entries(args, (), 0):
        where = ".".join(path)
        attr = plain.get(key) or next((a for d, a in dotted.items() if _at(path, d)), None)
        if attr is not None:
            trusted = getattr(user, attr)
            if value != trusted:
                return Foreign(where, value, trusted, path)
            continue
        if norm_field(key) in fields:
            if isinstance(value, Mapping):
                for k, v in value.items():
                    if norm_field(str(k)) in _ID_KEYS and isinstance(v, str) and not _is_user(v, ids):
                        return Foreign(f"{where}.{k}", v, user.subject, (*path, str(k)))
            elif isinstance(value, list | tuple):
                for i, v in enumerate(value):
                    if isinstance(v, str) and not _is_user(v, ids):
                        return Foreign(f"{where}.{i}", v, None)
            elif value is not None and not _is_user(value, ids):
                return Foreign(where, value, user.subject, path)
    if known_users is not None:
        if not callable(known_users):
            known = {str(u).lower() for u in known_users}
            known_users = lambda text: text.lower() in known  # noqa: E731
        for path, text in _strings(args, (), 0):
            if not _is_user(text, ids) and known_users(text):
                return Foreign(".".join(path), text, None)
    return None
