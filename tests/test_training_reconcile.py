"""A run's status follows its job: the job runner's sweep gives a run the ending of a job that
ended without the run recording it, and leaves runs with no job (scripts, remote) to their own
liveness. Real SQLite stores for both runs and jobs."""

from __future__ import annotations

import pytest

from services.jobs import store as job_store
from services.training import reconcile
from services.training.store import FAILED, FINISHED, INTERRUPTED, QUEUED, RUNNING, STOPPED, RunStore


@pytest.fixture
def stores(tmp_path):
    return RunStore(tmp_path / "runs" / "runs.sqlite"), job_store.open_store(tmp_path / "jobs")


def _job(jobs, status: str, **ending) -> str:
    job_id = jobs.create("training", "t", "tensorflow", {}, [])
    if status != job_store.QUEUED:
        jobs.claim_next("tensorflow", 1, 1)
        if status != job_store.RUNNING:
            jobs.finish(job_id, status, **ending)
    return job_id


def _run(runs, job_id: str | None, status: str = RUNNING) -> str:
    run_id = runs.create_run("r", source="dashboard", status=status)
    runs.update_run(run_id, job_id=job_id)
    return run_id


def test_runs_take_the_ending_of_a_job_they_could_not_record(stores):
    runs, jobs = stores
    killed = _run(runs, _job(jobs, job_store.FAILED, error="The worker was killed (SIGKILL).", signal="SIGKILL"))
    crashed = _run(runs, _job(jobs, job_store.FAILED, error="The job's worker exited with status 1."), QUEUED)
    stopped = _run(runs, _job(jobs, job_store.STOPPED, message="stopped before it started"), QUEUED)
    frozen = _run(runs, _job(jobs, job_store.INTERRUPTED, message="the worker stopped responding"))
    running = _run(runs, _job(jobs, job_store.RUNNING))
    done = _run(runs, _job(jobs, job_store.FINISHED), FINISHED)
    script = _run(runs, None)  # a script's run: no job, its own liveness
    assert sorted(reconcile.settle(runs, jobs.get)) == sorted([killed, crashed, stopped, frozen])
    assert runs.get_run(killed).status == INTERRUPTED and "Resume continues" in runs.get_run(killed).error
    assert runs.get_run(crashed).status == FAILED and runs.get_run(crashed).error == "The job's worker exited with status 1."
    assert runs.get_run(stopped).status == STOPPED and runs.get_run(stopped).ended
    assert runs.get_run(frozen).status == INTERRUPTED and "stopped responding" in runs.get_run(frozen).error
    assert [runs.get_run(i).status for i in (running, done, script)] == [RUNNING, FINISHED, RUNNING]
    assert reconcile.settle(runs, jobs.get) == []  # settled once


def test_the_runner_sweeps_only_the_run_store_of_its_own_data_root(stores, tmp_path, monkeypatch):
    runs, jobs = stores
    run_id = _run(runs, _job(jobs, job_store.FAILED, error="gone"))
    monkeypatch.setenv("DASHBOARD_DATA_DIR", str(tmp_path / "elsewhere"))
    assert reconcile.sweep(tmp_path / "jobs", jobs.get) == []
    monkeypatch.setenv("DASHBOARD_DATA_DIR", str(tmp_path))
    assert reconcile.sweep(tmp_path / "jobs", jobs.get) == [run_id]
    assert runs.get_run(run_id).status == FAILED


def test_the_runner_can_load_every_declared_sweep():
    from services.jobs import kinds

    assert kinds.SWEEPS and all(callable(kinds.load(path)) for path in kinds.SWEEPS)


def test_stop_goes_once_to_the_job_and_a_script_run_gets_its_own_flag(tmp_path):
    from services.jobs import JobManager
    from services.training import launcher

    runs = RunStore(tmp_path / "runs" / "runs.sqlite")
    manager = JobManager(tmp_path / "jobs", autostart=False)
    queued = _run(runs, manager.submit("test-sleep", "waits", {"seconds": 1}), QUEUED)
    script = _run(runs, None)
    launcher.stop_run(queued, runs, manager)
    launcher.stop_run(script, runs, manager)
    assert manager.get(runs.get_run(queued).job_id).status == "stopped"
    assert not runs.get_run(queued).stop_requested  # the run's flag is for runs with no job
    assert reconcile.settle(runs, manager.get) == [queued] and runs.get_run(queued).status == STOPPED
    assert runs.get_run(script).stop_requested and runs.get_run(script).status == RUNNING
