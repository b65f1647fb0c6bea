"""Background jobs in worker processes: lifecycle, crashes, stop, retry, resume, queue limits."""

from __future__ import annotations

import os
import signal
import sqlite3

import pytest

from services.errors import UserFacingError
from services.jobs import (FAILED, FINISHED, INTERRUPTED, QUEUED, RUNNING, STOPPED, JobManager, run_inline)
from services.jobs.store import open_store
from tests.conftest import wait_for


@pytest.fixture
def manager(data_root, monkeypatch) -> JobManager:
    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")  # these tests need no TensorFlow
    return JobManager(data_root / "jobs")


def test_job_runs_in_its_own_process_and_reports(manager):
    job_id = manager.submit("test-sleep", "count", {"steps": 4, "seconds": 0.01}, files={"input.txt": b"hello"})
    state = manager.wait(job_id, 60)
    assert state.status == FINISHED and state.progress == 1.0
    assert state.result["steps"] == 4 and state.result["pid"] != os.getpid()
    assert (manager.job_dir(job_id) / "input.txt").read_bytes() == b"hello"
    assert (manager.job_dir(job_id) / "done_steps").read_text() == "4"
    assert not (manager.job_dir(job_id) / "tmp").exists(), "the worker's scratch folder is removed"


def test_user_facing_failure_keeps_its_message(manager):
    state = manager.wait(manager.submit("test-sleep", "fail", {"steps": 5, "fail_at": 1}), 60)
    assert state.status == FAILED
    assert state.error == "the test job failed on purpose"


def test_segfaulting_worker_is_failed_with_the_signal_and_log(manager):
    state = manager.wait(manager.submit("test-sleep", "crash", {"steps": 5, "crash_at": 1}), 60)
    assert state.status == FAILED and state.signal == "SIGSEGV"
    assert "SIGSEGV" in state.error and "server kept running" in state.error
    assert state.log_tail and "test-sleep" in state.log_tail
    assert str(manager.root) not in (state.log_tail + state.error), "no server paths for the user"
    # The runner survived: the next job runs.
    assert manager.wait(manager.submit("test-sleep", "after", {"steps": 1}), 60).status == FINISHED


def test_stop_ends_a_running_job(manager):
    job_id = manager.submit("test-sleep", "long", {"steps": 400, "seconds": 0.05})
    wait_for(lambda: manager.get(job_id).progress > 0)
    manager.stop(job_id)
    state = manager.wait(job_id, 30)
    assert state.status == STOPPED and 0 < state.progress < 1


def test_a_job_that_ignores_stop_is_ended_by_force(manager, monkeypatch):
    from services.jobs import runner

    job_id = manager.submit("test-sleep", "stubborn", {"steps": 2000, "seconds": 0.05, "ignore_stop": True})
    wait_for(lambda: manager.get(job_id).status == RUNNING)
    manager.stop(job_id)
    state = manager.wait(job_id, runner.STOP_GRACE_S + runner.KILL_GRACE_S + 20)
    assert state.status == STOPPED and "force" in state.message


def test_stopping_a_queued_job_means_it_never_starts(manager, monkeypatch):
    monkeypatch.setenv("DASHBOARD_MAX_JOBS", "1")
    first = manager.submit("test-sleep", "first", {"steps": 100, "seconds": 0.05})
    second = manager.submit("test-sleep", "second", {"steps": 1})
    assert manager.get(second).status == QUEUED
    manager.stop(second)
    assert manager.get(second).status == STOPPED
    manager.stop(first)
    assert manager.wait(first, 30).status == STOPPED
    assert manager.get(second).started is None


