"""Safe extraction of zips: dataset archives, batches of photos, any zip a user hands over.

:func:`extract_zip` is the one mechanism every zip path goes through. A zip is refused as a
whole, before anything is written, when

- it cannot be read, or a member name is not valid UTF-8 although the zip says it is;
- a member has an empty name, an absolute path, a ``..`` component, a drive letter or
  backslash path, a NUL byte or another control character, is a symbolic link or is encrypted;
- two members have the same name (one would silently overwrite the other);
- (folder layout) a name component is longer than 255 bytes, a path would be longer than
  the system allows, or a file and a folder share a name;
- it has more members than ``DASHBOARD_MAX_ZIP_MEMBERS``, or the declared uncompressed sizes
  add up to more than ``DASHBOARD_MAX_ZIP_BYTES`` or than the free disk space.

While extracting, the bytes actually written are counted too (a member that lies about its
size cannot pass the cap) and the stop flag is polled per block. Extraction goes to a hidden
staging folder next to the target, renamed into place only when complete: after a refusal,
a failure or a stop nothing is left behind. Messages name members and the zip by their own
names, never by a server path.
"""

from __future__ import annotations

import io
import lzma
import os
import re
import shutil
import stat
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from services.config import confine, get_settings
from services.errors import UnsafeArchive, UserFacingError

SKIPPED_PREFIXES = ("__MACOSX/",)
"""Folders of resource-fork junk that macOS adds to zips; never extracted."""
CHUNK = 1 << 20
NAME_MAX = 255
"""Bytes in one file-name component (ext4, APFS, NTFS)."""
PATH_MAX = 4096
"""Bytes in a whole path (Linux)."""
FLAT_NAME_CHARS = 80
_CONTROL = re.compile("[\x00-\x1f\x7f]")
Progress = Callable[[int, int], None]
"""Called with (bytes written, bytes to write)."""
Source = str | os.PathLike | bytes | BinaryIO
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError, RuntimeError,
                ValueError)


class ExtractionStopped(UserFacingError):
    """The stop flag was raised while extracting; nothing was kept."""


@dataclass
class ExtractedZip:
    folder: Path
    """The new folder holding the extracted files."""
    files: list[str] = field(default_factory=list)
    """Relative POSIX paths of the files written, in zip order."""
    original_names: list[str] = field(default_factory=list)
    """The member name each file came from (same order; differs from ``files`` when flat)."""
    bytes: int = 0


def shown(name: str, limit: int = 60) -> str:
    """A member name as it may appear in a message: quoted, shortened, control characters escaped."""
    text = name if len(name) <= limit else name[: limit - 1] + "…"
    return repr(text)


def name_parts(name: str) -> tuple[str, ...]:
    """The components of a relative member name (``PurePosixPath(name).parts`` for names that
    do not start with ``/``, which are refused anyway), by string splitting: about ten times
    faster, which counts for zips of many small files."""
    return tuple(part for part in name.split("/") if part and part != ".")


def is_junk(info: zipfile.ZipInfo) -> bool:
    """Folders and macOS resource-fork files: never extracted."""
    name = info.filename
    if not name or name.endswith("/") or name.startswith(SKIPPED_PREFIXES):
        return True
    parts = name_parts(name)
    return bool(parts) and parts[-1].startswith("._")


def _member_problem(info: zipfile.ZipInfo, parts: tuple[str, ...]) -> str | None:
    name = info.filename
    if not parts or name.strip("/") in ("", "."):
        return "has an empty name"
    if "\0" in name:
        return "has a NUL byte in its name"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if "\\" in name:
        return "uses backslashes in its path"
    if ".." in parts:
        return "climbs out of the target folder with '..'"
    if _CONTROL.search(name):
        return "has a control character (such as a newline) in its name"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def _layout_problem(parts: tuple[str, ...], base_bytes: int) -> str | None:
    # A character encodes to at most 4 bytes: short names skip the encoding.
    for part in parts:
        if len(part) * 4 > NAME_MAX and len(os.fsencode(part)) > NAME_MAX:
            return f"has a name component longer than {NAME_MAX} bytes"
    path = "/".join(parts)
    if base_bytes + len(path) * 4 >= PATH_MAX and base_bytes + len(os.fsencode(path)) >= PATH_MAX:
        return f"would make a path longer than {PATH_MAX:,} bytes"
    return None


