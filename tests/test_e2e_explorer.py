"""Real browser: the Dataset explorer generates the demo set, shows counts and tiles, and
follows a class change."""

import pytest

from tests.conftest import wait_for_app

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
    selected = page.get_by_text("Selected tile · ADIPOSE")
    selected.wait_for()
    wait_for_app(page)
    selected.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "dataset_explorer.png"), full_page=True)
