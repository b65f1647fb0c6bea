"""Real browser: the home page renders and the navigation reaches the System page."""

import pytest

from tests.conftest import wait_for_app

pytestmark = pytest.mark.e2e


def test_home_then_system_page(browser_page, streamlit_server, artifacts_dir):
    page = browser_page
    page.goto(streamlit_server.url)
    wait_for_app(page)
    page.get_by_text("Applied deep learning for the pathology lab").wait_for()
    page.get_by_text("TensorFlow", exact=True).first.wait_for()
    page.screenshot(path=str(artifacts_dir / "home.png"), full_page=True)
    page.get_by_role("link", name="Device details and speed probe").click()
    page.get_by_text("Matrix multiplication probe").wait_for()
    wait_for_app(page)
    page.screenshot(path=str(artifacts_dir / "system.png"), full_page=True)
