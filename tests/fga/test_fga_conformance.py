"""OpenFGA's own conformance suite (../shared/conformance/openfga), every assertion."""

from __future__ import annotations

import pytest

from langchain_agent_auth.cli._fga_testfile import format_report, run_test_file
from tests.fga._fga_support import CONFORMANCE

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(CONFORMANCE is None, reason="../shared (OpenFGA conformance data) is absent"),
]

EXPECTED = {  # per file: (checks, list_objects, list_users), from the suite's README
    "consolidated_1_1_tests.yaml": (360, 270, 295),
    "abac_tests.yaml": (125, 75, 91),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_conformance_file_passes_completely(name: str) -> None:
    report = run_test_file(CONFORMANCE / name)
    assert report.error is None
    totals = report.totals()
    print(f"{name}: " + ", ".join(f"{k} {ok}/{n}" for k, (ok, n) in totals.items()))
    assert tuple(n for _, n in totals.values()) == EXPECTED[name]
    failures = [r.describe() for r in report.results if not r.passed]
    assert not failures, "\n".join(failures[:20])


def test_report_prints_the_per_kind_totals() -> None:
    reports = [run_test_file(CONFORMANCE / name) for name in sorted(EXPECTED)]
    text = format_report(reports)
    assert "Checks 485/485 passing" in text
    assert "ListObjects 345/345 passing" in text
    assert "ListUsers 386/386 passing" in text
