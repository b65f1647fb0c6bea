"""Real browser: a 5-step style transfer at 64 px with the explicitly labelled random weights."""

import pytest

from tests.conftest import wait_for_app

pytestmark = pytest.mark.e2e


def test_style_transfer_runs_and_shows_the_result(browser_page, streamlit_server, artifacts_dir):
    page = browser_page
    page.goto(f"{streamlit_server.url}/style_transfer")
    wait_for_app(page)
    page.get_by_text("VGG19 ImageNet weights are not available").wait_for()  # offline, empty data root
    page.get_by_text("Use random (untrained) VGG19 weights instead").click()
    wait_for_app(page)
    page.get_by_text("Gatys settings (the book's values are the defaults)").click()
    wait_for_app(page)
    option = page.get_by_role("option", name="64", exact=True)
    for _ in range(3):  # the dropdown may be re-rendered by a late rerun: open it again
        page.locator("[data-testid='stSelectbox']").filter(has_text="Longest side").click()
        try:
            option.wait_for(timeout=10_000)
            break
        except Exception:
            page.keyboard.press("Escape")
    option.click()
    wait_for_app(page)
    for label, value in (("Steps", "5"), ("Preview every N steps", "2")):
        field = page.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Enter")
        wait_for_app(page)
    page.get_by_role("button", name="Start").click()
    page.get_by_text("finished", exact=True).wait_for(timeout=90_000)
    result = page.locator("[data-testid='stImage']").filter(has_text="Result").first
    result.wait_for()
    page.wait_for_function(
        "el => el.complete && el.naturalWidth === 64", arg=result.locator("img").element_handle())
    page.get_by_text("RANDOM WEIGHTS: VGG19 was not pretrained").wait_for()
    page.get_by_role("button", name="Download result (PNG)").wait_for()
    page.screenshot(path=str(artifacts_dir / "style_transfer.png"), full_page=True)
