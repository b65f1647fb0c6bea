"""Real browser journeys across pages: every page opens without an exception box or traceback,
Enter in the training form starts nothing, and choices made on a page are still there after a
visit to another page (navigation inside one session, not a reload)."""

from __future__ import annotations

import pytest

from dashboard.pages_registry import PAGES
from tests.conftest import wait_for_app
from tests.e2e_helpers import assert_clean, timed_click, upload

pytestmark = pytest.mark.e2e


def _open_by_navigation(page, title: str) -> None:
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title).first.click()
    wait_for_app(page)


def test_every_page_opens_clean(browser_page, streamlit_server, artifacts_dir):
    page = browser_page
    page.goto(streamlit_server.url)
    wait_for_app(page)
    for spec in PAGES:
        _open_by_navigation(page, spec.title)
        page.get_by_text(spec.title).first.wait_for()
        wait_for_app(page, settle_ms=600)
        assert_clean(page, streamlit_server)
        page.screenshot(path=str(artifacts_dir / f"journey_{spec.file.removesuffix('.py')}.png"), full_page=True)


def test_enter_in_the_training_form_starts_no_run(browser_page, streamlit_server):
    page = browser_page
    page.goto(f"{streamlit_server.url}/training_monitor")
    wait_for_app(page)
    form = page.locator("[data-testid='stForm']").first
    form.wait_for()
    for label, value in (("Epochs", "2"), ("Run name (optional)", "pressed enter")):
        field = form.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Enter")
        page.wait_for_timeout(1500)
        wait_for_app(page)
        assert page.get_by_text("Run queued", exact=False).count() == 0
    assert page.get_by_text("No runs yet", exact=False).first.is_visible()
    assert_clean(page, streamlit_server)


def test_transfer_choices_survive_a_visit_to_another_page(browser_page, streamlit_server):
    page = browser_page
    page.goto(f"{streamlit_server.url}/transfer_learning")
    wait_for_app(page)
    epochs = page.get_by_label("Epochs", exact=True).first
    epochs.fill("7")
    epochs.press("Tab")
    wait_for_app(page)
    random_init = page.get_by_label("random init (untrained baseline)")
    for _ in range(3):  # a rerun under way can swallow a click
        page.get_by_text("random init (untrained baseline)").first.click()
        wait_for_app(page)
        if random_init.is_checked():
            break
    assert random_init.is_checked()
    _open_by_navigation(page, "Home")
    _open_by_navigation(page, "Transfer learning")
    assert page.get_by_label("Epochs", exact=True).first.input_value() == "7"
    assert random_init.is_checked()
    assert_clean(page, streamlit_server)


def test_a_detector_batch_job_says_it_started_and_offers_its_results(browser_page, streamlit_server,
                                                                      shared_fixtures, artifacts_dir):
    photos = shared_fixtures / "darknet"
    page = browser_page
    page.goto(f"{streamlit_server.url}/detector")
    wait_for_app(page)
    page.get_by_text("Batch: a zip or many photos", exact=False).first.click()
    upload(page, "Photos or zips", photos / "dog.jpg", photos / "horses.jpg")
    timed_click(page, "detector: Start batch job", page.get_by_role("button", name="Start batch job"),
                page.get_by_text("Batch job started", exact=False))
    page.get_by_role("button", name="Annotated images (zip)").wait_for(timeout=240_000)
    assert_clean(page, streamlit_server)
    page.screenshot(path=str(artifacts_dir / "journey_detector_batch.png"), full_page=True)
