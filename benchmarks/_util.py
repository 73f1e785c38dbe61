"""Shared helpers: timing loops, result rows and the printed table.

Every benchmark module exposes ``run(quick: bool = False) -> list[Row]`` and prints its
table when executed. Ratios always compare against a baseline measured in the same run.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    benchmark: str
    metric: str
    ours: float
    baseline: float | None = None
    unit: str = ""
    baseline_label: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.ours / self.baseline  # type: ignore[operator]


def per_second(fn: Callable[[], object], *, seconds: float = 1.0, repeat: int = 3) -> float:
    """Best-of-``repeat`` calls per second of ``fn`` over ``seconds`` each."""
    fn()
    best = 0.0
    for _ in range(repeat):
        gc.collect()
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(20):
                fn()
            n += 20
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def latency_us(fn: Callable[[], object], *, n: int = 2000) -> tuple[float, float]:
    """(median, p99) latency of ``fn`` in microseconds."""
    for _ in range(min(50, n)):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def machine() -> str:
    py = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{py}, {os.cpu_count()} cores, {platform.machine()}"


def print_table(rows: list[Row]) -> None:
    print(f"machine: {machine()}")
    header = f"{'benchmark':<28} {'metric':<44} {'ours':>14} {'baseline':>14} {'ratio':>8}  baseline is"
    print(header)
    print("-" * len(header))
    for r in rows:
        base = "" if r.baseline is None else f"{r.baseline:,.1f}"
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        print(f"{r.benchmark:<28} {r.metric:<44} {r.ours:>14,.1f} {base:>14} {ratio:>8}  {r.baseline_label}"
              + (f" ({r.note})" if r.note else ""))
