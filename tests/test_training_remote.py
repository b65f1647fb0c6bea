"""Remote logging over 127.0.0.1: a real ingest endpoint, a real fit streaming to it, the
endpoint stopped mid-run and started again (every row arrives exactly once), a wrong token, a
stop request reaching the script, hostile events, and a spool delivered later."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from services.training import ingest, remote
from services.training import liveness
from services.training.store import FINISHED, RUNNING, STOPPED, RunStore
from tests.training_helpers import tiny_arrays

keras = pytest.importorskip("keras")
TOKEN = "test-token-0123456789"


class Endpoint:
    """The ingest endpoint on a fixed 127.0.0.1 port that can be stopped and started again."""

    def __init__(self, store: RunStore, port: int = 0):
        self.store, self.port, self.server = store, port, None

    def start(self) -> "Endpoint":
        self.server = ingest.make_server("127.0.0.1", self.port, self.store, TOKEN)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def endpoint(data_root):
    served = Endpoint(RunStore()).start()
    yield served
    served.stop()


def _model():
    from tests.test_training_callback import _tiny_model

    return _tiny_model()


class OnBatch(keras.callbacks.Callback):
    def __init__(self, action, pause: float = 0.0):
        super().__init__()
        self.action, self.pause, self.batches = action, pause, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        self.action(self.batches)
        time.sleep(self.pause)


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_every_row_arrives_exactly_once_when_the_dashboard_goes_away_mid_run(endpoint, tmp_path):
    from services.training.callback import DashboardCallback

    x, y = tiny_arrays(32)
    callback = DashboardCallback("remote", url=endpoint.url, token=TOKEN, spool_dir=tmp_path / "spool",
                                 batch_log_interval=0.0, hyperparameters={"lr": 0.001}, flush_timeout=30,
                                 validation_data=(x[:8], y[:8]))
    seen_down = []

    def outage(batch: int) -> None:
        if batch == 5:
            endpoint.stop()
            seen_down.append(_wait(lambda: callback.sink.reachable is False))  # spooling now
        if batch == 14:
            endpoint.start()  # same port, as a restarted dashboard

    _model().fit(x, y, batch_size=4, epochs=3, validation_data=(x[:8], y[:8]), verbose=0,
                 callbacks=[OnBatch(outage, pause=0.02), callback])
    assert seen_down == [True]
    assert callback.delivered is True
    assert not list((tmp_path / "spool").glob("*.jsonl"))  # delivered: the spool is removed
    store = endpoint.store
    run = store.get_run(callback.run_id)
    assert (run.status, run.source, run.epochs_done, run.epochs) == (FINISHED, "remote", 3, 3)
    assert run.hyperparameters == {"lr": 0.001} and run.summary["total_parameters"] > 0
    batches = store.metrics(run.id, names=["batch_loss"])
    assert list(batches.step) == list(range(24))  # each batch once, none lost in the outage
    epochs = store.metrics(run.id, names=["loss", "val_loss", "accuracy"])
    assert sorted(epochs.groupby("name").epoch.apply(list).tolist()) == [[0, 1, 2]] * 3
    assert len(store.artifact_paths(run.id, "confusion_matrix")) == 3  # written by the endpoint


def test_a_resent_batch_adds_nothing(endpoint):
    events = [{"seq": 0, "op": "create_run", "args": {"run_id": "20260101-000000-abcdef", "name": "r", "epochs": 2}},
              {"seq": 1, "op": "log_metrics", "args": {"run_id": "20260101-000000-abcdef", "values": {"loss": 1.0},
                                                       "epoch": 0}}]
    first = remote.post_events(endpoint.url, TOKEN, "client0001", events)
    again = remote.post_events(endpoint.url, TOKEN, "client0001", events)  # the answer was lost: re-sent
    assert (first["delivered"], again["delivered"]) == (2, 0)
    assert len(endpoint.store.metrics("20260101-000000-abcdef")) == 1


def test_a_wrong_token_is_refused_and_the_events_stay_in_the_spool(endpoint, tmp_path):
    from services.training.callback import DashboardCallback

    request = urllib.request.Request(endpoint.url + "/v1/events", data=b"{}", method="POST",
                                     headers={"Authorization": "Bearer nope"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401
    x, y = tiny_arrays(8)
    callback = DashboardCallback("intruder", url=endpoint.url, token="wrong", spool_dir=tmp_path, flush_timeout=3)
    _model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert callback.delivered is False and "401" in callback.sink.refused
    assert endpoint.store.list_runs() == []
    [spool] = tmp_path.glob("*.jsonl")
    assert any(event["op"] == "log_metrics" for event in remote.read_events(spool))
    # ... and the spool is delivered later with the right token: the run appears whole
    assert remote.main(["deliver", str(spool), "--url", endpoint.url, "--token", TOKEN]) == 0
    [run] = endpoint.store.list_runs()
    assert run.status == FINISHED and run.epochs_done == 1 and not spool.exists()


def test_stop_from_the_monitor_reaches_the_remote_script(endpoint, tmp_path):
    from services.training.callback import DashboardCallback

    x, y = tiny_arrays(64)
    callback = DashboardCallback("to stop remotely", url=endpoint.url, token=TOKEN, spool_dir=tmp_path)
    asked_at = []

    def press_stop(batch: int) -> None:
        if batch == 3:
            endpoint.store.request_stop(callback.run_id)  # what the monitor's Stop button does
            asked_at.append(batch)

    counter = OnBatch(press_stop, pause=0.05)
    _model().fit(x, y, batch_size=2, epochs=5, verbose=0, callbacks=[counter, callback])
    assert callback.stopped_by_request and asked_at == [3]
    assert counter.batches < 3 + 30  # within the next answer (0.5 s), not at the end of 160 batches
    run = endpoint.store.get_run(callback.run_id)
    assert run.status == STOPPED


def test_hostile_events_change_nothing_they_should_not(endpoint):
    store = endpoint.store
    local = store.create_run("a dashboard run", source="dashboard", status=RUNNING)
    answer = remote.post_events(endpoint.url, TOKEN, "client0002", [
        {"seq": 0, "op": "set_status", "args": {"run_id": local, "status": "finished"}},
        {"seq": 1, "op": "drop_tables", "args": {"run_id": local}},
        {"seq": 2, "op": "create_run", "args": {"run_id": "../../etc", "name": "x"}},
        {"seq": 3, "op": "log_metrics", "args": {"run_id": local, "values": {"loss": 1}, "epoch": 0}},
    ])
    assert [item["seq"] for item in answer["rejected"]] == [0, 1, 2, 3]
    assert "not a remote run" in answer["rejected"][0]["error"]
    assert store.get_run(local).status == RUNNING and store.metrics(local).empty


def test_a_remote_run_marked_interrupted_during_a_long_outage_comes_back(endpoint):
    from services.training.store import INTERRUPTED

    run_id = "20260101-000000-cafe01"
    remote.post_events(endpoint.url, TOKEN, "client0003", [
        {"seq": 0, "op": "create_run", "args": {"run_id": run_id, "name": "far away", "epochs": 3}}])
    liveness.interrupt_vanished(endpoint.store, now=time.time() + 3600)  # no heartbeat for an hour
    assert endpoint.store.get_run(run_id).status == INTERRUPTED
    remote.post_events(endpoint.url, TOKEN, "client0003", [
        {"seq": 1, "op": "log_metrics", "args": {"run_id": run_id, "values": {"loss": 1.0}, "epoch": 0}}])
    run = endpoint.store.get_run(run_id)
    assert run.status == RUNNING and run.error is None
    body = json.dumps({"client": "x", "events": []}).encode()  # client id too short
    request = urllib.request.Request(endpoint.url + "/v1/events", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(request, timeout=5)
    assert bad.value.code == 400 and "Traceback" not in bad.value.read().decode()


def test_the_endpoint_binds_to_localhost_and_makes_a_private_token(data_root, monkeypatch):
    monkeypatch.delenv("DASHBOARD_INGEST_TOKEN", raising=False)
    token = ingest.ingest_token()
    assert len(token) >= 20 and ingest.ingest_token() == token
    assert (ingest.token_path().stat().st_mode & 0o777) == 0o600
    server = ingest.make_server(port=0, store=RunStore())
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
