"""Hostile input on the remote-logging path (issue 17): the real ingest endpoint on 127.0.0.1,
real Keras fits streaming to it, spools damaged by hand or on a full disk, and the training
monitor showing a run that holds infinities, NaN and 1e300."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from services.training import curves, overview, remote, wire
from services.training.store import FINISHED, RUNNING, RunStore
from tests.conftest import _free_port
from tests.test_training_remote import TOKEN, Endpoint, _model
from tests.training_helpers import tiny_arrays

keras = pytest.importorskip("keras")
PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "training_monitor.py")
RUN = "20260101-000000-aaaaaa"


@pytest.fixture
def endpoint(data_root):
    served = Endpoint(RunStore()).start()
    yield served
    served.stop()


def _post_raw(url: str, body: bytes, timeout: float = 30) -> tuple[int, dict]:
    request = urllib.request.Request(url + wire.EVENTS_PATH, data=body, method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _create(seq: int = 0, run_id: str = RUN) -> dict:
    return {"seq": seq, "op": "create_run", "args": {"run_id": run_id, "name": "far away", "epochs": 3}}


def _metrics(seq: int, run_id: str = RUN, epoch: int = 0, **values) -> dict:
    return {"seq": seq, "op": "log_metrics", "args": {"run_id": run_id, "values": values or {"loss": 1.0},
                                                      "epoch": epoch}}


# --- the endpoint ------------------------------------------------------------------------------
def test_a_300_character_run_id_is_refused_alone_and_the_rest_is_stored(endpoint):
    answer = remote.post_events(endpoint.url, TOKEN, "client0100", [
        _create(0), _create(1, "a" * 300), _metrics(2, "a" * 300), _metrics(3, loss=0.5)])
    assert [(item["seq"], item["code"]) for item in answer["rejected"]] == [(1, 400), (2, 400)]
    assert "not a usable run id" in answer["rejected"][0]["error"] and "a" * 41 not in answer["rejected"][0]["error"]
    assert answer["delivered"] == 4
    assert [run.id for run in endpoint.store.list_runs()] == [RUN]
    assert endpoint.store.metrics(RUN).value.tolist() == [0.5]


def test_json_nested_100000_deep_is_answered_400_and_the_endpoint_keeps_serving(endpoint):
    body = b'{"client": "client0101", "events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    started = time.monotonic()
    code, answer = _post_raw(endpoint.url, body)
    assert code == 400 and f"deeper than {wire.MAX_DEPTH}" in answer["error"]
    assert time.monotonic() - started < 10
    sneaky = b'{"client": "client0101", "events": [], "x": "' + b"[" * 1000 + b'"}'  # brackets inside a string
    assert _post_raw(endpoint.url, sneaky)[0] == 200
    assert remote.post_events(endpoint.url, TOKEN, "client0101", [_create(0)])["delivered"] == 1


def test_infinity_and_1e300_times_are_refused_per_event_with_their_reason(endpoint):
    answer = remote.post_events(endpoint.url, TOKEN, "client0102", [  # json.dumps writes Infinity and NaN
        _create(0), _metrics(1, epoch_seconds=float("inf"), loss=1.0),
        {"seq": 2, "op": "log_metrics", "args": {"run_id": RUN, "values": {"loss": 2.0}, "epoch": 1, "when": 1e300}},
        {"seq": 3, "op": "update_summary", "args": {"run_id": RUN, "values": {"test_accuracy": float("nan")}}},
        _metrics(4, epoch=2, loss=0.25)])
    reasons = {item["seq"]: item["error"] for item in answer["rejected"]}
    assert set(reasons) == {1, 2, 3}
    assert "values.epoch_seconds is not a finite number" in reasons[1]
    assert "time stamp" in reasons[2] and "values.test_accuracy" in reasons[3]
    table = endpoint.store.metrics(RUN)
    assert table.value.tolist() == [0.25] and table.time.between(time.time() - 60, time.time() + 1).all()


def test_a_nan_time_is_a_400_for_that_event_never_a_503_about_the_store(endpoint):
    events = [_create(0), {"seq": 1, "op": "log_metrics", "args": {"run_id": RUN, "values": {"loss": 1.0}, "epoch": 0,
                                                                    "when": float("nan")}},
              {"seq": 2, "op": "set_status", "args": {"run_id": RUN, "status": "running",
                                                      "fields": {"started": float("nan")}}},
              _metrics(3, loss=0.75)]
    code, answer = _post_raw(endpoint.url, json.dumps({"client": "client0103", "events": events}).encode())
    assert code == 200 and [item["seq"] for item in answer["rejected"]] == [1, 2]
    assert endpoint.store.metrics(RUN).value.tolist() == [0.75]
    code, again = _post_raw(endpoint.url, json.dumps({"client": "client0103", "events": events}).encode())
    assert (code, again["delivered"], again["rejected"]) == (200, 0, [])  # re-sent: nothing retried, nothing doubled


def test_malformed_events_are_refused_one_by_one(endpoint):
    answer = remote.post_events(endpoint.url, TOKEN, "client0104", [
        _create(0), {"seq": True, "op": "heartbeat", "args": {"run_id": RUN}}, "not an event",
        {"seq": 3, "op": "confusion_matrix", "args": {"run_id": RUN, "epoch": 0,
                                                      "payload": {"classes": ["a", "b"], "matrix": [[1, 2]]}}},
        {"seq": 4, "op": "log_metrics", "args": {"run_id": RUN, "values": {"loss": "Infinity"}, "epoch": 0}},
        _metrics(5, loss=0.5)])
    assert [item["seq"] for item in answer["rejected"]] == [None, None, 3, 4]
    assert "square" in answer["rejected"][2]["error"] and "not a number" in answer["rejected"][3]["error"]
    assert endpoint.store.metrics(RUN).value.tolist() == [0.5]
    assert endpoint.store.artifacts(RUN).empty


def test_the_merged_summary_is_capped(endpoint):
    half = "x" * (wire.MAX_PART_BYTES // 2 + 1000)
    answer = remote.post_events(endpoint.url, TOKEN, "client0105", [
        _create(0), {"seq": 1, "op": "update_summary", "args": {"run_id": RUN, "values": {"a": half}}},
        {"seq": 2, "op": "update_summary", "args": {"run_id": RUN, "values": {"b": half}}},
        {"seq": 3, "op": "update_summary", "args": {"run_id": RUN, "values": {"test_accuracy": 0.5}}}])
    assert [item["seq"] for item in answer["rejected"]] == [2] and "summary" in answer["rejected"][0]["error"]
    summary = endpoint.store.get_run(RUN).summary
    assert set(summary) == {"a", "test_accuracy"} and len(json.dumps(summary)) <= wire.MAX_PART_BYTES


def test_a_slow_client_is_answered_408_and_dropped(data_root):
    from services.training import ingest

    store = RunStore()
    server = ingest.make_server("127.0.0.1", 0, store, TOKEN, read_timeout=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=20) as sock:
            sock.sendall(f"POST {wire.EVENTS_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                         "Content-Length: 1000\r\n\r\n{\"client\"".encode())  # ... and then nothing more
            started = time.monotonic()
            reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.0 408") and time.monotonic() - started < 15
        assert store.list_runs() == []
    finally:
        server.shutdown()
        server.server_close()


# --- the monitor -------------------------------------------------------------------------------
def _hostile_run(store: RunStore) -> str:
    """A remote run as the store can hold it: infinities, NaN (stored as NULL), 1e300, absurd times."""
    run_id = store.create_run("hostile remote", model="far", source="remote", status=RUNNING, epochs=3)
    store.update_run(run_id, steps_per_epoch=4, started=1e300, host="elsewhere")
    for epoch in range(2):
        store.log_metrics(run_id, {"loss": float("inf"), "accuracy": 1e300, "val_loss": float("nan"),
                                   "val_accuracy": float("-inf"), "epoch_seconds": float("inf"),
                                   "images_per_second": float("inf")}, epoch=epoch, when=1e300, epochs_done=epoch + 1)
        store.log_metrics(run_id, {"batch_loss": float("inf")}, epoch=epoch, step=epoch * 4, when=float("inf"))
    store.update_summary(run_id, test_accuracy=float("inf"), test_macro_f1=1e300,
                         test_recall={"a": float("nan"), "b": [1, {"x": 2}]})
    return run_id


def test_the_monitor_shows_a_run_holding_infinities_nan_and_1e300(data_root):
    store = RunStore()
    from tests.training_helpers import recorded_run

    healthy = recorded_run(store, name="healthy")
    hostile = _hostile_run(store)  # the newest: selected by default
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not app.exception
    table = app.dataframe[0].value.set_index("id")
    assert pd.isna(table.loc[hostile, "duration (s)"]) and pd.isna(table.loc[hostile, "started"])
    assert pd.isna(table.loc[hostile, "best val acc"]) and table.loc[healthy, "best val acc"] == 0.45
    texts = [p.proto.text for p in app.get("progress")]
    assert any("hostile remote" in t and "epoch 2/3" in t and "ETA" not in t and "images/s" not in t for t in texts)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["held-out test accuracy"] == "—" and metrics["duration"] == "—"
    assert metrics["test macro F1"] == "—"  # 1e300 is no fraction: a dash, never "1e+302 %"
    for axis in curves.X_AXES:
        app.radio(key="x_axis").set_value(axis).run()
        assert not app.exception, axis
    app.multiselect(key="selected_runs").set_value([hostile, healthy]).run()
    assert not app.exception
    csv = pd.read_csv(io.BytesIO(overview.metrics_csv(store, hostile)))
    epochs = csv[csv.step.isna()]
    assert epochs.time.isna().all() and epochs.loss.isna().all() and (epochs.accuracy == 1e300).all()


def test_a_metric_name_cannot_become_a_spreadsheet_formula(data_root):
    store = RunStore()
    run_id = store.create_run("r", status=RUNNING)
    store.log_metrics(run_id, {"=HYPERLINK(1)": 1.0}, epoch=0)
    header = overview.metrics_csv(store, run_id).decode().splitlines()[0]
    assert "'=HYPERLINK(1)" in header


# --- the spooling callback ---------------------------------------------------------------------
@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs, filled up: every write under it fails with ENOSPC (needs root)."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        (mount / "spool").mkdir()
        descriptor = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            for chunk in (4096, 1):  # big writes, then byte by byte: no room left at all
                with pytest.raises(OSError, match="No space left"):
                    while os.write(descriptor, b"\0" * chunk):
                        pass
        finally:
            os.close(descriptor)
        yield mount / "spool"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_under_the_spool_never_stops_the_fit_and_loses_nothing_deliverable(endpoint, full_disk, capsys):
    from services.training.callback import DashboardCallback

    x, y = tiny_arrays(16)
    callback = DashboardCallback("full disk", url=endpoint.url, token=TOKEN, spool_dir=full_disk,
                                 batch_log_interval=0.0)
    history = _model().fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 2
    spool = callback.sink.spool
    assert spool.unwritten > 0 and spool.dropped == 0 and callback.delivered is True
    assert "cannot write the spool" in capsys.readouterr().err
    run = endpoint.store.get_run(callback.run_id)
    assert (run.status, run.epochs_done) == (FINISHED, 2)
    assert list(endpoint.store.metrics(run.id, names=["batch_loss"]).step) == list(range(8))


def test_a_full_disk_and_no_dashboard_drops_and_counts_never_raises(full_disk, capsys, monkeypatch):
    from services.training.callback import DashboardCallback

    monkeypatch.setattr(remote, "MEMORY_ONLY_BYTES", 1000)  # a small memory budget: some events must go
    x, y = tiny_arrays(16)
    callback = DashboardCallback("nowhere", url=f"http://127.0.0.1:{_free_port()}", token=TOKEN, spool_dir=full_disk,
                                 batch_log_interval=0.0, flush_timeout=1)
    history = _model().fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[callback])
    assert len(history.history["loss"]) == 2 and callback.delivered is False
    assert callback.sink.spool.dropped > 0
    assert f"{callback.sink.spool.dropped} event(s) were dropped" in capsys.readouterr().err


def _spool_of_a_fit(tmp_path) -> Path:
    """The spool a real fit leaves when the dashboard cannot be reached."""
    from services.training.callback import DashboardCallback

    x, y = tiny_arrays(8)
    callback = DashboardCallback("offline", url=f"http://127.0.0.1:{_free_port()}", token=TOKEN,
                                 spool_dir=tmp_path / "spool", flush_timeout=0.5)
    _model().fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[callback])
    assert callback.delivered is False
    [spool] = (tmp_path / "spool").glob("*.jsonl")
    return spool


def _deliver(spool: Path, endpoint, capsys) -> str:
    assert remote.main(["deliver", str(spool), "--url", endpoint.url, "--token", TOKEN]) == 0
    return capsys.readouterr().out


def _assert_whole_run(store: RunStore, epochs: int = 2) -> None:
    [run] = store.list_runs()
    assert (run.status, run.epochs_done, run.source) == (FINISHED, epochs, "remote")
    assert sorted(store.epoch_table(run.id).epoch) == list(range(epochs))


@pytest.mark.parametrize("bad_line", [b"\xff\xfe not utf-8 \x80\n", b'{"seq": true, "op": "heartbeat", "args": {}}\n',
                                      b'{"seq": 3, "op": 7, "args": []}\n'])
def test_an_unusable_spool_line_is_moved_aside_and_the_rest_delivered(endpoint, tmp_path, capsys, bad_line):
    spool = _spool_of_a_fit(tmp_path)
    lines = spool.read_bytes().splitlines(keepends=True)
    spool.write_bytes(b"".join([*lines[:3], bad_line, *lines[3:]]))
    out = _deliver(spool, endpoint, capsys)
    assert f"delivered {len(lines)} event(s): {len(lines)} new" in out and "1 line(s)" in out
    _assert_whole_run(endpoint.store)
    assert not spool.exists() and Path(str(spool) + ".unusable").read_bytes() == bad_line


def test_a_corrupted_acked_file_cannot_delete_undelivered_events(endpoint, tmp_path, capsys):
    spool = _spool_of_a_fit(tmp_path)
    count = len(spool.read_bytes().splitlines())
    Path(str(spool) + ".acked").write_text("999999999")
    out = _deliver(spool, endpoint, capsys)
    assert "does not match the spool" in out and f"{count} new" in out
    _assert_whole_run(endpoint.store)
    assert not spool.exists()


def test_a_true_acked_file_sends_again_and_doubles_nothing(endpoint, tmp_path, capsys):
    spool = _spool_of_a_fit(tmp_path)
    kept = spool.read_bytes()
    _deliver(spool, endpoint, capsys)
    spool.write_bytes(kept)
    Path(str(spool) + ".acked").write_text(str(len(kept.splitlines()) - 1))
    out = _deliver(spool, endpoint, capsys)
    assert "0 new" in out and "already on the dashboard" in out
    _assert_whole_run(endpoint.store)
    assert len(endpoint.store.metrics(endpoint.store.list_runs()[0].id, names=["loss"])) == 2


def test_large_confusion_matrices_queued_in_an_outage_go_out_in_batches_under_the_cap(data_root, tmp_path):
    port = _free_port()
    sink = remote.RemoteSink(f"http://127.0.0.1:{port}", TOKEN, spool_dir=tmp_path, flush_timeout=60)
    classes = [f"class {i}" for i in range(330)]
    matrix = [[123456 + i + j for j in range(330)] for i in range(330)]
    sink.create_run(RUN, name="big matrices", epochs=12)
    for epoch in range(12):
        sink.confusion_matrix(RUN, epoch, {"classes": classes, "matrix": matrix})
    sizes = [len(line) for _, line in sink.spool.batch()]  # the first batch: split under the body cap
    assert 0.85e6 < sizes[-1] < wire.MAX_PART_BYTES and sum(sizes) < wire.MAX_BODY_BYTES and len(sizes) < 13
    served = Endpoint(RunStore(), port).start()  # the dashboard comes back
    try:
        assert sink.close() is True
    finally:
        served.stop()
    assert len(served.store.artifact_paths(RUN, "confusion_matrix")) == 12


def test_a_spool_path_that_is_a_file_is_refused_when_the_callback_is_created(tmp_path):
    from services.training.callback import DashboardCallback

    blocker = tmp_path / "spool"
    blocker.write_text("I am a file")
    with pytest.raises(remote.SpoolUnusable, match="is a file, not a folder: pass spool_dir= a writable folder"):
        DashboardCallback("r", url="http://127.0.0.1:9", token=TOKEN, spool_dir=blocker)
    with pytest.raises(remote.SpoolUnusable, match="cannot be created"):
        DashboardCallback("r", url="http://127.0.0.1:9", token=TOKEN, spool_dir=blocker / "below")
    with pytest.raises(ValueError, match="token"):
        DashboardCallback("r", url="http://127.0.0.1:9", token="", spool_dir=tmp_path)


def test_hyperparameters_json_cannot_hold_still_reach_the_dashboard(endpoint, tmp_path):
    from services.training.callback import DashboardCallback

    deep: dict = {}
    level = deep
    for _ in range(100):
        level["down"] = level = {}
    x, y = tiny_arrays(8)
    callback = DashboardCallback("odd hyper-parameters", url=endpoint.url, token=TOKEN, spool_dir=tmp_path,
                                 hyperparameters={(1, 2): "a tuple key", "lr": float("nan"), "deep": deep})
    _model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert callback.delivered is True
    run = endpoint.store.get_run(callback.run_id)
    assert run.status == FINISHED and run.hyperparameters["(1, 2)"] == "a tuple key"
    assert run.hyperparameters["lr"] is None  # NaN is sent as null


def test_a_run_with_impossible_times_still_has_a_model_card(data_root):
    """A remote or hand-edited row whose times are not representable (1e300, infinity) gives a card
    with no date, not an OverflowError on the tissue-map page or in its report."""
    import dataclasses

    from services.tissuemap.models import model_card
    from tests.training_helpers import recorded_run

    store = RunStore()
    run = store.get_run(recorded_run(store))
    for moment in (1e300, float("inf"), float("nan"), "yesterday"):
        card = model_card(dataclasses.replace(run, ended=moment, started=moment))
        assert card["trained"] is None and card["run_id"] == run.id
    assert model_card(run)["trained"].endswith("UTC")
