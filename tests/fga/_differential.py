"""Differential cases by category, run against OpenFGA's own engine (``fga model test``).

Each generator builds one random case (a model, tuples and queries) aimed at a corner
where the embedded engine once disagreed with OpenFGA (issue 14):

* ``cycles``: cycles through set operators across types (a group membership cycle, and
  elsewhere in the model, or not, an exclusion/intersection on a tuple-to-userset cycle);
* ``mixed_conditions``: multi-tuple reads mixing conditional and plain tuples, with and
  without the condition's parameters;
* ``wildcard_exclusion``: public wildcards under nested exclusions (list_users mostly);
* ``recursive_conditions``: recursive tuple-to-userset / userset relations with conditions,
  and intersections/exclusions over them (list_objects mostly);
* ``wildcard_queries``: ``user:*`` queries, on relations with and without a wildcard.

:func:`run_cases` writes the cases, runs OpenFGA once over all of them, and compares every
answer (check, list_objects, list_users), errors included, with the embedded engine's.
Used by ``tests/fga/test_fga_differential_categories.py`` (a bounded run) and
``benchmarks/fga_differential.py`` (a larger one that re-runs OpenFGA on disagreements).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from langchain_agent_auth.core.errors import AuthorizationError
from langchain_agent_auth.fga import AuthorizationModel, EmbeddedAuthorizer
from langchain_agent_auth.fga._engine_validate import validate_tuple
from langchain_agent_auth.fga._tuple import coerce_tuples

FGA = shutil.which("fga") or str(Path(sys.executable).parent / "fga")
USERS = ["user:u1", "user:u2", "user:u3"]
IDS = ["a", "b", "c"]
CONDITIONS = """
condition small(x: int) {
  x < 10
}

