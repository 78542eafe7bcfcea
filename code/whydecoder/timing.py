"""Timing a call: the wall-clock seconds of repeated calls after untimed warm-up ones, and
their median. Used by the experiments that time decoding and serving.

Explained in the chapter "Efficiency: the KV cache".
"""

from __future__ import annotations

import statistics
import time


def timings(fn, repeats: int, warmup: int = 0) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn()``, after ``warmup`` untimed calls.

    Defined in the chapter "Efficiency: the KV cache".
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median_seconds(fn, repeats: int, warmup: int = 0) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls.

    Defined in the chapter "Efficiency: the KV cache".
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1 (a median needs a timing), got {repeats!r}")
    return statistics.median(timings(fn, repeats, warmup))
