"""Detector thresholds set outside [0, 1] by a crafted session (issue 17): refused with a sentence."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from services.detection.decode import PRESETS

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "detector.py")


def test_out_of_range_thresholds_in_the_session_are_refused_with_a_message(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.session_state["det_score"] = -0.5
    app.session_state["det_nms"] = float("nan")
    app.session_state["det_samples"] = ["chelsea"]
    app.run()
    assert not app.exception
    errors = " ".join(e.value for e in app.error)
    assert "score threshold must be between 0 and 1 (got -0.5)" in errors
    assert "NMS threshold must be between 0 and 1" in errors
    assert app.slider(key="det_score").value == PRESETS[1].score
    assert app.slider(key="det_nms").value == PRESETS[1].nms
    assert any("detections**" in m.value for m in app.markdown)  # the page goes on with the defaults
