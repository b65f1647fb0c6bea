"""Who made a dataset: a small JSON record inside the folder of an imported dataset.

``<data_root>/datasets/<name>/.dataset.json`` holds ``{"owner", "source", "imported"}``; it is
written by the import into the staging folder before the folder is renamed into place, so a
dataset never appears without it (and a record shipped inside the zip is overwritten). The
indexer never reads it: it lists class sub-folders only, and hidden names are skipped. Datasets
without a record (Kather 2016 and NCT-CRC-HE downloads, folders copied in by hand, imports made
before records existed) have no owner: only an administrator may delete them when sign-in is on
(see :mod:`services.access`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from services import untrusted_json
from services.access import normalize_owner

RECORD = ".dataset.json"


def write_record(folder: Path, owner: str | None, source: str | None) -> None:
    record = {"owner": normalize_owner(owner), "source": (source or "")[:120],
              "imported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (folder / RECORD).write_text(json.dumps(record, indent=1))


def read_owner(folder: Path) -> str | None:
    """The recorded owner (treated as untrusted text), None without a readable record."""
    record = untrusted_json.read_or(folder / RECORD, None)
    return normalize_owner(record.get("owner")) if record is not None else None
