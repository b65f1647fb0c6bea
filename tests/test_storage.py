"""Disk use under the data root and clean-up of old jobs (owners respected)."""

from __future__ import annotations

import time

from services import storage
from services.access import Actor
from services.jobs import JobManager


def test_usage_and_old_job_cleanup_respects_owners(data_root, monkeypatch):
    from dashboard.adapters import SessionJobs

    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")
    manager = JobManager(data_root / "jobs")
    mine = manager.wait(manager.submit("test-sleep", "mine", {"steps": 1}, files={"big.bin": b"x" * 50_000},
                                       owner="ann@lab.org"), 60)
    theirs = manager.wait(manager.submit("test-sleep", "theirs", {"steps": 1}, owner="bob@lab.org"), 60)
    usage = {row["folder"]: row["bytes"] for row in storage.data_root_usage(data_root)}
    assert usage["jobs"] >= 50_000
    ann = SessionJobs(manager, Actor(user="ann@lab.org"))
    assert storage.delete_old_jobs(ann, older_than_days=1) == (0, 0), "nothing is old enough"
    time.sleep(0.01)
    assert storage.delete_old_jobs(ann, older_than_days=0) == (1, 1)
    assert manager.get(mine.id) is None and not manager.job_dir(mine.id).exists()
    assert manager.get(theirs.id) is not None
