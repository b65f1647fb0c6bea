"""The Tissue map page with AppTest on the demo mosaic: a real map job in a worker process.

The tiny model is trained in a subprocess; whether the page imports TensorFlow is checked in a
fresh process of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard import widgets

from services.jobs import JobManager
from tests.tissuemap_helpers import train_run_in_subprocess

REPO = Path(__file__).resolve().parent.parent
PAGE = str(REPO / "pages" / "tissue_map.py")


@pytest.fixture
def jobs(data_root):
    manager = JobManager(data_root / "jobs")
    yield manager
    manager.shutdown_runner()


def test_page_without_models_says_where_to_train_one(data_root, jobs):
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not app.exception, app.exception
    assert any("Training monitor" in info.value for info in app.info)
    start = next(button for button in app.button if button.label == "Start")
    assert start.disabled


def test_a_png_without_resolution_asks_for_it_and_start_says_what_it_needs(data_root, jobs):
    Image.fromarray(np.full((300, 400, 3), (180, 60, 120), np.uint8)).save(data_root / "slide.png")
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert any(c.value.endswith("Start needs a model.") for c in app.caption)  # the demo mosaic, no trained run
    app.radio(key="tm_source").set_value("File under the data root").run()
    app.text_input(key="tm_path").input("slide.png").run()
    assert not app.exception, app.exception
    assert app.number_input(key="tm_mpp").value is None  # asked, not assumed
    assert any("does not say how many microns a pixel is" in i.value for i in app.info)
    assert not any("tiles of" in c.value for c in app.caption)  # nothing measured without it
    assert any(c.value.endswith("Start needs a model and complete image settings (see above).") for c in app.caption)
    app.number_input(key="tm_mpp").set_value(0.5).run()
    assert any("tiles of" in c.value for c in app.caption)
    assert any(c.value.endswith("Start needs a model.") for c in app.caption)


def test_page_never_imports_tensorflow(data_root):
    """In a fresh process (other tests of a session may have imported TensorFlow)."""
    script = textwrap.dedent(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        app = AppTest.from_file({PAGE!r}, default_timeout=60).run()
        assert not app.exception, app.exception
        loaded = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
        assert not loaded, loaded
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DASHBOARD_DATA_DIR": str(data_root)})
    assert done.returncode == 0, done.stderr[-2000:]


def test_demo_mosaic_map_from_start_to_downloads(data_root, jobs, monkeypatch):
    shown = []
    original = widgets.show_image
    monkeypatch.setattr(widgets, "show_image",
                        lambda pixels, **kw: shown.append((pixels, kw)) or original(pixels, **kw))
    train_run_in_subprocess(data_root)
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not app.exception, app.exception
    assert any("synthetic" in caption.value for caption in app.caption)
    assert any("tiles of 150 px" in caption.value for caption in app.caption)
    app.slider(key="tm_threshold").set_value(80)
    app.slider(key="tm_min_tissue").set_value(100).run()  # far too strict: no tissue, no start
    assert any("No tissue" in warning.value for warning in app.warning)
    assert next(button for button in app.button if button.label == "Start").disabled
    app.slider(key="tm_threshold").set_value(12)
    app.slider(key="tm_min_tissue").set_value(10).run()
    start = next(button for button in app.button if button.label == "Start")
    assert not start.disabled
    start.click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    job = jobs.list(kind="tissue-map")[0]
    state = jobs.wait(job.id, timeout=240)
    assert state.status == "finished", (state.error, state.log_tail)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        app.run()
        if app.get("download_button"):
            break
        time.sleep(0.5)
    assert not app.exception, app.exception
    labels = [button.proto.label for button in app.get("download_button")]
    assert labels == ["Overlay PNG", "Label TIFF", "Tiles CSV", "GeoJSON (QuPath)", "HTML report"]
    assert any("SYNTHETIC" in warning.value for warning in app.warning)
    ratio = next(m.value for m in app.markdown if "Tumour-stroma ratio" in m.value)
    assert "uncertain" in ratio or "not defined" in ratio  # no held-out errors known: no verdict
    assert any("Not reliable for" in warning.value for warning in app.warning)
    areas = app.dataframe[0].value
    assert abs(areas["percent"].sum() - 100) < 0.1
    app.checkbox(key=f"tm_show_{job.id}_TUMOR").uncheck().run()
    app.slider(key="tm_opacity").set_value(0.8).run()
    assert not app.exception
    for layer in ("Confidence (max probability)", "Uncertainty (entropy)", "Probability of STROMA"):
        app.selectbox(key="tm_layer").set_value(layer).run()
        assert not app.exception, app.exception
        assert any(layer in caption.value for caption in app.caption)
    check_detail_view(app, job.id, jobs.job_dir(job.id) / "map", shown)


def detail_shown(app: AppTest, job_id: str, shown: list, um_per_px: str = "0.495") -> tuple[tuple, np.ndarray]:
    """(box, pixels) of the detail view the last run showed (the page's show_image, recorded)."""
    box = app.session_state[f"tm_detail_box_{job_id}"]
    pixels, kwargs = next(item for item in reversed(shown) if "per screen pixel" in item[1].get("caption", ""))
    assert f"{um_per_px} µm per screen pixel" in kwargs["caption"]
    return box, pixels


def check_detail_view(app: AppTest, job_id: str, folder: Path, shown: list) -> None:
    """At opacity 0 the detail view is the demo TIFF's own pixels of its box (full resolution, not
    the thumbnail's); the pan arrow moves it by half a view; x/y inputs recentre it."""
    from services.tissuemap.demo import demo_paths

    image = tifffile.imread(demo_paths()[0])
    app.selectbox(key="tm_layer").set_value("Class map")
    app.slider(key="tm_opacity").set_value(0.0).run()
    assert not app.exception, app.exception
    box, pixels = detail_shown(app, job_id, shown)
    x, y, width, height, zoom = box
    assert zoom == 1 and (width, height) == (640, 640) and pixels.shape == (640, 640, 3)
    truth = image[y:y + height, x:x + width]
    assert (pixels[:-30] == truth[:-30]).all()  # above the scale bar: the file's pixels exactly
    thumbnail = np.asarray(Image.open(folder / "thumbnail.png").convert("RGB"))
    factor = image.shape[1] // thumbnail.shape[1]
    upsampled = np.repeat(np.repeat(thumbnail, factor, axis=0), factor, axis=1)[y:y + height, x:x + width]
    assert (upsampled[:-30] != pixels[:-30]).any(axis=2).mean() > 0.5  # detail the thumbnail does not have
    app.button(key=f"tm_pan_right_{job_id}").click().run()
    moved, pixels = detail_shown(app, job_id, shown)
    assert (moved[0], moved[1]) == (x + 320, y)
    assert (pixels[:-30] == image[y:y + 640, x + 320:x + 960][:-30]).all()
    app.number_input(key=f"tm_detail_x_{job_id}").set_value(100).run()
    assert app.session_state[f"tm_detail_box_{job_id}"][0] == 0  # clamped at the left edge
    app.selectbox(key=f"tm_detail_zoom_{job_id}").set_value(2).run()
    assert not app.exception, app.exception
    box, pixels = detail_shown(app, job_id, shown, "0.990")
    assert box[4] == 2 and pixels.shape[0] == box[3] // 2

