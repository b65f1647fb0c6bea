"""The transfer-learning page's logic (AppTest): what can run, what cannot and why."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.transfer_helpers import demo_split

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "transfer_learning.py")


def plan_rows(app) -> dict[str, tuple[bool, str]]:
    frame = next(d.value for d in app.dataframe if "why not" in d.value.columns)
    return {row["run"]: (bool(row["will run"]), row["why not"]) for row in frame.to_dict("records")}


def run_button(app):
    return next(b for b in app.button if b.label == "Run comparison")


def test_transfer_needs_weights_random_init_is_a_labelled_choice_and_sizes_are_checked(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(data_root / "empty-keras-home"))
    demo_split()
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not app.exception
    assert app.selectbox(key="tl_split").value == "grouped"
    rows = plan_rows(app)
    assert set(rows) == {"B · mobilenet_v2", "C · mobilenet_v2"}
    for will_run, why in rows.values():
        assert not will_run and "no ImageNet weights" in why and "upload" in why
    assert run_button(app).disabled
    statuses = next(d.value for d in app.dataframe if "fix" in d.value.columns)
    from services.models.backbones import BACKBONES

    assert set(statuses["weights"]) == {"needs internet"} and len(statuses) == len(BACKBONES)

    app.radio(key="tl_weights").set_value("random").run()
    rows = plan_rows(app)
    assert rows["C · mobilenet_v2 (random init)"] == (True, "") and not run_button(app).disabled
    assert any("untrained baseline" in caption.value for caption in app.caption)

    app.number_input(key="tl_size").set_value(16).run()
    for will_run, why in plan_rows(app).values():
        assert not will_run and "accepts inputs from 32" in why
    assert run_button(app).disabled
    assert "No comparison yet" in app.info[-1].value
