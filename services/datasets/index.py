"""The index of a tile dataset: one row per file of a folder of class sub-folders.

``load_index(folder)`` returns a pandas DataFrame and caches it as parquet under
``<data_root>/cache/index/``. The cache key is the folder; a signature of every file's relative
path, size and modification time decides whether the cached index is still valid, so adding,
removing or rewriting a tile re-indexes (only the changed files are read again).

Columns: ``path`` (absolute), ``relpath``, ``label`` (folder name without its number prefix),
``label_index`` (0..n-1 in sorted folder order), ``class_folder``, ``source_image``,
``tile_row``, ``tile_col`` (from Kather names; the file stem and -1 otherwise), ``width``,
``height``, ``mode``, ``bytes``, ``mtime_ns``, ``content_hash`` (BLAKE2b), ``phash`` (64-bit
DCT perceptual hash as 16 hex digits), ``mean_r/g/b``, ``note`` (conversions made when
decoding, e.g. palette to RGB) and ``problem``: null when the file is usable, otherwise the
reason it is excluded (unreadable, too small, too large, not an image, not a regular file such as
a FIFO, outside the data root). Only regular files are opened, and their size and image header
are checked before they are read or decoded.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from services.config import confine, get_settings
from services.datasets.naming import label_from_folder, parse_tile_name
from services.errors import BadImage, PathOutsideRoot, UserFacingError
from services.images import decode_image, open_regular_file

INDEX_VERSION = "3"
IMAGE_SUFFIXES = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
COLUMNS = [
    "path", "relpath", "label", "label_index", "class_folder", "source_image", "tile_row", "tile_col",
    "width", "height", "mode", "bytes", "mtime_ns", "content_hash", "phash",
    "mean_r", "mean_g", "mean_b", "note", "problem",
]
MAX_DEPTH = 16
"""Folder levels below a class folder that are searched for tiles."""
Progress = Callable[[int, int], None]
"""Called with (files done, files in total)."""


class IndexingStopped(UserFacingError):
    """Indexing was asked to stop; the files read so far are cached, the next call reads the rest."""


@dataclass(frozen=True)
class FileEntry:
    relpath: str
    class_folder: str
    size: int
    mtime_ns: int


def class_folders(folder: Path) -> list[str]:
    """Names of the non-hidden sub-folders of ``folder``, sorted (their order gives label_index)."""
    try:
        children = sorted(entry.name for entry in os.scandir(folder)
                          if entry.is_dir(follow_symlinks=False) and not entry.name.startswith((".", "__")))
    except FileNotFoundError as error:
        raise UserFacingError(f"{Path(folder).name}: folder not found.") from error
    return children


def scan_folder(folder: Path) -> list[FileEntry]:
    """Every non-hidden file below the class folders of ``folder`` (symlinks not followed;
    folders deeper than :data:`MAX_DEPTH`, unreadable folders and names that are not valid
    UTF-8 are left out)."""
    entries: list[FileEntry] = []
    for class_folder in class_folders(folder):
        _scan_directory(os.path.join(folder, class_folder), class_folder, class_folder, entries, 1)
    return entries


def _listable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not name.startswith(".")


def _scan_directory(directory: str, relative: str, class_folder: str, entries: list[FileEntry], depth: int) -> None:
    try:
        with os.scandir(directory) as iterator:
            children = sorted((entry for entry in iterator if _listable(entry.name)), key=lambda e: e.name)
    except OSError:
        return  # unreadable folder: nothing in it can be used
    for entry in children:
        relpath = f"{relative}/{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            if depth < MAX_DEPTH:
                _scan_directory(entry.path, relpath, class_folder, entries, depth + 1)
        else:
            stat = entry.stat(follow_symlinks=False)
            entries.append(FileEntry(relpath, class_folder, stat.st_size, stat.st_mtime_ns))


def signature(entries: Iterable[FileEntry]) -> str:
    digest = hashlib.blake2b(INDEX_VERSION.encode(), digest_size=16)
    for entry in entries:
        digest.update(f"{entry.relpath}\0{entry.size}\0{entry.mtime_ns}\n".encode())
    return digest.hexdigest()


def _dct_matrix(n: int = 32) -> np.ndarray:
    k = np.arange(n)[:, None]
    matrix = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT = _dct_matrix()


def perceptual_hash(pixels: np.ndarray) -> str:
    """64-bit pHash: the signs of the 8x8 lowest DCT frequencies of a 32x32 grey thumbnail,
    relative to their median, as 16 hex digits. Similar images differ in few bits."""
    grey = np.asarray(Image.fromarray(pixels).convert("L").resize((32, 32), Image.Resampling.BILINEAR),
                      dtype=np.float64)
    low = (_DCT @ grey @ _DCT.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return f"{int(np.packbits(bits).view('>u8')[0]):016x}"


def describe_file(path: Path, root: Path) -> dict:
    """The index columns that need the file's content; ``problem`` says why it is unusable."""
    row: dict = {"width": -1, "height": -1, "mode": None, "content_hash": None, "phash": None,
                 "mean_r": np.nan, "mean_g": np.nan, "mean_b": np.nan, "note": None, "problem": None}
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        row["problem"] = f"not an image file (extension {path.suffix or 'none'!r})"
        return row
    try:
        confine(path, root)
    except PathOutsideRoot:
        row["problem"] = "a link to a file outside the data root; not read"
        return row
    limit = get_settings().max_image_file_bytes
    try:
        with open_regular_file(path, limit) as handle:  # FIFOs, devices and giant files: never read
            data = handle.read(limit + 1)
    except BadImage as error:
        row["problem"] = str(error)
        return row
    except OSError as error:
        row["problem"] = f"cannot be read ({error.strerror or type(error).__name__})"
        return row
    if len(data) > limit:
        row["problem"] = f"grew beyond {limit / 1e6:,.1f} MB while being read (DASHBOARD_MAX_IMAGE_FILE_BYTES)"
        return row
    row["content_hash"] = hashlib.blake2b(data, digest_size=16).hexdigest()
    stream = io.BytesIO(data)
    stream.name = path.name
    try:
        decoded = decode_image(stream)
    except BadImage as error:
        row["problem"] = str(error)
        return row
    pixels = decoded.pixels
    mean = pixels.reshape(-1, 3).mean(axis=0)
    row.update(width=decoded.original_size[0], height=decoded.original_size[1], mode=decoded.original_mode,
               phash=perceptual_hash(pixels), mean_r=mean[0], mean_g=mean[1], mean_b=mean[2],
               note=" ".join(decoded.notes) or None)
    return row


