"""One member of a zip on an HTTP server, without downloading the whole zip.

With HTTP range requests the zip's end-of-central-directory record and central directory are
read from its end, then that one member's local header and its data (stored or deflate); the
data is inflated to the target file and its CRC-32 and size checked against the central
directory. The compressed bytes are kept as ``<target>.zpart`` while they arrive, so a stopped
or killed fetch continues where it was. A server that ignores ranges (answers 200) is detected
on the first request: :class:`RangesUnsupported` is raised before its body is read, and the
caller falls back to the whole zip (:func:`extract_member` reads one member of a local zip).

Member names come from an untrusted zip: only the last component is used, and only when it is
a plain file name.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from services.config import get_settings
from services.errors import DownloadFailed, OfflineError, UnsafeArchive

CHUNK = 1 << 20
EOCD = b"PK\x05\x06"
CENTRAL = b"PK\x01\x02"
LOCAL = b"PK\x03\x04"
EOCD_SEARCH = 22 + 65_535
"""The end record is 22 bytes plus a comment of at most 65,535 bytes."""
STORED, DEFLATED = 0, 8
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,200}$")
Progress = Callable[[int, int], None]


class RangesUnsupported(DownloadFailed):
    """The server answers range requests with the whole file."""


@dataclass(frozen=True)
class Member:
    name: str
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    flags: int

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.name).name


@dataclass
class Transfer:
    """One fetch from a remote zip: the zip's expected size, and the bytes received so far."""
    expected_size: int | None = None
    received: int = 0


def _range(url: str, start: int, end: int, transfer: Transfer, timeout: float = 30.0) -> bytes:
    """Bytes ``start..end`` (inclusive) of ``url``; :class:`RangesUnsupported` on a 200 answer, and
    :class:`DownloadFailed` when the file's total size (``Content-Range``) is not the expected one."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-{end}"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        raise DownloadFailed(f"{_shown(url)}: HTTP {error.code} {error.reason}.") from error
    except (urllib.error.URLError, OSError) as error:
        raise OfflineError(f"cannot reach {_shown(url)} ({type(error).__name__}).") from error
    with response:
        if response.status != 206:
            raise RangesUnsupported(f"{_shown(url)} does not answer range requests.")
        total = (response.headers.get("Content-Range") or "").rpartition("/")[2]
        if transfer.expected_size and total.isdigit() and int(total) != transfer.expected_size:
            raise DownloadFailed(f"{_shown(url)} has {int(total):,} bytes, not the expected "
                                 f"{transfer.expected_size:,}: another file; refused.")
        data = response.read(end - start + 2)
    transfer.received += len(data)
    if len(data) != end - start + 1:
        raise DownloadFailed(f"{_shown(url)} sent {len(data):,} bytes for a range of {end - start + 1:,}.")
    return data


def _shown(url: str) -> str:
    return url.split("?")[0][:160]


def _parse_end(tail: bytes, tail_start: int, zip_size: int) -> tuple[int, int, int]:
    """(entries, central directory size, offset) from the last end record in ``tail``."""
    at = tail.rfind(EOCD)
    if at < 0 or len(tail) - at < 22:
        raise UnsafeArchive("the remote file is not a zip (no end-of-central-directory record).")
    _, disk, cd_disk, _, entries, cd_size, cd_offset, _ = struct.unpack("<4sHHHHIIH", tail[at:at + 22])
    if disk or cd_disk or entries == 0xFFFF or 0xFFFFFFFF in (cd_size, cd_offset):
        raise UnsafeArchive("the remote zip is split or ZIP64; fetch the whole zip instead.")
    if cd_offset + cd_size > tail_start + at or cd_offset + cd_size > zip_size:
        raise UnsafeArchive("the remote zip's central directory lies outside the file; refused.")
    return entries, cd_size, cd_offset


def parse_central_directory(data: bytes, entries: int) -> list[Member]:
    """The members listed in a central directory (``entries`` records)."""
    members, at = [], 0
    limit = get_settings().max_zip_members
    if entries > limit:
        raise UnsafeArchive(f"the zip lists {entries:,} members, more than {limit:,} (DASHBOARD_MAX_ZIP_MEMBERS).")
    for _ in range(entries):
        if data[at:at + 4] != CENTRAL or len(data) < at + 46:
            raise UnsafeArchive("the remote zip's central directory is damaged.")
        (flags, method, crc, compressed, size, name_len, extra_len, comment_len,
         offset) = struct.unpack("<4xHH4xIIIHHH8xI", data[at + 4:at + 46])
        name = data[at + 46:at + 46 + name_len].decode("utf-8" if flags & 0x800 else "cp437", "replace")
        members.append(Member(name, method, crc, compressed, size, offset, flags))
        at += 46 + name_len + extra_len + comment_len
    return members


def list_members(url: str, zip_size: int, transfer: Transfer) -> list[Member]:
    """The members of the zip at ``url`` (``zip_size`` bytes), read with two range requests at most."""
    transfer.expected_size = zip_size
    tail_start = max(0, zip_size - EOCD_SEARCH)
    tail = _range(url, tail_start, zip_size - 1, transfer)
    entries, cd_size, cd_offset = _parse_end(tail, tail_start, zip_size)
    if cd_offset >= tail_start:
        directory = tail[cd_offset - tail_start:cd_offset - tail_start + cd_size]
    else:
        directory = _range(url, cd_offset, cd_offset + cd_size - 1, transfer)
    return parse_central_directory(directory, entries)


def check_member(member: Member) -> None:
    """Refuse a member that cannot or must not be written as one image file."""
    if member.flags & 0x1:
        raise UnsafeArchive(f"zip member {member.file_name[:60]!r} is encrypted; refused.")
    if member.method not in (STORED, DEFLATED):
        raise UnsafeArchive(f"zip member {member.file_name[:60]!r} uses compression method {member.method}; "
                            "only stored and deflate are read.")
    if not _PLAIN_NAME.fullmatch(member.file_name) or ".." in member.file_name:
        raise UnsafeArchive(f"zip member {member.name[:60]!r} has no plain file name; refused.")
    limit = get_settings().max_image_file_bytes
    if member.size > limit:
        raise UnsafeArchive(f"zip member {member.file_name!r} unpacks to {member.size:,} bytes, more than "
                            f"{limit:,} (DASHBOARD_MAX_IMAGE_FILE_BYTES).")


def _data_start(url: str, member: Member, transfer: Transfer) -> int:
    header = _range(url, member.header_offset, member.header_offset + 29, transfer)
    if header[:4] != LOCAL:
        raise UnsafeArchive(f"zip member {member.file_name!r}: no local header where the directory says.")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return member.header_offset + 30 + name_len + extra_len


def _receive(url: str, start: int, member: Member, part: Path, transfer: Transfer, progress: Progress | None,
             stop: threading.Event | None) -> None:
    """Append the member's compressed bytes to ``part`` (continuing what it holds)."""
    have = part.stat().st_size if part.exists() else 0
    if have > member.compressed_size:
        part.unlink()
        have = 0
    with open(part, "ab") as handle:
        while have < member.compressed_size:
            if stop is not None and stop.is_set():
                raise DownloadFailed(f"fetch of {member.file_name} stopped; it continues from {have:,} bytes next time.")
            end = min(member.compressed_size, have + 8 * CHUNK) - 1
            block = _range(url, start + have, start + end, transfer)
            handle.write(block)
            handle.flush()
            have += len(block)
            if progress is not None:
                progress(have, member.compressed_size)


