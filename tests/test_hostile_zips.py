"""Hostile zips (issue 12), one test per failure kind: each is refused with a clear message, no
traceback or server path in it, nothing written outside the data root and nothing left behind.

The corpus is generated here (tests/datasets_helpers.py writes zips byte by byte); nothing large
is committed. The "4 GiB" bomb is about 4.2 MB and is never inflated.
"""

from __future__ import annotations

import io
import os
import uuid
import zipfile
from pathlib import Path

import pytest

from services import archives
from services.datasets import sources, tasks
from services.errors import UnsafeArchive, UserFacingError
from services.jobs import kinds
from services.jobs.context import run_inline
from tests.datasets_helpers import RawMember, make_dataset, raw_zip, zip_bomb, zip_bytes


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _assert_clear(message: str, data_root: Path) -> None:
    assert message and "Traceback" not in message and " object at 0x" not in message
    assert str(data_root) not in message and "/tmp" not in message


def _refused(data_root: Path, data: bytes, match: str, name: str = "hostile") -> str:
    """Import ``data`` as dataset ``name``; assert the refusal and that nothing was left."""
    outside_before = _snapshot(data_root.parent)
    before = _snapshot(data_root)
    with pytest.raises(UserFacingError, match=match) as error:
        sources.import_zip(data, name, label="hostile.zip")
    _assert_clear(str(error.value), data_root)
    leftovers = _snapshot(data_root) - before - {"datasets"}
    assert not leftovers, leftovers
    assert _snapshot(data_root.parent) - outside_before <= {f"data/{p}" for p in _snapshot(data_root)}
    assert not (data_root / "datasets" / name).exists()
    return str(error.value)


def _good_members(tmp_path: Path) -> dict[str, bytes]:
    make_dataset(tmp_path / "src", sources=1, tiles_per_source=1)
    return {str(p.relative_to(tmp_path / "src")): p.read_bytes() for p in (tmp_path / "src").rglob("*.tif")}


def test_member_name_longer_than_255_bytes(data_root):
    _refused(data_root, zip_bytes({"01_A/" + "é" * 130 + ".tif": b"x", "02_B/b.tif": b"y"}), "longer than 255 bytes")


def test_member_path_longer_than_path_max(data_root):
    deep = "01_A/" + "/".join(["d" * 200] * 25) + "/x.tif"
    _refused(data_root, zip_bytes({deep: b"x"}), "path longer than 4,096 bytes")


def test_empty_member_name(data_root):
    _refused(data_root, raw_zip([RawMember(b"01_A/a.tif", b"a"), RawMember(b"", b"x")]), "empty name")


def test_a_file_and_a_folder_with_the_same_name(data_root):
    _refused(data_root, zip_bytes({"01_A/x": b"file", "01_A/x/y.tif": b"inside"}), "both a file and a folder")


def test_name_not_utf8_although_flagged_utf8(data_root):
    data = raw_zip([RawMember(b"01_A/caf\xff\xfe.tif", b"x", flags=0x800)])
    _refused(data_root, data, "not valid UTF-8")


def test_two_members_with_the_same_name_never_overwrite_silently(data_root):
    data = raw_zip([RawMember(b"01_A/x.tif", b"first"), RawMember(b"01_A/x.tif", b"second")])
    _refused(data_root, data, "appears twice")
    _refused(data_root, zip_bytes({"01_A/x.tif": b"a", "01_A//x.tif": b"b"}), "appears twice")


@pytest.mark.parametrize("members", [{}, {"a.tif": b"x", "b.tif": b"y"}, {"01_A/": b""}], ids=["empty", "flat", "dirs"])
def test_empty_or_flat_zip_is_refused_and_leaves_the_name_free(data_root, tmp_path, members):
    _refused(data_root, zip_bytes(members), "no class sub-folders", name="mine")
    assert sources.import_zip(zip_bytes(_good_members(tmp_path)), "mine").name == "mine"


def test_a_zip_that_inflates_to_4_gib_is_refused_before_writing(data_root):
    bomb = zip_bomb()
    assert len(bomb) < 5_000_000
    _refused(data_root, bomb, "would unpack to 4,294,967,296 bytes")


def test_the_declared_size_is_also_checked_against_free_disk(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_MAX_ZIP_BYTES", str(1 << 60))
    monkeypatch.setattr(archives.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 1 << 30})())
    _refused(data_root, zip_bomb(members=2, mebibytes_each=1024), "disk are free")


def test_a_member_that_lies_about_its_size_is_caught_while_writing(data_root):
    big = zip_bomb(members=1, mebibytes_each=8)
    with_small_size = raw_zip([RawMember(b"01_A/zeros.tif", compressed=_member_deflate(big), declared_size=1000)])
    _refused(data_root, with_small_size, "damaged|more bytes than it declares")