def _base_row(folder: Path, entry: FileEntry, label_index: dict[str, int]) -> dict:
    tile = parse_tile_name(entry.relpath)
    return {
        "path": str(folder / entry.relpath), "relpath": entry.relpath,
        "label": label_from_folder(entry.class_folder), "label_index": label_index[entry.class_folder],
        "class_folder": entry.class_folder,
        "source_image": tile.source_image if tile else Path(entry.relpath).name,
        "tile_row": tile.row if tile else -1, "tile_col": tile.col if tile else -1,
        "bytes": entry.size, "mtime_ns": entry.mtime_ns,
    }


def cache_file(folder: Path) -> Path:
    key = hashlib.blake2b(str(folder).encode(), digest_size=10).hexdigest()
    return get_settings().cache_dir / "index" / f"{key}.parquet"


def _read_cache(path: Path) -> tuple[str | None, pd.DataFrame | None]:
    """The stored signature and index; (None, None) without a usable cache of this version."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):
        return None, None
    metadata = table.schema.metadata or {}
    if metadata.get(b"version", b"").decode() != INDEX_VERSION:
        return None, None  # computed by another version: nothing in it can be reused
    return metadata.get(b"signature", b"").decode() or None, table.to_pandas()


def _write_cache(path: Path, frame: pd.DataFrame, folder_signature: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"signature": folder_signature.encode(),
                                           b"version": INDEX_VERSION.encode()})
    temporary = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")  # unique per writer thread
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def current_signature(folder: Path) -> str:
    """The signature of the folder as it is now (lists it; reads no file)."""
    return signature(scan_folder(confine(folder)))


def cached_signature(folder: Path) -> str | None:
    """The signature stored with the cached index of ``folder`` (None without a cache)."""
    try:
        metadata = pq.read_schema(cache_file(confine(folder))).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    return metadata.get(b"signature", b"").decode() or None


def load_index(folder: Path, *, progress: Progress | None = None, stop: Callable[[], bool] | None = None,
               workers: int | None = None) -> pd.DataFrame:
    """The index of ``folder`` (a folder of class sub-folders inside the data root).

    Answers from the parquet cache when nothing changed; otherwise reads the new or changed
    files with a pool of ``workers`` threads (default: one per CPU) and updates the cache.
    """
    folder = confine(folder)
    root = get_settings().data_root
    entries = scan_folder(folder)
    if not entries:
        raise UserFacingError(
            f"{folder.name}: no files in class sub-folders. A dataset is a folder with one sub-folder "
            "per class (e.g. 01_TUMOR/, 02_STROMA/) holding the image tiles."
        )
    folder_signature = signature(entries)
    path = cache_file(folder)
    cached_signature, cached = _read_cache(path)
    if cached is not None and cached_signature == folder_signature and list(cached.columns) == COLUMNS:
        return cached
    previous = _reusable_rows(cached)
    labels = {name: i for i, name in enumerate(sorted({e.class_folder for e in entries}))}
    rows = [_base_row(folder, entry, labels) for entry in entries]
    todo = []
    for i, entry in enumerate(entries):
        known = previous.get((entry.relpath, entry.size, entry.mtime_ns))
        if known is None:
            todo.append(i)
        else:
            rows[i].update(known)
    try:
        _describe_all(folder, root, entries, rows, todo, progress, stop, workers)
    except IndexingStopped:
        # Keep the files read so far (signature "partial": never valid, but their rows are reused).
        _write_cache(path, pd.DataFrame([r for r in rows if "problem" in r], columns=COLUMNS), "partial")
        raise
    frame = pd.DataFrame(rows, columns=COLUMNS)
    _write_cache(path, frame, folder_signature)
    return _read_cache(path)[1]  # the same dtypes whether cold or warm


def _reusable_rows(cached: pd.DataFrame | None) -> dict[tuple, dict]:
    if cached is None or list(cached.columns) != COLUMNS:
        return {}
    content = ["width", "height", "mode", "content_hash", "phash", "mean_r", "mean_g", "mean_b", "note", "problem"]
    records = cached[["relpath", "bytes", "mtime_ns", *content]].to_dict("records")
    return {(r.pop("relpath"), r.pop("bytes"), r.pop("mtime_ns")): _nulls_to_none(r) for r in records}


def _nulls_to_none(record: dict) -> dict:
    return {k: (None if not isinstance(v, float) and pd.isna(v) else v) for k, v in record.items()}


def _describe_all(folder: Path, root: Path, entries: list[FileEntry], rows: list[dict], todo: list[int],
                  progress: Progress | None, stop: Callable[[], bool] | None, workers: int | None) -> None:
    total = len(todo)
    if progress:
        progress(0, total)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2, thread_name_prefix="index") as pool:
        chunk = 64
        for start in range(0, total, chunk):
            if stop is not None and stop():
                raise IndexingStopped("indexing stopped; start it again to continue.")
            batch = todo[start:start + chunk]
            for i, described in zip(batch, pool.map(lambda i: describe_file(folder / entries[i].relpath, root), batch)):
                rows[i].update(described)
            if progress:
                progress(min(start + chunk, total), total)


def class_names(frame: pd.DataFrame) -> list[str]:
    """Class labels in label_index order."""
    pairs = frame[["label_index", "label"]].drop_duplicates().sort_values("label_index")
    return pairs["label"].tolist()


def usable(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows without a problem (the files a model may see)."""
    return frame[frame["problem"].isna()]
