"""Real browser: the process architecture as users meet it. The default style transfer runs to its
first preview in a worker; a style worker killed by SIGSEGV is reported with the signal and a
Retry button while the server keeps serving; five sessions detect with the TensorFlow backend
(the model service) and two of them inspect tiles on the Transfer learning page while the others
rerun; the model service killed mid-request comes back."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from services.jobs import JobManager
from services.jobs import kinds
from tests.conftest import wait_for_app
from tests.style_helpers import CONTENT

pytestmark = pytest.mark.e2e


def server_healthy(server) -> bool:
    with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=10) as response:
        return response.status == 200 and server.process.poll() is None


def assert_no_traceback(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0
    assert "Traceback" not in page.locator("[data-testid='stMain']").inner_text()


# --- style transfer ------------------------------------------------------------------------------

def open_style_page_on_random_weights(page, server) -> None:
    page.goto(f"{server.url}/style_transfer")
    wait_for_app(page)
    page.get_by_text("VGG19 ImageNet weights are not available").wait_for()  # offline, empty data root
    page.get_by_text("Use random (untrained) VGG19 weights instead").click()
    wait_for_app(page)


def newest_running_style_job(server, after: float, timeout: float = 120.0):
    """The style job started after ``after`` once its worker runs it (read from the job store)."""
    manager = JobManager(server.data_dir / "jobs", autostart=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = [job for job in manager.list(kind=kinds.STYLE_TRANSFER) if job.created >= after]
        if started and started[0].status == "running" and started[0].pid:
            return manager, started[0]
        assert not started or started[0].active, started[0]
        time.sleep(0.1)
    raise AssertionError(f"no style job running after {timeout} s")


def test_default_style_transfer_on_random_weights_reaches_its_first_preview(browser_page, streamlit_server,
                                                                            artifacts_dir):
    page = browser_page
    open_style_page_on_random_weights(page, streamlit_server)
    submitted = time.time()
    page.get_by_role("button", name="Start").click()  # every setting at the page's default
    manager, job = newest_running_style_job(streamlit_server, submitted)
    assert (job.params["settings"]["steps"], job.params["settings"]["preview_every"]) == (200, 20)
    page.get_by_text(re.compile(r"^Preview at step \d+$")).first.wait_for(timeout=240_000)
    preview = page.locator("[data-testid='stImage']").filter(has_text="Preview at step").locator("img").first
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=preview.element_handle())
    page.get_by_text("RANDOM WEIGHTS: VGG19 was not pretrained").wait_for()
    page.screenshot(path=str(artifacts_dir / "lifecycle_style_first_preview.png"), full_page=True)
    assert server_healthy(streamlit_server)

    page.get_by_role("button", name="Stop").click()  # the page still answers
    page.get_by_text("stopped", exact=True).wait_for(timeout=90_000)
    assert manager.get(job.id).status == "stopped"
    page.get_by_role("button", name="Resume").first.wait_for()
    assert_no_traceback(page)


def test_a_style_worker_killed_by_sigsegv_shows_the_signal_and_the_server_keeps_serving(
        browser_page, streamlit_server, artifacts_dir):
    page = browser_page
    open_style_page_on_random_weights(page, streamlit_server)
    submitted = time.time()
    page.get_by_role("button", name="Start").click()
    manager, job = newest_running_style_job(streamlit_server, submitted)

    os.kill(job.pid, signal.SIGSEGV)
    page.get_by_text(re.compile("killed by SIGSEGV")).wait_for(timeout=60_000)
    page.get_by_text(re.compile(r"^failed \(SIGSEGV\)$")).first.wait_for()  # the status line names the signal
    page.get_by_role("button", name="Retry").first.wait_for()
    wait_for_app(page)
    page.get_by_text(re.compile("killed by SIGSEGV")).scroll_into_view_if_needed()
    state = manager.get(job.id)
    assert (state.status, state.signal) == ("failed", "SIGSEGV")
    assert_no_traceback(page)
    page.screenshot(path=str(artifacts_dir / "lifecycle_style_sigsegv.png"))
    assert server_healthy(streamlit_server)

    page.get_by_role("link", name="Object detector").click()  # the same page moves on and renders
    page.get_by_role("heading", name="Object detector (YOLO)").wait_for()
    wait_for_app(page)
    page.locator("[data-testid='stRadio']").filter(has_text="Backend").wait_for()
    assert_no_traceback(page)


# --- detection in the model service ----------------------------------------------------------------

@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "cat.png"
    Image.fromarray(CONTENT).resize((256, 172)).save(path)
    return path


def open_detector_on_tensorflow(page, server) -> None:
    """The detector page with the TensorFlow backend chosen (it opens on OpenCV)."""
    page.goto(f"{server.url}/detector")
    page.locator("[data-testid='stRadio']").filter(has_text="Backend").get_by_text("TensorFlow").wait_for()


def choose(page, group: str, option: str) -> None:
    """Click a radio option, again if a rerun that was under way swallowed the click."""
    radios = page.locator("[data-testid='stRadio']").filter(has_text=group)
    for _ in range(3):
        radios.get_by_text(option, exact=True).click()
        if _checked_soon(radios.get_by_role("radio", name=option, exact=True)):
            return
    raise AssertionError(f"{group}: {option} could not be chosen")


def _checked_soon(radio, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if radio.is_checked():
            return True
        time.sleep(0.1)
    return False


def upload(page, path: Path) -> None:
    uploader = page.locator("[data-testid='stFileUploader']").filter(has_text="Photos to detect on")
    uploader.locator("input[type='file']").set_input_files(str(path))


def detections_at(page, size: int, timeout: float = 180_000) -> int:
    """The detection count once the page shows TensorFlow results at ``size``."""
    line = page.get_by_text(re.compile(rf"^\d+ detections · .*TensorFlow at {size}$")).first
    line.wait_for(timeout=timeout)
    return int(line.inner_text().split()[0])


def click_score(page, fraction: float) -> None:
    slider = page.locator("[data-testid='stSlider']").filter(has_text="Score threshold")
    track = slider.locator("[role='group'] > div").first.bounding_box()
    page.mouse.click(track["x"] + track["width"] * fraction, track["y"] + track["height"] / 2)


def score_shown(page) -> float:
    slider = page.locator("[data-testid='stSlider']").filter(has_text="Score threshold")
    return float(slider.get_by_test_id("stSliderThumbValue").inner_text())


@pytest.fixture(scope="module")
def comparison(streamlit_server) -> str:
    """A finished strategy-A comparison (cnn_v1, 48 px, one epoch) in the server's data root, so
    that the Transfer learning page has models whose tiles can be inspected."""
    from services.transfer import experiments
    from services.transfer.spec import ExperimentSpec
    from tests.transfer_helpers import demo_split

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DASHBOARD_DATA_DIR", str(streamlit_server.data_dir))
        dataset, split = demo_split("lifecycle", per_class=8)
        manager = JobManager(streamlit_server.data_dir / "jobs")
        job_id = experiments.start_experiment(manager, ExperimentSpec(
            dataset=dataset, split=split, strategies=["A"], scratch_models=["cnn_v1"], image_size=48, epochs=1,
            batch_size=16))
        state = manager.wait(job_id, timeout=240)
    assert state.status == "finished", state.error
    return job_id


def inspected_tiles(page) -> None:
    """Wait for the Transfer learning page's Grad-CAM of the chosen test tile."""
    page.get_by_text(re.compile(r"^Grad-CAM \(.*\), predicted class ")).first.wait_for(timeout=180_000)
    page.get_by_text(re.compile(r"^first \d+ of \d+ feature maps of ")).first.wait_for(timeout=180_000)


