"""Helpers shared by the dataset tests: tiny generated datasets and the demo set."""

from __future__ import annotations

import dataclasses
import functools
import io
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.datasets.naming import kather_tile_name
from tests.conftest import stop_background_processes


def write_tile(path: Path, seed: int, size: int = 24, fmt: str = "TIFF") -> Path:
    """A small random RGB tile (distinct per seed)."""
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def make_dataset(folder: Path, classes=("01_TUMOR", "02_STROMA"), sources: int = 3, tiles_per_source: int = 2) -> Path:
    """A folder of class folders with Kather-named random tiles."""
    seed = 0
    for class_folder in classes:
        for source in range(sources):
            for tile in range(tiles_per_source):
                seed += 1
                name = kather_tile_name(f"{seed:04X}", f"SRC-{class_folder}-{source}.tif", tile * 150 + 1, 1)
                write_tile(folder / class_folder / name, seed)
    return folder


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def _generated_demo_root() -> Path:
    """Generate the demo set once per test process (test modules import the fixtures below,
    which pytest would otherwise set up once per module)."""
    from services.datasets.demo import ensure_demo_dataset

    root = Path(tempfile.mkdtemp(prefix="demo-root-"))
    ensure_demo_dataset(root)
    return root


@pytest.fixture(scope="session")
def demo_root() -> Iterator[Path]:
    """A data root holding the generated demo set (shared: tests may add jobs, caches and splits,
    never change the tiles). Its model service and job runner stop at the end of the session."""
    root = _generated_demo_root()
    yield root
    stop_background_processes(root)


@pytest.fixture
def demo_data_root(demo_root, monkeypatch) -> Path:
    monkeypatch.setenv("DASHBOARD_DATA_DIR", str(demo_root))
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    return demo_root


# ---------------------------------------------------------------- hand-built zips (hostile corpus)

@dataclasses.dataclass
class RawMember:
    """One member of a zip written byte by byte, so that it can say what ``zipfile`` would
    never write: an empty or non-UTF-8 name with the UTF-8 flag, a duplicate, a lying size."""
    name: bytes
    data: bytes = b""
    flags: int = 0
    """General purpose flags; 0x800 marks the name as UTF-8."""
    compressed: bytes | None = None
    """Raw deflate data (method 8); None stores ``data`` (method 0)."""
    declared_size: int | None = None
    """The uncompressed size written in the headers (default: the real one)."""
    crc: int | None = None


def raw_zip(members: list[RawMember]) -> bytes:
    """A zip file of ``members`` (local headers, central directory, end record; no zip64)."""
    body, central = bytearray(), bytearray()
    for member in members:
        payload = member.data if member.compressed is None else member.compressed
        method = 0 if member.compressed is None else 8
        size = len(member.data) if member.declared_size is None else member.declared_size
        crc = zlib.crc32(member.data) if member.crc is None else member.crc
        offset = len(body)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, member.flags, method, 0, 0x21, crc, len(payload), size,
                            len(member.name), 0) + member.name + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, member.flags, method, 0, 0x21, crc,
                               len(payload), size, len(member.name), 0, 0, 0, 0, 0o644 << 16, offset) + member.name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(body), 0)
    return bytes(body + central + end)


def zeros_deflate(mebibytes: int) -> bytes:
    """Raw deflate data that inflates to ``mebibytes`` MiB of zeros, built from one compressed
    MiB repeated (each block ends with a full flush, so the copies chain): about 1 kB per MiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * mebibytes + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def zip_bomb(members: int = 4, mebibytes_each: int = 1024) -> bytes:
    """A zip of ``members`` files of ``mebibytes_each`` MiB of zeros, with honest sizes: the
    default is about 4.2 MB that would inflate to 4 GiB (the CRCs are not computed, as
    nothing may ever read that far)."""
    data = zeros_deflate(mebibytes_each)
    return raw_zip([RawMember(f"01_A/zeros{i}.tif".encode(), compressed=data, declared_size=mebibytes_each << 20,
                              crc=0) for i in range(members)])
