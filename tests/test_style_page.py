"""The style-transfer page with AppTest: engine choice, weights gates, real runs in worker
processes, silhouette mode, side by side, error scoping and dismissal, the random-weights mark."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from services import provenance
from services.jobs import FAILED, JobManager, run_inline
from services.jobs.store import JobState
from services.style.settings import BadSettings
from tests.style_helpers import (installed_magenta, installed_vgg19, job_inputs, no_vgg19,  # noqa: F401 (fixtures)
                                 vgg19_weights_bytes)

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "style_transfer.py")


@pytest.fixture
def jobs(data_root):
    """The data root's job manager; its runner (and workers) are stopped after the test."""
    manager = JobManager(data_root / "jobs")
    yield manager
    manager.shutdown_runner()


def _start_small_gatys(app: AppTest, steps: int = 3) -> AppTest:
    app.selectbox(key="style_side").set_value(64)
    app.number_input(key="style_steps").set_value(steps)
    app.number_input(key="style_preview_every").set_value(2)
    app.run()
    return _press_start(app)


def _press_start(app: AppTest) -> AppTest:
    start = next(button for button in app.button if button.label == "Start")
    assert not start.disabled
    start.click().run()
    assert not app.exception and not [e for e in app.error if "RANDOM" not in e.value], [e.value for e in app.error]
    return app


def _wait_finished(app: AppTest, count: int = 1, timeout: float = 120.0) -> AppTest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.run()
        texts = [bar.proto.text for bar in app.get("progress")]
        assert not any("**failed**" in text for text in texts), texts + [e.value for e in app.error]
        if sum("**finished**" in text for text in texts) >= count:
            return app
        time.sleep(0.5)
    raise AssertionError("style job did not finish")


def _captions(app: AppTest) -> list[str]:
    return [img.caption for image in app.get("image") for img in image.proto.imgs]


def test_without_weights_start_waits_for_the_explicit_random_switch(no_vgg19, jobs):
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not app.exception
    assert app.segmented_control(key="style_engine").value == "Gatys (VGG19)"  # no Magenta files here
    assert "VGG19 ImageNet weights are not available" in app.warning[0].value
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in app.warning[0].value
    assert next(button for button in app.button if button.label == "Start").disabled
    app.toggle(key="style_random_weights").set_value(True).run()
    _wait_finished(_start_small_gatys(app))
    assert any("RANDOM WEIGHTS" in error.value for error in app.error)
    assert app.get("download_button") and app.get("plotly_chart")
    assert "Gallery" in [subheader.value for subheader in app.subheader]
    assert any(caption.endswith("finished · RANDOM WEIGHTS") for caption in _captions(app)), _captions(app)
    chart = app.get("plotly_chart")[0].proto.spec
    assert '"type":"log"' in chart.replace(" ", "")


def test_fast_engine_is_the_default_when_present_and_runs_beside_gatys(installed_magenta, no_vgg19, jobs):
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not app.exception
    assert app.segmented_control(key="style_engine").value == "Fast (Magenta)"
    assert not app.warning  # VGG19 is not asked for by the fast engine
    _wait_finished(_press_start(app))
    assert any(caption.value.startswith("Stylised in") for caption in app.caption)
    assert "Result" in _captions(app) and app.get("download_button")
    app.segmented_control(key="style_engine").set_value("Both, side by side").run()
    app.toggle(key="style_random_weights").set_value(True).run()
    _wait_finished(_start_small_gatys(app), count=2)
    engines = [block.value for block in app.markdown]
    assert "**Fast (Magenta)**" in engines and "**Gatys (VGG19)**" in engines
    assert _captions(app).count("Result") >= 2


def test_silhouette_mode_shows_both_maskings_and_downloads_the_masked_one(installed_vgg19, jobs):
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not app.exception and not app.warning
    assert any("user-installed" in caption.value for caption in app.caption)
    app.segmented_control(key="style_mode").set_value("Silhouette mosaic").run()
    _wait_finished(_start_small_gatys(app, steps=2))
    assert {"Style image masked directly", "Stylised result masked"} <= set(_captions(app))
    assert [button.proto.label for button in app.get("download_button")] == ["Download the masked result (PNG)"]
    assert not any("RANDOM" in error.value for error in app.error)


def test_only_this_pages_errors_show_and_they_can_be_dismissed(no_vgg19, jobs):
    def failed(job_id: str, kind: str, params: dict, error: str) -> str:
        jobs.store.create(kind, "a job", "io", params, [], job_id=job_id)
        jobs.store.finish(job_id, FAILED, error=error)
        return job_id

    failed("0123456789am", "weights-download", {"backbone": "mobilenet_v2"}, "MobileNetV2 download failed")
    failed("0123456789av", "weights-download", {"backbone": "vgg19"}, "VGG19 download failed")
    failed("0123456789as", "style-transfer", {"engine": "gatys"}, "the style job failed")
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    errors = [error.value for error in app.error]
    assert "VGG19 download failed" in errors and "MobileNetV2 download failed" not in errors
    assert "the style job failed" in errors and "Retry" in [button.label for button in app.button]
    next(button for button in app.button if button.label == "Dismiss").click().run()
    assert "VGG19 download failed" not in [error.value for error in app.error]
    assert jobs.get("0123456789av").dismissed


def test_dataset_tile_is_offered_as_content_and_labelled_synthetic(no_vgg19, jobs):
    app = AppTest.from_file(PAGE, default_timeout=90).run()
    app.radio(key="content_source").set_value("Dataset tile").run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("synthetic demo data" in caption.value for caption in app.caption)
    assert app.selectbox(key="tile_class").options  # the demo set's class folders
    assert app.get("image")  # the chosen tile is shown as the content picture


def test_a_two_by_a_million_pixel_upload_is_refused_before_it_reaches_the_page(data_root):
    from dashboard import style_adapters as ui

    strip = io.BytesIO()
    Image.new("RGB", (1_000_000, 2), (120, 60, 30)).save(strip, format="PNG")
    with pytest.raises(BadSettings, match="1000000x2 pixels: too elongated"):
        ui.decode_upload(strip.getvalue())
    assert ui.show(np.zeros((3000, 1500, 3), np.uint8)).shape == (1024, 512, 3)  # never a giant array


def test_downloads_and_previews_of_random_runs_carry_the_mark(data_root, tmp_path):
    from dashboard import style_adapters as ui

    manager = JobManager(data_root / "jobs", autostart=False)
    job_id = "00000000abcd"
    folder = manager.job_dir(job_id)
    params = {"engine": "gatys", "random_weights": True, "silhouette": False,
              "settings": {"max_side": 64, "steps": 2, "preview_every": 1, "weights": "random"}}
    outcome = run_inline("style-transfer", params, folder, job_inputs())
    state = JobState(id=job_id, kind="style-transfer", title="random", params=params, result=outcome.result)
    stored = np.asarray(Image.open(folder / outcome.result["result"]))
    shown = np.asarray(Image.open(io.BytesIO(ui.download_png(manager, state, "result"))))
    assert shown.shape == stored.shape
    band = shown[:3, :3].reshape(-1, 3)
    assert (np.abs(band.astype(int) - provenance.MARK_COLOUR).max(axis=1) < 10).all()  # the band on top
    np.testing.assert_array_equal(shown[-10:], stored[-10:])  # the picture itself below it
    real = JobState(id=job_id, kind="style-transfer", title="real", params={**params, "random_weights": False},
                    result=outcome.result)
    np.testing.assert_array_equal(ui.job_picture(manager, real, "result"), stored)
