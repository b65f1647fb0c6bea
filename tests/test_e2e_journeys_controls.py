"""Real browser journeys for the controls no other test pressed: the explorer's split overwrite
question and its zip check, the system page's job cleanup, the tissue map's upload, the detector's
demo fallback and ONNX names, and the transfer page's weights upload (real MobileNet weights).
Each presses the control on the shared warm server, times the feedback it gives and checks the
page shows the result with no exception box or traceback."""

from __future__ import annotations

import re

import pytest

from tests.conftest import wait_for_app
from tests.e2e_helpers import assert_clean, checking_or, open_weights_panel, selected, timed_click, upload

pytestmark = pytest.mark.e2e


def test_saving_a_split_under_a_taken_name_asks_first(browser_page, streamlit_server, artifacts_dir):
    page = browser_page
    page.goto(f"{streamlit_server.url}/dataset_explorer")
    wait_for_app(page)
    page.get_by_text("Usable tiles per class").wait_for(timeout=120_000)
    page.get_by_role("radio", name="Splits", exact=True).click()
    wait_for_app(page)
    name = page.get_by_label("Save as", exact=True)
    name.fill("journey-split")
    name.press("Tab")
    wait_for_app(page)
    save = page.get_by_role("button", name="Save split")
    timed_click(page, "explorer: Save split", save, page.get_by_text("Saved <data root>/", exact=False))
    timed_click(page, "explorer: Save split (name taken)", save,
                page.get_by_text("A split called journey-split already exists"))
    page.get_by_role("button", name="Keep the saved one").click()
    page.get_by_text("already exists").wait_for(state="detached")
    save.click()
    wait_for_app(page)
    timed_click(page, "explorer: Replace it", page.get_by_role("button", name="Replace it"),
                page.get_by_text("Saved <data root>/", exact=False))
    page.get_by_text("already exists").wait_for(state="detached")
    assert any(streamlit_server.data_dir.rglob("journey-split*"))
    assert_clean(page, streamlit_server)
    page.screenshot(path=str(artifacts_dir / "journey_explorer_split_replace.png"), full_page=True)


