"""The cloud profile keeps at most one TensorFlow process alive: a TensorFlow job stops the model
service before it starts, and the service refuses to start beside a running TensorFlow job (with a
sentence saying why), then starts again once the job has ended."""

from __future__ import annotations

import pytest

from services import processes
from services.jobs import RUNNING, JobManager
from services.model_service import client
from tests.conftest import wait_for


def _tensorflow_processes(data_root) -> list[str]:
    return [f"{p.role} {p.pid}" for p in processes.find(data_root) if processes.loaded_tensorflow(p.pid)]


def test_a_tensorflow_job_and_the_model_service_never_run_together(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_PROFILE", "cloud")
    client.ensure_service()
    assert processes.find(data_root, (processes.MODEL_SERVICE,))
    manager = JobManager(data_root / "jobs")
    job_id = manager.submit("test-tensorflow", "tf", {"n": 2, "seconds": 60})
    wait_for(lambda: manager.get(job_id).status == RUNNING and (manager.get(job_id).progress or 0) >= 0.5,
             timeout=120)
    assert not processes.find(data_root, (processes.MODEL_SERVICE,)), "the service was stopped for the job"
    assert _tensorflow_processes(data_root) == [f"{processes.WORKER} {manager.get(job_id).pid}"]
    with pytest.raises(client.ModelServiceError, match="A TensorFlow job is running"):
        client.call("system.ping")
    assert not processes.find(data_root, (processes.MODEL_SERVICE,))
    manager.stop(job_id)
    manager.wait(job_id, 60)
    assert client.call("system.ping").result["pid"]


def test_the_lab_profile_keeps_the_service_beside_a_job(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_PROFILE", "lab")
    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")
    service_pid = client.call("system.ping").result["pid"]
    manager = JobManager(data_root / "jobs")
    job_id = manager.submit("test-tensorflow", "tf", {"n": 2, "seconds": 60})
    wait_for(lambda: (manager.get(job_id).progress or 0) >= 0.5, timeout=120)
    assert client.call("system.ping").result["pid"] == service_pid
    manager.stop(job_id)
    manager.wait(job_id, 60)
