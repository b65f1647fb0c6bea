"""Background jobs: progress, stop, failures, and state that survives a new manager."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from services.errors import UserFacingError
from services.jobs import FAILED, FINISHED, INTERRUPTED, STOPPED, JobManager


@pytest.fixture
def manager(tmp_path):
    manager = JobManager(tmp_path / "jobs", max_workers=2)
    yield manager
    manager.shutdown()


def test_job_reports_progress_and_result(manager):
    def count(context):
        for step in range(5):
            context.progress((step + 1) / 5, f"step {step + 1}")
        (context.dir / "out.txt").write_text("done")
        return {"steps": 5}

    job_id = manager.submit("count", "Count to five", count, {"n": 5})
    state = manager.wait(job_id)
    assert state.status == FINISHED
    assert state.progress == 1.0
    assert state.result == {"steps": 5}
    assert state.params == {"n": 5}
    assert (manager.job_dir(job_id) / "out.txt").read_text() == "done"
    on_disk = json.loads((manager.job_dir(job_id) / "job.json").read_text())
    assert on_disk["status"] == FINISHED and on_disk["result"] == {"steps": 5}


def test_stop_ends_a_running_job_and_keeps_partial_results(manager):
    started = threading.Event()

    def loop(context):
        step = 0
        while True:
            step += 1
            context.update_result(last_step=step)
            started.set()
            context.check_stop()
            threading.Event().wait(0.01)

    job_id = manager.submit("loop", "Loop until stopped", loop)
    assert started.wait(10)
    manager.stop(job_id)
    state = manager.wait(job_id)
    assert state.status == STOPPED
    assert state.result["last_step"] >= 1


def test_failures_are_recorded_with_their_message(manager):
    def bad_input(context):
        raise UserFacingError("the mask is all black")

    def bug(context):
        raise ZeroDivisionError("division by zero")

    first = manager.wait(manager.submit("x", "bad input", bad_input))
    second = manager.wait(manager.submit("x", "bug", bug))
    assert (first.status, first.error) == (FAILED, "the mask is all black")
    assert second.status == FAILED and "ZeroDivisionError" in second.error
    assert "Traceback" in (manager.job_dir(second.id) / "traceback.txt").read_text()


def test_a_new_manager_finds_old_jobs_and_marks_running_ones_interrupted(tmp_path):
    root = tmp_path / "jobs"
    first = JobManager(root)
    finished = first.wait(first.submit("a", "finished job", lambda context: {"ok": True}))
    release = threading.Event()
    running = first.submit("a", "running job", lambda context: release.wait(10))
    while first.get(running).status != "running":
        threading.Event().wait(0.01)
    (root / "foreign").mkdir()
    (root / "foreign" / "job.json").write_text("not json")

    second = JobManager(root)  # as after a server restart
    states = {state.id: state for state in second.list(kind="a")}
    assert states[finished.id].status == FINISHED and states[finished.id].result == {"ok": True}
    assert states[running].status == INTERRUPTED
    assert (root / "foreign" / "job.json").read_text() == "not json"
    release.set()
    first.shutdown()
    second.shutdown()


def test_list_filters_by_kind_newest_first(manager):
    ids = [manager.submit(kind, kind, lambda context: None) for kind in ("a", "b", "a")]
    for job_id in ids:
        manager.wait(job_id)
    assert [state.id for state in manager.list(kind="a")] == [ids[2], ids[0]]


def test_job_ids_cannot_escape_the_jobs_folder(manager):
    with pytest.raises(UserFacingError):
        manager.job_dir("../../etc")


def test_a_stuck_job_never_keeps_the_process_from_exiting(tmp_path):
    import subprocess
    import sys

    code = (
        "import threading; from services.jobs import JobManager;"
        f"manager = JobManager({str(tmp_path / 'jobs')!r});"
        "manager.submit('stuck', 'waits forever', lambda context: threading.Event().wait());"
        "print('leaving')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=str(Path(__file__).resolve().parent.parent))
    assert result.returncode == 0 and "leaving" in result.stdout


def test_jobs_beyond_the_worker_limit_wait_their_turn(tmp_path):
    manager = JobManager(tmp_path / "jobs", max_workers=1)
    release = threading.Event()
    first = manager.submit("a", "holds the only slot", lambda context: release.wait(10))
    second = manager.submit("a", "waits", lambda context: {"ran": True})
    while manager.get(first).status != "running":
        threading.Event().wait(0.01)
    threading.Event().wait(0.2)
    assert manager.get(second).status == "queued"
    release.set()
    assert manager.wait(second).result == {"ran": True}
    manager.shutdown()
