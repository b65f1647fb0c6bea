"""Real browser: map the demo mosaic with a tiny demo-trained run (Start says so at once and the
Maps tab selects the new map, finished, without a reload), click a tile, see the downloads."""

import pytest

from tests.conftest import wait_for, wait_for_app
from tests.e2e_helpers import assert_clean, selected, timed_click
from tests.tissuemap_helpers import train_run_in_subprocess

pytestmark = pytest.mark.e2e


def test_tissue_map_of_the_demo_mosaic(browser_page, streamlit_server, artifacts_dir):
    train_run_in_subprocess(streamlit_server.data_dir)
    page = browser_page
    page.goto(f"{streamlit_server.url}/tissue_map")
    wait_for_app(page)
    page.get_by_text("synthetic demo mosaic").first.wait_for(timeout=60_000)
    page.get_by_text("Tissue found (background tinted blue)").wait_for()
    timed_click(page, "tissue map: Start", page.get_by_role("button", name="Start"),
                page.get_by_text("Map queued", exact=False))  # said where the button is, with the job's progress
    page.locator("[data-testid='stProgress']").first.wait_for()
    assert_clean(page, streamlit_server)
    page.get_by_role("tab", name="Maps").click()
    wait_for(lambda: selected(page, "Map").endswith(" · finished"), timeout=180)  # the new map, no reload
    wait_for_app(page)
    page.get_by_role("button", name="HTML report").wait_for(timeout=60_000)
    for label in ("Overlay PNG", "Label TIFF", "Tiles CSV", "GeoJSON (QuPath)"):
        page.get_by_role("button", name=label).wait_for()
    page.locator("[data-testid='stAlert']").filter(has_text="MODEL TRAINED ON SYNTHETIC DATA").first.wait_for()
    chart = page.locator("[data-testid='stPlotlyChart']").first
    chart.wait_for()
    chart.scroll_into_view_if_needed()  # the model's trust notes above it can push it below the fold
    markers = chart.locator(".scatterlayer path.point")
    markers.nth(0).wait_for(state="attached")
    tile = markers.nth(markers.count() // 2).bounding_box()  # one tile's marker: the tile's size on screen
    assert tile["width"] > 20
    # Near the tile's corner, far from its centre (a click within a few pixels of the centre was all
    # that used to register).
    page.mouse.click(tile["x"] + tile["width"] * 0.12, tile["y"] + tile["height"] * 0.12)
    wait_for_app(page)
    page.get_by_text("Tile at x").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "tissue_map.png"), full_page=True)
