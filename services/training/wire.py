"""The remote-logging protocol's limits, shared by the sender (:mod:`services.training.remote`)
and the endpoint (:mod:`services.training.ingest`): one owner for each cap, so the sender splits
its batches under exactly the limit the endpoint enforces.

Standard library only at import (the sender runs on machines without the dashboard's
requirements). Both sides measure nesting with :func:`services.untrusted_json.json_depth`.
"""

from __future__ import annotations

import math
import re
from typing import Any

EVENTS_PATH = "/v1/events"
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body the endpoint reads; the sender's batches stay under it."""
MAX_EVENT_BYTES = 2 * 1024 * 1024
"""Largest single event (its JSON); a bigger one is dropped by the sender and refused by the endpoint."""
MAX_EVENTS = 5000
"""Events per request."""
MAX_DEPTH = 32
"""Deepest nesting of objects and lists in a request (checked before the JSON is parsed)."""
MAX_PART_BYTES = 1_000_000
"""Largest confusion matrix, summary update or merged run summary (JSON)."""
MAX_TIME = 7_258_118_400.0
"""Latest time stamp accepted (2200-01-01 UTC, well inside what pandas and the monitor can show)."""
READ_TIMEOUT_S = 30.0
"""Seconds the endpoint waits for a slow client's next bytes before giving up on the request."""
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
"""A run id a sender may create: ASCII letters, digits and dashes, at most 64 characters."""
ENVELOPE_BYTES = 256
"""Room kept in a body for ``{"client": ..., "events": [...]}`` around the events."""


def first_non_finite(value: Any, where: str = "") -> str | None:
    """Where the first NaN or infinity inside ``value`` is (a dotted path), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "the value"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = first_non_finite(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def confusion_payload(payload: Any) -> dict[str, list]:
    """``classes`` (names) and ``matrix`` (a square list of counts, one row and column per class)
    of a confusion matrix, under :data:`MAX_PART_BYTES`; anything else is a ValueError."""
    import json

    if not isinstance(payload, dict) or len(json.dumps(payload, default=str)) > MAX_PART_BYTES:
        raise ValueError(f"a confusion matrix must be an object under {MAX_PART_BYTES:,} bytes")
    classes, matrix = payload.get("classes"), payload.get("matrix")
    if not isinstance(classes, list) or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes):
        raise ValueError("a confusion matrix needs a list of class names")
    square = isinstance(matrix, list) and len(matrix) == len(classes) and all(
        isinstance(row, list) and len(row) == len(classes) for row in matrix)
    if not square or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 10**12
                             for row in matrix for n in row):
        raise ValueError("a confusion matrix must be a square list of counts, one row and column per class")
    return {"classes": [str(c)[:100] for c in classes], "matrix": matrix}
