"""Run every benchmark and print one table of ratios against baselines measured in the same run.

    python benchmarks/run.py            # full
    python benchmarks/run.py --quick    # shorter loops
    python benchmarks/run.py identity   # only modules whose name contains "identity"
"""

from __future__ import annotations

import importlib
import pathlib
import sys
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))  # modules import their helpers (_fga_data, _servers) by name

from benchmarks._util import Row, print_table  # noqa: E402


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    only = [a for a in argv if not a.startswith("-")]
    rows: list[Row] = []
    failed = []
    for path in sorted(HERE.glob("*.py")):
        name = path.stem
        if name.startswith("_") or name == "run" or (only and not any(o in name for o in only)):
            continue
        module = importlib.import_module(f"benchmarks.{name}")
        if not hasattr(module, "run"):
            continue
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(module.run(quick=quick))
        except Exception:
            failed.append(name)
            traceback.print_exc()
        print(f"  {name}: {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    print_table(rows)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
