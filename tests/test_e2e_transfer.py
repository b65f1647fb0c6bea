"""Real browser: compare strategy C on the demo set from the transfer-learning page, export the
table and the HTML report, then inspect an uploaded tile of the wrong size and mode."""

import csv
import io
import re

import numpy as np
import pytest
from PIL import Image

from tests.conftest import wait_for_app

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
    save_split = page.get_by_role("button", name="Save a 60/20/20 split")
    if save_split.count():
        save_split.click()
        page.get_by_text("no saved split yet").wait_for(state="detached")
        wait_for_app(page)
    page.get_by_role("button", name="B · frozen backbone + head", exact=True).click()  # keep only C
    wait_for_app(page)
    for label, value in (("Image size (px)", "32"), ("Epochs", "1"), ("Batch size", "16")):
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
    assert [row["strategy"] for row in rows] == ["C"] and rows[0]["backbone"] == "mobilenet_v2"
    assert float(rows[0]["extraction_seconds"]) > 0 and 0 <= float(rows[0]["val_accuracy"]) <= 1
    with page.expect_download(timeout=120_000) as download:
        page.get_by_role("button", name="HTML report").click()
    document = open(download.value.path()).read()
    assert document.startswith("<!DOCTYPE html>") and "C · mobilenet_v2" in document
    assert "book reference" in document and "data:image/png;base64," in document

    page.get_by_text("Grad-CAM, predicted class").first.wait_for()  # a test tile is inspected at once
    odd = tmp_path / "grey-tile.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60), dtype=np.uint8), "L").save(odd)
    page.get_by_role("radiogroup", name="Tile").get_by_text("Upload a tile").click()
    wait_for_app(page)
    page.get_by_test_id("stFileUploader").filter(has_text="A tile image").locator("input[type='file']") \
        .set_input_files(str(odd))
    page.get_by_text("resized from 60x40 to 32x32").wait_for()
    page.get_by_text("converted to RGB").wait_for()
    page.get_by_text("first 12 feature maps").wait_for()
    page.screenshot(path=str(artifacts_dir / "transfer-learning.png"), full_page=True)
