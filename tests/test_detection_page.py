"""The detector page with AppTest: offline message, demo model, live thresholds, fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from services.detection import registry

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "detector.py")


@pytest.fixture
def page(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    return AppTest.from_file(PAGE, default_timeout=120)


def _summary(app) -> str:
    return next(m.value for m in app.markdown if "detections**" in m.value)


def test_without_weights_the_page_says_what_is_missing(page, data_root):
    app = page.run()
    assert not app.exception
    message = app.error[0].value
    assert "yolov3.weights" in message and str(data_root / "models" / "darknet") in message
    assert any(registry.DEMO_TITLE in b.label for b in app.button)


def test_demo_model_on_a_sample_then_thresholds_redraw_without_the_network(page):
    app = page.run()
    next(b for b in app.button if registry.DEMO_TITLE in b.label).click().run()
    assert app.selectbox(key="det_model").value == registry.DEMO_KEY
    assert "meaningless" in app.warning[0].value
    app.multiselect(key="det_samples").set_value(["chelsea"]).run()
    assert not app.exception and app.session_state["det_network_runs"] == 1
    before = _summary(app)
    app.slider(key="det_score").set_value(0.05).run()
    after = _summary(app)
    assert before != after and int(after.split("**")[1].split()[0]) > int(before.split("**")[1].split()[0])
    app.selectbox(key="det_preset").set_value("Book (ch. 7)").run()
    assert (app.slider(key="det_score").value, app.slider(key="det_nms").value) == (0.6, 0.2)
    app.multiselect(key="det_classes").set_value(["person"]).run()
    table = app.dataframe[0].value
    assert set(table["class"]) <= {"person"}
    assert app.session_state["det_network_runs"] == 1  # thresholds and filters never re-ran it
    app.radio(key="det_backend").set_value("OpenCV").run()
    assert not app.exception and app.session_state["det_network_runs"] == 2


def test_side_by_side_backends_agree(page):
    app = page.run()
    app.selectbox(key="det_model").set_value(registry.DEMO_KEY).run()
    app.radio(key="det_size").set_value(320)
    app.multiselect(key="det_samples").set_value(["coffee"])
    app.toggle(key="det_compare").set_value(True).run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert float(metrics["max |difference| of raw outputs"]) <= 1e-3
    assert {"TensorFlow inference", "OpenCV inference", "TensorFlow / OpenCV"} <= set(metrics)
    runs = app.session_state["det_network_runs"]
    assert runs == 2  # the image's candidates and the comparison
    app.slider(key="det_score").set_value(0.05).run()
    assert not app.exception and app.session_state["det_network_runs"] == runs  # neither ran again
    assert any(m.label == "max |difference| of raw outputs" for m in app.metric)


def test_a_model_that_fails_to_load_keeps_the_previous_one(page):
    app = page.run()
    app.selectbox(key="det_model").set_value(registry.DEMO_KEY).run()
    app.multiselect(key="det_samples").set_value(["astronaut"]).run()
    app.selectbox(key="det_model").set_value("yolov4-tiny").run()
    assert not app.exception
    assert "yolov4-tiny.weights" in app.error[0].value
    assert any("Still using the previous model" in i.value for i in app.info)
    assert _summary(app)  # detections from the previous model are still shown