def check_member_count(archive: zipfile.ZipFile, max_members: int) -> list[zipfile.ZipInfo]:
    """All members of ``archive``, or :class:`UnsafeArchive` when there are too many."""
    infos = archive.infolist()
    if len(infos) > max_members:
        raise UnsafeArchive(
            f"the zip has {len(infos):,} members, more than the limit of {max_members:,} "
            "(DASHBOARD_MAX_ZIP_MEMBERS); refused."
        )
    return infos


def check_members(infos: list[zipfile.ZipInfo], *, flat: bool = False, base_bytes: int = 0) -> None:
    """Refuse (:class:`UnsafeArchive`) the first unsafe, duplicate or clashing member name.

    ``flat``: files are written under new names, so only the names' safety and uniqueness
    matter; otherwise the folder layout is checked too (name and path lengths, a file and a
    folder with one name). ``base_bytes`` is the length of the target folder's path."""
    seen: set[str] = set()
    files: dict[str, str] = {}
    folders: set[str] = set()
    for info in infos:
        parts = name_parts(info.filename)
        problem = _member_problem(info, parts)
        if problem:
            raise UnsafeArchive(f"zip member {shown(info.filename)} {problem}; the whole zip is refused.")
        path = "/".join(parts)
        key = path + ("/" if info.filename.endswith("/") else "")
        if key in seen:
            raise UnsafeArchive(f"zip member {shown(info.filename)} appears twice; one would overwrite the "
                                "other, so the whole zip is refused.")
        seen.add(key)
        if flat:
            continue
        problem = _layout_problem(parts, base_bytes)
        if problem:
            raise UnsafeArchive(f"zip member {shown(info.filename)} {problem}; the whole zip is refused.")
        parent = path.rpartition("/")[0]
        while parent and parent not in folders:  # an ancestor in the set has all of its own there
            folders.add(parent)
            parent = parent.rpartition("/")[0]
        if info.filename.endswith("/"):
            folders.add(path)
        else:
            files[path] = info.filename
    for clash in sorted(folders.intersection(files)):
        raise UnsafeArchive(f"zip member {shown(files[clash])} is both a file and a folder in the zip; "
                            "the whole zip is refused.")


def check_sizes(members: list[zipfile.ZipInfo], max_bytes: int, target_parent: Path) -> int:
    """The declared uncompressed total of ``members``; refused over ``max_bytes`` or the free
    disk space of ``target_parent``."""
    total = sum(info.file_size for info in members)
    if total > max_bytes:
        raise UnsafeArchive(
            f"the zip would unpack to {total:,} bytes, more than the limit of {max_bytes:,} "
            "(DASHBOARD_MAX_ZIP_BYTES); refused as a possible zip bomb; nothing was written."
        )
    free = shutil.disk_usage(target_parent).free
    if total > free:
        raise UnsafeArchive(f"the zip would unpack to {total / 1e9:,.2f} GB but only {free / 1e9:,.2f} GB of "
                            "disk are free; nothing was written.")
    return total


def copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: str | Path, budget: int, limit: int,
                stop: Callable[[], bool] | None = None) -> int:
    """Copy one member to ``target``, counting the bytes actually written so that a member
    that lies about its size cannot exceed ``budget`` (what is left of the zip's ``limit``);
    polls ``stop`` per block; returns the bytes written."""
    written = 0
    with archive.open(info) as source, open(target, "xb") as sink:
        while block := source.read(CHUNK):
            written += len(block)
            if written > budget or written > info.file_size:
                raise UnsafeArchive(
                    f"zip member {shown(info.filename)} unpacks to more bytes than it declares, or the zip to "
                    f"more than {limit:,} bytes (DASHBOARD_MAX_ZIP_BYTES); refused as a possible zip bomb; "
                    "nothing was kept."
                )
            if stop is not None and stop():
                raise ExtractionStopped("extraction stopped; nothing was kept.")
            sink.write(block)
    return written


