"""The style-transfer page with AppTest: weights gate, a real background run, silhouette mode."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.style_helpers import installed_vgg19, no_vgg19, vgg19_weights_bytes  # noqa: F401 (fixtures)

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "style_transfer.py")


def _start_small_run(app: AppTest, steps: int = 4) -> AppTest:
    app.selectbox(key="style_side").set_value(64)
    app.number_input(key="style_steps").set_value(steps)
    app.number_input(key="style_preview_every").set_value(2)
    app.run()
    start = next(button for button in app.button if button.label == "Start")
    assert not start.disabled
    start.click().run()
    assert not app.exception and not [e for e in app.error if "RANDOM" not in e.value], app.error
    return app


def _wait_finished(app: AppTest, timeout: float = 60.0) -> AppTest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.run()
        texts = [bar.proto.text for bar in app.get("progress")]
        if any("**finished**" in text for text in texts):
            return app
        assert not any("**failed**" in text for text in texts), texts + [e.value for e in app.error]
        time.sleep(0.5)
    raise AssertionError("style job did not finish")


def test_without_weights_start_waits_for_the_explicit_random_switch(no_vgg19):
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not app.exception
    assert "VGG19 ImageNet weights are not available" in app.warning[0].value
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in app.warning[0].value
    assert next(button for button in app.button if button.label == "Start").disabled
    app.toggle(key="style_random_weights").set_value(True).run()
    _wait_finished(_start_small_run(app))
    assert any("RANDOM WEIGHTS" in error.value for error in app.error)
    assert app.get("download_button") and app.get("image")
    assert "Gallery" in [subheader.value for subheader in app.subheader]
    captions = [img.caption for image in app.get("image") for img in image.proto.imgs]
    assert any(caption.endswith("finished · RANDOM WEIGHTS") for caption in captions), captions


def test_silhouette_mode_shows_both_maskings_with_registry_weights(installed_vgg19):
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not app.exception and not app.warning
    assert any("user-installed" in caption.value for caption in app.caption)
    app.segmented_control(key="style_mode").set_value("Silhouette mosaic").run()
    _wait_finished(_start_small_run(app, steps=3))
    captions = [img.caption for image in app.get("image") for img in image.proto.imgs]
    assert "Style image masked directly" in captions and "NST result masked" in captions
    assert not any("RANDOM" in error.value for error in app.error)


def test_dataset_tile_is_offered_as_content_and_labelled_synthetic(no_vgg19):
    app = AppTest.from_file(PAGE, default_timeout=90).run()
    app.radio(key="content_source").set_value("Dataset tile").run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("synthetic demo data" in caption.value for caption in app.caption)
    assert app.selectbox(key="tile_class").options  # the demo set's class folders
    assert app.get("image")  # the chosen tile is shown as the content picture
