"""The detector page with AppTest: opens on a working model, live thresholds, fallbacks, side by
side through the model service, uploads that never replace, giant images, ONNX models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from services.detection import registry
from services.images import encode_png
from services.jobs import kinds
from tests.apptest_server import apptest_like_server, fragment_id
from tests.detection_helpers import SYNTHETIC_CFG

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "detector.py")


@pytest.fixture
def page(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    return AppTest.from_file(PAGE, default_timeout=120)


def _summary(app) -> str:
    return next(m.value for m in app.markdown if "detections**" in m.value)


def _count(app) -> int:
    return int(_summary(app).split("**")[1].split()[0])


def _all_text(app) -> str:
    return " ".join(str(e.value) for kind in ("error", "warning", "info", "caption", "markdown", "success")
                    for e in getattr(app, kind))


def test_opens_on_the_demo_without_weights_and_says_what_is_missing(page, data_root):
    app = page.run()
    assert not app.exception and not app.error
    assert app.selectbox(key="det_model").value == registry.DEMO_KEY
    assert "meaningless" in app.warning[0].value
    app.selectbox(key="det_model").set_value("yolov3").run()
    message = app.error[0].value
    assert "yolov3.weights" in message and "<model cache>/darknet/yolov3.weights" in message
    assert str(data_root) not in _all_text(app)  # no server paths
    assert any("Still using the previous model" in i.value for i in app.info)


def test_opens_on_an_installed_model_and_remembers_the_choice(page, data_root):
    spec = registry.REGISTRY["yolov3-tiny"]
    registry.load_demo()  # writes random weights of the yolov3-tiny layout
    spec.weights_path.write_bytes((registry.darknet_dir() / f"{registry.DEMO_KEY}-0.weights").read_bytes())
    app = page.run()
    assert app.selectbox(key="det_model").value == "yolov3-tiny"
    app.selectbox(key="det_model").set_value(registry.DEMO_KEY).run()
    assert app.session_state["det_model_choice"] == registry.DEMO_KEY  # kept outside the widget's state
    revisit = AppTest.from_file(PAGE, default_timeout=120)  # a widget's own state is gone after leaving
    revisit.session_state["det_model_choice"] = registry.DEMO_KEY
    assert revisit.run().selectbox(key="det_model").value == registry.DEMO_KEY
    assert app.query_params["model"] == registry.DEMO_KEY  # in the address: survives a reload
    reloaded = AppTest.from_file(PAGE, default_timeout=120)
    reloaded.query_params["model"] = registry.DEMO_KEY
    assert reloaded.run().selectbox(key="det_model").value == registry.DEMO_KEY
    hostile = AppTest.from_file(PAGE, default_timeout=120)
    hostile.query_params["model"] = "upload:../../etc"  # untrusted: only listed models count
    assert hostile.run().selectbox(key="det_model").value == "yolov3-tiny" and not hostile.exception


def test_demo_model_on_a_sample_then_thresholds_redraw_without_the_network(page):
    app = page.run()
    app.multiselect(key="det_samples").set_value(["chelsea"]).run()
    assert not app.exception and app.session_state["det_cache"].runs == 1
    before = _count(app)
    app.slider(key="det_score").set_value(0.05).run()
    assert _count(app) > before
    app.selectbox(key="det_preset").set_value("Book (ch. 7)").run()
    assert (app.slider(key="det_score").value, app.slider(key="det_nms").value) == (0.6, 0.2)
    app.slider(key="det_score").set_value(0.05).run()
    app.multiselect(key="det_classes").set_value(["person"]).run()
    assert set(app.dataframe[0].value["class"]) <= {"person"}
    assert app.session_state["det_cache"].runs == 1  # thresholds and filters never re-ran it


def test_a_threshold_change_reruns_only_the_results_fragment(page, monkeypatch):
    """In the server a slider inside the results fragment reruns that fragment alone: the model
    listing above it is not read again, and the network is not re-run."""
    app = page.run()
    app.multiselect(key="det_samples").set_value(["chelsea"]).run()
    before = _count(app)
    listings = []
    listing = registry.uploaded_models
    monkeypatch.setattr(registry, "uploaded_models", lambda: listings.append(1) or listing())
    with apptest_like_server(fragment_id(app, "detections_view")):
        app.slider(key="det_score").set_value(0.05).run()
        assert not app.exception and _count(app) > before
        app.multiselect(key="det_classes").set_value(["person"]).run()
        assert not app.exception and set(app.dataframe[0].value["class"]) <= {"person"}
    assert listings == [] and app.session_state["det_cache"].runs == 1
    app.slider(key="det_score").set_value(0.06).run()  # a whole-script rerun lists the models again
    assert listings and app.session_state["det_cache"].runs == 1


def test_side_by_side_through_the_model_service_shows_both_pictures(page):
    app = page.run()
    app.radio(key="det_size").set_value(320)
    app.multiselect(key="det_samples").set_value(["coffee"])
    app.toggle(key="det_compare").set_value(True).run()
    assert not app.exception, app.exception
    assert not app.error, app.error[0].value
    metrics = {m.label: m.value for m in app.metric}
    assert float(metrics["max |difference| of raw outputs"]) <= 1e-3
    assert {"OpenCV inference (warm median)", "TensorFlow inference (warm median)",
            "OpenCV / TensorFlow (warm)"} <= set(metrics)
    timing = next(c.value for c in app.caption if c.value.startswith("Inference times:"))
    assert timing.count("3 warm runs") == 2 and "cold" in timing and "excluded" in timing
    captions = [c for image in app.get("image") for c in image.captions]
    assert len(captions) == 3 and captions[1].startswith("OpenCV: ") and captions[2].startswith("TensorFlow: ")
    # the photo, then both backends' pictures side by side
    runs = app.session_state["det_cache"].runs
    app.slider(key="det_score").set_value(0.05).run()
    assert not app.exception and app.session_state["det_cache"].runs == runs  # nothing ran again
    app.radio(key="det_backend_darknet").set_value("TensorFlow").run()
    assert not app.exception and not app.error and _summary(app).endswith("TensorFlow at 320")


def test_a_giant_strip_is_refused_and_a_big_photo_is_shown_downscaled(page, monkeypatch):
    from dashboard import detection_adapters
    from services.images import decode_image

    strip = encode_png(np.zeros((2, 1_000_000, 3), np.uint8))
    with pytest.raises(Exception, match="more elongated than 50:1"):
        detection_adapters.check_shape(decode_image(strip, max_side=4096).pixels, "strip.png")
    shown, scale = detection_adapters.display_copy("big", np.zeros((3000, 4000, 3), np.uint8))
    assert shown.shape[:2] == (960, 1280) and scale == pytest.approx(0.32)


def test_uploading_a_darknet_model_twice_keeps_both(page, data_root):
    from services.detection.cfg import parse_cfg
    from services.detection.weights import random_weights_bytes

    def upload(seed):
        weights = random_weights_bytes(parse_cfg(SYNTHETIC_CFG), seed=seed)
        return registry.save_upload(("mine.cfg", SYNTHETIC_CFG.encode()), ("mine.weights", weights),
                                    ("mine.names", b"a\nb\n"))

    first, again, other = upload(0), upload(0), upload(1)
    assert first.model.key == "upload:mine" and first.message == "Added mine."
    assert again.model.key == "upload:mine" and "already installed" in again.message
    assert other.model.key == "upload:mine-2" and "is kept" in other.message
    assert registry.uploaded_models() == ["mine", "mine-2"]
    app = page.run()
    assert {"mine (uploaded Darknet)", "mine-2 (uploaded Darknet)"} <= set(app.selectbox(key="det_model").options)


def test_an_uploaded_onnx_model_runs_on_onnxruntime_and_opencv(page, data_root):
    from services.detection import onnx_store
    from tests.detection_helpers import constant_detector

    output = np.array([[[16, 8, 8, 4, 0.9, 0.1, 0.8]]], np.float32)
    onnx_store.save_onnx("tiny.onnx", constant_detector(output), ["cat", "dog"], family="yolov5")
    app = page.run()
    app.selectbox(key="det_model").set_value("onnx:tiny").run()
    assert app.radio(key="det_backend_onnx").options == ["onnxruntime", "OpenCV"]
    app.multiselect(key="det_samples").set_value(["coffee"]).run()
    assert not app.exception and not app.error and _summary(app).startswith("**1 detections**")
    assert any("takes a 32 x 32 input" in c.value for c in app.caption)
    app.toggle(key="det_compare").set_value(True).run()
    assert float({m.label: m.value for m in app.metric}["max |difference| of raw outputs"]) <= 1e-5


def test_a_finished_batch_shows_its_problem_report_on_the_page(page, data_root):
    from services.detection.batch import BatchSettings, batch_params, job_files
    from services.jobs import JobManager, run_inline

    registry.load_demo()
    manager = JobManager(data_root / "jobs", autostart=False)
    params = batch_params(registry.DEMO_KEY, "OpenCV", BatchSettings(320, 0.25, 0.45))
    job_id = manager.store.create(kinds.DETECTION_BATCH, "demo batch", "tensorflow", params, [])
    photo = encode_png(np.full((40, 60, 3), 128, np.uint8))
    outcome = run_inline(kinds.DETECTION_BATCH, params, manager.job_dir(job_id),
                         job_files([("ok.png", photo), ("broken.jpg", b"not a photo")]))
    manager.store.finish(job_id, "finished", result=outcome.result)
    app = page.run()
    assert not app.exception
    assert any("1 problem(s)" in c.value for c in app.caption)
    report = next(d.value for d in app.dataframe if list(d.value.columns) == ["image", "problem"])
    assert report["image"].tolist() == ["broken.jpg"] and "not a readable image" in report["problem"][0]
    assert {b.label for b in app.get("download_button")} >= {"Problem report (CSV)", "Annotated images (zip)"}