def shown_tile(page) -> str:
    return page.locator("[data-testid='stSelectbox']").filter(has_text="Test tile").locator("input").input_value()


def next_test_tile(page) -> str:
    """Move the test-tile choice one down with the keyboard (again if a late rerun swallowed
    it); returns the tile that was shown before."""
    before = shown_tile(page)
    for _ in range(3):
        page.locator("[data-testid='stSelectbox']").filter(has_text="Test tile").locator("input").click()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if shown_tile(page) != before:
                return before
            time.sleep(0.1)
        page.keyboard.press("Escape")
    raise AssertionError("another test tile could not be chosen")


def test_five_sessions_detect_on_tensorflow_and_inspect_tiles_while_the_others_rerun(
        _browser, streamlit_server, photo, comparison, artifacts_dir):
    contexts = [_browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(5)]
    pages = [context.new_page() for context in contexts]
    try:
        for page in pages:
            page.set_default_timeout(120_000)
            open_detector_on_tensorflow(page, streamlit_server)
        for page in pages:  # no waiting between sessions: their reruns overlap
            choose(page, "Backend", "TensorFlow")
        for page in pages:
            page.locator("[data-testid='stFileUploader']").filter(has_text="Photos to detect on").wait_for()
            upload(page, photo)
        sizes = [416] * len(pages)
        for page in pages:
            detections_at(page, 416)
        for round_, fractions in enumerate(((0.1, 0.3, 0.5, 0.7, 0.9), (0.8, 0.6, 0.15, 0.35, 0.05))):
            for page, fraction in zip(pages, fractions):
                click_score(page, fraction)  # each rerun starts while the others still run
            if round_ == 1:
                choose(pages[2], "Input size", "320")  # one session asks the service for a new size
                sizes[2] = 320
            for page, fraction, size in zip(pages, fractions, sizes):
                wait_for_app(page)
                assert abs(score_shown(page) - fraction) < 0.06
                detections_at(page, size)
        for index, page in enumerate(pages):
            page.locator("[data-testid='stDataFrame']").first.wait_for()  # the detections table
            page.get_by_text(re.compile(r"detections from 1 image\(s\) in the downloads\.")).wait_for()
            assert_no_traceback(page)
            page.screenshot(path=str(artifacts_dir / f"lifecycle_detector_session{index + 1}.png"), full_page=True)

        inspectors, detectors = pages[:2], pages[2:]
        for page in inspectors:  # two sessions move on to tile inspection (keras.inspect_tile)...
            page.goto(f"{streamlit_server.url}/transfer_learning")
        for page, fraction in zip(detectors, (0.2, 0.4, 0.6)):  # ...while the others rerun detection
            click_score(page, fraction)
        first_tiles = []
        for page in inspectors:
            inspected_tiles(page)
            wait_for_app(page)
            first_tiles.append(next_test_tile(page))  # another tile: a request while the detectors rerun
        for page, fraction in zip(detectors, (0.5, 0.1, 0.3)):
            click_score(page, fraction)
        for index, (page, first_tile) in enumerate(zip(inspectors, first_tiles)):
            wait_for_app(page)
            assert shown_tile(page) != first_tile
            inspected_tiles(page)
            assert_no_traceback(page)
            page.screenshot(path=str(artifacts_dir / f"lifecycle_inspect_session{index + 1}.png"), full_page=True)
        for page, size in zip(detectors, sizes[2:]):
            wait_for_app(page)
            detections_at(page, size)
            assert_no_traceback(page)
        assert server_healthy(streamlit_server)
    except Exception:
        for index, page in enumerate(pages):  # what each session showed when it went wrong
            page.screenshot(path=str(artifacts_dir / f"lifecycle_failed_session{index + 1}.png"), full_page=True)
        raise
    finally:
        for context in contexts:
            context.close()