def inside(root: str, relative: str) -> str:
    """``root/relative``, refused unless it stays inside ``root`` (belt and braces after the
    name checks). Lexical, with no system call per file: ``root`` is the freshly made staging
    folder, resolved once, into which extraction writes no links."""
    target = os.path.normpath(os.path.join(root, relative))
    if not target.startswith(root + os.sep):
        raise UnsafeArchive(f"zip member {shown(relative)} would land outside the target folder; refused.")
    return target


def flat_name(name: str, number: int) -> str:
    """A safe, unique file name for member ``name`` when a zip is extracted flat:
    ``00012_photo.jpg`` (the member's base name, characters other than letters, digits,
    ``-_.`` replaced, shortened)."""
    base = PurePosixPath(name).name
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in base).lstrip(".")
    stem, dot, suffix = cleaned.rpartition(".")
    if dot and len(suffix) <= 10:
        cleaned = stem[: FLAT_NAME_CHARS - len(suffix) - 1] + "." + suffix
    return f"{number:05d}_{cleaned[:FLAT_NAME_CHARS] or 'file'}"


def damage(error: BaseException) -> str:
    """What is wrong with a zip that failed while being read, in words (no exception names)."""
    text = str(error)
    if "CRC" in text:
        return "a file in it does not match its checksum (the zip was cut or altered)"
    if isinstance(error, (zlib.error, lzma.LZMAError, EOFError)) or "compress" in text.lower():
        return "the compressed data of a file in it is cut or corrupt"
    if isinstance(error, NotImplementedError):
        return "it uses a compression method this server cannot read"
    return "its directory or a file header cannot be read"


def _open_archive(source: Source, label: str) -> zipfile.ZipFile:
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
        return zipfile.ZipFile(handle)
    except UnicodeDecodeError as error:
        raise UnsafeArchive(f"{label}: a member name is not valid UTF-8 although the zip marks it as UTF-8; "
                            "the whole zip is refused.") from error
    except OSError as error:
        raise UnsafeArchive(f"{label} cannot be read ({error.strerror or type(error).__name__}).") from error
    except _READ_ERRORS as error:
        raise UnsafeArchive(f"{label} is not a readable zip file ({error}).") from error


