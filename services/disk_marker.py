"""Whether the data root started empty with this server: the sign that an ephemeral disk (Streamlit
Community Cloud's) was reset.

A marker file (``MARKER``) is written into the data root the first time a server starts on it.
Only a data root that is new, or whose disk was wiped since the last start, lacks it; so a server
that has to write it knows that nothing made before its start is there (runs, maps, jobs,
uploads, downloads). The marker holds when it was written (JSON, read as untrusted: anything
unreadable counts as written now).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

MARKER = ".dashboard-root.json"


@dataclass(frozen=True)
class RootStart:
    fresh: bool
    """The marker was missing: the data root is new or was emptied before this start."""
    since: float
    """When the data root was started from empty (seconds since the epoch)."""


def note_start(data_root: Path) -> RootStart:
    """Read the marker of ``data_root``, writing it (and the folder) when it is missing."""
    path = data_root / MARKER
    try:
        since = float(json.loads(path.read_text(encoding="utf-8"))["since"])
        if not 0 < since <= time.time() + 86_400:
            raise ValueError("out of range")
        return RootStart(False, since)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError):
        return RootStart(False, time.time())  # a damaged marker: the disk itself was kept
    now = time.time()
    data_root.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{MARKER}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"since": now}), encoding="utf-8")
    os.replace(temporary, path)
    return RootStart(True, now)
