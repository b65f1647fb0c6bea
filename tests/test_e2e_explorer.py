"""Real browser: the Dataset explorer generates the demo set, shows counts and tiles, follows a
class change, enlarges a thumbnail in a dialog, and imports an uploaded zip under a name taken
from its file name, saying so and selecting it when the import is done."""

import pytest

from tests.conftest import wait_for_app
from tests.e2e_helpers import assert_clean, selected, timed_click
from tests.datasets_helpers import make_dataset, zip_bytes

pytestmark = pytest.mark.e2e


def test_explorer_counts_tiles_and_class_change(browser_page, streamlit_server, artifacts_dir):
    page = browser_page
    page.goto(streamlit_server.url)
    wait_for_app(page)
    page.get_by_role("link", name="Dataset explorer").first.click()
    page.get_by_text("Dataset explorer", exact=True).first.wait_for()
    # An empty data root: the synthetic demo set is generated and indexed in a background job.
    page.get_by_text("Usable tiles per class").wait_for(timeout=90_000)
    page.get_by_text("synthetic demo", exact=False).first.wait_for()
    wait_for_app(page)
    assert page.locator("[data-testid='stPlotlyChart']").count() == 1
    page.locator("[data-testid='stImage'] img").nth(31).wait_for()
    assert page.locator("[data-testid='stImage'] img").count() >= 33
    assert page.get_by_text("Selected tile · TUMOR").is_visible()

    page.locator("[data-testid='stSelectbox']").filter(has_text="Class").click()
    page.get_by_role("option", name="ADIPOSE").click()
    wait_for_app(page)
    page.locator("[data-testid='stButton'] button").filter(has_text="zoom_in").first.click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    dialog.locator("[data-testid='stImage'] img").wait_for()
    assert dialog.get_by_text("ADIPOSE", exact=False).first.is_visible()
    width = dialog.locator("[data-testid='stImage'] img").bounding_box()["width"]
    assert width > 300  # enlarged: the thumbnail is 110 px
    page.screenshot(path=str(artifacts_dir / "dataset_explorer_dialog.png"))
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    selected = page.get_by_text("Selected tile · ADIPOSE")
    selected.wait_for()
    wait_for_app(page)
    selected.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "dataset_explorer.png"), full_page=True)


def test_uploaded_zip_is_named_from_its_file_and_imported(browser_page, streamlit_server, artifacts_dir, tmp_path):
    make_dataset(tmp_path / "src", sources=2, tiles_per_source=1)
    members = {p.relative_to(tmp_path / "src").as_posix(): p.read_bytes() for p in (tmp_path / "src").rglob("*.tif")}
    upload = tmp_path / "my_tiles.zip"
    upload.write_bytes(zip_bytes(members))
    page = browser_page
    page.goto(streamlit_server.url + "/dataset_explorer")
    wait_for_app(page)
    page.get_by_text("Add a dataset", exact=False).first.click()
    page.get_by_role("tab", name="Upload a zip").click()
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(upload))
    name = page.get_by_label("Dataset name")
    page.wait_for_function("() => [...document.querySelectorAll('input')].some(i => i.value === 'my_tiles')")
    assert name.input_value() == "my_tiles"
    wait_for_app(page)
    timed_click(page, "explorer: Import", page.get_by_role("button", name="Import"),
                page.get_by_text("Import my_tiles: started", exact=False))
    page.get_by_text("Import my_tiles: done, 4 usable tiles of 4 files. The dataset is selected.").first.wait_for(
        timeout=90_000)  # said, and selected, without a reload
    wait_for_app(page)
    assert selected(page, "Dataset") == "Folder: my_tiles"
    assert_clean(page, streamlit_server)
    assert not list((streamlit_server.data_dir / "jobs").rglob("upload.zip"))  # the job deleted its copy
    page.screenshot(path=str(artifacts_dir / "dataset_explorer_import.png"), full_page=True)
