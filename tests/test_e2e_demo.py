"""Real browser: the Home page's real-tissue demo shows sizes and licences before its button,
says offline which files to place where, and its button starts the chain (which, offline and with
nothing in place, ends at once naming the same files)."""

import pytest

from tests.conftest import wait_for_app

pytestmark = pytest.mark.e2e


def test_home_demo_shows_sizes_licences_and_offline_guidance_then_starts(browser_page, streamlit_server,
                                                                         artifacts_dir):
    page = browser_page
    page.goto(streamlit_server.url)
    wait_for_app(page)
    page.get_by_role("heading", name="Real-tissue demo").wait_for()
    for text in ("258 MB", "742 MB", "CC BY 4.0 (Kather et al. 2016, Zenodo record 53169)",
                 "Apache 2.0 (Keras applications)"):
        page.get_by_text(text, exact=True).first.wait_for()
    guidance = page.locator("[data-testid='stAlert']").filter(has_text="place these files")
    guidance.wait_for()
    assert "<data root>/downloads/Kather_texture_2016_image_tiles_5000.zip" in guidance.inner_text()
    assert "<data root>/datasets/kather2016_larger/" in guidance.inner_text()
    page.screenshot(path=str(artifacts_dir / "home_demo_offline.png"), full_page=True)
    page.get_by_role("button", name="Run the real-tissue demo").click()
    wait_for_app(page)
    failure = page.locator("[data-testid='stAlert']").filter(has_text="the demo needs files that are not here")
    failure.first.wait_for(timeout=240_000)
    assert "Kather_texture_2016_image_tiles_5000.zip" in failure.first.inner_text()
    page.get_by_role("button", name="Resume").first.wait_for()
    page.screenshot(path=str(artifacts_dir / "home_demo_offline_started.png"), full_page=True)
