"""One member of a zip on a local HTTP server: range requests, CRC-32, resumption, no-range servers."""

from __future__ import annotations

import os
import zipfile
import zlib

import pytest

from services import remote_zip
from services.errors import DownloadFailed, UnsafeArchive
from tests.conftest import serve_folder

PREFIX = "Kather_texture_2016_larger_images_10/"


def _zip(folder, *, filler: int = 3_000_000) -> tuple[bytes, bytes, bytes]:
    """A zip like the larger-images one: a deflated image, a stored image and a large filler."""
    first = os.urandom(1000) * 200           # compressible: deflate does something
    second = os.urandom(150_000)
    with zipfile.ZipFile(folder / "larger.zip", "w") as archive:
        archive.writestr(PREFIX, b"")
        archive.writestr(PREFIX + "CRC-Prim-HE-01_APPLICATION.tif", first, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(PREFIX + "CRC-Prim-HE-02_APPLICATION.tif", second, compress_type=zipfile.ZIP_STORED)
        archive.writestr(PREFIX + "CRC-Prim-HE-03_APPLICATION.tif", os.urandom(filler),
                         compress_type=zipfile.ZIP_STORED)
    return (folder / "larger.zip").read_bytes(), first, second


def test_range_requests_fetch_only_one_member_of_each_method(tmp_path, data_root):
    served = tmp_path / "served"
    served.mkdir()
    data, first, second = _zip(served)
    with serve_folder(served) as server:
        url = server.url + "larger.zip"
        transfer = remote_zip.Transfer()
        members = {m.file_name: m for m in remote_zip.list_members(url, len(data), transfer)}
        assert {m.method for m in members.values() if m.size} == {remote_zip.STORED, remote_zip.DEFLATED}
        out = tmp_path / "out"
        got = remote_zip.fetch_member(url, len(data), members["CRC-Prim-HE-01_APPLICATION.tif"], out,
                                      transfer=transfer)
        assert got.read_bytes() == first
        got = remote_zip.fetch_member(url, len(data), members["CRC-Prim-HE-02_APPLICATION.tif"], out,
                                      transfer=transfer)
        assert got.read_bytes() == second
        assert all(header and header.startswith("bytes=") for _, header in server.stats["requests"])
    assert transfer.received == server.bytes_sent
    assert server.bytes_sent < len(data) / 5  # the 3 MB filler never travelled
    assert not list(out.glob(".*"))           # no partial or staging files left


def test_a_corrupted_member_is_refused_by_its_crc(tmp_path, data_root):
    served = tmp_path / "served"
    served.mkdir()
    data, _, second = _zip(served)
    at = data.index(second[:64])
    damaged = bytearray(data)
    damaged[at + 10] ^= 0xFF
    (served / "larger.zip").write_bytes(bytes(damaged))
    with serve_folder(served) as server:
        url = server.url + "larger.zip"
        members = {m.file_name: m for m in remote_zip.list_members(url, len(data), remote_zip.Transfer())}
        with pytest.raises(DownloadFailed, match="CRC-32"):
            remote_zip.fetch_member(url, len(data), members["CRC-Prim-HE-02_APPLICATION.tif"], tmp_path / "out")
    assert not (tmp_path / "out" / "CRC-Prim-HE-02_APPLICATION.tif").exists()


def test_a_partial_fetch_continues_where_it_was(tmp_path, data_root):
    served = tmp_path / "served"
    served.mkdir()
    data, _, second = _zip(served)
    out = tmp_path / "out"
    out.mkdir()
    with serve_folder(served) as server:
        url = server.url + "larger.zip"
        member = next(m for m in remote_zip.list_members(url, len(data), remote_zip.Transfer())
                      if m.file_name == "CRC-Prim-HE-02_APPLICATION.tif")
        (out / f".{member.file_name}.zpart").write_bytes(second[:100_000])  # what a killed fetch left
        transfer = remote_zip.Transfer()
        got = remote_zip.fetch_member(url, len(data), member, out, transfer=transfer)
    assert got.read_bytes() == second
    assert transfer.received < 60_000


def test_a_server_without_ranges_is_detected_before_its_body_is_read(tmp_path, data_root):
    served = tmp_path / "served"
    served.mkdir()
    data, _, _ = _zip(served, filler=20_000_000)
    with serve_folder(served, ranges=False) as server:
        with pytest.raises(remote_zip.RangesUnsupported):
            remote_zip.list_members(server.url + "larger.zip", len(data), remote_zip.Transfer())
    assert server.bytes_sent < len(data)


def test_another_file_of_another_size_is_refused(tmp_path, data_root):
    served = tmp_path / "served"
    served.mkdir()
    data, _, _ = _zip(served)
    with serve_folder(served) as server:
        with pytest.raises(DownloadFailed, match="not the expected"):
            remote_zip.list_members(server.url + "larger.zip", len(data) + 10, remote_zip.Transfer())


def test_unsafe_member_names_and_methods_are_refused(data_root):
    good = remote_zip.Member(PREFIX + "a.tif", remote_zip.DEFLATED, 0, 1, 1, 0, 0)
    remote_zip.check_member(good)
    for bad in (good.__class__(PREFIX + "..", 8, 0, 1, 1, 0, 0), good.__class__("x/.hidden.tif", 8, 0, 1, 1, 0, 0),
                good.__class__("a.tif", 12, 0, 1, 1, 0, 0), good.__class__("a.tif", 8, 0, 1, 1, 0, 1)):
        with pytest.raises(UnsafeArchive):
            remote_zip.check_member(bad)


def test_a_local_zip_member_is_extracted_alone(tmp_path, data_root):
    data, first, _ = _zip(tmp_path)
    got = remote_zip.extract_member(tmp_path / "larger.zip", PREFIX + "CRC-Prim-HE-01_APPLICATION.tif",
                                    tmp_path / "out")
    assert got.read_bytes() == first and zlib.crc32(first) == zlib.crc32(got.read_bytes())
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["CRC-Prim-HE-01_APPLICATION.tif"]
