"""Choices stay for the session: leaving a page and coming back keeps what was chosen there
(Streamlit drops a widget's state when its page is left unless the widget persists it), and a
disabled Run comparison says why beside it."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.transfer_helpers import demo_split

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
TRANSFER, HOME = "../pages/transfer_learning.py", "../pages/home.py"


def test_transfer_choices_survive_a_visit_to_another_page(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(data_root / "empty-keras-home"))
    demo_split("grouped")
    demo_split("second")
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page(TRANSFER).run()
    assert not app.exception
    app.selectbox(key="tl_split").set_value("second").run()
    app.multiselect(key="tl_backbones").set_value(["resnet50"]).run()
    app.number_input(key="tl_epochs").set_value(7).run()
    app.switch_page(HOME).run()
    app.switch_page(TRANSFER).run()
    assert not app.exception
    assert app.selectbox(key="tl_split").value == "second"
    assert app.multiselect(key="tl_backbones").value == ["resnet50"]
    assert app.number_input(key="tl_epochs").value == 7
    assert not app.warning or all("default value" not in w.value for w in app.warning)


def test_a_disabled_run_comparison_says_why(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(data_root / "empty-keras-home"))
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page(TRANSFER).run()
    button = next(b for b in app.button if b.label == "Run comparison")
    assert button.disabled
    assert any("Choose a saved split" in c.value for c in app.caption)
    demo_split("grouped")
    app.run()
    assert app.selectbox(key="tl_split").value == "grouped"  # the only split is chosen
    assert any("None of the planned runs can run" in c.value for c in app.caption)  # no weights offline
    app.radio(key="tl_weights").set_value("random").run()
    assert not next(b for b in app.button if b.label == "Run comparison").disabled
    assert not any(":material/block:" in c.value for c in app.caption)
