"""Real browser: compare strategies A (the book's cnn_v1, a Sequential) and C on the demo set from
the transfer-learning page, export the table and the HTML report, inspect a test tile and an
uploaded tile of the wrong size and mode with both models (Grad-CAM, feature maps), then run a
second comparison and see it replace the first in the selector."""

import csv
import io
import re

import numpy as np
import pytest
from PIL import Image

from tests.conftest import wait_for_app
from tests.e2e_helpers import select_option

pytestmark = pytest.mark.e2e


def install_weights(data_dir):
    """Generated MobileNetV2 weights where the server's registry looks first (its model cache)."""
    import keras

    from services.models import weights

    spec = weights.spec("mobilenet_v2")
    keras.utils.set_random_seed(0)
    weights.write_weights_file(spec.build((32, 32, 3)), data_dir / "models" / spec.file_name)


def test_compare_export_and_inspect_a_tile(browser_page, streamlit_server, artifacts_dir, tmp_path):
    install_weights(streamlit_server.data_dir)
    page = browser_page
    page.goto(f"{streamlit_server.url}/transfer_learning")
    wait_for_app(page)
    page.get_by_role("button", name="Run comparison").wait_for()
    wait_for_app(page)
    save_split = page.get_by_role("button", name="Save a 60/20/20 split")
    if save_split.count():
        save_split.click()
        page.get_by_text("no saved split yet").wait_for(state="detached")
        wait_for_app(page)
    page.get_by_role("button", name="B · frozen backbone + head", exact=True).click()  # C only...
    wait_for_app(page)
    page.get_by_role("button", name="A · from scratch", exact=True).click()  # ...and A (cnn_v1)
    wait_for_app(page)
    for label, value in (("Image size (px)", "48"), ("Epochs", "1"), ("Batch size", "16")):
        field = page.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Tab")
        wait_for_app(page)
    page.screenshot(path=str(artifacts_dir / "transfer-learning-setup.png"), full_page=True)
    page.get_by_role("button", name="Run comparison").click(timeout=5000)
    page.get_by_test_id("stProgress").filter(has_text=re.compile("finished")).first.wait_for(timeout=180_000)
    wait_for_app(page)
    page.get_by_text("Results", exact=True).wait_for()
    assert page.get_by_text("synthetic demo data").count() > 0
    page.get_by_text(re.compile(r"vgg16_v4 \+ augmentation.*91\.0%")).wait_for()

    with page.expect_download() as download:
        page.get_by_role("button", name="Table as CSV").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
    by_strategy = {row["strategy"]: row for row in rows}
    assert sorted(by_strategy) == ["A", "C"] and by_strategy["C"]["backbone"] == "mobilenet_v2"
    assert float(by_strategy["C"]["extraction_seconds"]) > 0 and 0 <= float(by_strategy["C"]["val_accuracy"]) <= 1
    page.get_by_role("button", name="Prepare the HTML report").click()
    with page.expect_download(timeout=120_000) as download:
        page.get_by_role("button", name="Download the HTML report").click(timeout=120_000)
    document = open(download.value.path()).read()
    assert document.startswith("<!DOCTYPE html>") and "C · mobilenet_v2" in document
    assert "book reference" in document and "data:image/png;base64," in document

    page.get_by_text(re.compile("Grad-CAM .*predicted class")).nth(1).wait_for()  # A and C both explained
    assert page.get_by_text("Traceback").count() == 0 and page.get_by_text("never been called").count() == 0
    odd = tmp_path / "grey-tile.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60), dtype=np.uint8), "L").save(odd)
    page.get_by_role("radiogroup", name="Tile").get_by_text("Upload a tile").click()
    wait_for_app(page)
    page.get_by_test_id("stFileUploader").filter(has_text="A tile image").locator("input[type='file']") \
        .set_input_files(str(odd))
    page.get_by_text("resized from 60x40 to 48x48").first.wait_for()
    page.get_by_text("converted to RGB").first.wait_for()
    # the first convolution by default (C's Conv1 or A's conv2d), never the preprocessing layer
    page.get_by_text(re.compile(r"feature maps of (Conv1|conv2d\S*) \(")).wait_for()
    page.screenshot(path=str(artifacts_dir / "transfer-learning.png"), full_page=True)

    # cross-dataset evaluation, identity mapping: the accuracy and each class's recall with interval and n
    page.get_by_text("Evaluate a model on another dataset").click()
    page.locator("[data-testid='stSelectbox']").filter(has_text="Class mapping").first.wait_for()
    select_option(page, "Class mapping", re.compile("Same class set"))  # reopened when a late rerun closed it
    wait_for_app(page)
    page.get_by_role("button", name="Evaluate").click()
    page.get_by_text("Accuracy on mapped tiles").wait_for(timeout=120_000)
    page.locator("[data-testid^='stCaption']").filter(has_text=re.compile(r"95 % CI [\d.]+-[\d.]+, n = \d+")).first.wait_for()
    assert page.locator("[data-testid='stException']").count() == 0 and page.get_by_text("Traceback").count() == 0

    page.get_by_role("button", name="A · from scratch", exact=True).click()  # C alone this time
    wait_for_app(page)
    page.get_by_role("button", name="Run comparison").click(timeout=5000)
    wait_for_app(page)
    # the new comparison is the one shown at once (its status line, not the first one's) ...
    # the split is whichever the shared e2e server selects first ("grouped", or another e2e test's)
    status = page.get_by_test_id("stProgress").filter(has_text=re.compile(r"· C on demo/[\w-]+ ·"))
    try:
        status.wait_for(timeout=30_000)
    except Exception:
        page.screenshot(path=str(artifacts_dir / "transfer-learning-second-failed.png"), full_page=True)
        raise
    # ... and the page follows it to its end (status line and selector label)
    status.filter(has_text="finished").wait_for(timeout=180_000)
    wait_for_app(page)
    shown = page.get_by_role("combobox", name="Comparison")
    assert re.match(r"C on demo/[\w-]+ · finished · ", shown.input_value()), shown.input_value()
    page.screenshot(path=str(artifacts_dir / "transfer-learning-second.png"), full_page=True)
