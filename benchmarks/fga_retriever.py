"""FGARetriever filtering 1,000 documents: authorizer calls and time against the unfiltered retriever.

Both backends: the embedded engine, and the OpenFGA backend (openfga-sdk) against
``agent-auth fga serve`` on loopback, where the HTTP requests are counted too. Ratios are
against the unfiltered retriever measured in the same run.

    python benchmarks/fga_retriever.py
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from typing import Any

import uvicorn
from _fga_data import MODEL
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_agent_auth.fga import AuthorizationModel, EmbeddedAuthorizer, FGARetriever, OpenFGAAuthorizer
from langchain_agent_auth.fga._server import create_app
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


def data() -> list[tuple[str, str, str]]:
    out = [("user:anne", "member", "group:team"), ("group:team#member", "viewer", "folder:shared")]
    for i in range(N):
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

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(counted, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread, hits


def raw_batches(url: str, store_id: str, model_id: str) -> int:
    """The batch-check requests the retriever needs, as plain JSON over urllib3 (a baseline)."""
    import json

    import urllib3

    pool = urllib3.PoolManager()
    allowed = 0
    for start in range(0, N, 50):
        body = {
            "authorization_model_id": model_id,
            "checks": [
                {
                    "tuple_key": {"user": "user:anne", "relation": "viewer", "object": f"document:d{i}"},
                    "correlation_id": str(i),
                }
                for i in range(start, start + 50)
            ],
        }
        resp = pool.request(
            "POST",
            f"{url}/stores/{store_id}/batch-check",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        allowed += sum(r["allowed"] for r in json.loads(resp.data)["result"].values())
    return allowed


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
    """Rows for benchmarks/run.py: the retriever over 1,000 documents, embedded engine."""
    from _util import Row

    docs = [Document(f"text {i}", metadata={"id": f"d{i}"}) for i in range(N)]
    plain = Static(docs=docs)
    base = median_ms(lambda: plain.invoke("q"), 20)
    embedded = EmbeddedAuthorizer(MODEL)
    embedded.write(data())
    counting = Counting(embedded)
    r = FGARetriever(retriever=plain, authorizer=counting, user=ANNE)
    kept = len(r.invoke("q"))
    counting.calls = 0
    t = median_ms(lambda: r.invoke("q"), 20)
    return [
        Row("fga: retriever (embedded)", f"ms to filter {N:,} docs (kept {kept})", t, base, "ms",
            "unfiltered retriever (a static list: ~0 ms, so the ratio is not meaningful)"),
        Row("fga: retriever (embedded)", "authorizer calls per query", counting.calls / 20, float(N), "",
            "one check per document"),
    ]


if __name__ == "__main__":
    main()
