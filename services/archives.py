"""Safe extraction of zips: dataset archives and batches of photos.

A zip is refused as a whole, before anything is written, when any member has an absolute path,
a ``..`` component, a drive letter or backslash path, a NUL byte, is a symlink or is encrypted,
or when the archive exceeds the caps on member count (``DASHBOARD_MAX_ZIP_MEMBERS``) or total
uncompressed size (``DASHBOARD_MAX_ZIP_BYTES``). While extracting, the bytes actually written
are counted too, so a member that lies about its size cannot exceed the cap. Extraction goes to
a hidden staging folder next to the target, renamed into place only when complete.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from services.config import confine, get_settings
from services.errors import UnsafeArchive, UserFacingError

SKIPPED_PREFIXES = ("__MACOSX/",)
"""Folders of resource-fork junk that macOS adds to zips; never extracted."""
CHUNK = 1 << 20
Progress = Callable[[int, int], None]


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\0" in name:
        return "has a NUL byte in its name"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if "\\" in name:
        return "uses backslashes in its path"
    if ".." in PurePosixPath(name).parts:
        return "climbs out of the target folder with '..'"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
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


def copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int, limit: int) -> int:
    """Copy one member to ``target``, counting the bytes actually written so that a member
    that lies about its size cannot exceed ``budget`` (what is left of the zip's ``limit``);
    returns the bytes written."""
    written = 0
    with archive.open(info) as source, open(target, "wb") as sink:
        while block := source.read(CHUNK):
            written += len(block)
            if written > budget:
                raise UnsafeArchive(
                    f"the zip unpacks to more than {limit:,} bytes "
                    "(DASHBOARD_MAX_ZIP_BYTES); refused as a possible zip bomb; nothing was kept."
                )
            sink.write(block)
    return written


def is_junk(info: zipfile.ZipInfo) -> bool:
    """Folders and macOS resource-fork files: never extracted."""
    return (info.is_dir() or info.filename.startswith(SKIPPED_PREFIXES)
            or PurePosixPath(info.filename).name.startswith("._"))


def members_to_extract(archive: zipfile.ZipFile, *, max_bytes: int, max_members: int) -> list[zipfile.ZipInfo]:
    """The file members worth extracting, or :class:`UnsafeArchive` naming the first offence."""
    infos = check_member_count(archive, max_members)
    for info in infos:
        problem = _member_problem(info)
        if problem:
            raise UnsafeArchive(f"zip member {info.filename!r} {problem}; the whole zip is refused.")
    total = sum(info.file_size for info in infos)
    if total > max_bytes:
        raise UnsafeArchive(
            f"the zip would unpack to {total:,} bytes, more than the limit of {max_bytes:,} "
            "(DASHBOARD_MAX_ZIP_BYTES); refused as a possible zip bomb."
        )
    return [info for info in infos if not is_junk(info)]


def safe_extract(zip_path: str | os.PathLike, dest: str | os.PathLike, *, max_bytes: int | None = None,
                 max_members: int | None = None, progress: Progress | None = None,
                 stop: Callable[[], bool] | None = None) -> Path:
    """Extract ``zip_path`` into the new folder ``dest`` (both inside the data root)."""
    settings = get_settings()
    max_bytes = settings.max_zip_bytes if max_bytes is None else max_bytes
    max_members = settings.max_zip_members if max_members is None else max_members
    zip_path, dest = confine(zip_path), confine(dest)
    if dest.exists():
        raise UserFacingError(f"{dest.name} already exists in {dest.parent}; choose another name or remove it.")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise UnsafeArchive(f"{zip_path.name} is not a readable zip file ({error}).") from error
    staging = dest.with_name(f".{dest.name}-extracting-{uuid.uuid4().hex[:8]}")
    try:
        with archive:
            members = members_to_extract(archive, max_bytes=max_bytes, max_members=max_members)
            _extract_members(archive, members, staging, max_bytes, progress, stop)
        os.replace(staging, dest)
    except zipfile.BadZipFile as error:
        raise UnsafeArchive(f"{zip_path.name} is damaged ({error}); nothing was kept.") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _extract_members(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], staging: Path, max_bytes: int,
                     progress: Progress | None, stop: Callable[[], bool] | None) -> None:
    staging.mkdir(parents=True)
    written, total = 0, sum(info.file_size for info in members)
    for info in members:
        target = staging.joinpath(*PurePosixPath(info.filename).parts)
        confine(target, staging)  # belt and braces after the name checks
        target.parent.mkdir(parents=True, exist_ok=True)
        written += copy_member(archive, info, target, max_bytes - written, max_bytes)
        if stop is not None and stop():
            raise UserFacingError("extraction stopped; nothing was kept.")
        if progress:
            progress(written, total)
