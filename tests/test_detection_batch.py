"""Batch detection: safe zips and a real background job with its outputs."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from services.detection.backends import OpenCVDarknetBackend
from services.detection.batch import BatchSettings, JOB_KIND, extract_images, run_batch, stage_inputs
from services.errors import UnsafeArchive
from services.images import encode_png
from services.jobs import JobManager
from tests.detection_helpers import SYNTHETIC_CFG, write_model


def _png(width=40, height=30) -> bytes:
    import numpy as np

    return encode_png(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _zip(members: dict[str, bytes], symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_zip_members_cannot_escape_and_links_are_skipped(data_root, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    data = _zip({"../../evil.png": _png(), "/abs/path.jpg": _png(), "notes.txt": b"x", "dir/ok.png": _png()},
                symlink="link.png")
    paths = extract_images(data, "photos.zip", target)
    assert [p.name for p in paths] == ["00000_evil.png", "00001_path.jpg", "00002_ok.png"]
    assert all(p.parent == target for p in paths)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [p.name for p in paths]


def test_zip_caps_from_settings(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DASHBOARD_MAX_ZIP_MEMBERS", "2")
    with pytest.raises(UnsafeArchive, match="3 members, more than the limit of 2"):
        extract_images(_zip({f"{i}.png": _png() for i in range(3)}), "many.zip", tmp_path)
    monkeypatch.setenv("DASHBOARD_MAX_ZIP_MEMBERS", "100")
    monkeypatch.setenv("DASHBOARD_MAX_ZIP_BYTES", "1000")
    with pytest.raises(UnsafeArchive, match="more than 1,000 bytes"):
        extract_images(_zip({"big.png": b"\0" * 5000}), "bomb.zip", tmp_path)
    with pytest.raises(UnsafeArchive, match="not a readable zip"):
        extract_images(b"PK not really", "broken.zip", tmp_path)


def test_batch_job_writes_table_json_and_annotated_zip(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DASHBOARD_MAX_IMAGE_PIXELS", "100000")
    model = write_model(tmp_path / "model", SYNTHETIC_CFG, "synthetic.cfg", 64, seed=3)
    backend = OpenCVDarknetBackend(model)
    inputs = stage_inputs([("a.png", _png()), ("more.zip", _zip({"b.png": _png(50, 20)})),
                           ("broken.png", b"not an image"), ("dot.png", _png(1, 1)), ("huge.png", _png(400, 300))])
    manager = JobManager(data_root / "jobs")
    try:
        job_id = manager.submit(JOB_KIND, "test", lambda context: run_batch(
            context, backend, model.names, inputs, BatchSettings(64, 0.0, 0.5)))
        state = manager.wait(job_id, timeout=60)
    finally:
        manager.shutdown()
    assert state.status == "finished", state.error
    assert state.result == {"images": 5, "processed": 2, "problems": 3, "detections": state.result["detections"]}
    assert state.result["detections"] > 0  # threshold 0: every surviving candidate is listed
    job_dir = data_root / "jobs" / job_id
    with zipfile.ZipFile(job_dir / "annotated.zip") as archive:
        assert sorted(archive.namelist()) == ["00000_a.png", "00001_b.png"]
    csv = (job_dir / "detections.csv").read_text().splitlines()
    assert len(csv) == state.result["detections"] + 1 and {line.split(",")[0] for line in csv[1:]} == {"a.png", "b.png"}
    problems = (job_dir / "problems.csv").read_text()
    assert "not a readable image" in problems and "1x1 pixels is too small" in problems
    assert "400x300 pixels is more than the limit of 100,000 pixels" in problems