condition region_ok(x: int, region: string) {
  x > 2 && region == "eu"
}
"""
CONTEXTS: list[dict[str, Any]] = [{}, {"x": 3}, {"x": 15}, {"x": 5, "region": "eu"}, {"region": "us"}]


def _cond(rng: random.Random, name: str | None = None) -> dict[str, Any]:
    name = name or rng.choice(["small", "region_ok"])
    out: dict[str, Any] = {"name": name}
    r = rng.random()
    if r < 0.4:
        out["context"] = {"x": rng.randint(0, 20)}
    elif r < 0.6 and name == "region_ok":
        out["context"] = {"region": rng.choice(["eu", "us"])}
    return out


def _t(user: str, relation: str, obj: str, cond: dict[str, Any] | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"user": user, "relation": relation, "object": obj}
    if cond:
        t["condition"] = cond
    return t


@dataclass
class Case:
    category: str
    seed: int
    model: str
    tuples: list[dict[str, Any]]
    checks: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    lists: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    users: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.category}-{self.seed}"

    def test_file(self) -> dict[str, Any]:
        tuples = list({(t["user"], t["relation"], t["object"]): t for t in self.tuples}.values())
        return {
            "name": self.name,
            "model": self.model,
            "tuples": tuples,
            "tests": [
                {
                    "name": self.name,
                    "check": [
                        {"user": u, "object": o, "context": c, "assertions": {r: False}}
                        for u, r, o, c in _unique(self.checks)
                    ],
                    "list_objects": [
                        {"user": u, "type": t, "context": c, "assertions": {r: []}}
                        for u, r, t, c in _unique(self.lists)
                    ],
                    "list_users": [
                        {"object": o, "user_filter": [f], "context": c, "assertions": {r: {"users": []}}}
                        for o, r, f, c in _unique(self.users)
                    ],
                }
            ],
        }


def _unique(items: list[Any]) -> list[Any]:
    return list({json.dumps(i, sort_keys=True): i for i in items}.values())


# --------------------------------------------------------------------------- generators


def gen_cycles(rng: random.Random, seed: int) -> Case:
    combine = rng.choice(["but not", "and"])
    folder_shape = rng.choice(
        [
            "([user] or owner from parent) but not blocked",
            "[user] or owner from parent",
            "[user] and (blocked or owner from parent)",
            "[user] or (owner from parent but not blocked)",
            None,
        ]
    )
    model = (
        "model\n  schema 1.1\ntype user\ntype group\n  relations\n"
        "    define member: [user, group#member]\n    define reader: [user, group#member]\n"
        f"    define can_x: reader {combine} member\n"
    )
    if folder_shape:
        model += (
            "type folder\n  relations\n    define parent: [folder]\n    define blocked: [user]\n"
            f"    define owner: {folder_shape}\n"
        )
    groups = [f"group:{i}" for i in IDS]
    tuples = []
    for _ in range(rng.randint(2, 6)):
        a, b = rng.choice(groups), rng.choice(groups)
        if a != b:
            tuples.append(_t(f"{a}#member", "member", b))
    for _ in range(rng.randint(1, 4)):
        tuples.append(_t(rng.choice(USERS), rng.choice(["member", "reader"]), rng.choice(groups)))
    if rng.random() < 0.3:
        tuples.append(_t(f"{rng.choice(groups)}#member", "reader", rng.choice(groups)))
    if folder_shape:
        folders = [f"folder:{i}" for i in IDS]
        for _ in range(rng.randint(1, 4)):
            a, b = rng.choice(folders), rng.choice(folders)
            if a != b:
                tuples.append(_t(a, "parent", b))
        for _ in range(rng.randint(1, 3)):
            tuples.append(_t(rng.choice(USERS), rng.choice(["owner", "blocked"]), rng.choice(folders)))
    case = Case("cycles", seed, model, tuples)
    for _ in range(8):
        case.checks.append((rng.choice(USERS), rng.choice(["can_x", "member", "reader"]), rng.choice(groups), {}))
    for rel in ("can_x", "member"):
        case.lists.append((rng.choice(USERS), rel, "group", {}))
    case.users.append((rng.choice(groups), "can_x", {"type": "user"}, {}))
    if folder_shape:
        case.checks.append((rng.choice(USERS), "owner", f"folder:{rng.choice(IDS)}", {}))
        case.lists.append((rng.choice(USERS), "owner", "folder", {}))
    return case


def _reader(rng: random.Random) -> str:
    op = rng.choice(["and", "but not", "or"])
    other = rng.choice(["viewer from parent", "[user]", "[user with small]"])
    if other.startswith("[") and op != "but not":
        return f"{other} {op} viewer"  # direct restrictions come first in the DSL
    if other.startswith("["):
        return f"viewer but not {rng.choice(['blocked_x', 'viewer from parent'])}".replace("blocked_x", "owner")
    return f"viewer {op} {other}"


def gen_mixed_conditions(rng: random.Random, seed: int) -> Case:
    model = (
        "model\n  schema 1.1\ntype user\ntype team\n  relations\n    define member: [user, user with small]\n"
        "type folder\n  relations\n    define parent: [folder, folder with region_ok]\n"
        "    define viewer: [user, team#member, team#member with small]\n"
        "    define owner: [user]\n"
        "type doc\n  relations\n    define parent: [folder, folder with small]\n    define owner: [user]\n"
        "    define viewer: [user, user with region_ok, team#member, team#member with small, "
        "team#member with region_ok] or viewer from parent\n"
        f"    define reader: {_reader(rng)}\n" + CONDITIONS
    )
    tuples = []
    for _ in range(rng.randint(2, 5)):
        cond = _cond(rng) if rng.random() < 0.5 else None
        if cond and cond["name"] == "region_ok":
            cond = {**cond, "name": "small"}
        tuples.append(_t(rng.choice(USERS), "member", f"team:{rng.choice(IDS)}", cond))
    for _ in range(rng.randint(3, 8)):
        r = rng.random()
        obj = f"doc:{rng.choice(IDS)}"
        if r < 0.4:
            cond = rng.choice([None, {"name": "small", **({"context": {"x": 1}} if rng.random() < 0.5 else {})}])
            if cond is None:
                tuples.append(_t(f"team:{rng.choice(IDS)}#member", "viewer", obj))
            else:
                tuples.append(_t(f"team:{rng.choice(IDS)}#member", "viewer", obj, cond))
        elif r < 0.7:
            cond = rng.choice([None, {"name": "small"}])
            tuples.append(_t(f"folder:{rng.choice(IDS)}", "parent", obj, cond))
        else:
            cond = rng.choice([None, {"name": "region_ok"}, {"name": "region_ok", "context": {"region": "eu"}}])
            tuples.append(_t(rng.choice(USERS), "viewer", obj, cond))
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        obj = f"folder:{rng.choice(IDS)}"
        if r < 0.5:
            tuples.append(_t(rng.choice(USERS), "viewer", obj))
        else:
            sub = f"folder:{rng.choice(IDS)}"
            if sub != obj:
                tuples.append(_t(sub, "parent", obj, rng.choice([None, {"name": "region_ok"}])))
    case = Case("mixed_conditions", seed, model, tuples)
    for _ in range(10):
        case.checks.append(
            (rng.choice(USERS), rng.choice(["viewer", "reader"]), f"doc:{rng.choice(IDS)}", rng.choice(CONTEXTS))
        )
    for _ in range(3):
        case.lists.append((rng.choice(USERS), rng.choice(["viewer", "reader"]), "doc", rng.choice(CONTEXTS)))
    for _ in range(2):
        case.users.append((f"doc:{rng.choice(IDS)}", "viewer", {"type": "user"}, rng.choice(CONTEXTS)))
    return case


def gen_wildcard_exclusion(rng: random.Random, seed: int) -> Case:
    shapes = [
        "[user, user:*] but not (viewer but not editor)",
        "[user, user:*] but not viewer",
        "([user, user:*] but not blocked) but not editor",
        "[user, user:*] but not (editor but not blocked)",
        "viewer but not (editor but not blocked)",
        "[user, user:*] and (viewer but not blocked)",
        "([user, user:*] or viewer) but not (blocked but not editor)",
    ]
    model = (
        "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define blocked: [user, user:*]\n"
        f"    define viewer: [user, user:*] but not blocked\n    define editor: [user] but not blocked\n"
        f"    define can_comment: {rng.choice(shapes)}\n    define can_share: {rng.choice(shapes)}\n"
    )
    tuples = []
    docs = [f"doc:{i}" for i in IDS[:2]]
    people = [*USERS, "user:u4"]
    for _ in range(rng.randint(3, 9)):
        rel = rng.choice(["blocked", "viewer", "editor", "can_comment", "can_share"])
        user = "user:*" if rel != "editor" and rng.random() < 0.4 else rng.choice(people)
        tuples.append(_t(user, rel, rng.choice(docs)))
    case = Case("wildcard_exclusion", seed, model, tuples)
    for doc in docs:
        for rel in ("can_comment", "can_share", "viewer"):
            case.users.append((doc, rel, {"type": "user"}, {}))
    for _ in range(6):
        case.checks.append(
            (rng.choice([*people, "user:*"]), rng.choice(["can_comment", "can_share"]), rng.choice(docs), {})
        )
    return case


def gen_recursive_conditions(rng: random.Random, seed: int) -> Case:
    ops = [
        "viewer from parent or (viewer and blocked from parent)",
        "viewer and blocked",
        "(viewer and blocked from parent) or viewer from parent",
        "viewer but not blocked from parent",
        "viewer from parent and viewer",
    ]
    pcond = rng.choice(["small", "region_ok"])
    model = (
        "model\n  schema 1.1\ntype user\ntype group\n  relations\n"
        "    define member: [user, user with small, group#member]\n"
        "type folder\n  relations\n"
        f"    define parent: [folder, folder with {pcond}]\n"
        "    define blocked: [user, user:*]\n"
        "    define viewer: [user, user with small, group#member] or viewer from parent\n"
        f"    define can_manage: {rng.choice(ops)}\n" + CONDITIONS
    )
    folders = [f"folder:{i}" for i in IDS]
    tuples = []
    for _ in range(rng.randint(1, 4)):
        a, b = rng.choice(folders), rng.choice(folders)
        if a != b:
            tuples.append(_t(a, "parent", b, _cond(rng, pcond) if rng.random() < 0.5 else None))
    for _ in range(rng.randint(1, 4)):
        small = {"name": "small"} if rng.random() < 0.4 else None
        tuples.append(_t(rng.choice(USERS), "viewer", rng.choice(folders), small))
    for _ in range(rng.randint(0, 3)):
        tuples.append(_t(rng.choice([*USERS, "user:*"]), "blocked", rng.choice(folders)))
    for _ in range(rng.randint(0, 3)):
        g = f"group:{rng.choice(IDS)}"
        if rng.random() < 0.5:
            tuples.append(_t(rng.choice(USERS), "member", g, {"name": "small"} if rng.random() < 0.5 else None))
        else:
            tuples.append(_t(f"{g}#member", "viewer", rng.choice(folders)))
    case = Case("recursive_conditions", seed, model, tuples)
    for _ in range(8):
        case.checks.append(
            (rng.choice(USERS), rng.choice(["viewer", "can_manage"]), rng.choice(folders), rng.choice(CONTEXTS))
        )
    for _ in range(4):
        case.lists.append((rng.choice(USERS), rng.choice(["viewer", "can_manage"]), "folder", rng.choice(CONTEXTS)))
    return case


def gen_wildcard_queries(rng: random.Random, seed: int) -> Case:
    viewer = rng.choice(["[user, user:*]", "[user]", "[user, user with small]", "[user:*, user with small]"])
    pcond = rng.choice(["small", "region_ok"])
    model = (
        "model\n  schema 1.1\ntype user\ntype folder\n  relations\n"
        f"    define parent: [folder, folder with {pcond}]\n"
        f"    define viewer: {viewer} or viewer from parent\n"
        f"    define editor: {rng.choice(['[user]', '[user, user:*]'])} or editor from parent\n"
        f"    define both: viewer {rng.choice(['and', 'but not', 'or'])} editor\n" + CONDITIONS
    )
    folders = [f"folder:{i}" for i in IDS]
    tuples = []
    for _ in range(rng.randint(1, 4)):
        a, b = rng.choice(folders), rng.choice(folders)
        if a != b:
            tuples.append(_t(a, "parent", b, _cond(rng, pcond) if rng.random() < 0.5 else None))
    for _ in range(rng.randint(1, 4)):
        rel = rng.choice(["viewer", "editor"])
        user = "user:*" if rng.random() < 0.4 else rng.choice(USERS)
        tuples.append(_t(user, rel, rng.choice(folders)))
    case = Case("wildcard_queries", seed, model, tuples)
    for _ in range(8):
        case.checks.append(
            (
                rng.choice(["user:*", "user:*", *USERS]),
                rng.choice(["viewer", "editor", "both"]),
                rng.choice(folders),
                rng.choice(CONTEXTS),
            )
        )
    for _ in range(3):
        case.lists.append(("user:*", rng.choice(["viewer", "editor", "both"]), "folder", rng.choice(CONTEXTS)))
    return case


GENERATORS: dict[str, Callable[[random.Random, int], Case]] = {
    "cycles": gen_cycles,
    "mixed_conditions": gen_mixed_conditions,
    "wildcard_exclusion": gen_wildcard_exclusion,
    "recursive_conditions": gen_recursive_conditions,
    "wildcard_queries": gen_wildcard_queries,
}


def make_cases(seeds: range, categories: list[str] | None = None) -> list[Case]:
    """One case per category and seed; tuples the model does not allow are dropped."""
    out = []
    for category in categories or list(GENERATORS):
        for seed in seeds:
            case = GENERATORS[category](random.Random(f"{category}:{seed}"), seed)
            model = AuthorizationModel.from_dsl(case.model)
            kept = []
            for t in case.tuples:
                try:
                    validate_tuple(model, coerce_tuples([t])[0])
                except AuthorizationError:
                    continue
                kept.append(t)
            case.tuples = kept
            out.append(case)
    return out


# --------------------------------------------------------------------------- running


def run_openfga(directory: Path) -> dict[str, Any]:
    """OpenFGA's results for every ``*.fga.yaml`` in ``directory``, by test name."""
    proc = subprocess.run(
        [FGA, "model", "test", "--tests", str(directory / "*.fga.yaml"), "--verbose", "--suppress-summary"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not proc.stdout.strip():
        raise RuntimeError(f"fga model test failed: {proc.stderr[:500]}")
    return {r["name"]: r for r in json.loads(proc.stdout)}


def _ours(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except AuthorizationError as exc:
        return "error", type(exc).__name__


def _theirs(ref: dict[str, Any], kind: str) -> tuple[str, Any]:
    if ref["error"] is not None:
        return "error", None
    got = ref["got"]
    if kind == "check":
        return "ok", got
    if kind == "list_users":
        got = got.get("users") if isinstance(got, dict) else got
    return "ok", sorted(got or [])


def same(want: tuple[str, Any], mine: tuple[str, Any]) -> bool:
    return want[0] == mine[0] and (want[0] == "error" or want[1] == mine[1])


@dataclass
class Mismatch:
    case: str
    category: str
    kind: str
    request: dict[str, Any]
    want: tuple[str, Any]
    mine: tuple[str, Any]

    def key(self) -> str:
        return json.dumps([self.case, self.kind, self.request], sort_keys=True, default=str)


def compare(case: Case, ref: dict[str, Any], totals: dict[str, int]) -> list[Mismatch]:
    """Every answer of one case against OpenFGA's."""
    auth = EmbeddedAuthorizer(case.model)
    auth.write(case.test_file()["tuples"])
    out: list[Mismatch] = []

    def record(kind: str, request: dict[str, Any], r: dict[str, Any], mine: tuple[str, Any]) -> None:
        totals[kind] = totals.get(kind, 0) + 1
        want = _theirs(r, kind)
        totals["errors"] = totals.get("errors", 0) + (want[0] == "error")
        if not same(want, mine):
            out.append(Mismatch(case.name, case.category, kind, request, want, mine))

    for r in ref.get("check_results") or []:
        q = r["request"]
        record(
            "check",
            q,
            r,
            _ours(lambda q=q: auth.check(q["user"], q["relation"], q["object"], context=q.get("context"))),
        )
    for r in ref.get("list_objects_results") or []:
        q = r["request"]
        record(
            "list_objects",
            q,
            r,
            _ours(lambda q=q: sorted(auth.list_objects(q["user"], q["relation"], q["type"], context=q.get("context")))),
        )
    for r in ref.get("list_users_results") or []:
        q = r["request"]
        obj = f"{q['object']['type']}:{q['object']['id']}"
        record(
            "list_users",
            q,
            r,
            _ours(
                lambda q=q, obj=obj: sorted(
                    auth.list_users(obj, q["relation"], q["user_filters"][0], context=q.get("context"))
                )
            ),
        )
    return out


def run_cases(cases: list[Case], directory: Path) -> tuple[dict[str, int], list[Mismatch]]:
    """Write the cases, run OpenFGA once, compare everything: totals and disagreements."""
    directory.mkdir(parents=True, exist_ok=True)
    for case in cases:
        (directory / f"{case.name}.fga.yaml").write_text(yaml.safe_dump(case.test_file(), sort_keys=False))
    theirs = run_openfga(directory)
    totals: dict[str, int] = {}
    mismatches: list[Mismatch] = []
    for case in cases:
        mismatches += compare(case, theirs[case.name], totals)
    return totals, mismatches
