"""Run model test files: OpenFGA's store tests (``.fga.yaml``) and its conformance suite.

Two formats are accepted:

* the ``.fga.yaml`` format of ``fga model test``: ``model`` or ``model_file``, ``tuples``
  / ``tuple_file`` / ``tuple_files``, and ``tests`` with ``check``, ``list_objects`` and
  ``list_users`` (contextual tuples per test with ``tuples``, ``context`` per assertion);
* OpenFGA's conformance format: ``tests`` -> ``stages`` with a ``model``, ``tuples`` and
  ``checkAssertions`` / ``listObjectsAssertions`` / ``listUsersAssertions``, each with an
  ``expectation`` or an ``errorCode``. Tuples accumulate across the stages of a test, as
  in OpenFGA's own runner.

A ``.fga.yaml`` file's model and tuples are read by the fga pillar's store-file loader
(``fga/_storefile.py``, also behind ``EmbeddedAuthorizer.from_store_file``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_agent_auth.core.errors import AgentAuthError, AuthorizationError, ConfigurationError
from langchain_agent_auth.fga._dsl import parse_dsl
from langchain_agent_auth.fga._embedded import EmbeddedAuthorizer
from langchain_agent_auth.fga._store import MemoryTupleStore
from langchain_agent_auth.fga._storefile import load_tuple_file, read_store_data, store_setup, tuples_in, write_tuples
from langchain_agent_auth.fga._tuple import coerce_tuples

__all__ = ["AssertionResult", "FileReport", "load_tuple_file", "run_test_file"]

KINDS = ("Checks", "ListObjects", "ListUsers")
LABEL = "test file"  # how errors name the file (the pillar's loader says "store file")


@dataclass
class AssertionResult:
    """One assertion: what was asked, what was expected, what came back."""

    kind: str  # Checks | ListObjects | ListUsers
    test: str
    request: str
    expected: Any
    got: Any = None
    error: str | None = None
    passed: bool = False

    def describe(self) -> str:
        got = "N/A" if self.got is None and self.error else _show(self.got)
        text = f"✗ {self.request}: expected={_show(self.expected)}, got={got}"
        if self.error:
            text += f", error={self.error}"
        return text


@dataclass
class FileReport:
    """The results of one file."""

    path: str
    results: list[AssertionResult] = field(default_factory=list)
    tests: dict[str, bool] = field(default_factory=dict)
    error: str | None = None

    def totals(self) -> dict[str, tuple[int, int]]:
        out = {}
        for kind in KINDS:
            rs = [r for r in self.results if r.kind == kind]
            out[kind] = (sum(r.passed for r in rs), len(rs))
        return out

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.passed for r in self.results)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(str(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _ctx_text(context: Any) -> str:
    return f", context:{json.dumps(context, sort_keys=True)}" if context else ""


def run_test_file(path: str | Path) -> FileReport:
    """Run every assertion of one test file (either format) against the embedded engine."""
    p = Path(path)
    report = FileReport(str(p))
    try:
        data = read_store_data(p, label=LABEL)
    except ConfigurationError as exc:
        report.error = str(exc)
        return report
    if not isinstance(data.get("tests"), list):
        report.error = f"{p}: not a test file (no 'tests' list)"
        return report
    try:
        if any(isinstance(t, Mapping) and "stages" in t for t in data["tests"]):
            _run_conformance(data, report)
        else:
            _run_store_test(data, p.parent, report)
    except AgentAuthError as exc:
        report.error = f"{p}: {exc}"
    return report


# --------------------------------------------------------------------------- conformance format


def _run_conformance(data: Mapping[str, Any], report: FileReport) -> None:
    for test in data["tests"]:
        name = str(test.get("name", "?"))
        store = MemoryTupleStore()
        auth: EmbeddedAuthorizer | None = None
        for index, stage in enumerate(test.get("stages") or []):
            auth, setup_error = _stage_setup(stage, store, auth)
            _stage_assertions(Asserting(report, f"{name}[{index}]", auth, setup_error), stage)
        report.tests[name] = all(r.passed for r in report.results if r.test.startswith(f"{name}["))


def _stage_setup(
    stage: Mapping[str, Any], store: MemoryTupleStore, auth: EmbeddedAuthorizer | None
) -> tuple[EmbeddedAuthorizer | None, str | None]:
    """Write the stage's model and tuples (they accumulate over a test's stages)."""
    try:
        model = parse_dsl(stage["model"])
        if auth is None:
            auth = EmbeddedAuthorizer(model, store)
        else:
            auth.write_model(model)
        tuples = coerce_tuples(stage.get("tuples") or [])
        for start in range(0, len(tuples), 100):
            auth.write(tuples[start : start + 100])
    except AgentAuthError as exc:
        return auth, f"stage setup failed: {exc}"
    return auth, None


def _stage_assertions(run: Asserting, stage: Mapping[str, Any]) -> None:
    def options(a: Mapping[str, Any]) -> dict[str, Any]:
        return {"contextual_tuples": a.get("contextualTuples"), "context": a.get("context")}

    for a in stage.get("checkAssertions") or []:
        t = a["tuple"]
        expected = a.get("errorCode", a.get("expectation"))
        run("Checks", (t["user"], t["relation"], t["object"]), options(a), expected, a)
    for a in stage.get("listObjectsAssertions") or []:
        r = a["request"]
        expected = a.get("errorCode", sorted(a.get("expectation") or []))
        run("ListObjects", (r["user"], r["relation"], r["type"]), options(a), expected, a)
    for a in stage.get("listUsersAssertions") or []:
        r = a["request"]
        expected = a.get("errorCode", sorted(a.get("expectation") or []))
        run("ListUsers", (r["object"], r["relation"], r.get("filters") or []), options(a), expected, a)


# kind -> (authorizer method, how the assertion is described, its argument names)
_QUERIES = {
    "Checks": ("check", "Check", ("user", "relation", "object")),
    "ListObjects": ("list_objects", "ListObjects", ("user", "relation", "type")),
    "ListUsers": ("list_users", "ListUsers", ("object", "relation", "user_filter")),
}


@dataclass
class Asserting:
    """Runs a test's assertions against one authorizer and records them in the report."""

    report: FileReport
    label: str
    auth: EmbeddedAuthorizer | None
    setup_error: str | None

    def __call__(
        self,
        kind: str,
        args: tuple[Any, ...],
        options: Mapping[str, Any],
        expected: Any,
        assertion: Mapping[str, Any] | None = None,
    ) -> None:
        method, title, names = _QUERIES[kind]
        shown = ",".join(f"{n}={v}" for n, v in zip(names, args, strict=True))
        res = AssertionResult(kind, self.label, f"{title}({shown}{_ctx_text(options.get('context'))})", expected)

        def call() -> Any:
            answer = getattr(self.auth, method)(*args, **options)
            return answer if kind == "Checks" else sorted(answer)

        _run(res, self.setup_error, assertion or {}, call)
        self.report.results.append(res)


