"""Shared helpers: interleaved timing rounds, result rows and the printed table.

Every benchmark module exposes ``run(quick: bool = False) -> list[Row]`` and prints its
table when executed. Rules (issue 15): a row compares like with like (same tool kind, same
transport, same parallelism); the two sides run in interleaved rounds (A, B, A, B, ...), each
round timing a fixed number of calls; the table shows the median over rounds, the min-max
range and the number of rounds. Ratios are computed per round (ours / baseline of the same
round) and summarised the same way, so a noisy neighbour hits both sides alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Row:
    benchmark: str
    metric: str
    ours: float
    baseline: float | None = None
    unit: str = ""
    baseline_label: str = ""
    note: str = ""
    ours_range: tuple[float, float] | None = None
    ratios: list[float] = field(default_factory=list)  # per-round ours / baseline
    rounds: int | None = None

    @property
    def ratio(self) -> float | None:
        if self.ratios:
            return statistics.median(self.ratios)
        if self.baseline in (None, 0):
            return None
        return self.ours / self.baseline  # type: ignore[operator]

    @property
    def ratio_range(self) -> tuple[float, float] | None:
        return (min(self.ratios), max(self.ratios)) if len(self.ratios) > 1 else None


def paired(benchmark: str, metric: str, ours: Sequence[float], base: Sequence[float] | None, unit: str,
           baseline_label: str = "", note: str = "") -> Row:
    """A row from per-round samples of both sides (same length, same rounds)."""
    row = Row(benchmark, metric, statistics.median(ours), None if base is None else statistics.median(base), unit,
              baseline_label, note, (min(ours), max(ours)), rounds=len(ours))
    if base is not None:
        row.ratios = [o / b for o, b in zip(ours, base, strict=True) if b]
    return row


def single(benchmark: str, metric: str, samples: Sequence[float], unit: str, note: str = "") -> Row:
    """A row without a baseline (a growth-curve point, a count): median and range."""
    return Row(benchmark, metric, statistics.median(samples), None, unit, "", note,
               (min(samples), max(samples)), rounds=len(samples))


#: process CPU time, for in-process benchmarks without I/O (see :func:`interleaved`)
CPU = time.process_time


def _calibrate(call: Callable[[], object], target_s: float, clock: Callable[[], float]) -> int:
    n, spent = 1, 0.0
    while True:
        start = clock()
        for _ in range(n):
            call()
        spent = clock() - start
        if spent >= target_s / 4 or n >= 1 << 20:
            return max(1, int(n * target_s / max(spent, 1e-9)))
        n *= 4


def interleaved(sides: dict[str, Callable[[], object]], *, rounds: int = 7, round_s: float = 0.2,
                clock: Callable[[], float] = time.perf_counter, collect: bool = True) -> dict[str, list[float]]:
    """Microseconds per call of each side, one sample per round, sides alternating A, B, A, B.

    The number of calls per round is calibrated once on the first side and is the same for
    all sides, so every sample of a side covers the same work. ``clock=CPU`` (process CPU time)
    suits in-process work that does no I/O: time the process spends descheduled on a busy
    machine is then not counted against either side.
    """
    for call in sides.values():  # warm-up: imports, caches, first-use costs, on every side
        for _ in range(20):
            call()
    n = _calibrate(next(iter(sides.values())), round_s, clock)
    out: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, call in sides.items():
            if collect:  # each side starts from a collected heap
                gc.collect()
            start = clock()
            for _ in range(n):
                call()
            out[name].append((clock() - start) * 1e6 / n)
    return out


async def ainterleaved(sides: dict[str, Callable[[], Awaitable[object]]], *, rounds: int = 7,
                       round_s: float = 0.2, clock: Callable[[], float] = time.perf_counter,
                       collect: bool = True) -> dict[str, list[float]]:
    """:func:`interleaved` for coroutine functions, awaited one after another on the running loop."""
    for call in sides.values():
        for _ in range(20):
            await call()
    first = next(iter(sides.values()))
    n, spent = 1, 0.0
    while True:
        start = clock()
        for _ in range(n):
            await first()
        spent = clock() - start
        if spent >= round_s / 4 or n >= 1 << 20:
            break
        n *= 4
    n = max(1, int(n * round_s / max(spent, 1e-9)))
    out: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, call in sides.items():
            if collect:  # each side starts from a collected heap
                gc.collect()
            start = clock()
            for _ in range(n):
                await call()
            out[name].append((clock() - start) * 1e6 / n)
    return out


def rounds_for(quick: bool) -> tuple[int, float]:
    """(rounds, seconds per round) for a full or a ``--quick`` run."""
    return (3, 0.05) if quick else (9, 0.25)


class LoopLag:
    """Measures how long the event loop is blocked: a ticker task asks to wake every
    ``interval`` seconds and records how late it wakes. Use as ``async with LoopLag() as lag``;
    then ``lag.max_ms``."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.lags.append(max(0.0, loop.time() - expected))

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def max_ms(self) -> float:
        return max(self.lags, default=0.0) * 1000


def per_second(fn: Callable[[], object], *, seconds: float = 1.0, repeat: int = 3) -> float:
    """Median over ``repeat`` runs of ``seconds`` each, in calls per second (kept for the
    benchmarks that report throughput without a paired baseline)."""
    fn()
    rates = []
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
        rates.append(n / (now - start))
    return statistics.median(rates)


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
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.1f}"
    return f"{py}, {os.cpu_count()} cores, {platform.machine()}{load}"


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_rows(rows: list[Row]) -> list[str]:
    """The table as lines (also used for the README)."""
    lines = [
        f"machine: {machine()}",
        "median over rounds [min-max]; ratio = ours / baseline per round (lower is better for times)",
    ]
    header = (f"{'benchmark':<30} {'metric':<50} {'ours':>22} {'baseline':>10} {'ratio':>20} "
              f"{'rounds':>6}  baseline is")
    lines += [header, "-" * len(header)]
    for r in rows:
        if r.ours != r.ours:  # NaN: a row that only states a fact (e.g. "no sync path")
            lines.append(f"{r.benchmark:<30} {r.metric:<50} {'n/a':>22}")
            continue
        ours = _num(r.ours) + (f" {r.unit}" if r.unit else "")
        if r.ours_range and r.rounds and r.rounds > 1:
            ours += f" [{_num(r.ours_range[0])}-{_num(r.ours_range[1])}]"
        base = "" if r.baseline is None else _num(r.baseline)
        ratio = ""
        if r.ratio is not None:
            ratio = f"{r.ratio:.2f}x"
            if r.ratio_range:
                ratio += f" [{r.ratio_range[0]:.2f}-{r.ratio_range[1]:.2f}]"
        rounds = "" if r.rounds is None else str(r.rounds)
        lines.append(f"{r.benchmark:<30} {r.metric:<50} {ours:>22} {base:>10} {ratio:>20} {rounds:>6}  "
                     f"{r.baseline_label}" + (f" ({r.note})" if r.note else ""))
    return lines


def print_table(rows: list[Row]) -> None:
    print("\n".join(format_rows(rows)))
