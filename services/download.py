"""Resumable HTTP(S) downloads with progress, size and checksum verification.

Used for the Kather dataset, pretrained weights and Darknet files. A partial download is kept
as ``<dest>.part`` and resumed with an HTTP Range request; the final file appears atomically
only once its size and checksum match.
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from services.config import display_path, get_settings
from services.errors import DownloadFailed, OfflineError

CHUNK = 1 << 20
ProgressCallback = Callable[[int, int | None], None]
"""Called with (bytes done, total bytes or None)."""


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, *, size: int | None = None, md5: str | None = None, sha256: str | None = None) -> None:
    """Raise :class:`DownloadFailed` unless ``path`` has the expected size and checksums."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DownloadFailed(f"{path.name}: expected {size:,} bytes, got {actual_size:,}.")
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected:
            actual = file_digest(path, algorithm)
            if actual.lower() != expected.lower():
                raise DownloadFailed(f"{path.name}: {algorithm} is {actual}, expected {expected}; the file is refused.")


def mirrored(url: str) -> str:
    """``url``, or the same file on the download mirror when ``DASHBOARD_DOWNLOAD_MIRROR`` is set
    (``<mirror>/<last path component of url>``; the query is dropped)."""
    mirror = get_settings().download_mirror
    if not mirror:
        return url
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    return f"{mirror.rstrip('/')}/{name}"


def offline_message(url: str, dest: Path) -> str:
    return (
        f"Cannot download {url} (no network, or DASHBOARD_OFFLINE is set). Download it on a "
        f"machine with internet access and put it at {display_path(dest)} (the data root is "
        "DASHBOARD_DATA_DIR), then try again."
    )


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``.part`` file, and verify it.

    Returns ``dest``. An existing ``dest`` that verifies is returned without any network access.
    A checksum mismatch deletes the partial data and raises :class:`DownloadFailed`.
    """
    dest = Path(dest)
    if dest.exists():
        verify_file(dest, size=size, md5=md5, sha256=sha256)
        return dest
    if get_settings().offline:
        raise OfflineError(offline_message(url, dest))
    url = mirrored(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and size is not None and have == size:
            response = None  # already complete
        else:
            raise DownloadFailed(f"{url}: HTTP {error.code} {error.reason}.") from error
    except (urllib.error.URLError, OSError) as error:
        raise OfflineError(offline_message(url, dest) + f" ({error})") from error
    if response is not None:
        with response:
            resumed = have > 0 and response.status == 206
            if not resumed:
                have = 0
            length = response.headers.get("Content-Length")
            total = size or (int(length) + have if length is not None else None)
            with open(part, "ab" if resumed else "wb") as handle:
                while True:
                    if stop is not None and stop.is_set():
                        raise DownloadFailed(f"download of {url} stopped; it resumes from {have:,} bytes next time.")
                    try:
                        block = response.read(CHUNK)
                    except OSError as error:
                        raise DownloadFailed(
                            f"{url}: connection lost after {have:,} bytes ({error}); try again to resume."
                        ) from error
                    if not block:
                        break
                    handle.write(block)
                    have += len(block)
                    if progress is not None:
                        progress(have, total)
    try:
        verify_file(part, size=size, md5=md5, sha256=sha256)
    except DownloadFailed:
        if size is None or part.stat().st_size >= size:
            part.unlink(missing_ok=True)  # complete but wrong: never keep or resume garbage
        raise
    os.replace(part, dest)
    return dest