def _member_deflate(zip_data: bytes) -> bytes:
    """The raw deflate data of the single member of a :func:`raw_zip`."""
    name_length = int.from_bytes(zip_data[26:28], "little")
    compressed = int.from_bytes(zip_data[18:22], "little")
    return zip_data[30 + name_length: 30 + name_length + compressed]


def test_writing_stops_at_the_cap_whatever_the_headers_say(data_root):
    """The write counter: a cap below the (honest) size of one member ends the copy mid-way."""
    bomb = zip_bomb(members=1, mebibytes_each=8)
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:
        members = archive.infolist()
        with pytest.raises(UnsafeArchive, match="zip bomb"):
            archives._extract_members(archive, members, data_root / "staging", 3 << 20, 8 << 20, False, None, None)


def test_stop_during_extraction_keeps_nothing(data_root, tmp_path):
    calls = []

    def stop() -> bool:
        calls.append(1)
        return True

    before = _snapshot(data_root)
    with pytest.raises(archives.ExtractionStopped, match="nothing was kept"):
        archives.extract_zip(zip_bytes(_good_members(tmp_path)), data_root / "datasets" / "x", stop=stop)
    assert calls and _snapshot(data_root) - before <= {"datasets"}


def test_import_job_deletes_the_upload_and_leaks_no_server_path(data_root, tmp_path):
    for data, status in ((zip_bytes({"../../evil.tif": b"x"}), "failed"), (zip_bytes(_good_members(tmp_path)), "finished")):
        folder = data_root / "jobs" / uuid.uuid4().hex[:8]
        state = run_inline(kinds.DATASET_IMPORT, {"dataset": "up", "zip_name": "photos.zip"}, folder,
                           {tasks.UPLOAD_FILE: data})
        assert state.status == status, state.error
        assert not (folder / tasks.UPLOAD_FILE).exists()
        messages = [state.error or "", *(m or "" for _, m in state.reports)]
        for message in messages:
            assert str(data_root) not in message
    assert "photos.zip" in " ".join(m or "" for _, m in state.reports)
    assert not (data_root.parent / "evil.tif").exists()


def test_flat_extraction_for_photo_batches(data_root):
    """The batch mode other pages use: chosen members written side by side under safe names."""
    data = zip_bytes({"a/b/photo one.JPG": b"1", "c/photo one.JPG": b"2", "notes.txt": b"n", "__MACOSX/._x.jpg": b""})
    result = archives.extract_zip(data, data_root / "batch", flat=True,
                                  select=lambda name: name.lower().endswith(".jpg"))
    assert result.files == ["00000_photo_one.JPG", "00001_photo_one.JPG"]
    assert result.original_names == ["a/b/photo one.JPG", "c/photo one.JPG"]
    assert sorted(os.listdir(data_root / "batch")) == result.files and result.bytes == 2
    with pytest.raises(UnsafeArchive, match="'..'"):
        archives.extract_zip(zip_bytes({"../x.jpg": b"1"}), data_root / "batch2", flat=True)
    assert not (data_root / "batch2").exists()


def test_hostile_names_in_zip_members_are_shown_escaped_and_short(data_root):
    message = _refused(data_root, zip_bytes({"01_A/\n<b>" + "x" * 300 + "/../y.tif": b"x"}), "'..'")
    assert "\n" not in message and len(message) < 300
    _refused(data_root, zip_bytes({"01_A/evil\n.tif": b"x"}), "control character")


def test_good_zip_still_imports(data_root, tmp_path):
    info = sources.import_zip(zip_bytes(_good_members(tmp_path)), "fine")
    assert len(list(info.folder.rglob("*.tif"))) == 2


def test_reading_members_into_memory_has_the_same_checks(data_root):
    data = zip_bytes({"run/events.out.tfevents.1": b"abc", "run/other.txt": b"x", "__MACOSX/._e": b""})
    found = archives.read_zip_members(data, select=lambda name: "tfevents" in name)
    assert found == [("run/events.out.tfevents.1", b"abc")]
    with pytest.raises(UnsafeArchive, match="more than 1,000 bytes"):
        archives.read_zip_members(zip_bomb(members=1, mebibytes_each=1), max_bytes=1000)
    with pytest.raises(UnsafeArchive, match="appears twice"):
        archives.read_zip_members(raw_zip([RawMember(b"a", b"1"), RawMember(b"a", b"2")]))
    with pytest.raises(UnsafeArchive, match="not valid UTF-8"):
        archives.read_zip_members(raw_zip([RawMember(b"\xff", b"1", flags=0x800)]))
    with pytest.raises(UnsafeArchive, match="damaged"):
        archives.read_zip_members(raw_zip([RawMember(b"e", b"payload", crc=1)]))
    assert not list(data_root.iterdir())
