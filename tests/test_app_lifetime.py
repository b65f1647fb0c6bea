"""Processes live and die with the app: Ctrl-C on `make run`'s launcher ends every process of
the data root within 10 s (running jobs interrupted, resumable ones continue at the next start);
a web server killed on its own leaves running jobs running for the next server."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from services import lifetime, processes
from services.jobs import FINISHED, INTERRUPTED, QUEUED, RUNNING, JobManager
from services.jobs import store as job_store
from services.model_service import client
from tests.conftest import REPO, StreamlitServer, _free_port, wait_for, wait_for_app

STOP_BUDGET_S = 25.0
"""The app stops everything within 10 s (measured 0.8-3.3 s); the margin is for a CI machine whose
cores are busy with other work."""


class Launched:
    """``python -m services.supervisor`` as `make run` starts it, on a data root of its own, in a
    process group of its own (what a terminal's Ctrl-C signals)."""

    def __init__(self, data_root: Path, log: Path):
        self.data_root = data_root
        self.port, self.ingest_port = _free_port(), _free_port()
        env = {**os.environ, "DASHBOARD_DATA_DIR": str(data_root), "DASHBOARD_OFFLINE": "1",
               "DASHBOARD_INGEST_PORT": str(self.ingest_port), "PYTHONUNBUFFERED": "1"}
        self._log = open(log, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.supervisor", "--address", "127.0.0.1", "--port", str(self.port),
             "--server.headless", "true", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
             "--secrets.files", str(data_root / "no-secrets.toml")],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self._answers(f"http://127.0.0.1:{self.port}/_stcore/health")
                 and self._answers(f"http://127.0.0.1:{self.ingest_port}/v1/health"), 90)

    def _answers(self, url: str) -> bool:
        assert self.process.poll() is None, f"the launcher exited with {self.process.returncode}; see {self._log.name}"
        try:
            urllib.request.urlopen(url, timeout=2).close()
        except urllib.error.HTTPError:
            return True  # the endpoint answers 401 without its token: it is up
        except OSError:
            return False
        return True

    def web_server(self) -> processes.AppProcess:
        return next(p for p in processes.find(self.data_root) if p.role == processes.WEB_SERVER)

    def ctrl_c(self) -> float:
        """SIGINT to the launcher's whole group, as a terminal sends it; seconds until every
        process of the data root is gone (and the launcher has exited)."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        wait_for(lambda: not processes.find(self.data_root) and self.process.poll() is not None, STOP_BUDGET_S)
        return time.monotonic() - started

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()


@pytest.fixture
def launch(data_root, artifacts_dir):
    started: list[Launched] = []

    def start() -> Launched:
        started.append(Launched(data_root, artifacts_dir / "app-lifetime.log"))
        return started[-1]

    yield start
    for launched in started:
        launched.close()


def test_ctrl_c_stops_every_process_of_the_app_and_interrupts_running_jobs(data_root, launch, monkeypatch):
    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "1")  # the runner keeps a warm TensorFlow worker
    app = launch()
    manager = JobManager(data_root / "jobs")
    resumable = manager.submit("test-sleep", "resumable", {"steps": 2500, "seconds": 0.02})
    once = manager.submit("test-once", "not resumable", {"steps": 2500, "seconds": 0.02})
    wait_for(lambda: all(manager.get(job).status == RUNNING and manager.get(job).progress > 0
                         for job in (resumable, once)), 60)
    client.ensure_service()
    roles = wait_for(lambda: {p.role for p in processes.find(data_root)} >= {
        processes.LAUNCHER, processes.WEB_SERVER, processes.INGEST, processes.RUNNER, processes.WORKER,
        processes.WARM_WORKER, processes.MODEL_SERVICE} and {p.role for p in processes.find(data_root)}, 60)
    usage = processes.app_usage(data_root)
    assert {row.role for row in usage} == roles
    assert all(row.bytes and row.bytes > 1_000_000 and row.measure in (processes.PSS, processes.RSS) for row in usage)

    seconds = app.ctrl_c()

    assert seconds < STOP_BUDGET_S and app.process.returncode == 0
    first, second = manager.get(resumable), manager.get(once)
    assert first.status == INTERRUPTED and first.resume_at_start and "starts again" in first.message
    assert second.status == INTERRUPTED and not second.resume_at_start
    done = int((manager.job_dir(resumable) / "done_steps").read_text())
    assert 0 < done < 200

    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")
    assert lifetime.app_started(data_root) == 1  # what the next start does (the launcher, or the app)
    assert manager.get(resumable).status in (QUEUED, RUNNING) and manager.get(once).status == INTERRUPTED
    finished = manager.wait(resumable, 180)
    assert finished.status == FINISHED and finished.resumed and finished.result["started_at_step"] == done
    assert lifetime.app_started(data_root) == 0


def test_a_killed_web_server_leaves_jobs_running_and_the_next_app_adopts_them(data_root, launch, monkeypatch):
    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")
    app = launch()
    manager = JobManager(data_root / "jobs")
    job_id = manager.submit("test-sleep", "outlives the server", {"steps": 400, "seconds": 0.05})
    worker = wait_for(lambda: manager.get(job_id).progress > 0 and manager.get(job_id).pid)
    runner_pid, _ = manager.store.runner()

    os.kill(app.web_server().pid, signal.SIGKILL)  # the OOM killer's way
    assert app.process.wait(15) == 1  # the launcher ends (with its endpoint) and leaves the jobs alone
    progress = manager.get(job_id).progress
    roles = {p.role for p in processes.find(data_root)}
    assert roles == {processes.RUNNER, processes.WORKER}
    wait_for(lambda: manager.get(job_id).progress > progress, 10)

    again = launch()  # the next `make run`
    state = manager.get(job_id)
    assert state.status == RUNNING and state.pid == worker and state.attempts == 1
    assert manager.store.runner()[0] == runner_pid and manager.runner_alive()
    again.ctrl_c()  # the new app's stop covers the job it adopted
    assert manager.get(job_id).status == INTERRUPTED


def test_a_web_server_started_alone_stops_the_background_when_it_exits(data_root, _browser, artifacts_dir,
                                                                      monkeypatch):
    """`streamlit run dashboard/app.py` without the launcher (Streamlit Cloud, Docker): its own
    exit (SIGTERM) ends the runner and the workers of its data root; a job is interrupted."""
    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")
    server = StreamlitServer(data_root, artifacts_dir / "app-alone.log",
                             extra_args=("--secrets.files", str(data_root / "no-secrets.toml")))
    try:
        context = _browser.new_context()
        page = context.new_page()
        page.goto(server.url)  # the first script run registers the app's exit hook
        wait_for_app(page)
        page.get_by_text("Applied deep learning for the pathology lab").wait_for()
        context.close()
        manager = JobManager(data_root / "jobs")
        job_id = manager.submit("test-once", "ends with the server", {"steps": 400, "seconds": 0.05})
        wait_for(lambda: manager.get(job_id).progress > 0)
        started = time.monotonic()
        server.process.terminate()
        wait_for(lambda: not processes.find(data_root) and server.process.poll() is not None, STOP_BUDGET_S)
        assert time.monotonic() - started < STOP_BUDGET_S
        assert manager.get(job_id).status == INTERRUPTED
    finally:
        server.stop()


def test_the_system_page_lists_every_process_with_its_memory(data_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")
    manager = JobManager(data_root / "jobs")
    job_id = manager.submit("test-sleep", "listed job", {"steps": 100_000, "seconds": 0.05})  # ended by the fixture
    wait_for(lambda: manager.get(job_id).progress > 0)
    ingest = subprocess.Popen([sys.executable, "-m", "services.training.ingest", "--port", str(_free_port())],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: processes.INGEST in {p.role for p in processes.find(data_root)})
        app = AppTest.from_file(str(REPO / "pages" / "system.py"), default_timeout=180).run()
        assert not app.exception
        table = next(frame.value for frame in app.dataframe if "process" in frame.value.columns)
    finally:
        ingest.terminate()
        ingest.wait(15)
    rows = dict(zip(table["process"], table["memory (MiB)"]))
    assert {"web server", "ingest server", "job runner", "job worker (listed job)", "model service"} <= set(rows)
    assert all(rows[name] > 1 for name in ("ingest server", "job runner", "job worker (listed job)"))
    caption = next(c.value for c in app.caption if "MiB in all" in c.value)
    count, total = re.match(r"(\d+) processes, ([\d,]+) MiB in all \((?:PSS|RSS)", caption).groups()
    assert int(count) == len(table) and abs(int(total.replace(",", "")) - table["memory (MiB)"].sum()) < 1


def test_an_old_job_store_gains_the_new_column(data_root):
    jobs_dir = data_root / "jobs"
    store = job_store.open_store(jobs_dir)
    job_id = store.create("test-sleep", "old", "cpu", {}, [])
    job_store._stores.clear()
    connection = sqlite3.connect(store.path)
    connection.execute("ALTER TABLE jobs DROP COLUMN resume_at_start")
    connection.close()
    reopened = job_store.open_store(jobs_dir)
    assert reopened.get(job_id).resume_at_start is False
    assert reopened.requeue_interrupted_at_stop() == 0