def inflate(part: Path, member: Member, target: Path) -> Path:
    """Decompress ``part`` (the member's compressed bytes) to ``target``, checking size and CRC-32;
    ``target`` appears only once both match."""
    staging = target.with_name(f".{target.name}.inflating")
    decompressor = zlib.decompressobj(-15) if member.method == DEFLATED else None
    crc, size = 0, 0
    try:
        with open(part, "rb") as source, open(staging, "wb") as out:
            for block in iter(lambda: source.read(CHUNK), b""):
                data = decompressor.decompress(block, member.size - size + 1) if decompressor else block
                size += len(data)
                if size > member.size:
                    raise UnsafeArchive(f"zip member {member.file_name!r} unpacks to more bytes than it declares; "
                                        "refused.")
                crc = zlib.crc32(data, crc)
                out.write(data)
            rest = decompressor.flush() if decompressor else b""
            size += len(rest)
            crc = zlib.crc32(rest, crc)
            out.write(rest)
        if size != member.size or crc != member.crc:
            raise DownloadFailed(f"{member.file_name}: CRC-32 or size does not match the zip's directory "
                                 f"({size:,} of {member.size:,} bytes); the data is refused.")
        os.replace(staging, target)
    except zlib.error as error:
        raise DownloadFailed(f"{member.file_name}: damaged deflate data ({error}); refused.") from error
    finally:
        staging.unlink(missing_ok=True)
    return target


def fetch_member(url: str, zip_size: int, member: Member, folder: Path, *, transfer: Transfer | None = None,
                 progress: Progress | None = None, stop: threading.Event | None = None) -> Path:
    """``member`` of the zip at ``url`` as ``folder/<its file name>``, verified; resumable."""
    transfer = transfer or Transfer(zip_size)
    transfer.expected_size = zip_size
    check_member(member)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / member.file_name
    if target.is_file() and target.stat().st_size == member.size:
        return target
    part = folder / f".{member.file_name}.zpart"
    _receive(url, _data_start(url, member, transfer), member, part, transfer, progress, stop)
    try:
        return inflate(part, member, target)
    finally:
        part.unlink(missing_ok=True)  # complete: kept or refused, never resumed again


def extract_member(zip_path: Path, name: str, folder: Path) -> Path:
    """Member ``name`` of a local zip as ``folder/<its file name>`` (zipfile checks the CRC-32)."""
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo(name)
        member = Member(info.filename, info.compress_type, info.CRC, info.compress_size, info.file_size, 0,
                        info.flag_bits)
        check_member(member)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / member.file_name
        staging = target.with_name(f".{target.name}.extracting")
        try:
            with archive.open(info) as source, open(staging, "wb") as out:
                for block in iter(lambda: source.read(CHUNK), b""):
                    out.write(block)
            os.replace(staging, target)
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise DownloadFailed(f"{member.file_name} in {zip_path.name} is damaged ({error}); refused.") from error
        finally:
            staging.unlink(missing_ok=True)
    return target


def local_members(zip_path: Path) -> list[Member]:
    """The members of a local zip, as :class:`Member` rows."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            return [Member(i.filename, i.compress_type, i.CRC, i.compress_size, i.file_size, i.header_offset,
                           i.flag_bits) for i in archive.infolist()]
    except (zipfile.BadZipFile, OSError) as error:
        raise UnsafeArchive(f"{zip_path.name} is not a readable zip ({type(error).__name__}).") from error
