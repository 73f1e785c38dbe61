"""The benchmark harness (benchmarks/_util.py): interleaved rounds, per-round ratios, the
table, and the event-loop lag probe. No timing is asserted except a lower bound that a
blocking call guarantees."""

from __future__ import annotations

import asyncio
import math
import time

from benchmarks._util import LoopLag, Row, ainterleaved, format_rows, interleaved, paired, single


def test_interleaved_runs_the_sides_in_alternating_rounds() -> None:
    order: list[str] = []
    sides = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    out = interleaved(sides, rounds=3, round_s=0.001, collect=False)
    assert sorted(out) == ["a", "b"] and len(out["a"]) == len(out["b"]) == 3
    assert (order.count("b") - 20) % 3 == 0  # after 20 warm-up calls, the same count in each round
    runs = [side for i, side in enumerate(order) if i == 0 or order[i - 1] != side]
    assert runs[-6:] == ["a", "b"] * 3  # the measured rounds alternate A, B, A, B...


def test_ainterleaved_awaits_every_side() -> None:
    seen = {"a": 0, "b": 0}

    async def side(name: str) -> None:
        seen[name] += 1

    sides = {"a": lambda: side("a"), "b": lambda: side("b")}
    out = asyncio.run(ainterleaved(sides, rounds=2, round_s=0.001, collect=False))
    assert len(out["a"]) == len(out["b"]) == 2
    assert seen["a"] >= seen["b"] > 20  # "a" also ran the calibration


def test_ratio_is_the_median_of_per_round_ratios_with_its_range() -> None:
    row = paired("x", "y", [2.0, 4.0, 9.0], [1.0, 2.0, 3.0], "µs", "bare")
    assert row.ratio == 2.0 and row.ratio_range == (2.0, 3.0)
    assert row.ours == 4.0 and row.baseline == 2.0 and row.ours_range == (2.0, 9.0) and row.rounds == 3
    assert single("x", "y", [1.0, 5.0, 3.0], "ms").baseline is None


def test_table_shows_median_range_ratio_and_rounds() -> None:
    lines = format_rows([paired("vault: hot path", "µs per call", [110.0, 120.0, 130.0], [100.0, 100.0, 100.0],
                                "µs", "bare tool"), Row("peer", "no sync path", math.nan)])
    row = next(line for line in lines if line.startswith("vault: hot path"))
    assert "120 µs [110-130]" in row and "1.20x [1.10-1.30]" in row and " 3 " in row and "bare tool" in row
    assert next(line for line in lines if line.startswith("peer")).rstrip().endswith("n/a")


def test_loop_lag_sees_a_blocking_call() -> None:
    async def main() -> tuple[float, int]:
        async with LoopLag() as lag:
            await asyncio.sleep(0.005)
            time.sleep(0.05)  # blocks the loop: the ticker cannot run for at least 50 ms
            await asyncio.sleep(0.005)
        return lag.max_ms, len(lag.lags)

    worst, ticks = asyncio.run(main())
    assert ticks > 0 and worst >= 45
