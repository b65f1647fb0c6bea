"""Real browser: add real Darknet and ONNX models on the detector ("Check and add"), and see the
new model selected and finding the dog in a photo, with no exception box or traceback."""

from __future__ import annotations

import re

import pytest

from tests.conftest import wait_for_app
from tests.e2e_helpers import assert_clean, checking_or, select_option, selected, timed_click, upload

pytestmark = pytest.mark.e2e


def _detections_csv(page) -> str:
    """The page's detections, as its "Detections CSV" download."""
    page.get_by_text(re.compile(r"^\d+ detections · ")).first.wait_for(timeout=120_000)
    wait_for_app(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Detections CSV").click()
    return open(download.value.path()).read()


def test_check_and_add_darknet_and_onnx_selects_the_new_model(browser_page, streamlit_server, shared_fixtures,
                                                              artifacts_dir):
    darknet, onnx = shared_fixtures / "darknet", shared_fixtures / "onnx"
    page = browser_page
    page.goto(f"{streamlit_server.url}/detector")
    wait_for_app(page)
    page.get_by_text("Add a model", exact=False).first.click()

    page.get_by_role("tab", name="Upload Darknet").click()
    upload(page, "cfg", darknet / "yolo-fastest-1.1.cfg")
    upload(page, "weights", darknet / "yolo-fastest-1.1.weights")
    upload(page, "names (one class per line)", darknet / "coco.names")
    add = page.get_by_role("tabpanel").filter(has_text="names (one class per line)").get_by_role(
        "button", name="Check and add")
    added = page.get_by_text("Added yolo-fastest-1.1")
    timed_click(page, "detector: Check and add (Darknet)", add, checking_or(page, added))
    added.first.wait_for(timeout=120_000)
    assert_clean(page, streamlit_server)
    assert selected(page, "Model") == "yolo-fastest-1.1 (uploaded Darknet)"
    page.screenshot(path=str(artifacts_dir / "detector_added_darknet.png"), full_page=True)
    upload(page, "Photos to detect on", darknet / "dog.jpg")
    assert ",dog," in _detections_csv(page)
    assert_clean(page, streamlit_server)

    assert page.get_by_role("tab", name="Upload ONNX").is_visible()  # the expander stayed open
    page.get_by_role("tab", name="Upload ONNX").click()
    upload(page, "ONNX detector (YOLOv5/v7, YOLOv8/11, YOLOX, NMS inside)", onnx / "yolov8n_int8.onnx")
    add = page.get_by_role("tabpanel").filter(has_text="ONNX detector").get_by_role("button", name="Check and add")
    added = page.get_by_text("Added yolov8n_int8", exact=False)
    timed_click(page, "detector: Check and add (ONNX)", add, checking_or(page, added))
    added.first.wait_for(timeout=120_000)
    assert_clean(page, streamlit_server)
    assert selected(page, "Model") == "yolov8n_int8 (uploaded ONNX)"
    page.get_by_text(re.compile(r" at 640$")).first.wait_for(timeout=120_000)  # the photo, re-detected
    assert ",dog," in _detections_csv(page)
    assert_clean(page, streamlit_server)
    page.screenshot(path=str(artifacts_dir / "detector_added_onnx.png"), full_page=True)
    for title, stem in (("yolov8n_int8 (uploaded ONNX)", "yolov8n_int8"),
                        ("yolo-fastest-1.1 (uploaded Darknet)", "yolo-fastest-1.1")):
        _delete_uploaded(page, streamlit_server, title, stem)
    assert "uploaded" not in selected(page, "Model")  # the other tests of the session see no upload


def _delete_uploaded(page, server, title: str, stem: str) -> None:
    """Choose the uploaded model ``title`` and delete it through its confirmation."""
    if selected(page, "Model") != title:
        select_option(page, "Model", title)
    if not page.get_by_role("button", name="Delete model").is_visible():  # the expander stays open once opened
        page.get_by_text("Delete this uploaded model").first.click()
    page.get_by_role("button", name="Delete model").click()
    timed_click(page, "detector: Delete permanently", page.get_by_role("button", name="Delete permanently"),
                page.get_by_text(f"Deleted the model '{stem}'.").first)
    assert_clean(page, server)
