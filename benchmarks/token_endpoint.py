"""Token-endpoint throughput: client_credentials requests/s, the local provider (``agent-auth
dev``) and node-oidc-provider side by side in the same run, printed as a ratio.

Both servers run as their own single-process subprocesses; the load generator is a small
keep-alive HTTP/1.1 client in this process. Two request shapes:

* ``resource=urn:example:api&scope=api:read``: both sign an RS256 JWT access token (the fair one);
* no resource: node-oidc-provider issues an opaque token kept in memory, the local provider
  still signs a JWT (RFC 9068) and stores its hash in SQLite.

Usage::

    python benchmarks/token_endpoint.py [--oidc-provider PATH] [--seconds 3] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _servers import (
    NODE_CLIENT,
    find_oidc_provider,
    measure,
    prepare_oidc_provider,
    start_devserver,
    start_node,
)

SHAPES = {
    "JWT (resource=urn:example:api)": (
        "grant_type=client_credentials&resource=urn%3Aexample%3Aapi&scope=api%3Aread"
    ),
    "no resource": "grant_type=client_credentials",
}


def run(quick: bool = False) -> list:
    """Rows for benchmarks/run.py: ours vs node-oidc-provider, requests/s per request shape."""
    from _util import paired

    seconds, rounds = (1.0, 1) if quick else (2.0, 5)
    rows = []
    source = find_oidc_provider(None)
    with tempfile.TemporaryDirectory() as tmp:
        ours = start_devserver(pathlib.Path(tmp) / "dev")
        node = start_node(prepare_oidc_provider(source), pathlib.Path(tmp) / "fixtures") if source else None
        try:
            ours_client = (ours.info["client_id"], ours.info["client_secret"])
            for label, body in SHAPES.items():
                ours_runs, node_runs = [], []
                for _ in range(rounds):
                    ours_runs.append(measure(ours.issuer, ours_client, body, seconds=seconds, concurrency=16)[0])
                    if node is not None:
                        node_runs.append(measure(node.issuer, NODE_CLIENT, body, seconds=seconds, concurrency=16)[0])
                rows.append(paired("devserver: token endpoint", f"client_credentials req/s, {label}", ours_runs,
                                   node_runs or None, "/s", "node-oidc-provider, same run, 16 connections each",
                                   "rates: ratio < 1 = slower"))
        finally:
            ours.stop()
            if node is not None:
                node.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--oidc-provider",
        help="node-oidc-provider setup (default: tests/interop/oidc_provider, "
        "then ../shared/interop/oidc-provider)",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per server")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    source = find_oidc_provider(args.oidc_provider)
    node = None
    with tempfile.TemporaryDirectory() as tmp:
        ours = start_devserver(pathlib.Path(tmp) / "dev")
        try:
            if source is not None:
                node = start_node(prepare_oidc_provider(source), pathlib.Path(tmp) / "fixtures")
            else:
                print("node-oidc-provider setup not found: measuring the local provider only")
            ours_client = (ours.info["client_id"], ours.info["client_secret"])
            print(
                f"client_credentials throughput: {args.concurrency} keep-alive connections, "
                f"{args.rounds} alternating rounds of {args.seconds:g} s per server, median"
            )
            for label, body in SHAPES.items():
                ours_runs, node_runs, failed = [], [], 0
                for _ in range(args.rounds):
                    rps, bad = measure(
                        ours.issuer, ours_client, body, seconds=args.seconds, concurrency=args.concurrency
                    )
                    ours_runs.append(rps)
                    failed += bad
                    if node is not None:
                        rps, bad = measure(
                            node.issuer, NODE_CLIENT, body, seconds=args.seconds, concurrency=args.concurrency
                        )
                        node_runs.append(rps)
                        failed += bad
                ours_rps = statistics.median(ours_runs)
                line = f"  {label:32s} agent-auth dev: {ours_rps:6.0f} req/s"
                if node_runs:
                    node_rps = statistics.median(node_runs)
                    line += f"   node-oidc-provider: {node_rps:6.0f} req/s"
                    line += f"   ratio ours/node = {ours_rps / node_rps:.2f}"
                if failed:
                    line += f"   ({failed} non-200 answers)"
                print(line, flush=True)
        finally:
            ours.stop()
            if node is not None:
                node.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
