"""list_objects over 10,000 objects, against checking each object one by one (same run).

A user reaches 10,000 documents through a group grant on a folder; 10,000 other documents
sit in folders they cannot see. Prints the time of one list_objects call and the ratio to
10,000 individual checks of the reachable documents.

    python benchmarks/fga_list_objects.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _fga_data import MODEL

from langchain_agent_auth.fga import EmbeddedAuthorizer, MemoryTupleStore, SQLiteTupleStore

VISIBLE = 10_000


def data(visible: int = VISIBLE) -> list[tuple[str, str, str]]:
    out = [
        ("user:alice", "member", "group:team"),
        ("group:team#member", "member", "group:org"),
        ("group:org#member", "viewer", "folder:shared"),
        ("user:bob", "viewer", "folder:private"),
    ]
    for i in range(100):
        out.append(("folder:shared", "parent", f"folder:s{i}"))
        out.append(("folder:private", "parent", f"folder:p{i}"))
    for i in range(visible):
        out.append((f"folder:s{i % 100}", "parent", f"document:v{i}"))
        out.append((f"folder:p{i % 100}", "parent", f"document:h{i}"))
    return out


def measure(report: bool = True) -> dict[str, tuple[float, float]]:
    """Per store: (list_objects seconds, the same answer by individual checks seconds)."""
    out: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, store in (
            ("memory", MemoryTupleStore()),
            ("sqlite", SQLiteTupleStore(Path(tmp) / "l.sqlite")),
        ):
            fga = EmbeddedAuthorizer(MODEL, store)
            rows = data()
            for i in range(0, len(rows), 10_000):
                fga.write(rows[i : i + 10_000])
            start = time.perf_counter()
            objects = fga.list_objects("user:alice", "viewer", "document")
            listed = time.perf_counter() - start
            start = time.perf_counter()
            allowed = sum(fga.check("user:alice", "viewer", f"document:v{i}") for i in range(VISIBLE))
            checked = time.perf_counter() - start
            assert len(objects) == VISIBLE == allowed
            out[name] = (listed, checked)
            if report:
                print(
                    f"[{name}] {len(rows)} tuples; list_objects -> {len(objects)} objects "
                    f"in {listed * 1e3:.0f} ms; "
                    f"{VISIBLE} individual checks {checked * 1e3:.0f} ms ({checked / listed:.2f}x the list call)"
                )
    return out


def main() -> None:
    measure()


def growth(sizes: tuple[int, ...], rounds: int) -> list:
    """Rows: list_objects at each size against the same answer by individual checks, interleaved
    rounds (list, checks, list, checks...), per store."""
    from _util import paired

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("memory", "sqlite"):
            for size in sizes:
                store = MemoryTupleStore() if name == "memory" else SQLiteTupleStore(Path(tmp) / f"l{size}.sqlite")
                fga = EmbeddedAuthorizer(MODEL, store)
                tuples = data(size)
                for i in range(0, len(tuples), 10_000):
                    fga.write(tuples[i : i + 10_000])
                listed, checked = [], []
                for _ in range(rounds):
                    start = time.perf_counter()
                    objects = fga.list_objects("user:alice", "viewer", "document")
                    listed.append((time.perf_counter() - start) * 1e3)
                    start = time.perf_counter()
                    allowed = sum(fga.check("user:alice", "viewer", f"document:v{i}") for i in range(size))
                    checked.append((time.perf_counter() - start) * 1e3)
                    assert len(objects) == size == allowed
                rows.append(paired(f"fga: list_objects ({name})", f"ms to list {size:,} of {2 * size:,} documents",
                                   listed, checked, "ms", f"{size:,} individual checks, same store"))
    return rows


def run(quick: bool = False) -> list:
    """Rows for benchmarks/run.py: 1k and 10k visible documents (1k only with ``--quick``)."""
    return growth((1_000,) if quick else (1_000, 10_000), 2 if quick else 5)
