"""Real browser: start a 2-epoch run on the demo set from the monitor, watch the curves grow
and the status reach finished (the run executes in its own worker process)."""

import re

import pytest

from tests.conftest import wait_for_app
from tests.e2e_helpers import fill_training_form

pytestmark = pytest.mark.e2e

POINTS = ".js-plotly-plot .scatterlayer .trace .points path"


def test_start_a_run_from_the_ui_and_watch_it_finish(browser_page, streamlit_server, artifacts_dir):
    page = browser_page
    page.goto(f"{streamlit_server.url}/training_monitor")
    wait_for_app(page)
    form = fill_training_form(page, "e2e run", **{"Epochs": "2", "Batch size": "16", "Image size (px)": "48"})
    page.screenshot(path=str(artifacts_dir / "training-monitor-start.png"), full_page=True)
    form.get_by_role("button", name="Start training").click()

    progress = page.get_by_test_id("stProgress").filter(has_text="e2e run")
    progress.first.wait_for()
    points_while_starting = page.locator(POINTS).count()
    page.get_by_test_id("stProgress").filter(has_text=re.compile(r"e2e run.*(running|finished)")).first.wait_for(
        timeout=120_000)
    page.get_by_test_id("stProgress").filter(has_text=re.compile(r"e2e run.*finished.*epoch 2/2")).first.wait_for(
        timeout=180_000)
    wait_for_app(page)
    page.locator(POINTS).first.wait_for()
    points_at_end = page.locator(POINTS).count()
    page.screenshot(path=str(artifacts_dir / "training-monitor.png"), full_page=True)
    assert points_while_starting == 0
    assert points_at_end >= 8  # train and val, loss and accuracy, two epochs each
    page.get_by_text("Confusion matrix").first.wait_for()
    page.get_by_text("synthetic demo data").first.wait_for()
