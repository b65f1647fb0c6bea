"""Real browser journeys on the Training monitor: import TensorBoard event files written by a real
``tf.summary`` writer (as Keras's TensorBoard callback writes them: ``train`` and ``validation``
folders), and stop a run, resume it, look at its learned filters once it has finished, and
open its shared read-only page, and filter the Dataset explorer's gallery by its predictions."""

from __future__ import annotations

import re

import pytest

from tests.conftest import wait_for_app
from tests.e2e_helpers import assert_clean, fill_training_form, select_option, selected, timed_click

pytestmark = pytest.mark.e2e


def _event_files(folder):
    """Three epochs of loss and accuracy, train and validation, written by ``tf.summary``."""
    import tensorflow as tf

    files = []
    for split, offset in (("train", 0.0), ("validation", 0.1)):
        writer = tf.summary.create_file_writer(str(folder / split))
        with writer.as_default():
            for epoch in range(3):
                tf.summary.scalar("epoch_loss", 1.0 / (epoch + 1) + offset, step=epoch)
                tf.summary.scalar("epoch_accuracy", 0.5 + 0.1 * epoch - offset, step=epoch)
        writer.close()
        files += sorted((folder / split).glob("events.out.tfevents.*"))
    return files


def test_tensorboard_files_are_imported_and_shown(browser_page, streamlit_server, artifacts_dir, tmp_path):
    files = _event_files(tmp_path / "logs")
    page = browser_page
    page.goto(f"{streamlit_server.url}/training_monitor")
    wait_for_app(page)
    page.get_by_text("import TensorBoard files", exact=False).first.click()
    uploader = page.locator("[data-testid='stFileUploader']").filter(has_text="TensorBoard event files")
    uploader.locator("input[type='file']").set_input_files([str(path) for path in files])
    uploader.get_by_test_id("stFileChipName").nth(len(files) - 1).wait_for()
    page.get_by_label("Name of the imported run").fill("journey tensorboard")
    page.get_by_label("Name of the imported run").press("Tab")
    wait_for_app(page)
    timed_click(page, "training: Import TensorBoard files", page.get_by_role("button", name="Import"),
                page.get_by_test_id("stProgress").filter(has_text="Import journey tensorboard"))
    page.get_by_test_id("stProgress").filter(has_text="Import journey tensorboard").filter(
        has_text="finished").first.wait_for(timeout=120_000)
    wait_for_app(page)
    page.get_by_text("journey tensorboard", exact=False).first.wait_for()
    page.locator(".js-plotly-plot .scatterlayer .trace .points path").first.wait_for()
    assert_clean(page, streamlit_server)
    page.screenshot(path=str(artifacts_dir / "journey_training_tensorboard_import.png"), full_page=True)


def test_stop_resume_filters_and_the_gallery_by_its_predictions(browser_page, streamlit_server, artifacts_dir):
    page = browser_page
    page.goto(f"{streamlit_server.url}/training_monitor")
    wait_for_app(page)
    form = fill_training_form(page, "journey resume", **{"Epochs": "3", "Batch size": "16", "Image size (px)": "48"})
    form.get_by_role("button", name="Start training").click()
    line = page.get_by_test_id("stProgress").filter(has_text="journey resume")
    try:
        line.filter(has_text=re.compile("running")).first.wait_for(timeout=180_000)
    except Exception:
        page.screenshot(path=str(artifacts_dir / "journey_training_resume_failed.png"), full_page=True)
        raise
    wait_for_app(page)
    page.get_by_role("button", name="Stop", exact=True).first.click()
    line.filter(has_text=re.compile("stopped|interrupted")).first.wait_for(timeout=180_000)
    wait_for_app(page)
    timed_click(page, "training: Resume", page.get_by_role("button", name="Resume", exact=True),
                line.filter(has_text=re.compile("queued|running")).or_(page.get_by_text("Resumed journey resume")))
    line.filter(has_text=re.compile("queued|running|finished")).first.wait_for(timeout=60_000)
    line.filter(has_text=re.compile(r"finished.*epoch 3/3")).first.wait_for(timeout=240_000)
    wait_for_app(page)
    assert_clean(page, streamlit_server)

    page.get_by_role("tab", name="Filters and feature maps (ch. 3)").click()
    wait_for_app(page)
    timed_click(page, "training: Show filters and feature maps",
                page.get_by_role("button", name="Show filters and feature maps"),
                page.get_by_text("Asking the model service").or_(page.get_by_text("Learned kernels of", exact=False)),
                timeout_s=120)  # the spinner says at once what it waits for (TensorFlow's start, the first time)
    page.get_by_text("Learned kernels of", exact=False).first.wait_for(timeout=120_000)
    page.get_by_text("Feature maps of the tile after", exact=False).first.wait_for()
    assert_clean(page, streamlit_server)
    page.screenshot(path=str(artifacts_dir / "journey_training_resume_filters.png"), full_page=True)

    _shared_read_only_page(page, streamlit_server, artifacts_dir)
    _gallery_by_predictions(page, streamlit_server, artifacts_dir)


