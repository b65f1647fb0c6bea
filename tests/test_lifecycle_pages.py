"""Job lifecycles as the pages show them (AppTest, real job runner and worker processes): a style
worker killed by SIGSEGV is reported failed with the signal and a Retry button while the app
keeps rendering, and the TensorFlow queue limit holds across job kinds (a detection batch waits
"queued, 1 ahead" behind a style transfer)."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from services import provenance
from services.jobs import JobManager, kinds
from services.style import submit
from services.style.settings import StyleSettings
from tests.style_helpers import CONTENT, STYLE, no_vgg19  # noqa: F401 (fixture)

PAGES = Path(__file__).resolve().parent.parent / "pages"


@pytest.fixture
def jobs(data_root):
    manager = JobManager(data_root / "jobs")
    yield manager
    manager.shutdown_runner()


def wait_running(manager: JobManager, job_id: str, timeout: float = 120.0):
    """The job's state once a worker runs it (its pid known)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = manager.get(job_id)
        assert state is not None and state.status in ("queued", "running"), state
        if state.status == "running" and state.pid:
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not start in {timeout} s")


def _progress_texts(app: AppTest) -> list[str]:
    return [bar.proto.text for bar in app.get("progress")]


def _rerun_until(app: AppTest, condition, timeout: float = 60.0) -> AppTest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.run()
        assert not app.exception, [e.message for e in app.exception]
        if condition(app):
            return app
        time.sleep(0.3)
    raise AssertionError(f"not shown in {timeout} s: {_progress_texts(app)} {[e.value for e in app.error]}")


def _long_gatys(manager, title: str = "long random run") -> str:
    """A 64 px Gatys run on random weights that would take minutes (the tests end it)."""
    settings = StyleSettings(max_side=64, steps=5000, preview_every=1000, weights=provenance.RANDOM)
    return submit.submit_gatys(manager, CONTENT, STYLE, settings, title=title)


def test_a_style_worker_killed_by_sigsegv_is_reported_with_the_signal_and_the_app_keeps_working(no_vgg19, jobs):
    app = AppTest.from_file(str(PAGES / "style_transfer.py"), default_timeout=60).run()
    app.toggle(key="style_random_weights").set_value(True).run()
    app.selectbox(key="style_side").set_value(64)
    app.number_input(key="style_steps").set_value(5000)
    app.number_input(key="style_preview_every").set_value(1000)
    app.run()
    next(button for button in app.button if button.label == "Start").click().run()
    assert not app.exception
    job_id = app.session_state["style_current"][submit.GATYS]
    state = wait_running(jobs, job_id)

    os.kill(state.pid, signal.SIGSEGV)
    _rerun_until(app, lambda a: any("SIGSEGV" in error.value for error in a.error))
    failed = jobs.get(job_id)
    assert (failed.status, failed.signal) == ("failed", "SIGSEGV")
    assert any("**failed (SIGSEGV)**" in text for text in _progress_texts(app))
    assert "Traceback" not in " ".join(error.value for error in app.error)
    labels = [button.label for button in app.button]
    assert "Retry" in labels and "Resume" in labels  # a style job may continue from its last preview

    other = AppTest.from_file(str(PAGES / "detector.py"), default_timeout=90).run()  # the app still renders
    assert not other.exception and "Object detector" in other.title[0].value

    next(button for button in app.button if button.label == "Retry").click().run()
    assert not app.exception
    retried = [job for job in jobs.list(kind=kinds.STYLE_TRANSFER) if job.id != job_id]
    assert len(retried) == 1 and retried[0].params == failed.params and retried[0].active
    jobs.stop(retried[0].id)
    assert jobs.wait(retried[0].id, timeout=90).status in ("stopped", "finished")


def _png(side: int = 96) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(CONTENT).resize((side, side)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_detection_batch_waits_queued_behind_a_style_run_and_runs_when_it_ends(data_root, monkeypatch, jobs):
    from services.detection import registry as detection_registry
    from services.detection.batch import BatchSettings, submit_batch

    monkeypatch.setenv("DASHBOARD_MAX_CONCURRENT_RUNS", "1")
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(data_root / "keras-home"))
    style_id = _long_gatys(jobs)
    wait_running(jobs, style_id)
    batch_id = submit_batch(jobs, detection_registry.DEMO_KEY, "OpenCV", [("photo.png", _png())],
                            BatchSettings(416, 0.25, 0.45), "demo")

    app = AppTest.from_file(str(PAGES / "detector.py"), default_timeout=90)
    _rerun_until(app, lambda a: any("queued, 1 ahead" in text for text in _progress_texts(a)))
    time.sleep(2.0)  # the runner loops every 0.1 s: the limit, not a slow runner, keeps it waiting
    assert jobs.get(batch_id).status == "queued" and jobs.get(style_id).status == "running"
    assert [job.id for job in jobs.list(kind=kinds.DETECTION_BATCH)] == [batch_id]

    jobs.stop(style_id)
    assert jobs.wait(style_id, timeout=60).status == "stopped"
    assert jobs.wait(batch_id, timeout=120).status == "finished", jobs.get(batch_id).error
    _rerun_until(app, lambda a: any("**finished**" in text for text in _progress_texts(a)))
    assert any(button.proto.label == "Detections CSV" for button in app.get("download_button"))
