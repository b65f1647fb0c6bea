"""The training monitor page (AppTest): a finished run and a running one."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from services.training.store import RUNNING, RunStore
from tests.training_helpers import recorded_run

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "training_monitor.py")


def _page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=30)


def test_empty_store_offers_the_start_form(data_root):
    app = _page().run()
    assert not app.exception
    assert any("No runs yet" in info.value for info in app.info)
    assert app.get("form")  # the start form is there


def test_finished_and_running_runs_are_listed_and_overlaid(data_root):
    store = RunStore()
    finished = recorded_run(store, name="finished one")
    running = recorded_run(store, status=RUNNING, epochs=5, done=2, name="running one")
    app = _page().run()
    assert not app.exception
    table = app.dataframe[0].value
    assert set(table["status"]) == {"finished", "running"}
    assert table.set_index("id").loc[finished, "best val acc"] == 0.45
    app.multiselect(key="selected_runs").set_value([finished, running]).run()
    assert not app.exception
    charts = app.get("plotly_chart")
    assert len(charts) >= 2  # overlay + live batch loss of the running run
    progress_texts = [p.proto.text for p in app.get("progress")]
    assert any("running one" in t and "epoch 2/5" in t and "ETA" in t for t in progress_texts)
    assert any("finished one" in t and "epoch 3/3" in t for t in progress_texts)


def test_stop_button_sets_the_flag_and_delete_removes_a_run(data_root):
    store = RunStore()
    running = recorded_run(store, status=RUNNING, epochs=5, done=1, name="to stop")
    app = _page().run()
    [stop] = [b for b in app.button if b.label == "Stop"]
    stop.click().run()
    assert not app.exception
    assert store.get_run(running).stop_requested
    finished = recorded_run(store, name="to delete")
    app = _page().run()
    app.multiselect(key="selected_runs").set_value([finished]).run()
    [confirm] = [b for b in app.button if b.label == "Yes, delete it"]
    confirm.click().run()
    assert not app.exception
    assert store.find_run(finished) is None
    assert not store.run_dir(finished).exists()


def test_confusion_matrix_slider_walks_the_epochs(data_root):
    store = RunStore()
    recorded_run(store, epochs=3, done=3)
    app = _page().run()
    slider = app.slider[0]
    assert slider.value == 3
    slider.set_value(1).run()
    assert not app.exception
    titles = [c.proto.spec for c in app.get("plotly_chart")]
    assert any("epoch 1" in spec for spec in titles)


def test_a_foreign_store_file_is_reported_and_left_alone(data_root):
    path = data_root / "runs" / "runs.sqlite"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database at all\n" * 20)
    app = _page().run()
    assert not app.exception
    assert any("left untouched" in error.value for error in app.error)
    assert path.read_bytes() == b"not a database at all\n" * 20
