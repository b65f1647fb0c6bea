"""Real browser: upload a photo to the detector, see boxes and the table, move the score
threshold, download the COCO JSON. Uses the labelled random-weights demo model (offline)."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import wait_for_app

pytestmark = pytest.mark.e2e


def _count(page) -> int:
    text = page.get_by_text(re.compile(r"^\d+ detections · ")).first.inner_text()
    return int(text.split()[0])


def _count_once_changed(page, previous: int, seconds: float = 30) -> int:
    """The detection count after the rerun that a widget change started (the status widget
    can appear late, so wait for the count itself to change)."""
    for _ in range(int(seconds * 4)):
        if _count(page) != previous:
            break
        page.wait_for_timeout(250)
    wait_for_app(page)
    return _count(page)


def _set_score(page, fraction: float) -> float:
    """Click the score slider's track at ``fraction`` of its width; returns the value shown."""
    slider = page.locator("[data-testid='stSlider']").filter(has_text="Score threshold")
    track = slider.locator("[role='group'] > div").first.bounding_box()
    page.mouse.click(track["x"] + track["width"] * fraction, track["y"] + track["height"] / 2)
    return float(slider.get_by_test_id("stSliderThumbValue").inner_text())


def test_upload_detect_threshold_and_download(browser_page, streamlit_server, shared_fixtures, artifacts_dir):
    page = browser_page
    page.goto(f"{streamlit_server.url}/detector")
    wait_for_app(page)
    page.get_by_text("meaningless").first.wait_for()  # offline, no weights: opens on the labelled demo
    wait_for_app(page)

    uploader = page.locator("[data-testid='stFileUploader']").filter(has_text="Photos to detect on")
    uploader.locator("input[type='file']").set_input_files(str(shared_fixtures / "darknet" / "dog.jpg"))
    page.get_by_text(re.compile(r"^\d+ detections · ")).first.wait_for(timeout=120_000)
    wait_for_app(page)
    start = _count(page)
    low_threshold = _set_score(page, 0.12)  # the demo's random boxes appear
    assert 0.05 < low_threshold < 0.2
    low = _count_once_changed(page, start)
    assert low > 0
    page.get_by_text(f"{low} detections from 1 image(s) in the downloads.").wait_for()  # script finished
    page.locator("[data-testid='stImage'] img").first.wait_for()  # the annotated photo
    rows = page.locator("[data-testid='stDataFrame']").first
    rows.wait_for()
    assert "toaster" in rows.inner_text() or rows.locator("canvas").count()  # the table is drawn
    page.screenshot(path=str(artifacts_dir / "detector.png"), full_page=True)

    high_threshold = _set_score(page, 0.17)
    assert high_threshold > low_threshold
    high = _count_once_changed(page, low)
    assert high < low

    page.get_by_text(f"{high} detections from 1 image(s) in the downloads.").wait_for()  # script finished
    with page.expect_download() as download:
        page.get_by_role("button", name="COCO results JSON").click()
    results = json.loads(open(download.value.path()).read())
    assert len(results) == high
    assert all(r["file_name"] == "dog.jpg" and len(r["bbox"]) == 4 and r["score"] >= high_threshold for r in results)
