"""Numbers as people read them: 61.1 % or 0.611, never 0.6111111111111112.

``percent_text(Estimate)`` -> "61.1 % (95 % CI 48.2-72.6, n = 54)". Every function returns an
em dash for a missing or non-finite value, so an absent number never reads as 0.
"""

from __future__ import annotations

import math

from services.metrics.intervals import Estimate

MISSING = "—"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def percent(value, digits: int = 1) -> str:
    """A fraction in [0, 1] as "61.1 %"; anything else (not a number, infinite, outside [0, 1]: a
    damaged or hostile store row) as a dash rather than an impossible percentage."""
    return f"{100 * value:.{digits}f} %" if _finite(value) and -1e-9 <= value <= 1 + 1e-9 else MISSING


def decimal(value, digits: int = 3) -> str:
    """A number rounded for reading ("0.611"); integers with thousands separators."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:.{digits}f}" if _finite(value) else MISSING


def interval_text(low, high, digits: int = 1) -> str:
    """"95 % CI 48.2-72.6" (percent of fractions), or "" when the interval is unknown."""
    if not (_finite(low) and _finite(high)):
        return ""
    return f"95 % CI {100 * low:.{digits}f}-{100 * high:.{digits}f}"


def estimate_text(estimate: Estimate | None, digits: int = 1) -> str:
    """"61.1 % (95 % CI 48.2-72.6, n = 54)"; "— (n = 0)" when nothing was measured."""
    if estimate is None:
        return MISSING
    interval = interval_text(estimate.low, estimate.high, digits)
    inside = ", ".join(part for part in (interval, f"n = {estimate.n:,}") if part)
    return f"{percent(estimate.value, digits)} ({inside})"


def fold_text(summary: dict | None, digits: int = 1) -> str:
    """Cross-validation: "62.8 % ± 7.1 (95 % CI 54.0-71.6, 5 folds)"."""
    if not summary or not _finite(summary.get("mean")):
        return MISSING
    text = percent(summary["mean"], digits)
    if _finite(summary.get("sd")):
        text += f" ± {100 * summary['sd']:.{digits}f}"
    interval = interval_text(summary.get("low"), summary.get("high"), digits)
    folds = f"{summary.get('folds')} folds"
    return f"{text} ({', '.join(p for p in (interval, folds) if p)})"
