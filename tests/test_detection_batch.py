"""Batch detection as a job body: inputs staged as job files, zips extracted inside the job,
the backend built from the parameters, outputs and problem report, staged inputs removed."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from services.detection import registry
from services.detection.batch import BatchSettings, batch_params, job_files
from services.errors import UserFacingError
from services.images import encode_png
from services.jobs import kinds, run_inline
from tests.detection_helpers import SYNTHETIC_CFG


def _png(width=40, height=30) -> bytes:
    return encode_png(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def uploaded_model(data_root):
    from services.detection.cfg import parse_cfg
    from services.detection.weights import random_weights_bytes

    weights = random_weights_bytes(parse_cfg(SYNTHETIC_CFG), seed=3)
    return registry.save_upload(("synthetic.cfg", SYNTHETIC_CFG.encode()), ("synthetic.weights", weights),
                                ("synthetic.names", b"a\nb\n")).model


def test_batch_job_writes_outputs_reports_problems_and_removes_its_inputs(uploaded_model, data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_MAX_IMAGE_PIXELS", "100000")
    files = job_files([("a.png", _png()), ("more.zip", _zip({"sub/b.png": _png(50, 20), "notes.txt": b"x"})),
                       ("evil.zip", _zip({"../../evil.png": _png()})), ("broken.png", b"not an image"),
                       ("dot.png", _png(1, 1)), ("huge.png", _png(400, 300)), ("readme.txt", b"skipped")])
    assert len(files) == 6 and all(name.startswith("input-") for name in files)
    folder = data_root / "jobs" / "batch1"
    params = batch_params(uploaded_model.key, "OpenCV", BatchSettings(64, 0.0, 0.5))
    outcome = run_inline(kinds.DETECTION_BATCH, params, folder, files)
    assert outcome.status == "finished", outcome.error
    result = outcome.result
    assert (result["images"], result["processed"], result["problem_count"]) == (5, 2, 4)
    assert result["detections"] > 0  # threshold 0: every surviving candidate is listed
    problems = {p["image"]: p["problem"] for p in result["problems"]}
    assert "climbs out" in problems["evil.zip"]
    assert "not a readable image" in problems["broken.png"] and "too small" in problems["dot.png"]
    assert "more than the limit of 100,000 pixels" in problems["huge.png"]
    assert all(str(data_root) not in text for text in problems.values())  # no server paths
    with zipfile.ZipFile(folder / "annotated.zip") as archive:
        assert len(archive.namelist()) == 2
    csv = (folder / "detections.csv").read_text().splitlines()
    assert {line.split(",")[0] for line in csv[1:]} == {"a.png", "b.png"}
    assert "huge.png" in (folder / "problems.csv").read_text()
    assert sorted(p.name for p in folder.iterdir()) == ["annotated.zip", "detections.csv", "detections_coco.json",
                                                         "problems.csv"]  # staged inputs are gone


def test_a_zip_bomb_is_refused_before_writing_and_the_job_goes_on(uploaded_model, data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_MAX_ZIP_BYTES", "100000")
    bomb = _zip({"big.png": b"\0" * 5_000_000})  # about 5 kB compressed, 5 MB declared
    folder = data_root / "jobs" / "batch2"
    outcome = run_inline(kinds.DETECTION_BATCH, batch_params(uploaded_model.key, "OpenCV", BatchSettings(64, 0.25, 0.45)),
                         folder, job_files([("bomb.zip", bomb), ("a.png", _png())]))
    assert outcome.status == "finished" and outcome.result["processed"] == 1
    assert "more than the limit of 100,000" in outcome.result["problems"][0]["problem"]
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 1_000_000


@pytest.mark.parametrize("change, message", [
    ({"score_threshold": float("nan")}, "score threshold"), ({"nms_threshold": 1.5}, "NMS threshold"),
    ({"score_threshold": -1}, "score threshold"), ({"input_size": 33}, "multiple of 32"),
    ({"model": "nope"}, "unknown model"), ({"backend": "Torch"}, "unknown backend"),
])
def test_bad_parameters_fail_the_job_with_a_clear_message_and_remove_inputs(uploaded_model, data_root, change,
                                                                             message):
    params = {**batch_params(uploaded_model.key, "OpenCV", BatchSettings(64, 0.25, 0.45)), **change}
    folder = data_root / "jobs" / "bad"
    outcome = run_inline(kinds.DETECTION_BATCH, params, folder, job_files([("a.png", _png())]))
    assert outcome.status == "failed" and message in outcome.error
    assert not list(folder.glob("input-*"))


def test_an_upload_without_photos_is_refused():
    with pytest.raises(UserFacingError, match="no photos or zips"):
        job_files([("notes.txt", b"x")])


def test_darknet_download_job_body(data_root, monkeypatch):
    import dataclasses

    from services.detection.cfg import parse_cfg
    from services.detection.weights import random_weights_bytes
    from tests.conftest import serve_folder

    spec = registry.REGISTRY["yolov4-tiny"]
    with serve_folder(data_root) as server:
        (data_root / "w.weights").write_bytes(random_weights_bytes(parse_cfg(spec.cfg_path.read_text()), seed=1))
        monkeypatch.setitem(registry.REGISTRY, spec.key, dataclasses.replace(spec, weights_url=f"{server.url}w.weights"))
        outcome = run_inline("detection-download", {"model": spec.key}, data_root / "jobs" / "dl")
    assert outcome.status == "finished" and outcome.result["model"] == spec.key
    assert registry.installed_keys() == ["yolov4-tiny"]