def test_queue_limit_holds_across_kinds_and_shows_position(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")
    monkeypatch.setenv("DASHBOARD_MAX_CONCURRENT_RUNS", "1")
    manager = JobManager(data_root / "jobs")
    # Two different TensorFlow kinds share one slot.
    first = manager.submit("test-tensorflow", "tf job", {"n": 2})
    second = manager.submit("style-transfer", "waits", {})
    third = manager.submit("test-tensorflow", "waits too", {"n": 3})
    states = {s.id: s for s in manager.list()}
    assert states[third].status == QUEUED and states[third].queue_ahead == 2
    assert "2 ahead" in states[third].status_text
    manager.stop(second)
    for job_id in (first, third):
        manager.wait(job_id, 120)
    store = open_store(data_root / "jobs")
    first_state, third_state = store.get(first), store.get(third)
    assert first_state.status == third_state.status == FINISHED
    assert third_state.started >= first_state.ended - 0.05, "the second TensorFlow job waited for the first"


def test_retry_runs_again_with_the_same_inputs(manager):
    failed = manager.wait(manager.submit("test-sleep", "fail", {"steps": 2, "fail_at": 0}, files={"a.txt": b"1"}), 60)
    assert failed.status == FAILED
    retried = manager.retry(failed.id)
    assert retried != failed.id
    assert (manager.job_dir(retried) / "a.txt").read_bytes() == b"1"
    assert manager.wait(retried, 60).status == FAILED  # same params, same failure


def test_resume_continues_where_the_job_stopped(manager):
    job_id = manager.submit("test-sleep", "resumable", {"steps": 60, "seconds": 0.05})
    wait_for(lambda: manager.get(job_id).progress >= 0.1)
    manager.stop(job_id)
    stopped = manager.wait(job_id, 30)
    done_before = int((manager.job_dir(job_id) / "done_steps").read_text())
    manager.resume(job_id)
    state = manager.wait(job_id, 60)
    assert state.status == FINISHED and state.resumed
    assert state.result["started_at_step"] == done_before > 0
    assert stopped.status == STOPPED


def test_only_ended_resumable_jobs_resume(manager):
    job_id = manager.submit("test-sleep", "quick", {"steps": 1})
    manager.wait(job_id, 60)
    with pytest.raises(UserFacingError, match="finished"):
        manager.resume(job_id)
    with pytest.raises(UserFacingError):
        manager.job_dir("../../etc")


def test_a_vanished_worker_interrupts_its_job_which_resumes_by_itself(manager):
    job_id = manager.submit("test-sleep", "orphan", {"steps": 80, "seconds": 0.05})
    worker_pid = wait_for(lambda: manager.get(job_id).progress > 0.1 and manager.get(job_id).pid)
    # The runner goes first (so nobody sees the worker's exit code), then the worker.
    manager.shutdown_runner()
    os.kill(worker_pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{worker_pid}/status")
             or "Z" in open(f"/proc/{worker_pid}/status").read().split("State:")[1][:4], 10)
    manager.ensure_runner()  # a new runner finds the job without a worker: interrupted, then resumed
    state = manager.wait(job_id, 60)
    assert state.status == FINISHED and state.resumed and state.attempts == 2
    assert state.result["started_at_step"] > 0


def test_a_frozen_worker_is_ended_and_its_job_marked_interrupted(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")
    monkeypatch.setenv("DASHBOARD_JOB_STALE_S", "4")
    manager = JobManager(data_root / "jobs")
    job_id = manager.submit("test-once", "frozen", {"steps": 400, "seconds": 0.05})
    pid = wait_for(lambda: manager.get(job_id).progress > 0 and manager.get(job_id).pid)
    os.kill(pid, signal.SIGSTOP)  # its heartbeat stops with it
    state = manager.wait(job_id, 60)
    assert state.status == INTERRUPTED and "stopped responding" in state.message
    wait_for(lambda: not os.path.exists(f"/proc/{pid}/status")
             or "Z" in open(f"/proc/{pid}/status").read().split("State:")[1][:4], 10)


def test_damaged_rows_do_not_break_listing(manager):
    job_id = manager.submit("test-sleep", "ok", {"steps": 1})
    manager.wait(job_id, 60)
    database = sqlite3.connect(manager.store.path)
    database.execute("UPDATE jobs SET result = '{not json', params = '[1]' WHERE id = ?", (job_id,))
    database.commit()
    database.close()
    state = next(s for s in manager.list() if s.id == job_id)
    assert state.result == {} and state.params == {} and "result" in state.damaged
    assert manager.file(state, "preview") is None


def test_result_file_names_cannot_leave_the_job_folder(manager):
    job_id = manager.submit("test-sleep", "ok", {"steps": 1})
    state = manager.wait(job_id, 60)
    state.result["preview"] = "../../../../etc/passwd"
    assert manager.file(state, "preview") is None
    with pytest.raises(UserFacingError):
        manager.submit("test-sleep", "bad file", {}, files={"../x": b""})
    with pytest.raises(UserFacingError):
        manager.submit("no-such-kind", "?", {})


def test_run_inline_runs_a_body_in_this_process(tmp_path):
    result = run_inline("test-sleep", {"steps": 3, "seconds": 0}, tmp_path / "job")
    assert result.status == FINISHED and result.result["pid"] == os.getpid()
    assert result.reports[-1][0] == 1.0
    assert run_inline("test-sleep", {"steps": 3, "fail_at": 1}, tmp_path / "j2").error
    assert run_inline("test-sleep", {"steps": 50, "seconds": 0}, tmp_path / "j3", stop_after=2).status == STOPPED


def test_warm_worker_runs_tensorflow_jobs_one_process_each(data_root, monkeypatch):
    system_tmp = data_root.parent / "system-tmp"  # what the runner and its workers inherit as TMPDIR
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "1")
    manager = JobManager(data_root / "jobs")
    first = manager.wait(manager.submit("test-tensorflow", "tf", {"n": 3}), 120)
    second = manager.wait(manager.submit("test-tensorflow", "tf again", {"n": 5}), 120)
    assert (first.result["sum"], second.result["sum"]) == (3.0, 5.0)
    assert first.result["pid"] != second.result["pid"], "one process per job"
    assert not list(manager.job_dir(first.id).glob("tmp")), "autograph's files went with the job's scratch folder"
    crashed = manager.wait(manager.submit("test-tensorflow", "crash", {"crash": True}), 120)
    assert crashed.status == FAILED and crashed.signal == "SIGSEGV"
    assert not list(system_tmp.glob("__autograph_generated_file*")), "no autograph leftovers in the temp folder"


def test_a_warm_worker_takes_the_next_job_only_of_a_kind_that_reuses_it(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "1")
    manager = JobManager(data_root / "jobs")
    first = manager.wait(manager.submit("test-reuse", "map", {"n": 2}), 120)
    second = manager.wait(manager.submit("test-reuse", "map again", {"n": 3}), 120)
    assert (first.status, second.status) == (FINISHED, FINISHED)
    assert (first.result["sum"], second.result["sum"]) == (2.0, 3.0)
    assert first.result["pid"] == second.result["pid"], "the worker that ran the first took the second"
    assert not list(manager.job_dir(second.id).glob("tmp")), "each job's scratch folder goes with it"
    other = manager.wait(manager.submit("test-tensorflow", "training", {"n": 1}), 120)
    assert other.result["pid"] != first.result["pid"], "other kinds run in a worker of their own"


def test_a_worker_over_its_memory_bound_takes_no_further_job(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "1")
    monkeypatch.setenv("DASHBOARD_REUSED_WORKER_MAX_MB", "1")  # every TensorFlow process is above 1 MB
    manager = JobManager(data_root / "jobs")
    first = manager.wait(manager.submit("test-reuse", "map", {"n": 2}), 120)
    second = manager.wait(manager.submit("test-reuse", "map again", {"n": 3}), 120)
    assert (first.status, second.status) == (FINISHED, FINISHED)
    assert first.result["pid"] != second.result["pid"]


def test_every_declared_kind_has_a_body_taking_params_and_context():
    import inspect

    from services.jobs.kinds import KINDS, RESOURCES

    for kind in KINDS.values():
        body = kind.load_body()
        assert list(inspect.signature(body).parameters)[:2] == ["params", "context"], kind.name
        assert kind.resource in RESOURCES


def test_job_inputs_are_held_to_the_upload_caps(manager, monkeypatch):
    monkeypatch.setenv("DASHBOARD_MAX_UPLOAD_FILES", "2")
    with pytest.raises(UserFacingError, match="DASHBOARD_MAX_UPLOAD_FILES"):
        manager.submit("test-sleep", "too many", {}, files={f"f{i}.bin": b"x" for i in range(3)})
    monkeypatch.setenv("DASHBOARD_MAX_UPLOAD_BYTES", "10")
    with pytest.raises(UserFacingError, match="DASHBOARD_MAX_UPLOAD_BYTES"):
        manager.submit("test-sleep", "too big", {}, files={"a.bin": b"x" * 11})
    assert manager.list() == []


def test_a_finished_job_keeps_only_a_closing_message(manager, tmp_path):
    from services.jobs.context import JobContext

    class Reports:
        def report(self, *args):
            pass

    context = JobContext(Reports(), tmp_path, {}, report_interval=60)  # every later report is throttled
    context.progress(0.6, "epoch 2/3, about 2 s left")
    assert context.closing_message == ""  # the work it described is over
    context.progress(1.0, "3 compared")
    assert context.closing_message == "3 compared"
    state = manager.wait(manager.submit("test-sleep", "count", {"steps": 40, "seconds": 0.001}), 60)
    assert state.status == FINISHED and state.message == "step 40/40"  # not a throttled earlier step


def test_a_runner_that_is_about_to_exit_serves_a_job_queued_at_that_moment(data_root):
    """The idle exit races a submit that saw the heartbeat still fresh (and so started no runner):
    the runner withdraws its heartbeat first, then looks at the queue again."""
    import fcntl
    import threading
    import time

    from services.jobs import runner

    jobs_dir = data_root / "jobs"
    manager = JobManager(jobs_dir, autostart=False)
    exiting = runner.Runner(jobs_dir)
    exiting.store.runner_beat(os.getpid(), started=time.time())
    manager.submit("test-sleep", "late", {"steps": 1})
    assert manager.runner_alive(), "the submitter saw a live runner"
    assert not exiting._withdrawn(), "a queued job keeps the runner"
    assert manager.runner_alive() and manager.store.runner()[0] == os.getpid()
    manager.store.delete(manager.list()[0].id)
    assert exiting._withdrawn(), "an empty queue lets it go"
    assert not manager.runner_alive(), "a later submit starts a new runner"

    # That new runner waits for the lock of the one that is still exiting.
    held = open(jobs_dir / runner.LOCK_FILE, "a")
    fcntl.flock(held, fcntl.LOCK_EX)
    threading.Timer(0.5, held.close).start()
    with open(jobs_dir / runner.LOCK_FILE, "a") as waiting:
        assert runner._take_lock(waiting, wait_s=10)
        with open(jobs_dir / runner.LOCK_FILE, "a") as other:
            assert not runner._take_lock(other, wait_s=0.3), "a serving runner keeps the data root"


def test_jobs_submitted_around_the_runners_idle_exit_all_run(data_root, monkeypatch):
    import time

    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")
    monkeypatch.setenv("DASHBOARD_RUNNER_IDLE_S", "1")
    manager = JobManager(data_root / "jobs")
    first = manager.wait(manager.submit("test-sleep", "first", {"steps": 1}), 60)
    assert first.status == FINISHED
    for delay in (0.9, 1.0, 1.1, 1.2, 1.3):  # around the moment the idle runner exits
        time.sleep(delay)
        job_id = manager.submit("test-sleep", f"after {delay}", {"steps": 1})
        assert manager.store.get(job_id).status in (QUEUED, RUNNING, FINISHED)
        state = manager.wait(job_id, 60)
        assert state.status == FINISHED, f"the job submitted {delay} s after the last one: {state.status}"
