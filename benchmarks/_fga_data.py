"""Shared data for the fga benchmarks: nested groups (depth 5) and folder trees, ~100,000 tuples."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

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
    define owner: [user, group#member]
    define viewer: [user, group#member] or owner or viewer from parent
type document
  relations
    define parent: [folder]
    define owner: [user]
    define blocked: [user]
    define viewer: ([user, group#member] or owner or viewer from parent) but not blocked
"""

FANOUT = 5
DEPTH = 5


def tuples(
    seed: int = 7, users: int = 20_000, documents: int = 50_000, fanout: int = FANOUT, roots: int = 10
) -> Iterator[tuple[str, str, str]]:
    """~100k tuples by default: 5-level group nesting, 5-level folder trees, documents in folders."""
    rng = random.Random(seed)
    levels: list[list[str]] = [[f"group:g0_{i}" for i in range(fanout)]]
    for _depth in range(1, DEPTH):
        level = []
        for parent in levels[-1]:
            for i in range(fanout):
                child = f"{parent}.{i}"
                level.append(child)
                yield (f"{child}#member", "member", parent)
        levels.append(level)
    leaves = levels[-1]
    for u in range(users):
        yield (f"user:u{u}", "member", rng.choice(leaves))
    all_groups = [g for level in levels for g in level]
    folders: list[list[str]] = [[f"folder:f{i}" for i in range(roots)]]
    for _depth in range(1, DEPTH):
        level = []
        for parent in folders[-1]:
            for i in range(fanout):
                child = f"{parent}.{i}"
                level.append(child)
                yield (parent, "parent", child)
        folders.append(level)
    all_folders = [f for level in folders for f in level]
    for f in all_folders:
        for _ in range(rng.choice((1, 1, 2))):
            yield (f"{rng.choice(all_groups)}#member", "viewer", f)
    leaf_folders = folders[-1]
    for d in range(documents):
        yield (rng.choice(leaf_folders), "parent", f"document:d{d}")
    for d in rng.sample(range(documents), documents // 10):
        yield (f"user:u{rng.randrange(users)}", "owner", f"document:d{d}")
    for d in rng.sample(range(documents), documents * 7 // 50):
        yield (f"user:u{rng.randrange(users)}", "viewer", f"document:d{d}")
    for d in rng.sample(range(documents), documents // 50):
        yield (f"user:u{rng.randrange(users)}", "blocked", f"document:d{d}")


def queries(
    n: int, seed: int = 11, users: int = 20_000, documents: int = 50_000
) -> list[tuple[str, str, str]]:
    """Random (user, viewer, document) checks."""
    rng = random.Random(seed)
    return [
        (f"user:u{rng.randrange(users)}", "viewer", f"document:d{rng.randrange(documents)}") for _ in range(n)
    ]


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Wall times (seconds) of ``repeat`` calls."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(median, p99) in microseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1e6, p99 * 1e6
