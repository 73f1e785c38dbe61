"""Run every benchmark and print one table, each row against a like-for-like baseline measured
in the same run (interleaved rounds; median, min-max range and the number of rounds).

    python benchmarks/run.py                  # full (several minutes on 2 cores)
    python benchmarks/run.py --quick          # short smoke run (small sizes, few rounds)
    python benchmarks/run.py identity vault   # only modules whose name contains one of these
    python benchmarks/run.py --peer           # first create benchmarks/.peer-venv with
                                              # auth0-ai-langchain 1.0.1 (pip), then run
    python benchmarks/run.py --readme         # also write the table into README.md
"""

from __future__ import annotations

import datetime as dt
import importlib
import pathlib
import re
import sys
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))  # modules import their helpers (_fga_data, _servers) by name

from benchmarks._util import Row, format_rows  # noqa: E402

README = HERE.parent / "README.md"
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def write_readme(lines: list[str], argv: list[str], elapsed: float) -> None:
    """Replace the table between the README's benchmark markers with this run's."""
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} section")
    command = " ".join(["python benchmarks/run.py", *[a for a in argv if a != "--readme"]])
    block = (f"{START}\nFrom one run of `{command}` on {dt.date.today().isoformat()} ({elapsed / 60:.0f} min); "
             "reproduce it with the same command (`--peer` first creates the peer's venv).\n\n```text\n"
             + "\n".join(lines) + f"\n```\n{END}")
    README.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    if "--peer" in argv:
        from benchmarks._vault_peer import create_peer_venv

        print(f"peer venv: {create_peer_venv()}", file=sys.stderr)
    only = [a for a in argv if not a.startswith("-")]
    rows: list[Row] = []
    failed = []
    started_all = time.perf_counter()
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
    lines = format_rows(rows)
    print("\n".join(lines))
    if "--readme" in argv and not failed:
        write_readme(lines, argv, time.perf_counter() - started_all)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
