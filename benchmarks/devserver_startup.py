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
    """Rows for benchmarks/run.py: startup to READY vs node-oidc-provider."""
    from _util import Row

    repeat = 2 if quick else 5
    in_cold, in_warm = in_process(repeat)
    _, cli_warm = cli(repeat)
    node_ready = node(repeat, None)
    ms = 1000.0
    label = "node-oidc-provider READY, same run"
    return [
        Row("devserver: startup", "in-process start, warm data dir (ms)", in_warm * ms,
            node_ready * ms if node_ready else None, "ms", label),
        Row("devserver: startup", "in-process start, cold data dir (ms)", in_cold * ms,
            node_ready * ms if node_ready else None, "ms", label),
        Row("devserver: startup", "CLI `agent-auth dev` to READY, warm (ms)", cli_warm * ms,
            node_ready * ms if node_ready else None, "ms", label),
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
