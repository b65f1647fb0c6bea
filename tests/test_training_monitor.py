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
    assert [m.value for m in app.success] == ["Deleted the run to delete."]  # said after the rerun


def test_confusion_matrix_slider_walks_the_epochs(data_root):
    store = RunStore()
    run_id = recorded_run(store, epochs=3, done=3)
    app = _page().run()
    slider = app.slider(key=f"cm-{run_id}")
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


def _curves(app) -> dict:
    """The loss/accuracy figure (the page's first chart) as plotly JSON."""
    import json

    return json.loads(app.get("plotly_chart")[0].proto.spec)


def _runs_table(app):
    return app.dataframe[0].value  # the runs table comes first


def _comparison(app):
    return next(frame.value for frame in app.dataframe if "epochs done" in frame.value.index)


def _values(array) -> list:
    """A plotly JSON array, plain or binary-encoded (``{"dtype", "bdata"}``)."""
    import base64

    import numpy as np

    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def test_chart_options_smoothing_log_scale_and_x_axis(data_root):
    store = RunStore()
    recorded_run(store, epochs=3, done=3, name="plain")
    app = _page().run()
    figure = _curves(app)
    layout = figure["layout"]
    assert layout["xaxis"]["dtick"] == 1 and layout["xaxis"]["tickformat"] == ",d"  # one tick per epoch (3 epochs)
    lines = {trace["name"]: trace for trace in figure["data"]}
    train = next(t for n, t in lines.items() if n.endswith("· train"))
    val = next(t for n, t in lines.items() if n.endswith("· val"))
    assert train["line"]["color"] != val["line"]["color"]  # distinct by colour, not only dash
    assert not any(t.get("mode") == "markers" for t in figure["data"])  # no raw layer without smoothing

    app.slider(key="smoothing").set_value(0.6).run()
    app.toggle(key="log_y").set_value(True).run()
    app.radio(key="x_axis").set_value("step").run()
    assert not app.exception
    figure = _curves(app)
    raw = [t for t in figure["data"] if t.get("mode") == "markers"]
    assert raw and all(t["opacity"] < 0.5 for t in raw)  # faint raw points behind the smoothed line
    assert figure["layout"]["yaxis"]["type"] == "log"
    assert figure["layout"]["xaxis"]["title"]["text"] == "step"
    loss = next(t for t in figure["data"] if t["name"].endswith("· train") and t["xaxis"] == "x")
    assert _values(loss["x"]) == [4, 8, 12]  # end-of-epoch global steps (4 steps per epoch)


def test_smoothing_keeps_a_constant_curve_constant():
    from services.training.curves import smooth

    import pytest

    assert list(smooth([0.5] * 6, 0.9)) == pytest.approx([0.5] * 6, rel=1e-12)  # debiased: no ramp, no spike
    values = smooth([1.0, float("nan"), 3.0], 0.5)
    assert values[0] == 1.0 and values[1] != values[1] and 1.0 < values[2] < 3.0


def test_runs_table_details_and_comparison_are_live_and_honest(data_root):
    store = RunStore()
    first = recorded_run(store, name="first")
    second = recorded_run(store, status=RUNNING, epochs=5, done=2, name="second")
    store.update_summary(first, weights="random init")
    store.update_run(second, hyperparameters={"batch_size": 16, "learning_rate": 0.001})
    app = _page().run()
    table = _runs_table(app).set_index("id")
    assert table.loc[second, "epochs"] == "2/5" and table.loc[second, "best val acc"] == 0.35  # mid-run
    assert table.loc[first, "weights"] == "random init" and table.loc[second, "weights"] == "unknown"
    app.multiselect(key="selected_runs").set_value([first, second]).run()
    assert not app.exception
    comparison = _comparison(app)
    assert {"hp · batch_size", "final val_accuracy", "best val_loss"} <= set(comparison.index)
    app.toggle(key="only_differences").set_value(True).run()
    comparison = _comparison(app)
    assert "hp · batch_size" in comparison.index and "hp · learning_rate" not in comparison.index
    app.selectbox[-1].set_value(second).run()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["epochs"] == "2/5" and metrics["best val accuracy (chose the checkpoint)"] == "35.0 %"
    assert metrics["held-out test accuracy"] == "—"  # mid-run: no held-out score yet, and no 0


def test_notes_and_tags_are_editable(data_root):
    store = RunStore()
    run_id = recorded_run(store, name="noted")
    app = _page().run()
    app.text_area(key=f"notes-text-{run_id}").input("baseline, before augmentation")
    app.text_input(key=f"tags-{run_id}").input("baseline, cnn ,baseline")
    [save] = [b for b in app.button if b.label == "Save notes"]
    save.click().run()
    assert not app.exception
    run = store.get_run(run_id)
    assert run.notes == "baseline, before augmentation" and run.tags == ["baseline", "cnn"]
    assert _runs_table(app).tags.iloc[0] == "baseline, cnn"
    assert [m.value for m in app.success] == ["Saved the notes and tags of noted."]
    assert [t.value for t in app.toast] == ["Saved the notes and tags of noted."]