def extract_zip(source: Source, target: str | os.PathLike, *, max_bytes: int | None = None,
                max_members: int | None = None, stop: Callable[[], bool] | None = None,
                progress: Progress | None = None, select: Callable[[str], bool] | None = None,
                flat: bool = False, label: str | None = None) -> ExtractedZip:
    """Extract the zip ``source`` (a path inside the data root, bytes, or a binary file object)
    into the new folder ``target`` (inside the data root; it must not exist yet).

    ``select(member_name)`` picks the file members to write (default: all but folders and
    macOS junk); every member's name is checked either way. ``flat=True`` writes the chosen
    members side by side under :func:`flat_name` names instead of their folders. ``label``
    names the zip in messages (default: its file name). Caps default to the settings.
    Raises :class:`UnsafeArchive` (refused), :class:`ExtractionStopped` or
    :class:`UserFacingError`; nothing is left behind then.
    """
    settings = get_settings()
    max_bytes = settings.max_zip_bytes if max_bytes is None else max_bytes
    max_members = settings.max_zip_members if max_members is None else max_members
    if isinstance(source, (str, os.PathLike)):
        source = confine(source)
        label = label or source.name
        if not source.is_file():
            raise UserFacingError(f"{label}: no such zip file under the data root.")
    label = label or "the zip"
    target = confine(target)
    if target.exists():
        raise UserFacingError(f"{target.name} already exists; choose another name or remove it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".extracting-{uuid.uuid4().hex[:12]}"
    archive = _open_archive(source, label)
    try:
        with archive:
            infos = check_member_count(archive, max_members)
            check_members(infos, flat=flat, base_bytes=len(os.fsencode(str(staging))) + 1)
            members = [info for info in infos if not is_junk(info) and (select is None or select(info.filename))]
            total = check_sizes(members, max_bytes, target.parent)
            result = _extract_members(archive, members, staging, max_bytes, total, flat, progress, stop)
        os.replace(staging, target)
    except _READ_ERRORS as error:
        raise UnsafeArchive(f"{label} is damaged: {damage(error)}; nothing was kept. Zip the files again and "
                            "upload the new zip.") from error
    except OSError as error:
        raise UnsafeArchive(f"{label} could not be extracted ({error.strerror or type(error).__name__}); "
                            "nothing was kept.") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.folder = target
    return result


def _extract_members(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], staging: Path, max_bytes: int,
                     total: int, flat: bool, progress: Progress | None,
                     stop: Callable[[], bool] | None) -> ExtractedZip:
    staging.mkdir(parents=True)
    result = ExtractedZip(staging)
    root = str(confine(staging, staging))
    folders = {root}
    for number, info in enumerate(members):
        relative = flat_name(info.filename, number) if flat else "/".join(name_parts(info.filename))
        target = inside(root, relative)
        folder = os.path.dirname(target)
        if folder not in folders:  # one mkdir per folder, not per file
            os.makedirs(folder, exist_ok=True)
            folders.add(folder)
        result.bytes += copy_member(archive, info, target, max_bytes - result.bytes, max_bytes, stop)
        result.files.append(relative)
        result.original_names.append(info.filename)
        if progress:
            progress(result.bytes, total)
    return result


def read_zip_members(source: Source, *, select: Callable[[str], bool] | None = None, max_bytes: int | None = None,
                     max_members: int | None = None, label: str | None = None) -> list[tuple[str, bytes]]:
    """(name, bytes) of the chosen file members of a zip, read into memory with the same checks
    as :func:`extract_zip` (names, duplicates, member count, declared and actual sizes against
    ``max_bytes``, default ``DASHBOARD_MAX_ZIP_BYTES``), for zips whose content is parsed, not
    written to disk (e.g. TensorBoard event files)."""
    settings = get_settings()
    max_bytes = settings.max_zip_bytes if max_bytes is None else max_bytes
    max_members = settings.max_zip_members if max_members is None else max_members
    label = label or "the zip"
    archive = _open_archive(source, label)
    found, total = [], 0
    try:
        with archive:
            infos = check_member_count(archive, max_members)
            check_members(infos, flat=True)
            members = [info for info in infos if not is_junk(info) and (select is None or select(info.filename))]
            if sum(info.file_size for info in members) > max_bytes:
                raise UnsafeArchive(f"{label}: the chosen members would unpack to more than {max_bytes:,} bytes; "
                                    "refused.")
            for info in members:
                with archive.open(info) as stream:
                    data = stream.read(min(info.file_size, max_bytes - total) + 1)
                total += len(data)
                if len(data) > info.file_size or total > max_bytes:
                    raise UnsafeArchive(f"zip member {shown(info.filename)} unpacks to more bytes than it declares; "
                                        "refused.")
                found.append((info.filename, data))
    except _READ_ERRORS as error:
        raise UnsafeArchive(f"{label} is damaged: {damage(error)}. Zip the files again and upload the new zip.") \
            from error
    return found


def safe_extract(zip_path: str | os.PathLike, dest: str | os.PathLike, *, max_bytes: int | None = None,
                 max_members: int | None = None, progress: Progress | None = None,
                 stop: Callable[[], bool] | None = None) -> Path:
    """Extract ``zip_path`` into the new folder ``dest`` keeping its layout; returns ``dest``
    (:func:`extract_zip` for folders of files)."""
    return extract_zip(zip_path, dest, max_bytes=max_bytes, max_members=max_members, progress=progress,
                       stop=stop).folder
