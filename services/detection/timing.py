"""Warm inference timings for comparing backends: the first call of a backend pays for loading,
tracing and allocation, so comparing two first calls compares set-up costs, not inference."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

WARM_RUNS = 3


@dataclass(frozen=True)
class WarmTiming:
    cold_ms: float
    """The first call's time, excluded from the others."""
    runs_ms: tuple[float, ...]
    """The warm calls' times."""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms)

    @property
    def text(self) -> str:
        """``median 41 ms (38-45 ms, 3 warm runs)``."""
        return (f"median {self.median_ms:.0f} ms ({min(self.runs_ms):.0f}-{max(self.runs_ms):.0f} ms, "
                f"{len(self.runs_ms)} warm runs)")


def warm_timing(cold_ms: float, timed_call: Callable[[], float], runs: int = WARM_RUNS) -> WarmTiming:
    """``runs`` more calls of ``timed_call`` (each returns its inference time in ms) after a first,
    cold call that took ``cold_ms``."""
    if runs < 1:
        raise ValueError("at least one warm run")
    return WarmTiming(float(cold_ms), tuple(float(timed_call()) for _ in range(runs)))


def speed_ratio(first: WarmTiming, second: WarmTiming) -> float:
    """How many times longer ``first`` takes than ``second`` (medians of warm runs)."""
    return first.median_ms / max(second.median_ms, 1e-9)
