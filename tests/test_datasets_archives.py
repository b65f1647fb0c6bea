"""Safe zip extraction against hostile zips, zip import and the Kather installer."""

from __future__ import annotations

import hashlib
import stat
import uuid
import zipfile
from pathlib import PurePosixPath

import pytest

from services import archives
from services.datasets import kather, sources, tasks
from services.errors import DownloadFailed, PathOutsideRoot, UnsafeArchive, UserFacingError
from services.jobs import kinds
from tests.datasets_helpers import make_dataset, write_tile, zip_bytes


def _write_zip(path, members):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zip_bytes(members))
    return path


@pytest.mark.parametrize("name, reason", [
    ("/etc/evil.txt", "absolute path"),
    ("../evil.txt", "'..'"),
    ("a/../../evil.txt", "'..'"),
    ("C:/evil.txt", "absolute path"),
    ("a\\..\\evil.txt", "backslashes"),
])
def test_hostile_member_names_refuse_the_whole_zip(data_root, name, reason):
    path = _write_zip(data_root / "up.zip", {"ok/01_A/x.txt": b"fine", name: b"evil"})
    with pytest.raises(UnsafeArchive, match=reason):
        archives.safe_extract(path, data_root / "out")
    assert not (data_root / "out").exists() and not (data_root.parent / "evil.txt").exists()
    assert sorted(p.name for p in data_root.iterdir()) == ["up.zip"]


def test_symlink_members_are_refused(data_root):
    path = data_root / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("01_A/link.tif")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        archives.safe_extract(path, data_root / "out")


def test_caps_on_members_and_uncompressed_size(data_root, monkeypatch):
    many = _write_zip(data_root / "many.zip", {f"01_A/{i}.txt": b"x" for i in range(6)})
    monkeypatch.setenv("DASHBOARD_MAX_ZIP_MEMBERS", "5")
    with pytest.raises(UnsafeArchive, match="6 members"):
        archives.safe_extract(many, data_root / "out")
    monkeypatch.setenv("DASHBOARD_MAX_ZIP_MEMBERS", "100")
    bomb = data_root / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("01_A/zeros.bin", b"\0" * 5_000_000)
    assert bomb.stat().st_size < 50_000
    monkeypatch.setenv("DASHBOARD_MAX_ZIP_BYTES", "1000000")
    with pytest.raises(UnsafeArchive, match="zip bomb"):
        archives.safe_extract(bomb, data_root / "out")
    assert not (data_root / "out").exists()


def test_lying_member_sizes_are_caught_while_extracting(data_root):
    path = _write_zip(data_root / "liar.zip", {"01_A/big.bin": b"y" * 4000})
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        with pytest.raises(UnsafeArchive, match="more than 1,000 bytes"):
            archives._extract_members(archive, members, data_root / "staging", 1000, 4000, False, None, None)


def test_good_zip_extracts_and_skips_macos_junk(data_root, tmp_path):
    make_dataset(tmp_path / "src" / "wrap")
    members = {str(p.relative_to(tmp_path / "src")): p.read_bytes() for p in (tmp_path / "src").rglob("*.tif")}
    members["__MACOSX/wrap/01_TUMOR/._x.tif"] = b"junk"
    path = _write_zip(data_root / "uploads" / "good.zip", members)
    info = sources.import_zip(path, "good")
    assert info.folder == data_root / "datasets" / "good" / "wrap"
    assert len(list(info.folder.rglob("*.tif"))) == 12
    assert not (data_root / "datasets" / "good" / "__MACOSX").exists()
    with pytest.raises(UserFacingError, match="already exists"):
        sources.import_zip(path, "good")
    with pytest.raises(UserFacingError, match="not a usable dataset name"):
        sources.import_zip(path, "../x")


