"""Hostile TensorBoard imports (issue 17): the import is a worker job reading zips through the
size-checked reader; bombs and damaged zips are refused in a sentence; nothing half-imported stays."""

from __future__ import annotations

import io
import math
import resource
import time
import zipfile
from pathlib import Path

import pytest

from services.errors import UserFacingError
from services.jobs import JobManager, kinds, run_inline
from services.training import tb_import
from services.training.store import RunStore, StoreError
from tests.datasets_helpers import RawMember, raw_zip, zeros_deflate


def event_file(points: list[tuple[int, float, float]], tag: str = "epoch_loss") -> bytes:
    """The bytes of a TensorBoard event file (TFRecords with their CRCs, written by tensorboard's
    own record writer, which needs no TensorFlow) with one scalar ``tag`` per (step, value, wall time)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    writer.write(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString())
    for step, value, wall_time in points:
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        writer.write(event_pb2.Event(step=step, wall_time=wall_time, summary=summary).SerializeToString())
    return buffer.getvalue()


def _import(tmp_path: Path, uploads: list[tuple[str, bytes]]):
    files = {f"upload-{i:03d}": data for i, (_, data) in enumerate(uploads)}
    params = {"name": "hostile", "uploads": [[key, name] for key, (name, _) in zip(files, uploads)]}
    return run_inline(kinds.TENSORBOARD_IMPORT, params, tmp_path / "job", files=files)


def _bomb(members: int, mebibytes: int, declared: int | None = None) -> bytes:
    data = zeros_deflate(mebibytes)
    return raw_zip([RawMember(f"run/train/events.out.tfevents.{i}".encode(), compressed=data, crc=0,
                              declared_size=(mebibytes << 20) if declared is None else declared)
                    for i in range(members)])


def test_a_zip_bomb_of_event_files_is_refused_before_reading_and_leaves_no_run(data_root, tmp_path):
    bomb = _bomb(24, 190)  # 24 x 190 MiB of zeros in about 5 MB
    assert len(bomb) < 6_000_000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    result = _import(tmp_path, [("logs.zip", bomb)])
    assert result.status == "failed" and "more than" in result.error and "refused" in result.error
    assert time.monotonic() - started < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 300 * 1024  # KiB: nothing inflated
    assert RunStore().list_runs() == []
    assert not list((tmp_path / "job").glob("upload-*"))  # the upload is not kept


def test_a_member_lying_about_its_size_or_checksum_is_refused_in_a_sentence(data_root, tmp_path):
    lying = _bomb(1, 190, declared=1024)
    result = _import(tmp_path, [("lying.zip", lying)])
    assert result.status == "failed"  # zipfile stops at the declared size, where the checksum fails
    assert "more bytes than it declares" in result.error or "does not match its checksum" in result.error
    bad_crc = raw_zip([RawMember(b"run/events.out.tfevents.1", event_file([(0, 1.0, 1.7e9)]),
                                 crc=1)])
    result = _import(tmp_path, [("crc.zip", bad_crc)])
    assert result.status == "failed"
    assert "'crc.zip' is damaged: a file in it does not match its checksum" in result.error
    assert "BadZipFile" not in result.error and "CRC-32" not in result.error
    assert RunStore().list_runs() == []


def test_nan_and_absurd_wall_times_still_give_a_finished_run(data_root, tmp_path):
    points = [(0, 0.9, 1.7e9), (1, 0.7, math.nan), (2, 0.5, math.inf), (3, 0.4, 1e300)]
    data = event_file(points)
    result = _import(tmp_path, [("events.out.tfevents.1", data)])
    assert result.status == "finished", result.error
    store = RunStore()
    run = store.get_run(result.result["run_id"])
    assert (run.status, run.epochs_done, run.source) == ("finished", 4, "import")
    assert run.started == 1.7e9 and math.isfinite(run.ended)
    assert "3 event(s) had no valid wall time" in run.summary["wall_times"]
    frame = store.metrics(run.id)
    assert frame.time.map(math.isfinite).all() and sorted(frame.value) == pytest.approx([0.4, 0.5, 0.7, 0.9])


def test_a_run_whose_writing_fails_is_removed_again(data_root, tmp_path, monkeypatch):
    data = event_file([(0, 1.0, 1.7e9), (1, 0.5, 1.7e9 + 60)])
    calls = []

    def failing_log_metrics(self, run_id, values, **kwargs):
        calls.append(run_id)
        if len(calls) == 2:
            raise StoreError("The run store is busy. Try again.")
        return original(self, run_id, values, **kwargs)

    original = RunStore.log_metrics
    monkeypatch.setattr(RunStore, "log_metrics", failing_log_metrics)
    result = _import(tmp_path, [("events.out.tfevents.1", data)])
    assert result.status == "failed" and "busy" in result.error
    assert calls and RunStore().list_runs() == []


def test_the_import_runs_as_a_worker_job(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("logs/train/events.out.tfevents.1", event_file([(0, 1.0, 1.7e9)]))
        archive.writestr("logs/validation/events.out.tfevents.2",
                         event_file([(0, 2.0, 1.7e9 + 1)]))
    manager = JobManager(data_root / "jobs")
    job_id = tb_import.submit_import(manager, [("logs.zip", buffer.getvalue())], "from elsewhere", "ana")
    state = manager.wait(job_id, 90)
    assert state.status == "finished", state.error
    run = RunStore().get_run(state.result["run_id"])
    assert (run.name, run.owner, run.status) == ("from elsewhere", "ana", "finished")
    assert list(RunStore().epoch_table(run.id)[["loss", "val_loss"]].iloc[0]) == [1.0, 2.0]
    with pytest.raises(UserFacingError, match="files in one upload"):
        tb_import.submit_import(manager, [("x", b"1")] * 5000, "too many", None)


def test_the_training_monitor_follows_the_import_job(data_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")
    monkeypatch.setenv("DASHBOARD_PREWARM", "0")
    manager = JobManager(data_root / "jobs")
    job_id = tb_import.submit_import(manager, [("notes.txt", b"not an event file")], "nothing here", None)
    assert manager.wait(job_id, 90).status == "failed"
    page = Path(__file__).resolve().parent.parent / "pages" / "training_monitor.py"
    app = AppTest.from_file(str(page), default_timeout=60)
    app.session_state["tb_job"] = job_id
    app.run()
    assert not app.exception
    assert any("No scalar metrics found" in e.value for e in app.error)
    assert RunStore().list_runs() == []


def test_job_rows_cannot_point_the_import_outside_its_folder(data_root, tmp_path):
    outside = tmp_path / "secret.tfevents"
    outside.write_bytes(event_file([(0, 1.0, 1.7e9)]))
    params = {"name": "sneaky", "uploads": [["../secret.tfevents", "events.out.tfevents.1"]]}
    result = run_inline(kinds.TENSORBOARD_IMPORT, params, tmp_path / "job")
    assert result.status == "failed" and "No scalar metrics found" in result.error
    assert outside.is_file() and RunStore().list_runs() == []
