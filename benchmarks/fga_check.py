"""Check latency over ~100,000 tuples: nested groups (depth 5) and folder trees (depth 5);
for run.py, the growth curve at 10k / 100k / 1M tuples.

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
    gc.collect()
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
            for q in queries(n_queries // 4, seed=12):  # warm the caches on other queries than the measured
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
            gc.collect()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=2000)
    measure(parser.parse_args().queries)


SIZES_FULL = (10_000, 100_000, 1_000_000)
SIZES_QUICK = (10_000,)


def _scaled(size: int) -> dict[str, int]:
    """users/documents so that :func:`tuples` yields about ``size`` tuples (105k at the defaults)."""
    factor = size / 105_000
    return {"users": max(100, int(20_000 * factor)), "documents": max(100, int(50_000 * factor)),
            "roots": max(1, round(10 * factor))}


def growth(sizes: tuple[int, ...], n_queries: int) -> list[dict[str, float]]:
    """Check p50/p99 (µs) per store and size. The warm-up uses other queries than the measured
    ones (a different seed), and the GC runs as it would in an application."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            shape = _scaled(size)
            data = list(dict.fromkeys(tuples(**shape)))  # the generator may repeat a folder grant
            for name in ("memory", "sqlite"):
                store = MemoryTupleStore() if name == "memory" else SQLiteTupleStore(Path(tmp) / f"g{size}.sqlite")
                fga = EmbeddedAuthorizer(MODEL, store)
                start = time.perf_counter()
                for i in range(0, len(data), 10_000):
                    fga.write(data[i : i + 10_000])
                load_s = time.perf_counter() - start
                asked = {"users": shape["users"], "documents": shape["documents"]}
                for q in queries(max(50, n_queries // 4), seed=12, **asked):
                    fga.check(*q)
                samples = []
                for q in queries(n_queries, seed=11, **asked):
                    start = time.perf_counter()
                    fga.check(*q)
                    samples.append(time.perf_counter() - start)
                med, p99 = percentiles(samples)
                out.append({"store": name, "tuples": len(data), "med": med, "p99": p99, "load_s": load_s,
                            "n": n_queries})
                del fga, store
            del data
            gc.collect()
    return out


def run(quick: bool = False) -> list:
    """Rows for benchmarks/run.py: check p50/p99 at 10k, 100k and 1M tuples (10k only with
    ``--quick``), each against the same store's figure at the smallest size (the growth)."""
    from _util import Row

    rows = []
    results = growth(SIZES_QUICK if quick else SIZES_FULL, 300 if quick else 2000)
    for name in ("memory", "sqlite"):
        mine = [r for r in results if r["store"] == name]
        first = mine[0]
        for r in mine:
            label = f"same check at {int(first['tuples']):,} tuples"
            note = f"{int(r['n'])} random checks; loaded in {r['load_s']:.1f} s"
            for key, what in (("med", "p50"), ("p99", "p99")):
                rows.append(Row(f"fga: check ({name})", f"{what} µs, {int(r['tuples']):,} tuples, depth-5 nesting",
                                r[key], first[key], "µs", label, note))
    return rows


if __name__ == "__main__":
    main()