def _service_sockets(pid: int) -> int:
    count = 0
    for entry in os.scandir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(entry.path).startswith("socket:")
        except OSError:
            pass
    return count


def _service_pid() -> int:
    from services.model_service import client

    return int(client.call("system.ping").result["pid"])


def test_the_model_service_killed_mid_request_comes_back(browser_page, streamlit_server, photo, monkeypatch,
                                                        artifacts_dir):
    monkeypatch.setenv("DASHBOARD_DATA_DIR", str(streamlit_server.data_dir))
    page = browser_page
    open_detector_on_tensorflow(page, streamlit_server)
    choose(page, "Backend", "TensorFlow")
    wait_for_app(page)
    upload(page, photo)
    detections_at(page, 416)  # the service is up and has the model
    wait_for_app(page)
    pid = _service_pid()
    time.sleep(0.3)
    idle = min(_service_sockets(pid) for _ in range(5))

    choose(page, "Input size", "608")  # not cached in the session: the page asks the service
    deadline = time.monotonic() + 60
    while _service_sockets(pid) <= idle:  # the page's request is open in the service
        assert time.monotonic() < deadline, "the page never sent its request"
        time.sleep(0.002)
    time.sleep(0.02)  # past sending the photo: the service is computing the answer
    os.kill(pid, signal.SIGKILL)

    page.get_by_text("has been restarted; try again").wait_for(timeout=180_000)
    wait_for_app(page)
    assert_no_traceback(page)
    page.screenshot(path=str(artifacts_dir / "lifecycle_model_service_restarted.png"), full_page=True)
    assert server_healthy(streamlit_server)

    choose(page, "Input size", "320")  # the next interaction is answered by the new service
    detections_at(page, 320)
    assert page.get_by_text("has been restarted; try again").count() == 0
    choose(page, "Input size", "608")
    detections_at(page, 608)
    assert _service_pid() != pid
    assert_no_traceback(page)
