"""What every browser journey checks after an action: no exception box, no traceback, no server
path; and how long the page took to show the action's result (``feedback latency``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import REPO, wait_for_app

LATENCIES = REPO / "build" / "test-artifacts" / "feedback-latency.jsonl"


def assert_clean(page, server=None) -> None:
    """No Streamlit exception box, no Python traceback text, no server path on the page."""
    boxes = page.locator("[data-testid='stException']")
    assert boxes.count() == 0, boxes.first.inner_text()[:2000]
    text = page.locator("[data-testid='stApp']").inner_text()
    assert "Traceback" not in text, text[:2000]
    assert str(REPO) not in text
    if server is not None:
        assert str(server.data_dir) not in text


def upload(page, label: str, *paths: Path) -> None:
    """Set the files of the uploader labelled ``label`` (exactly) and wait until it lists them."""
    uploader = page.locator("[data-testid='stFileUploader']").filter(
        has=page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True)).first
    uploader.locator("input[type='file']").set_input_files([str(p) for p in paths])
    names = uploader.get_by_test_id("stFileChipName")
    names.nth(len(paths) - 1).wait_for()
    wait_for_app(page)


def timed_click(page, action: str, target, result, timeout_s: float = 60.0) -> float:
    """Click ``target`` and wait until the ``result`` locator is visible: seconds between the two,
    recorded as ``action`` in build/test-artifacts/feedback-latency.jsonl. The clock starts once
    the page is idle and ``target`` is there to be clicked (not while the page is still drawing)."""
    wait_for_app(page)
    target.wait_for()
    start = time.monotonic()
    target.click()
    result.first.wait_for(timeout=timeout_s * 1000)
    seconds = time.monotonic() - start
    LATENCIES.parent.mkdir(parents=True, exist_ok=True)
    with LATENCIES.open("a") as out:
        out.write(json.dumps({"action": action, "seconds": round(seconds, 3), "at": time.time()}) + "\n")
    wait_for_app(page)
    return seconds


def checking_or(page, result):
    """The first answer to a "Check and add": the spinner saying the model is being checked (it
    loads and test-runs the model first), or the result itself when that was quicker."""
    return page.get_by_text("Checking the model").or_(result)


def select_option(page, label: str, option) -> None:
    """Pick ``option`` (text or pattern) in the selectbox whose label contains ``label``; the
    dropdown is opened again when a late rerun closed it."""
    choice = page.get_by_role("option", name=option).first
    for _ in range(3):
        page.locator("[data-testid='stSelectbox']").filter(has_text=label).first.click()
        try:
            choice.wait_for(timeout=10_000)
            break
        except Exception:
            page.keyboard.press("Escape")
            wait_for_app(page)
    choice.click()
    wait_for_app(page)


def selected(page, label: str) -> str:
    """The text the selectbox labelled ``label`` shows."""
    return page.get_by_role("combobox", name=label, exact=True).first.input_value()


def open_every_page(page, url: str, after_each=None) -> None:
    """Home, then every other page of the navigation once, as a visitor clicks through the
    sidebar; ``after_each(title)`` runs once each page has finished its script."""
    from dashboard.pages_registry import PAGES

    page.goto(url)
    wait_for_app(page)
    for spec in PAGES:
        if not spec.default:
            page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=spec.title, exact=True).click()
            wait_for_app(page)
        page.get_by_role("heading").first.wait_for()
        assert_clean(page)
        if after_each is not None:
            after_each(spec.title)


def open_weights_panel(page, url: str, backbone: str) -> None:
    """The transfer page's "Backbones and their ImageNet weights" panel with ``backbone`` chosen."""
    page.goto(f"{url}/transfer_learning")
    wait_for_app(page)
    page.get_by_text("Backbones and their ImageNet weights").click()
    wait_for_app(page)
    page.locator("[data-testid='stSelectbox']").filter(has_text="Backbone").first.click()
    page.get_by_role("option", name=backbone, exact=True).click()
    wait_for_app(page)


def fill_training_form(page, name: str, **fields: str):
    """Open the monitor's "Start a training run" form (open by itself only while no runs exist)
    and fill ``fields`` (label: value) and the run name; returns the form."""
    page.get_by_text("Start a training run").first.wait_for()
    form = page.get_by_test_id("stForm")
    expander = page.get_by_test_id("stExpander").filter(has_text="Start a training run")
    if expander.locator("details").get_attribute("open") is None:
        expander.get_by_text("Start a training run").click()
    form.get_by_label("Epochs").wait_for(state="visible")
    for label, value in fields.items():
        field = form.get_by_label(label)
        field.fill(value)
        field.press("Tab")
    form.get_by_label("Run name (optional)").fill(name)
    return form
