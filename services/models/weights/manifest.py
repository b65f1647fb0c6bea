"""What the model cache knows about a weights file: its hashes and the ``<file>.json`` manifest
recorded beside it (source, owner, official or not), and whether a cached file may be used."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from services import untrusted_json
from services.models.backbones import BackboneSpec

_digest_cache: dict[tuple[str, int, int], dict[str, str]] = {}
lock = threading.RLock()
"""Held while a file of the model cache is replaced or removed (and around the digest cache)."""


def file_digests(path: Path) -> dict[str, str]:
    """md5 and sha256 of ``path`` in one read; remembered while size and mtime are unchanged."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with lock:
        if key in _digest_cache:
            return _digest_cache[key]
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            md5.update(block)
            sha256.update(block)
    digests = {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}
    with lock:
        _digest_cache[key] = digests
    return digests


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_manifest(path: Path) -> dict[str, Any]:
    """What is recorded about a cached weights file (source, hashes); {} if nothing."""
    return untrusted_json.read_or(manifest_path(path), {})


def write_manifest(path: Path, backbone: BackboneSpec, source: str, **extra: Any) -> None:
    digests = file_digests(path)
    record = {
        "backbone": backbone.name, "file": path.name, "source": source, "bytes": path.stat().st_size,
        **digests, "official": backbone.md5 is not None and digests["md5"] == backbone.md5,
        "installed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra,
    }
    manifest_path(path).write_text(json.dumps(record, indent=1))


def check_cached(backbone: BackboneSpec, path: Path, trust_manifest: bool) -> tuple[bool, bool, str]:
    """(usable, official, problem) for a file found in a cache."""
    digests = file_digests(path)
    if backbone.md5 is None or digests["md5"] == backbone.md5:
        return True, backbone.md5 is not None, ""
    if trust_manifest and read_manifest(path).get("md5") == digests["md5"]:
        return True, False, ""
    return False, False, (
        f"{path} has md5 {digests['md5']}, not the official {backbone.md5}: refused (incomplete or "
        "altered download, or a foreign file)."
    )
