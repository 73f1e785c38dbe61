"""Resumers that scale out: 1, 2 and 4 resumer processes over one PostgreSQL database (a
throwaway cluster from Debian's ``postgresql`` package), CIBA approvals at the local provider
(``LocalProvider``, real HTTP), the graph on ``PostgresStore`` + ``PostgresSaver``.

* resumes per second with 1, 2 and 4 workers, 10,000 approved requests pending (1,000 with
  ``--quick``): each round times the first 20% of them from a copy of the same seeded
  database and provider; worker counts interleaved round by round;
* provider requests per interval with 4 workers against the pending count (the limit: one
  poll per pending request per interval; ping mode is measured in approval_resumer.py);
* store bytes per pending item (approval record, checkpoints, claims);
* claim overhead per item: a claim and its release on PostgreSQL against the store read the
  resumer does for the item anyway;
* the scale-out test's scenario at 2,000 pending (400 with ``--quick``): 4 workers, one
  killed with SIGKILL midway; every thread resumed once, every tool run once.

Run: python benchmarks/resumer_scaleout.py [--quick]
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 2)[0])

from benchmarks._util import Row, interleaved, paired, print_table, single
from tests.approval import scaleout_app as app
from tests.support.postgres import PostgresCluster, postgres_available

INTERVAL = 2  # the provider's CIBA interval (seconds)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bench:
    """One cluster, one provider port, snapshots of (database, provider data) to start rounds from."""

    def __init__(self, root: pathlib.Path) -> None:
        from langchain_agent_auth.core.crypto import Keyring

        self.root = root
        self.pg = PostgresCluster(pathlib.Path(tempfile.mkdtemp(prefix="agent-auth-pg-bench-")))
        self.port = _port()
        self.keys = root / "keys.json"
        Keyring.from_file(self.keys, create=True)
        self.live_dsn = self.pg.database("live")
        self.idp_dir = root / "idp-live"
        self.idp_dir.mkdir()
        self.idp: Any = None
        self.rounds = 0

    def provider(self, data_dir: pathlib.Path) -> Any:
        from langchain_agent_auth.devserver import LocalProvider

        return LocalProvider(str(data_dir), port=self.port, ciba_interval=INTERVAL).start()

    def snapshot(self, name: str, restart: bool = True) -> None:
        """Copy the live database and provider data under ``name`` (then restart the live provider)."""
        import psycopg

        self.idp.stop()
        with psycopg.connect(self.pg.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE live')
        shutil.copytree(self.idp_dir, self.root / f"idp-{name}")
        self.idp = self.provider(self.idp_dir) if restart else None

    @contextlib.contextmanager
    def restored(self, name: str) -> Iterator[tuple[pathlib.Path, Any, str]]:
        """A fresh copy of snapshot ``name``: (folder, provider, dsn)."""
        import psycopg

        self.rounds += 1
        db = f"round{self.rounds}"
        with psycopg.connect(self.pg.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}" TEMPLATE "{name}"')
        data = self.root / f"idp-round{self.rounds}"
        shutil.copytree(self.root / f"idp-{name}", data)
        idp = self.provider(data)
        folder = self.root / f"round{self.rounds}"
        try:
            yield folder, idp, self.pg.dsn.rsplit("/", 1)[0] + f"/{db}"
        finally:
            idp.stop()
            shutil.rmtree(data, ignore_errors=True)
            with psycopg.connect(self.pg.dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')

    def close(self) -> None:
        if self.idp is not None:
            self.idp.stop()
        self.pg.stop()


def _go(folder: pathlib.Path, workers: list[Any]) -> float:
    """Wait until every worker is connected and waiting, then let them go."""
    while len(app.lines(folder / "started.txt")) < len(workers):
        for w in workers:
            if w.poll() is not None:
                raise RuntimeError(w.stderr.read() if w.stderr else "a worker died")
        time.sleep(0.05)
    (folder / "go").write_text("")
    return time.perf_counter()


def resumes_per_second(bench: Bench, snap: str, workers: int, timed: int) -> float:
    with bench.restored(snap) as (folder, idp, dsn):
        app.configure(folder, idp, dsn, bench.keys, lease=60.0, batch=100, go=True)
        procs = app.start_workers(folder, workers)
        try:
            started = _go(folder, procs)
            while len(app.lines(folder / "runs.txt")) < timed:
                if time.perf_counter() - started > 600:
                    raise RuntimeError(f"{timed} resumes not done in 10 minutes")
                time.sleep(0.02)
            return timed / (time.perf_counter() - started)
        finally:
            app.stop_workers(folder, procs)


def polls_per_interval(bench: Bench, snap: str, pending: int, intervals: int = 3) -> tuple[float, int]:
    """(provider polls per interval per pending request, slow_down answers) with 4 workers."""
    with bench.restored(snap) as (folder, idp, dsn):
        app.configure(folder, idp, dsn, bench.keys, lease=60.0, batch=500, go=True)
        procs = app.start_workers(folder, 4)
        try:
            _go(folder, procs)
            idp.reset_stats()
            time.sleep(intervals * INTERVAL)
            ciba = idp.stats().get("ciba", {})
        finally:
            app.stop_workers(folder, procs)
    polls = ciba.get("authorization_pending", 0) + ciba.get("slow_down", 0) + ciba.get("tokens", 0)
    return polls / intervals / pending, ciba.get("slow_down", 0)


def store_bytes(dsn: str) -> dict[str, int]:
    import psycopg

    groups = {"approval records (store)": ("store",), "checkpoints": ("checkpoints", "checkpoint_blobs",
                                                                    "checkpoint_writes"),
              "claims (agent_auth_cas)": ("agent_auth_cas",)}
    out = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for label, tables in groups.items():
            total = 0
            for t in tables:
                row = conn.execute("SELECT pg_total_relation_size(to_regclass(%s))", (t,)).fetchone()
                total += int(row[0] or 0) if row else 0
            out[label] = total
    return out


def claim_overhead(dsn: str, rounds: int) -> tuple[list[float], list[float]]:
    """Microseconds: a claim + release of an item on PostgreSQL, and the store read of its record."""
    from langgraph.store.postgres import PostgresStore

    from langchain_agent_auth.resume import PendingItem, claim_item, unclaim_item

    with PostgresStore.from_conn_string(dsn) as store:
        (rec,) = store.search(("agent_auth",), limit=1)
        item = PendingItem(source="approval", key=rec.key, ref="r", thread_id="t", claim="bench")

        def claim() -> None:
            claim_item(store, item, "bench", 60.0)
            unclaim_item(store, item, "bench")

        def read() -> None:
            store.get(rec.namespace, rec.key)

        samples = interleaved({"claim": claim, "read": read}, rounds=rounds, round_s=0.3)
    return samples["claim"], samples["read"]


def run(quick: bool = False) -> list[Row]:
    why = postgres_available()
    if why:
        raise RuntimeError(f"PostgreSQL unavailable: {why}")
    total = 1_000 if quick else 10_000
    small = 400 if quick else 2_000
    rounds = 2 if quick else 3
    root = pathlib.Path(tempfile.mkdtemp(prefix="agent-auth-scaleout-"))
    bench = Bench(root)
    rows: list[Row] = []
    name = "approval: resumers on PostgreSQL"
    try:
        bench.idp = bench.provider(bench.idp_dir)
        seeding = root / "seed"
        app.add_users(bench.idp, 0, total)
        cfg = app.configure(seeding, bench.idp, bench.live_dsn, bench.keys)
        t0 = time.perf_counter()
        app.seed(seeding, cfg, 0, small)
        bench.snapshot("pending_small")
        app.seed(seeding, cfg, small, total)
        seed_s = time.perf_counter() - t0
        bench.snapshot("pending_all")
        sizes = store_bytes(bench.live_dsn)
        for r in bench.idp.pending_approvals():
            bench.idp.approve(r["id"])
        bench.snapshot("approved_all", restart=False)  # rounds start their own provider on its port

        timed = total // 5
        samples: dict[int, list[float]] = {1: [], 2: [], 4: []}
        for k in range(rounds):
            order = [1, 2, 4] if k % 2 == 0 else [4, 2, 1]
            for w in order:
                samples[w].append(resumes_per_second(bench, "approved_all", w, timed))
        for w in (1, 2, 4):
            rows.append(paired(name, f"resumes/s, {w} worker{'s' if w > 1 else ''}, {total:,} pending",
                               samples[w], samples[1], "/s", "1 worker",
                               f"first {timed:,} resumes; 2 shared cores"))

        for snap, pending in (("pending_small", small), ("pending_all", total)):
            got = [polls_per_interval(bench, snap, pending) for _ in range(rounds)]
            rows.append(single(name, f"provider polls per {INTERVAL} s interval per pending request, {pending:,} "
                                     "pending, 4 workers", [g[0] for g in got], "",
                               f"limit 1.0; slow_down answers: {sum(g[1] for g in got)}"))

        for label, size in sizes.items():
            note = f"{total:,} pending, pg_total_relation_size"
            if label.startswith("claims"):
                note = "a claim lives only while a resumer works on the item (then released or lapsed)"
            rows.append(Row(name, f"store bytes per pending item: {label}", size / total, None, "B", note=note))
        rows.append(Row(name, "seconds to pause one thread (seeding, 1 process)", seed_s / total, None, "s"))

        claim, read = claim_overhead(bench.live_dsn, 5 if quick else 9)
        rows.append(paired(name, "claim overhead per item (claim + release)", claim, read, "us",
                           "store.get of the record", "two statements, each its own transaction"))

        with bench.restored("pending_small") as (folder, idp, dsn):
            app.configure(folder, idp, dsn, bench.keys)
            report = app.scenario(folder, idp, small, timeout=900)
        once = (len(report["runs"]) == small and set(report["runs"].values()) == {1}
                and set(report["resumes"].values()) == {1})
        rows.append(Row(name, f"{small:,} pending, 4 workers, 1 SIGKILLed: threads resumed once, tools run once",
                        float(sum(1 for v in report["runs"].values() if v == 1)), float(small), "",
                        f"of {small:,}", f"{'all exactly once' if once else 'NOT exactly once'}; "
                        f"slow_down {report['slow_down']}; tokens {report['tokens']}; "
                        f"{report['elapsed']:.0f} s, kill at {report['killed_at']:.0f} s"))
    finally:
        bench.close()
        shutil.rmtree(root, ignore_errors=True)
    return rows


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