def _shared_read_only_page(page, server, artifacts_dir) -> None:
    """The run's share link opens its curves, numbers and provenance, with no control at all."""
    link = page.get_by_role("link", name="Read-only page of this run")
    address = link.evaluate("a => a.href")  # what a lab member copies and sends (it opens in a new tab)
    assert re.search(r"/training_monitor\?run=[\w-]+$", address), address
    page.goto(address)
    wait_for_app(page)
    page.get_by_text("A shared run, read-only.").wait_for()
    page.get_by_text("journey resume · finished").first.wait_for()
    page.locator(".js-plotly-plot .scatterlayer .trace .points path").first.wait_for()
    page.get_by_text("Provenance").wait_for()
    assert page.get_by_role("button").filter(has_text=re.compile(
        "Start training|Stop|Resume|Delete|Save notes|Import")).count() == 0
    assert_clean(page, server)
    page.screenshot(path=str(artifacts_dir / "journey_training_shared_run.png"), full_page=True)
    page.goto(page.url.split("?")[0] + "?run=no-such-run")
    wait_for_app(page)
    page.get_by_text("No run with this id here").wait_for()
    assert_clean(page, server)


def _gallery_by_predictions(page, server, artifacts_dir) -> None:
    """The explorer's gallery narrowed to the finished run's predictions (FiftyOne-style)."""
    page.get_by_role("link", name="Dataset explorer").first.click()
    page.get_by_text("Usable tiles per class").wait_for(timeout=120_000)
    wait_for_app(page)
    page.get_by_text("Filter by a model's predictions").click()
    select_option(page, "Predictions of the run", re.compile("^journey resume"))
    counts = page.get_by_text(re.compile(r"The run predicted (\d+) of the (\d+) usable tiles.* (\d+) match"))
    counts.wait_for()
    predicted, usable, matching = map(int, re.search(r"predicted (\d+) of the (\d+) .* (\d+) match",
                                                     counts.inner_text()).groups())
    assert 0 < predicted < usable and matching == predicted
    captions = page.locator("[data-testid='stCaptionContainer']").filter(has_text=re.compile(r"^\w+ · [01]\.\d\d$"))
    captions.first.wait_for()  # each thumbnail says what the model predicted, and how sure it was
    page.get_by_text("Only mistakes").click()
    wait_for_app(page, settle_ms=800)
    mistakes = int(re.search(r"(\d+) match", counts.inner_text()).group(1))
    assert mistakes <= matching
    shown_class = selected(page, "Class")
    for caption in captions.all_inner_texts():  # every tile left is one the model got wrong
        assert caption.split(" · ")[0] != shown_class, caption
    assert_clean(page, server)
    page.screenshot(path=str(artifacts_dir / "journey_explorer_gallery_predictions.png"), full_page=True)