def _run(res: AssertionResult, setup_error: str | None, assertion: Mapping[str, Any], call: Any) -> None:
    if setup_error is not None:
        res.error = setup_error
        return
    expected_code = assertion.get("errorCode")
    try:
        res.got = call()
    except AuthorizationError as exc:
        res.error = f"code {exc.code}: {exc}"
        res.passed = expected_code is not None and exc.code == expected_code
        return
    except AgentAuthError as exc:
        res.error = f"{type(exc).__name__}: {exc}"
        return
    res.passed = expected_code is None and res.got == res.expected


# --------------------------------------------------------------------------- .fga.yaml format


def _run_store_test(data: Mapping[str, Any], base: Path, report: FileReport) -> None:
    model, global_tuples = store_setup(data, base, label=LABEL)
    for test in data["tests"]:
        name = str(test.get("name", "?"))
        tuples = global_tuples + tuples_in(test, base, label=LABEL)
        auth = EmbeddedAuthorizer(model, MemoryTupleStore())
        setup_error = None
        try:
            write_tuples(auth, tuples)
        except AgentAuthError as exc:
            setup_error = f"writing tuples failed: {exc}"
        start_count = len(report.results)
        _store_test_assertions(Asserting(report, name, auth, setup_error), test)
        report.tests[name] = all(r.passed for r in report.results[start_count:])


def _store_test_assertions(run: Asserting, test: Mapping[str, Any]) -> None:
    for c in test.get("check") or []:
        options = {"context": c.get("context")}
        for user in c.get("users") or [c.get("user")]:
            for obj in c.get("objects") or [c.get("object")]:
                for relation, expected in (c.get("assertions") or {}).items():
                    run("Checks", (user, relation, obj), options, bool(expected))
    for lo in test.get("list_objects") or []:
        options = {"context": lo.get("context")}
        for relation, expected in (lo.get("assertions") or {}).items():
            run("ListObjects", (lo["user"], relation, lo["type"]), options, sorted(expected or []))
    for lu in test.get("list_users") or []:
        options = {"context": lu.get("context")}
        filters = lu.get("user_filter") or []
        for relation, expected in (lu.get("assertions") or {}).items():
            users_expected = (expected or {}).get("users") if isinstance(expected, Mapping) else expected
            run("ListUsers", (lu["object"], relation, filters), options, sorted(users_expected or []))


def format_report(reports: Sequence[FileReport], *, verbose: bool = False) -> str:
    """The text ``agent-auth fga test`` prints: failures, then per-kind totals."""
    lines: list[str] = []
    totals = dict.fromkeys(KINDS, (0, 0))
    tests_passed = tests_total = 0
    for rep in reports:
        if rep.error:
            lines.append(f"ERROR {rep.error}")
        for kind, (ok, n) in rep.totals().items():
            a, b = totals[kind]
            totals[kind] = (a + ok, b + n)
        tests_passed += sum(rep.tests.values())
        tests_total += len(rep.tests)
        by_test: dict[str, list[AssertionResult]] = {}
        for r in rep.results:
            by_test.setdefault(r.test, []).append(r)
        for test, results in by_test.items():
            failed = [r for r in results if not r.passed]
            if not failed and not verbose:
                continue
            counts = " | ".join(
                f"{kind} ({sum(r.passed for r in results if r.kind == kind)}/"
                f"{sum(1 for r in results if r.kind == kind)} passing)"
                for kind in KINDS
            )
            lines.append(f"({'FAILING' if failed else 'PASSING'}) {Path(rep.path).name} {test}: {counts}")
            lines.extend(r.describe() for r in failed)
    lines.append("---")
    lines.append("# Test Summary #")
    lines.append(f"Tests {tests_passed}/{tests_total} passing")
    for kind in KINDS:
        ok, n = totals[kind]
        lines.append(f"{kind} {ok}/{n} passing")
    return "\n".join(lines)