def test_zip_paths_outside_the_data_root_and_broken_zips_are_refused(data_root, tmp_path):
    outside = _write_zip(tmp_path / "outside.zip", {"01_A/a.txt": b"a"})
    with pytest.raises(PathOutsideRoot):
        archives.safe_extract(outside, data_root / "out")
    inside = _write_zip(data_root / "in.zip", {"01_A/a.txt": b"a"})
    with pytest.raises(PathOutsideRoot):
        archives.safe_extract(inside, tmp_path / "out")
    (data_root / "broken.zip").write_bytes(b"PK\3\4 not really")
    with pytest.raises(UnsafeArchive, match="not a readable zip"):
        archives.safe_extract(data_root / "broken.zip", data_root / "out")


def test_kather_install_verifies_the_zip_and_extracts_it(data_root, tmp_path):
    write_tile(tmp_path / "K" / "01_TUMOR" / "1A11_CRC-Prim-HE-07_022.tif_Row_601_Col_151.tif", 1)
    write_tile(tmp_path / "K" / "02_STROMA" / "1A12_CRC-Prim-HE-07_023.tif_Row_1_Col_1.tif", 2)
    members = {str(p.relative_to(tmp_path)): p.read_bytes() for p in (tmp_path / "K").rglob("*.tif")}
    zip_path = _write_zip(kather.download_path(), members)
    with pytest.raises(DownloadFailed, match="expected 258,098,431 bytes"):
        kather.install_kather()
    digest = hashlib.md5(zip_path.read_bytes()).hexdigest()
    folder = kather.install_kather(size=zip_path.stat().st_size, md5=digest)
    assert kather.is_installed() and folder == kather.install_folder()
    info = sources.dataset_info("kather2016")
    assert info.folder == folder / "K" and not info.is_synthetic
    assert "Kather" in info.title


def test_kather_offline_message_names_url_and_place(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    with pytest.raises(UserFacingError) as error:
        kather.download_kather()
    assert kather.URL in str(error.value) and "<data root>/downloads/" + kather.FILE_NAME in str(error.value)
    with pytest.raises(UserFacingError, match="not found"):
        kather.install_kather()


def _run_job(data_root, params, files=None):
    from services.jobs.context import run_inline

    return run_inline(kinds.DATASET_IMPORT, params, data_root / "jobs" / uuid.uuid4().hex[:8], files)


def test_import_job_extracts_and_indexes_and_hostile_zips_fail_with_the_reason(data_root, tmp_path):
    make_dataset(tmp_path / "src")
    members = {str(p.relative_to(tmp_path / "src")): p.read_bytes() for p in (tmp_path / "src").rglob("*.tif")}
    state = _run_job(data_root, {"dataset": "good", "zip_name": "good.zip"}, {tasks.UPLOAD_FILE: zip_bytes(members)})
    assert state.status == "finished" and state.result == {"dataset": "good", "files": 12, "usable": 12}
    assert not list((data_root / "jobs").rglob("*.zip"))  # the uploaded copy is deleted after the import
    evil = _write_zip(data_root / "mine" / "evil.zip", {"../../evil.tif": b"x"})
    state = _run_job(data_root, {"dataset": "evil", "zip_path": "mine/evil.zip"})
    assert state.status == "failed" and "'..'" in state.error and str(data_root) not in state.error
    assert not (data_root / "datasets" / "evil").exists() and evil.is_file()  # the user's own zip is kept
    state = _run_job(data_root, {"dataset": "good", "zip_path": "mine/evil.zip"})
    assert state.status == "failed" and "already exists" in state.error


@pytest.mark.parametrize("name", ["a", "a/b/c.png", "a//b", "a/./b/", "./a", "a/..", "../x", "._a", "a/._b",
                                  "é/ü.tif", "a/b/.", ". /x", "a\\b", "x" * 300, "a/.../b", "...", "\udcff/x"])
def test_name_parts_splits_like_pure_posix_path(name):
    assert archives.name_parts(name) == PurePosixPath(name).parts