def test_untrusted_store_rows_get_no_download_and_a_damaged_run_is_shown(data_root):
    store = RunStore()
    good = recorded_run(store, name="good")
    hostile = recorded_run(store, name="hostile")
    store.add_artifact(hostile, "best_model", "/etc/passwd")  # any script can write such a row
    link = store.run_dir(hostile) / "last.keras"
    link.symlink_to("/etc/hostname")
    store.add_artifact(hostile, "last_model", link)
    store.add_artifact(hostile, "confusion_matrix", "/etc/passwd", epoch=7)
    damaged = recorded_run(store, name="damaged")
    with store._transaction() as connection:  # what a crashed or hostile writer could leave
        connection.execute("UPDATE runs SET summary = '{not json', tags = '\"x\"' WHERE id = ?", (damaged,))
    assert store.artifact_path(hostile, "best_model") is None and store.artifact_path(hostile, "last_model") is None
    assert store.get_run(damaged).damaged == ["summary", "tags"]
    app = _page().run()
    assert not app.exception
    assert "damaged" in _runs_table(app).set_index("id").loc[damaged, "status"]
    app.multiselect(key="selected_runs").set_value([hostile, damaged, good]).run()
    assert not app.exception
    for run_id in (hostile, damaged):
        app.selectbox[-1].set_value(run_id).run()
        assert not app.exception
        labels = [b.label for b in app.get("download_button")]
        assert "Best model" not in labels and "Last model" not in labels
    assert any("damaged" in w.value for w in app.warning)


def test_metrics_csv_is_wide_with_iso_times(data_root):
    import io

    import pandas as pd

    from services.training import overview

    store = RunStore()
    run_id = recorded_run(store, epochs=2, done=2)
    frame = pd.read_csv(io.BytesIO(overview.metrics_csv(store, run_id)))
    assert list(frame.columns[:3]) == ["epoch", "step", "time"] and {"loss", "val_accuracy", "batch_loss"} <= set(frame)
    epoch_rows = frame[frame.step.isna()]
    assert list(epoch_rows.epoch) == [1, 2] and epoch_rows.loss.notna().all()
    assert pd.to_datetime(frame.time).dt.tz is not None and frame.time.iloc[0].endswith("+00:00")
    assert len(frame) == 2 + 8  # one row per epoch and per logged batch, not one per value


def test_tensorboard_event_files_of_a_run_made_elsewhere_are_imported(data_root, tmp_path):
    import io
    import zipfile

    import keras

    from services.training import tb_import
    from tests.test_training_callback import _tiny_model
    from tests.training_helpers import tiny_arrays

    x, y = tiny_arrays(16)
    logs = tmp_path / "logs"
    _tiny_model().fit(x, y, batch_size=8, epochs=3, validation_data=(x, y), verbose=0,
                      callbacks=[keras.callbacks.TensorBoard(str(logs), write_graph=False)])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in logs.rglob("*tfevents*"):
            archive.write(path, path.relative_to(logs))
    store = RunStore()
    run_id = tb_import.import_event_files(store, [("logs.zip", buffer.getvalue())], "from elsewhere")
    table = store.epoch_table(run_id)
    run = store.get_run(run_id)
    assert (run.source, run.status, run.epochs_done) == ("import", "finished", 3)
    assert list(table.epoch) == [0, 1, 2] and table.loss.notna().all() and table.val_loss.notna().all()
    assert table.val_accuracy.between(0, 1).all()
    with __import__("pytest").raises(tb_import.NotEventFiles):
        tb_import.import_event_files(store, [("notes.txt", b"hello")], "nothing")


def test_disk_use_is_shown_and_old_failed_runs_are_cleaned_up(data_root):
    import time

    store = RunStore()
    keep = recorded_run(store, name="recent")
    old = recorded_run(store, status="failed", name="old failure")
    store.update_run(old, ended=time.time() - 40 * 86400)
    (store.run_dir(old) / "best.keras").write_bytes(b"x" * 2_000_000)
    app = _page().run()
    table = _runs_table(app).set_index("id")
    assert table.loc[old, "disk (MB)"] == 2.0
    assert any("Disk use of all runs: 2." in c.value for c in app.caption)
    assert any(c.value.startswith("1 run(s), 2.0 MB") for c in app.caption)  # the cleanup candidates
    [delete] = [b for b in app.button if b.label == "Delete them"]
    delete.click().run()
    assert not app.exception
    assert store.find_run(old) is None and not store.run_dir(old).exists() and store.find_run(keep)


def test_remote_logging_says_it_needs_make_run_until_the_endpoint_runs(data_root):
    """`streamlit run` alone (Community Cloud) has no ingest endpoint: the snippet comes with a
    warning naming `make run`; with the endpoint of this data root running, the warning goes."""
    import os
    import subprocess
    import sys

    from services import processes
    from tests.conftest import REPO, _free_port, wait_for

    needs_make_run = "Remote logging needs the ingest endpoint"
    app = _page().run()
    assert not app.exception
    assert any(needs_make_run in warning.value for warning in app.warning)
    endpoint = subprocess.Popen([sys.executable, "-m", "services.training.ingest", "--host", "127.0.0.1",
                                 "--port", str(_free_port())], cwd=REPO, env=dict(os.environ),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: processes.find(data_root, roles=(processes.INGEST,)))
        app = _page().run()
        assert not app.exception
        assert not any(needs_make_run in warning.value for warning in app.warning)
    finally:
        endpoint.terminate()
        endpoint.wait(timeout=10)


def test_a_short_run_gets_one_tick_per_epoch_and_a_long_one_automatic_ticks():
    import pandas as pd

    from services.training.curves import curves_figure

    def figure_of(epochs: int):
        table = pd.DataFrame({"epoch": range(epochs), "loss": [1.0 / (e + 1) for e in range(epochs)]})
        return curves_figure({"run": table})

    assert figure_of(3).layout.xaxis.dtick == 1  # not "1 1 1 2 2 2 3 3"
    assert figure_of(3).layout.xaxis2.dtick == 1
    assert figure_of(40).layout.xaxis.dtick is None
