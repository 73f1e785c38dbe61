"""The fga retriever, like for like: the OpenFGA path against raw HTTP, the embedded path, pre- vs post-filter.

1. OpenFGA path. ``agent-auth fga serve`` runs as its own process (so the client and the
   server do not share a GIL). On the same server and with the same parallelism (requests of
   50 checks, 10 at a time) it times, in interleaved rounds:

   * ``FGARetriever`` over :class:`OpenFGAAuthorizer` (sync ``invoke`` and async ``ainvoke``),
   * the openfga-sdk's own ``client.batch_check`` with one ``ClientBatchCheckItem`` per document
     (what ``OpenFGAAuthorizer`` did before),
   * raw HTTP: the same batch-check bodies as JSON over urllib3 (which sets TCP_NODELAY on its
     client sockets, as the SDK does), 10 threads; and over aiohttp, 10 at a time, with the
     session settings the SDK's async client uses (``trust_env=True``).

2. The embedded retriever filtering 1,000 documents.

3. Pre-filter against post-filter at 10,000 documents in a LangChain ``InMemoryVectorStore``
   (a deterministic fake embedding), the user allowed on 1 in 20 documents: time per query and
   how many of the k results come back.

Median and range (min-max) of the rounds are printed.

    python benchmarks/fga_bench.py [--rounds 15] [--skip-openfga]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_agent_auth.fga import (
    AuthorizationModel,
    EmbeddedAuthorizer,
    FGARetriever,
    OpenFGAAuthorizer,
)

MODEL = """
model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type folder
  relations
    define parent: [folder]
    define viewer: [user, group#member] or viewer from parent
type document
  relations
    define parent: [folder]
    define blocked: [user]
    define viewer: ([user, group#member] or viewer from parent) but not blocked
"""
N = 1000
PARALLEL = 10
# openfga-sdk's aiohttp session is created with trust_env=True (proxy and netrc settings read
# per request, netrc in a worker thread): the async baseline uses the same, like for like.
# FGA_BENCH_TRUST_ENV=0 shows plain aiohttp.
TRUST_ENV = os.environ.get("FGA_BENCH_TRUST_ENV", "1") == "1"
BATCH = 50


class Static(BaseRetriever):
    docs: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return list(self.docs)


def data(n: int = N) -> list[tuple[str, str, str]]:
    out = [("user:anne", "member", "group:team"), ("group:team#member", "viewer", "folder:shared")]
    for i in range(n):
        out.append(("folder:shared" if i % 2 == 0 else "folder:other", "parent", f"document:d{i}"))
        if i % 7 == 0:
            out.append(("user:anne", "viewer", f"document:d{i}"))
    return out


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


CPU: dict[str, list[float]] = {}


def interleaved(cases: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Wall-clock ms per call, rounds interleaved; this process's CPU ms (all its threads) in CPU."""
    for fn in cases.values():  # warm up (connections, caches)
        fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            cpu = time.process_time()
            samples[name].append(timed(fn))
            CPU.setdefault(name, []).append((time.process_time() - cpu) * 1e3)
    return samples


def show(samples: dict[str, list[float]], baseline: str | None = None) -> None:
    base = statistics.median(samples[baseline]) if baseline else None
    base_cpu = statistics.median(CPU[baseline]) if baseline else None
    for name, xs in samples.items():
        med, cpu = statistics.median(xs), statistics.median(CPU[name])
        ratio = f" ({med / base:.2f}x)" if base else ""
        cpu_ratio = f" ({cpu / base_cpu:.2f}x)" if base_cpu else ""
        print(
            f"  {name:50s} wall median {med:7.2f} ms{ratio:8s} range {min(xs):7.2f}-{max(xs):7.2f}; "
            f"client CPU median {cpu:7.2f} ms{cpu_ratio}"
        )


# ------------------------------------------------------------------------- 1. OpenFGA path


def start_server() -> tuple[subprocess.Popen[str], str]:
    exe = Path(sys.executable).parent / "agent-auth"
    proc = subprocess.Popen(
        [str(exe), "fga", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"agent-auth fga serve did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


def openfga_path(rounds: int) -> None:
    import urllib3
    from openfga_sdk.client import ClientConfiguration
    from openfga_sdk.client.models import ClientBatchCheckItem, ClientBatchCheckRequest
    from openfga_sdk.models import CreateStoreRequest, WriteAuthorizationModelRequest
    from openfga_sdk.sync import OpenFgaClient

    proc, url = start_server()
    try:
        admin = OpenFgaClient(ClientConfiguration(api_url=url))
        store = admin.create_store(CreateStoreRequest(name="bench"))
        admin.set_store_id(store.id)
        model_id = admin.write_authorization_model(
            WriteAuthorizationModelRequest(**AuthorizationModel.from_dsl(MODEL).to_json())
        ).authorization_model_id
        admin.close()
        remote = OpenFGAAuthorizer(
            url, store.id, authorization_model_id=model_id, max_batch_size=BATCH, max_parallel_requests=PARALLEL
        )
        remote.write(data())
        docs = [Document(f"text {i}", metadata={"id": f"d{i}"}) for i in range(N)]
        retriever = FGARetriever(retriever=Static(docs=docs), authorizer=remote, user="user:anne")
        kept = len(retriever.invoke("q"))

        sdk = OpenFgaClient(ClientConfiguration(api_url=url, store_id=store.id, authorization_model_id=model_id))

        def sdk_batch() -> int:
            body = ClientBatchCheckRequest(
                checks=[
                    ClientBatchCheckItem(
                        user="user:anne", relation="viewer", object=f"document:d{i}", correlation_id=str(i)
                    )
                    for i in range(N)
                ]
            )
            res = sdk.batch_check(body, {"max_batch_size": BATCH, "max_parallel_requests": PARALLEL})
            return sum(1 for r in res.result if r.allowed)

        pool = urllib3.PoolManager(maxsize=PARALLEL)
        executor = ThreadPoolExecutor(max_workers=PARALLEL)

        def raw_one(start: int) -> int:
            body = {
                "authorization_model_id": model_id,
                "checks": [
                    {
                        "tuple_key": {"user": "user:anne", "relation": "viewer", "object": f"document:d{i}"},
                        "correlation_id": str(i),
                    }
                    for i in range(start, min(start + BATCH, N))
                ],
            }
            resp = pool.request(
                "POST",
                f"{url}/stores/{store.id}/batch-check",
                body=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
            return sum(1 for r in json.loads(resp.data)["result"].values() if r["allowed"])

        def raw() -> int:
            # Like the retriever: a pool per query would add thread start-up; keep one like the SDK's.
            return sum(executor.map(raw_one, range(0, N, BATCH)))

        loop = asyncio.new_event_loop()
        import aiohttp

        session_box: list[Any] = []

        async def araw() -> int:
            # The async baseline: the same bodies over aiohttp (the SDK's async transport), 10 at a time.
            if not session_box:
                session_box.append(aiohttp.ClientSession(trust_env=TRUST_ENV))
            session = session_box[0]
            gate = asyncio.Semaphore(PARALLEL)

            async def one(start: int) -> int:
                body = {
                    "authorization_model_id": model_id,
                    "checks": [
                        {
                            "tuple_key": {"user": "user:anne", "relation": "viewer", "object": f"document:d{i}"},
                            "correlation_id": str(i),
                        }
                        for i in range(start, min(start + BATCH, N))
                    ],
                }
                async with gate, session.post(
                    f"{url}/stores/{store.id}/batch-check",
                    data=json.dumps(body),
                    headers={"Content-Type": "application/json"},
                ) as resp:
                    data = json.loads(await resp.read())
                return sum(1 for r in data["result"].values() if r["allowed"])

            return sum(await asyncio.gather(*(one(s) for s in range(0, N, BATCH))))

        assert sdk_batch() == kept and raw() == kept
        assert loop.run_until_complete(araw()) == kept
        assert len(loop.run_until_complete(retriever.ainvoke("q"))) == kept
        print(f"\n1. OpenFGA path: {N} documents, kept {kept}; {N // BATCH} batch-check requests of {BATCH}, "
              f"{PARALLEL} in parallel; agent-auth fga serve in its own process; {rounds} interleaved rounds")
        samples = interleaved(
            {
                "raw HTTP (urllib3 + json, 10 threads)": raw,
                "raw HTTP async (aiohttp + json, 10 at a time)": lambda: loop.run_until_complete(araw()),
                "FGARetriever + OpenFGAAuthorizer, invoke": lambda: retriever.invoke("q"),
                "FGARetriever + OpenFGAAuthorizer, ainvoke": lambda: loop.run_until_complete(
                    retriever.ainvoke("q")
                ),
                "openfga-sdk client.batch_check (ClientBatchCheckItem)": sdk_batch,
            },
            rounds,
        )
        show(samples, baseline="raw HTTP (urllib3 + json, 10 threads)")
        raw_async = statistics.median(samples["raw HTTP async (aiohttp + json, 10 at a time)"])
        ainvoke = statistics.median(samples["FGARetriever + OpenFGAAuthorizer, ainvoke"])
        print(f"  ratios are against the first line; ainvoke against the async raw line: {ainvoke / raw_async:.2f}x")
        loop.run_until_complete(session_box[0].close())
        loop.run_until_complete(remote.aclose())
        loop.close()
        remote.close()
        sdk.close()
        executor.shutdown()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------------------------- 2. embedded


def embedded_path(rounds: int) -> None:
    fga = EmbeddedAuthorizer(MODEL)
    fga.write(data())
    docs = [Document(f"text {i}", metadata={"id": f"d{i}"}) for i in range(N)]
    plain = Static(docs=docs)
    retriever = FGARetriever(retriever=plain, authorizer=fga, user="user:anne")
    kept = len(retriever.invoke("q"))
    checks = [("user:anne", "viewer", f"document:d{i}") for i in range(N)]
    assert sum(d.allowed for d in fga.batch_check(checks)) == kept
    print(f"\n2. Embedded retriever: {N} documents, kept {kept}; {rounds * 4} interleaved rounds")
    show(
        interleaved(
            {
                "unfiltered retriever": lambda: plain.invoke("q"),
                "FGARetriever (embedded)": lambda: retriever.invoke("q"),
                "FGARetriever.retrieve_with_decisions": lambda: retriever.retrieve_with_decisions("q"),
                "batch_check by hand (a record per check)": lambda: fga.batch_check(checks),
            },
            rounds * 4,
        )
    )


# ------------------------------------------------------------------------- 3. pre vs post filter


def filter_modes(rounds: int, n_docs: int = 10_000, k: int = 10) -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=32))
    store.add_documents([Document(f"document {i}", metadata={"id": f"d{i}"}, id=f"d{i}") for i in range(n_docs)])
    fga = EmbeddedAuthorizer(MODEL)
    fga.write([("user:anne", "viewer", f"document:d{i}") for i in range(0, n_docs, 20)])
    post = FGARetriever(retriever=store.as_retriever(search_kwargs={"k": k}), authorizer=fga, user="user:anne")
    pre = FGARetriever(
        retriever=store.as_retriever(search_kwargs={"k": k}), authorizer=fga, user="user:anne", prefilter="auto"
    )
    got_post, got_pre = len(post.invoke("query")), len(pre.invoke("query"))
    print(
        f"\n3. Pre- vs post-filter: {n_docs} documents in an InMemoryVectorStore, k={k}, "
        f"user allowed on {n_docs // 20}; results: post-filter {got_post}/{k}, pre-filter {got_pre}/{k}"
    )
    show(
        interleaved(
            {
                "unfiltered similarity search": lambda: store.as_retriever(search_kwargs={"k": k}).invoke("query"),
                "post-filter (search k, then batch check)": lambda: post.invoke("query"),
                "pre-filter (list_objects -> filter, then check)": lambda: pre.invoke("query"),
            },
            rounds,
        ),
        baseline="unfiltered similarity search",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--skip-openfga", action="store_true")
    args = parser.parse_args()
    if not args.skip_openfga:
        openfga_path(args.rounds)
    embedded_path(args.rounds)
    filter_modes(args.rounds)


if __name__ == "__main__":
    main()
