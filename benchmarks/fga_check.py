"""Check latency over ~100,000 tuples: nested groups (depth 5) and folder trees (depth 5).

Prints median and p99 per check for the in-memory and the SQLite stores, against a
baseline measured in the same run (a check answered by one direct tuple), and batch_check
against the same checks one by one.

    python benchmarks/fga_check.py [--queries 2000]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from _fga_data import MODEL, percentiles, queries, timed, tuples

from langchain_agent_auth.fga import EmbeddedAuthorizer, MemoryTupleStore, SQLiteTupleStore


def load(store: object) -> tuple[EmbeddedAuthorizer, float, int]:
    fga = EmbeddedAuthorizer(MODEL, store)  # type: ignore[arg-type]
    data = list(tuples())
    start = time.perf_counter()
    for i in range(0, len(data), 10_000):
        fga.write(data[i : i + 10_000])
    elapsed = time.perf_counter() - start
    # The loaded store is long-lived: keep the cyclic GC from rescanning it during the run.
    gc.collect()
    gc.freeze()
    return fga, elapsed, len(data)


def measure(n_queries: int, report: bool = True) -> dict[str, dict[str, float]]:
    """Per store: baseline and deep-check median/p99 (us), 200 checks one by one vs batched (ms)."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("memory", "sqlite"):
            store = MemoryTupleStore() if name == "memory" else SQLiteTupleStore(Path(tmp) / "b.sqlite")
            fga, load_s, n = load(store)
            direct = next(t for t in tuples() if t[1] == "viewer" and t[2].startswith("document:"))
            timed(lambda fga=fga, d=direct: fga.check(*d), 100)
            base = timed(lambda fga=fga, d=direct: fga.check(*d), n_queries)
            qs = queries(n_queries)
            for q in qs[: n_queries // 4]:  # warm the caches (SQLite pages, model indexes)
                fga.check(*q)
            results: list[bool] = []
            samples = []
            for q in qs:
                start = time.perf_counter()
                results.append(fga.check(*q))
                samples.append(time.perf_counter() - start)
            b_med, b_p99 = percentiles(base)
            med, p99 = percentiles(samples)
            batch = qs[:200]
            one_by_one = sum(timed(lambda fga=fga, b=batch: [fga.check(*q) for q in b], 5)) / 5
            batched = sum(timed(lambda fga=fga, b=batch: fga.batch_check(b), 5)) / 5
            out[name] = {"b_med": b_med, "b_p99": b_p99, "med": med, "p99": p99, "tuples": n,
                         "one_by_one_ms": one_by_one * 1e3, "batched_ms": batched * 1e3}
            if not report:
                del fga, store
                gc.unfreeze()
                gc.collect()
                continue
            print(f"[{name}] {n} tuples loaded in {load_s:.2f}s")
            print(f"  baseline (one direct tuple): median {b_med:.1f} us, p99 {b_p99:.1f} us")
            print(
                f"  nested groups x folder tree: median {med:.1f} us, p99 {p99:.1f} us "
                f"({sum(results)}/{len(results)} allowed)"
            )
            print(f"  ratio to baseline: median {med / b_med:.1f}x, p99 {p99 / b_p99:.1f}x")
            print(
                f"  200 checks: one by one {one_by_one * 1e3:.1f} ms, batch_check {batched * 1e3:.1f} ms "
                f"({one_by_one / batched:.2f}x)"
            )
            del fga, store
            gc.unfreeze()
            gc.collect()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=2000)
    measure(parser.parse_args().queries)


def run(quick: bool = False) -> list:
    """Rows for benchmarks/run.py."""
    from _util import Row

    rows = []
    for name, r in measure(500 if quick else 2000, report=False).items():
        label = f"one direct-tuple check, same store ({int(r['tuples']):,} tuples)"
        rows.append(Row(f"fga: check ({name})", "median us, nested groups x folders (depth 5)", r["med"], r["b_med"],
                        "us", label))
        rows.append(Row(f"fga: check ({name})", "p99 us, nested groups x folders (depth 5)", r["p99"], r["b_p99"],
                        "us", label))
    return rows


if __name__ == "__main__":
    main()