def test_a_zip_that_is_not_the_published_one_is_refused_and_the_message_dismissed(browser_page, streamlit_server,
                                                                                   artifacts_dir):
    downloads = streamlit_server.data_dir / "downloads"
    downloads.mkdir(exist_ok=True)
    (downloads / "not-kather.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: not the published file
    page = browser_page
    page.goto(f"{streamlit_server.url}/dataset_explorer")
    wait_for_app(page)
    page.get_by_text("Usable tiles per class").wait_for(timeout=120_000)  # the demo set's index (alone: first)
    page.get_by_text("Add a dataset", exact=False).first.click()
    page.get_by_role("tab").first.click()  # the first published set's tab
    path = page.get_by_label(re.compile(r"^Or .* already under the data root$")).first
    path.fill("downloads/not-kather.zip")
    path.press("Tab")
    wait_for_app(page)
    banner = page.locator("[data-testid='stAlert']").filter(has_text=re.compile("expected .* bytes|md5"))
    timed_click(page, "explorer: Verify and extract", page.get_by_role("button", name="Verify and extract", exact=True),
                page.locator("[data-testid='stProgress']").or_(banner).or_(page.get_by_text("from zip: started")))
    banner.first.wait_for(timeout=90_000)  # refused by size / checksum: nothing extracted
    assert_clean(page, streamlit_server)
    page.screenshot(path=str(artifacts_dir / "journey_explorer_zip_refused.png"), full_page=True)
    close = page.locator("[data-testid='stHorizontalBlock']").filter(has=banner).get_by_role("button", name="close")
    for _ in range(3):  # a rerun under way (the job list's last refresh) can swallow a click
        close.first.click()
        wait_for_app(page)
        if banner.count() == 0:
            break
    banner.first.wait_for(state="detached")
    page.reload()
    wait_for_app(page)
    page.get_by_text("Dataset", exact=True).first.wait_for()
    assert banner.count() == 0  # dismissed for good
    assert_clean(page, streamlit_server)


def test_system_deletes_old_jobs_and_says_how_many(browser_page, streamlit_server):
    page = browser_page
    page.goto(f"{streamlit_server.url}/system")
    wait_for_app(page)
    timed_click(page, "system: Delete old jobs", page.get_by_role("button", name="Delete old jobs"),
                page.get_by_text(re.compile(r"^Deleted \d+ job\(s\)\.")))
    assert_clean(page, streamlit_server)
    # The lab profile lists TensorFlow's devices at once (asked of the model service).
    table = page.locator("[data-testid='stDataFrame']").filter(has_text="CPU")
    table.first.wait_for(timeout=120_000)
    page.get_by_text("No GPU visible to TensorFlow", exact=False).first.wait_for()
    assert_clean(page, streamlit_server)


def test_tissue_map_takes_an_uploaded_kather_tile(browser_page, streamlit_server, shared_fixtures, artifacts_dir):
    tile = next((shared_fixtures / "histology" / "kather2016" / "01_TUMOR").glob("*.tif"))
    page = browser_page
    page.goto(f"{streamlit_server.url}/tissue_map")
    wait_for_app(page)
    page.get_by_role("radiogroup", name="Image").get_by_text("Upload", exact=True).click()
    wait_for_app(page)
    upload(page, "Image", tile)
    page.get_by_text(re.compile(r"150 x 150 px")).first.wait_for()
    page.get_by_text(re.compile("Resolution from the file|does not say")).first.wait_for()
    assert_clean(page, streamlit_server)
    page.screenshot(path=str(artifacts_dir / "journey_tissue_map_upload.png"), full_page=True)


def test_detector_offers_the_demo_when_a_model_lacks_its_files(browser_page, streamlit_server):
    from services.detection import registry

    page = browser_page
    page.goto(f"{streamlit_server.url}/detector?model=yolov3")  # offline: its weights are not there
    wait_for_app(page)
    page.get_by_text("needs yolov3.weights", exact=False).first.wait_for()
    page.get_by_role("button", name=f"Try the page with '{registry.DEMO_TITLE}'").click()
    page.wait_for_function("t => [...document.querySelectorAll('input')].some(i => i.value === t)",
                           arg=registry.DEMO_TITLE)
    assert selected(page, "Model") == registry.DEMO_TITLE
    assert_clean(page, streamlit_server)


def test_an_onnx_detector_with_its_own_names_file(browser_page, streamlit_server, shared_fixtures, tmp_path):
    from tests.test_e2e_detector_models import _delete_uploaded

    names = tmp_path / "coco-names.txt"
    names.write_text((shared_fixtures / "darknet" / "coco.names").read_text())
    page = browser_page
    page.goto(f"{streamlit_server.url}/detector")
    wait_for_app(page)
    page.get_by_text("Add a model", exact=False).first.click()
    page.get_by_role("tab", name="Upload ONNX").click()
    upload(page, "ONNX detector (YOLOv5/v7, YOLOv8/11, YOLOX, NMS inside)",
           shared_fixtures / "onnx" / "yolov8n_int8.onnx")
    upload(page, "names, when the model carries none (default: COCO's 80 classes)", names)
    add = page.get_by_role("tabpanel").filter(has_text="ONNX detector").get_by_role("button", name="Check and add")
    added = page.get_by_text("Added yolov8n_int8", exact=False)
    timed_click(page, "detector: Check and add (ONNX + names)", add, checking_or(page, added))
    added.first.wait_for(timeout=120_000)
    assert selected(page, "Model") == "yolov8n_int8 (uploaded ONNX)"
    assert_clean(page, streamlit_server)
    _delete_uploaded(page, streamlit_server, "yolov8n_int8 (uploaded ONNX)", "yolov8n_int8")


def test_transfer_installs_uploaded_mobilenet_weights(browser_page, streamlit_server, shared_fixtures, artifacts_dir):
    page = browser_page
    open_weights_panel(page, streamlit_server.url, "MobileNet v1 (alpha 0.25)")
    uploader = page.locator("[data-testid='stFileUploader']").filter(has_text="mobilenet_2_5_224_tf_no_top.h5")
    uploader.locator("input[type='file']").set_input_files(str(shared_fixtures / "keras" / "mobilenet_v1_0.25_224.h5"))
    uploader.get_by_test_id("stFileChipName").wait_for()
    wait_for_app(page)
    timed_click(page, "transfer: Check and install the file",
                page.get_by_role("button", name="Check and install the file"),
                page.get_by_test_id("stToast").filter(has_text="Checking mobilenet_v1_0.25_224.h5 for MobileNet v1"))
    page.get_by_test_id("stProgress").filter(has_text="Install mobilenet_v1_0.25_224.h5") \
        .filter(has_text="finished").wait_for(timeout=180_000)
    wait_for_app(page)
    assert (streamlit_server.data_dir / "models" / "mobilenet_2_5_224_tf_no_top.h5").is_file()
    assert_clean(page, streamlit_server)
    page.screenshot(path=str(artifacts_dir / "journey_transfer_weights_upload.png"), full_page=True)


def test_a_dataset_whose_indexing_failed_is_indexed_again_on_request(browser_page, streamlit_server, shared_fixtures,
                                                                     artifacts_dir):
    folder = streamlit_server.data_dir / "lab" / "journey_tiles"
    for name in ("01_TUMOR", "07_ADIPOSE"):
        (folder / name).mkdir(parents=True)  # class folders, no tiles yet: indexing fails
    page = browser_page
    page.goto(f"{streamlit_server.url}/dataset_explorer")
    wait_for_app(page)
    page.get_by_text("Add a dataset", exact=False).first.click()
    page.get_by_role("tab", name="Folder or zip on disk").click()
    path = page.get_by_label("Path under the data root")
    path.fill("lab/journey_tiles")
    path.press("Tab")
    wait_for_app(page)
    timed_click(page, "explorer: Add (folder)", page.get_by_role("button", name="Add", exact=True),
                page.get_by_text("Added Folder: lab/journey_tiles", exact=False))
    page.get_by_text("no files in class sub-folders", exact=False).first.wait_for(timeout=90_000)
    wait_for_app(page)
    assert_clean(page, streamlit_server)
    for name in ("01_TUMOR", "07_ADIPOSE"):  # the lab copies its tiles in, then asks again
        for tile in sorted((shared_fixtures / "histology" / "kather2016" / name).glob("*.tif"))[:3]:
            (folder / name / tile.name).write_bytes(tile.read_bytes())
    timed_click(page, "explorer: Try again (indexing)", page.get_by_role("button", name="Try again"),
                page.get_by_text("Preparing the dataset index", exact=False).or_(
                    page.get_by_text("Usable tiles per class")))
    page.get_by_text("Usable tiles per class").wait_for(timeout=90_000)
    assert selected(page, "Dataset") == "Folder: lab/journey_tiles"
    assert_clean(page, streamlit_server)
    page.screenshot(path=str(artifacts_dir / "journey_explorer_try_again.png"), full_page=True)
