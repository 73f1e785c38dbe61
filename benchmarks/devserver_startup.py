"""Startup time of the local provider to READY: in-process (``LocalProvider().start()``) and
through the CLI (``agent-auth dev`` until its READY line), cold (a new data directory: keys
generated, users and clients seeded) and warm (the same directory again); node-oidc-provider's
time to its READY line is measured in the same run and the ratio printed.

Usage::

    python benchmarks/devserver_startup.py [--repeat 5] [--oidc-provider PATH]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _servers import find_oidc_provider, prepare_oidc_provider, start_devserver, start_node


def in_process(repeat: int) -> tuple[float, float]:
    from langchain_agent_auth.devserver import LocalProvider

    LocalProvider().start().stop()  # imports and first-use costs out of the way
    cold, warm = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            for bucket in (cold, warm):
                started = time.perf_counter()
                idp = LocalProvider(tmp).start()
                bucket.append(time.perf_counter() - started)
                idp.stop()
    return statistics.median(cold), statistics.median(warm)


def cli(repeat: int) -> tuple[float, float]:
    cold, warm = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            for bucket in (cold, warm):
                server = start_devserver(pathlib.Path(tmp) / "dev")
                bucket.append(server.ready_s)
                server.stop()
    return statistics.median(cold), statistics.median(warm)


def node(repeat: int, path: str | None) -> float | None:
    source = find_oidc_provider(path)
    if source is None:
        return None
    setup = prepare_oidc_provider(source)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            server = start_node(setup, pathlib.Path(tmp) / "fixtures")
            times.append(server.ready_s)
            server.stop()
    return statistics.median(times)


def run(quick: bool = False) -> list:
    """Rows for benchmarks/run.py: ``LocalProvider().start()`` in a running process. It has no
    like-for-like peer (node-oidc-provider is compared as a whole process in cli_startup)."""
    from _util import single

    repeat = 3 if quick else 7
    colds, warms = [], []
    for _ in range(repeat):
        cold, warm = in_process(1)
        colds.append(cold * 1000)
        warms.append(warm * 1000)
    return [
        single("devserver: in-process start", "ms, LocalProvider().start(), warm data dir", warms, "ms"),
        single("devserver: in-process start", "ms, LocalProvider().start(), new data dir", colds, "ms"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--oidc-provider",
        help="node-oidc-provider setup (default: tests/interop/oidc_provider, "
        "then ../shared/interop/oidc-provider)",
    )
    args = parser.parse_args()
    in_cold, in_warm = in_process(args.repeat)
    cli_cold, cli_warm = cli(args.repeat)
    node_ready = node(args.repeat, args.oidc_provider)
    print(f"startup to READY, median of {args.repeat}")
    print(
        f"  in-process LocalProvider().start(): cold {in_cold * 1000:6.0f} ms   warm {in_warm * 1000:6.0f} ms"
    )
    print(
        f"  CLI agent-auth dev (new process):   cold {cli_cold * 1000:6.0f} ms   "
        f"warm {cli_warm * 1000:6.0f} ms"
    )
    if node_ready is not None:
        print(f"  node-oidc-provider (new process):   {node_ready * 1000:6.0f} ms (fixtures warm)")
        print(
            f"  ratio CLI warm / node = {cli_warm / node_ready:.2f}   "
            f"ratio in-process warm / node = {in_warm / node_ready:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
