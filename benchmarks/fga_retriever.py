"""FGARetriever filtering 1,000 documents: authorizer calls and time against the unfiltered retriever.

Both backends: the embedded engine, and the OpenFGA backend (openfga-sdk) against
``agent-auth fga serve`` on loopback, where the HTTP requests are counted too. Ratios are
against the unfiltered retriever measured in the same run.

    python benchmarks/fga_retriever.py
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import uvicorn
from _fga_data import MODEL
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_agent_auth.cli._fga_server import create_app
from langchain_agent_auth.fga import AuthorizationModel, EmbeddedAuthorizer, FGARetriever, OpenFGAAuthorizer
from langchain_agent_auth.identity import UserIdentity

N = 1000
ANNE = UserIdentity(subject="anne")


class Static(BaseRetriever):
    docs: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return list(self.docs)


class Counting:
    def __init__(self, inner: Any) -> None:
        self.inner, self.backend, self.calls = inner, inner.backend, 0

    def batch_check(self, *a: Any, **k: Any) -> Any:
        self.calls += 1
        return self.inner.batch_check(*a, **k)

    async def abatch_check(self, *a: Any, **k: Any) -> Any:
        self.calls += 1
        return await self.inner.abatch_check(*a, **k)


def data(n: int = N) -> list[tuple[str, str, str]]:
    out = [("user:anne", "member", "group:team"), ("group:team#member", "viewer", "folder:shared")]
    for i in range(n):
        folder = "folder:shared" if i % 2 == 0 else "folder:other"
        out.append((folder, "parent", f"document:d{i}"))
        if i % 7 == 0:
            out.append(("user:anne", "viewer", f"document:d{i}"))
    return out


def median_ms(fn: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def serve() -> tuple[str, uvicorn.Server, threading.Thread, list[int]]:
    hits: list[int] = [0]
    app = create_app()

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            hits[0] += 1
        await app(scope, receive, send)

    from langchain_agent_auth.core._serving import bind_socket as listen_socket

    sock = listen_socket("127.0.0.1", 0)  # as `agent-auth fga serve` does
    server = uvicorn.Server(uvicorn.Config(counted, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread, hits


def raw_batches(url: str, store_id: str, model_id: str, n: int = N, parallel: int = 1) -> int:
    """The batch-check requests the retriever needs (50 checks each), as plain JSON over urllib3,
    ``parallel`` at a time (a baseline; the SDK path sends up to 10 at once)."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    import urllib3

    pool = urllib3.PoolManager(maxsize=max(1, parallel))

    def one(start: int) -> int:
        body = {
            "authorization_model_id": model_id,
            "checks": [
                {
                    "tuple_key": {"user": "user:anne", "relation": "viewer", "object": f"document:d{i}"},
                    "correlation_id": str(i),
                }
                for i in range(start, min(n, start + 50))
            ],
        }
        resp = pool.request(
            "POST",
            f"{url}/stores/{store_id}/batch-check",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        return sum(r["allowed"] for r in json.loads(resp.data)["result"].values())

    with ThreadPoolExecutor(max(1, parallel)) as workers:
        return sum(workers.map(one, range(0, n, 50)))


def main() -> None:
    docs = [Document(f"text {i}", metadata={"id": f"d{i}"}) for i in range(N)]
    plain = Static(docs=docs)
    base = median_ms(lambda: plain.invoke("q"), 20)
    print(f"unfiltered retriever, {N} documents: {base:.2f} ms")

    embedded = EmbeddedAuthorizer(MODEL)
    embedded.write(data())
    counting = Counting(embedded)
    r = FGARetriever(retriever=plain, authorizer=counting, user=ANNE)
    kept = len(r.invoke("q"))
    counting.calls = 0
    t = median_ms(lambda: r.invoke("q"), 20)
    print(
        f"[embedded] kept {kept}/{N}; {counting.calls / 20:.0f} batch_check call per query; "
        f"{t:.1f} ms ({t / base:.1f}x unfiltered, +{t - base:.1f} ms)"
    )

    url, server, thread, hits = serve()
    try:
        from openfga_sdk.client import ClientConfiguration
        from openfga_sdk.models import CreateStoreRequest, WriteAuthorizationModelRequest
        from openfga_sdk.sync import OpenFgaClient

        client = OpenFgaClient(ClientConfiguration(api_url=url))
        store = client.create_store(CreateStoreRequest(name="bench"))
        client.set_store_id(store.id)
        model_id = client.write_authorization_model(
            WriteAuthorizationModelRequest(**AuthorizationModel.from_dsl(MODEL).to_json())
        ).authorization_model_id
        client.close()
        remote = OpenFGAAuthorizer(url, store.id, authorization_model_id=model_id)
        remote.write(data())
        counting = Counting(remote)
        r = FGARetriever(retriever=plain, authorizer=counting, user=ANNE)
        assert len(r.invoke("q")) == kept
        counting.calls, hits[0] = 0, 0
        t = median_ms(lambda: r.invoke("q"), 5)
        print(
            f"[openfga-sdk -> agent-auth fga serve] kept {kept}/{N}; "
            f"{counting.calls / 5:.0f} batch_check call per query = {hits[0] / 5:.0f} HTTP requests "
            f"of <=50 checks; {t:.1f} ms ({t / base:.1f}x unfiltered)"
        )
        remote.close()
        raw = median_ms(lambda: raw_batches(url, store.id, model_id), 5)
        print(
            f"  the same {N // 50} batch-check requests with plain urllib3: {raw:.1f} ms "
            f"(the SDK path is {t / raw:.2f}x that)"
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run(quick: bool = False) -> list:
    """Rows for benchmarks/run.py, at 1k and 10k documents (1k only with ``--quick``), interleaved:

    * embedded: the retriever against the same answer from one ``batch_check`` on the engine
      (what filtering by hand costs), so the ratio is the retriever's own overhead;
    * over HTTP (openfga-sdk -> ``agent-auth fga serve`` on loopback): the retriever against
      the same batch-check requests as plain urllib3 JSON with the same parallelism (10).
    """
    from _util import paired

    rounds = 2 if quick else 5
    rows = []
    url, server, thread, _hits = serve()
    try:
        for n in (1_000,) if quick else (1_000, 10_000):
            docs = [Document(f"text {i}", metadata={"id": f"d{i}"}) for i in range(n)]
            plain = Static(docs=docs)
            embedded = EmbeddedAuthorizer(MODEL)
            embedded.write(data(n))
            r = FGARetriever(retriever=plain, authorizer=embedded, user=ANNE)
            kept = len(r.invoke("q"))
            checks = [("user:anne", "viewer", f"document:d{i}") for i in range(n)]

            def by_hand(docs: list = docs, checks: list = checks, fga: Any = embedded) -> list:
                decisions = fga.batch_check(checks)
                return [d for d, ok in zip(docs, decisions, strict=True) if ok.allowed]

            assert len(by_hand()) == kept
            ours, base = [], []
            for _ in range(rounds):
                ours.append(median_ms(lambda r=r: r.invoke("q"), 3))
                base.append(median_ms(by_hand, 3))
            rows.append(paired("fga: retriever (embedded)", f"ms to filter {n:,} docs (kept {kept:,})", ours, base,
                               "ms", "one batch_check on the engine by hand, same docs"))

            remote, store_id, model_id = _remote(url, n)
            rr = FGARetriever(retriever=plain, authorizer=remote, user=ANNE)
            assert len(rr.invoke("q")) == kept
            assert raw_batches(url, store_id, model_id, n, parallel=10) == kept
            ours, base = [], []
            def raw(store_id: str = store_id, model_id: str = model_id, n: int = n) -> int:
                return raw_batches(url, store_id, model_id, n, parallel=10)

            for _ in range(rounds):
                ours.append(median_ms(lambda rr=rr: rr.invoke("q"), 1 if n > 1_000 else 3))
                base.append(median_ms(raw, 1 if n > 1_000 else 3))
            remote.close()
            rows.append(paired("fga: retriever (HTTP)", f"ms to filter {n:,} docs, openfga-sdk, loopback", ours, base,
                               "ms", "same batch-check requests as raw urllib3 JSON, 10 in parallel"))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return rows


def _remote(url: str, n: int) -> tuple[Any, str, str]:
    from openfga_sdk.client import ClientConfiguration
    from openfga_sdk.models import CreateStoreRequest, WriteAuthorizationModelRequest
    from openfga_sdk.sync import OpenFgaClient

    client = OpenFgaClient(ClientConfiguration(api_url=url))
    store = client.create_store(CreateStoreRequest(name=f"bench-{n}"))
    client.set_store_id(store.id)
    model_id = client.write_authorization_model(
        WriteAuthorizationModelRequest(**AuthorizationModel.from_dsl(MODEL).to_json())
    ).authorization_model_id
    client.close()
    remote = OpenFGAAuthorizer(url, store.id, authorization_model_id=model_id)
    remote.write(data(n))
    return remote, store.id, model_id


if __name__ == "__main__":
    main()
