"""Timing for the benchmark scripts: the timed steps take turns, so a change of the machine's load hits all alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds_in_turns(
    steps: dict[str, Callable[[], object]], rounds: int, calls: int, warmup: int = 2
) -> dict[str, float]:
    """Seconds per call of each step: the median over ``rounds`` of the mean of ``calls`` calls.

    Every step is warmed up ``warmup`` times; then each round times every step once, one after the other.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(calls):
                step()
            samples[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(times) for name, times in samples.items()}
