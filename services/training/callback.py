"""``DashboardCallback``: one Keras callback that makes any ``model.fit`` appear in the monitor.

Three lines in your own script::

    from services.training.callback import DashboardCallback
    callback = DashboardCallback("my experiment", hyperparameters={"lr": 1e-3})
    model.fit(x, y, validation_data=(xv, yv), epochs=10, callbacks=[callback])

On another machine, stream to the dashboard's ingest endpoint instead of the local SQLite file:
``DashboardCallback("my experiment", url="http://dashboard-host:8502", token="...")`` (see
:mod:`services.training.remote`: events are spooled locally while the dashboard is unreachable
and delivered exactly once when it is back; Stop in the monitor reaches the script).

It logs epoch metrics (loss, accuracy, val_*), the learning rate, epoch duration and
throughput, the per-batch loss (time-throttled so logging stays a small fraction of the step
time), optionally a validation confusion matrix per epoch, and a heartbeat. It checks the run's
stop flag after every batch, and stops a run whose loss becomes NaN/inf with status
``diverged``. A resumed fit (``initial_epoch`` > 0) forgets the metrics of the epochs it redoes,
so the history stays that of the completed epochs.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from services import access, run_layout
from services.runtime import tensorflow
from services.training import store as run_store
from services.training.evaluation import confusion_matrix

tensorflow()  # this module is imported only to train: configure TF before Keras loads it
import keras  # noqa: E402

HEARTBEAT_EVERY_S = 10.0
BATCH_LOG_INTERVAL_S = 0.5
"""Default seconds between two logged batch losses (keeps logging far below 3 % of step time)."""


def canonical_logs(logs: dict[str, Any] | None) -> dict[str, float]:
    """Epoch logs with multi-output names folded: ``main_accuracy`` -> ``accuracy`` (the main head
    of a model with auxiliary classifiers)."""
    result: dict[str, float] = {}
    for key, value in (logs or {}).items():
        try:
            result[key] = float(value)
        except (TypeError, ValueError):
            continue
    for key in list(result):
        for prefix in ("", "val_"):
            if key.startswith(prefix + "main_") and not key.endswith("_loss"):
                result.setdefault(prefix + key[len(prefix) + 5:], result[key])
    return result


class LocalSink:
    """Writes the callback's events into the SQLite run store of this machine."""

    def __init__(self, store_path=None):
        self.store = run_store.RunStore(store_path)
        self._stop_connection = _stop_flag_reader(self.store.path)

    def create_run(self, run_id: str | None, **fields: Any) -> str:
        return self.store.create_run(run_id=run_id, **fields)

    def set_status(self, run_id: str, status: str, error: str | None = None, **fields: Any) -> None:
        self.store.set_status(run_id, status, error, **fields)

    def update_summary(self, run_id: str, **values: Any) -> None:
        self.store.update_summary(run_id, **values)

    def log_metrics(self, run_id: str, values: dict, *, epoch: int, step: int | None = None, **fields: Any) -> None:
        self.store.log_metrics(run_id, values, epoch=epoch, step=step, **fields)

    def delete_metrics_from(self, run_id: str, epoch: int) -> None:
        self.store.delete_metrics_from(run_id, epoch)

    def heartbeat(self, run_id: str) -> None:
        self.store.heartbeat(run_id)

    def confusion_matrix(self, run_id: str, epoch: int, payload: dict) -> None:
        path = run_layout.confusion_matrix_file(self.store.run_dir(run_id), epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"epoch": epoch, **payload}))
        self.store.add_artifact(run_id, "confusion_matrix", path, epoch=epoch)

    def stop_requested(self, run_id: str) -> bool:
        return _read_stop_flag(self._stop_connection, run_id) if self._stop_connection is not None else False

    def close(self) -> bool:
        if self._stop_connection is not None:
            self._stop_connection.close()
            self._stop_connection = None
        return True


def _device_name() -> str:
    from services.runtime import quick_summary

    return ", ".join(device.name for device in quick_summary())


class DashboardCallback(keras.callbacks.Callback):
    """Logs a fit to the dashboard's run store and obeys the monitor's stop button.

    Args:
        run_name: shown in the monitor (default: model name and time).
        store_path: the SQLite run store (default ``<data_root>/runs/runs.sqlite``).
        run_id: continue an existing run (the worker passes its run); None creates one.
        hyperparameters: shown in the monitor.
        batch_size: lets the monitor show images/s (otherwise steps/s only).
        batch_log_interval: seconds between two logged batch losses (time-based throttle).
        validation_data: ``(x, y)`` or a dataset of ``(x, y)`` for the per-epoch confusion matrix.
        class_names: names of the classes for the confusion matrix.
        finalize: set the final status at the end of training (the worker does it itself).
        confusion_matrix: False disables the per-epoch confusion matrix even with validation data.
        url, token: stream to the dashboard's ingest endpoint on another machine instead of a
            local store (``token`` is in ``<data root>/runs/ingest.token`` there).
        spool_dir: where events wait while the dashboard is unreachable (remote logging); a file
            or an unwritable folder is refused here (``SpoolUnusable``, a ValueError).
        flush_timeout: seconds the end of training waits for the last events to arrive.
        should_stop: an extra stop flag checked after every batch (the job's).
    """

    def __init__(self, run_name: str | None = None, *, store_path=None, run_id: str | None = None,
                 hyperparameters: dict | None = None, batch_size: int | None = None,
                 batch_log_interval: float = BATCH_LOG_INTERVAL_S, validation_data=None, class_names=None,
                 finalize: bool = True, confusion_matrix: bool = True, model_name: str | None = None,
                 dataset: str | None = None, source: str = "script", is_chief: bool = True,
                 url: str | None = None, token: str | None = None, spool_dir=None, flush_timeout: float = 30.0,
                 should_stop: Callable[[], bool] | None = None):
        super().__init__()
        if url:  # refused here, with a sentence, rather than inside fit
            from services.training.remote import check_spool_dir

            if not token:
                raise ValueError("remote logging needs the dashboard's ingest token (token=...)")
            spool_dir = check_spool_dir(spool_dir)
        self.url, self.token, self.spool_dir, self.flush_timeout = url, token, spool_dir, flush_timeout
        self.should_stop = should_stop
        self.sink = None
        self.delivered: bool | None = None
        """After training with ``url``: True when every event reached the dashboard."""
        self.run_name = run_name
        self.store_path = store_path
        self.run_id = run_id
        self.hyperparameters = dict(hyperparameters or {})
        self.batch_size = batch_size
        self.batch_log_interval = batch_log_interval
        self.validation_data = validation_data
        self.class_names = list(class_names) if class_names is not None else None
        self.finalize = finalize
        self.confusion_matrix = confusion_matrix and validation_data is not None
        self.model_name, self.dataset, self.source = model_name, dataset, source
        self.is_chief = is_chief
        self.stopped_by_request = False
        self.diverged_at: int | None = None
        self._first_epoch = True
        self._epoch = 0
        self._steps = 0
        self._last_batch_log: float | None = None
        self._epoch_start = 0.0
        self._epochs_done = 0
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self._validation_labels = None

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def store(self) -> run_store.RunStore | None:
        """The local run store written to (None with remote logging, or on a non-chief worker)."""
        return getattr(self.sink, "store", None)

    def _open_sink(self):
        if self.url:
            from services.training.remote import RemoteSink

            return RemoteSink(self.url, self.token or "", spool_dir=self.spool_dir, flush_timeout=self.flush_timeout)
        return LocalSink(self.store_path)

    def on_train_begin(self, logs=None):
        if not self.is_chief:
            return
        from services.training.lifecycle import parameter_summary

        self.sink = self._open_sink()
        epochs, steps = self.params.get("epochs"), self.params.get("steps")
        name = self.run_name or f"{self.model.name} {time.strftime('%Y-%m-%d %H:%M')}"
        described = {"name": name, "model": self.model_name or self.model.name, "dataset": self.dataset,
                     "hyperparameters": self.hyperparameters, "epochs": epochs}
        if self.url:  # the id is made here; the endpoint records the run as a remote one
            self.run_id = self.sink.create_run(self.run_id or run_store.new_run_id(), **described)
        elif self.run_id is None:
            self.run_id = self.sink.create_run(None, **described, source=self.source, status=run_store.RUNNING,
                                               owner=access.script_owner())
        self.sink.set_status(self.run_id, run_store.RUNNING, pid=os.getpid(), host=socket.gethostname(),
                             device=_device_name(), epochs=epochs, steps_per_epoch=steps)
        self.sink.update_summary(self.run_id, **parameter_summary(self.model))
        self._start_heartbeat()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._steps = 0
        self._epoch_start = time.perf_counter()
        if self.sink is None:
            return
        if self._first_epoch:
            self._first_epoch = False
            self.sink.delete_metrics_from(self.run_id, epoch)  # a resumed fit redoes these epochs
            if epoch > 0:
                self.sink.log_metrics(self.run_id, {"resumed_at_epoch": epoch}, epoch=epoch, step=-1)

    def on_train_batch_end(self, batch, logs=None):
        if self.sink is None:
            if self.should_stop is not None and self.should_stop():
                self.model.stop_training = True
            return
        self._steps = batch + 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._diverged(f"the training loss became {float(loss)} at epoch {self._epoch + 1}, batch {batch + 1}")
            return
        now = time.monotonic()
        if self._last_batch_log is None or now - self._last_batch_log >= self.batch_log_interval:
            self._last_batch_log = now
            steps = self.params.get("steps") or 0
            self.sink.log_metrics(self.run_id, {"batch_loss": loss}, epoch=self._epoch,
                                  step=self._epoch * steps + batch)
        if self.sink.stop_requested(self.run_id) or (self.should_stop is not None and self.should_stop()):
            self.stopped_by_request = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.sink is None:
            return
        values = canonical_logs(logs)
        seconds = time.perf_counter() - self._epoch_start
        values["epoch_seconds"] = seconds
        values["steps_per_second"] = self._steps / seconds if seconds > 0 else None
        if self.batch_size:
            values["images_per_second"] = self._steps * self.batch_size / seconds if seconds > 0 else None
        learning_rate = _learning_rate(self.model)
        if learning_rate is not None:
            values["learning_rate"] = learning_rate
        bad = [k for k in ("loss", "val_loss") if k in values and not math.isfinite(values[k])]
        if bad and self.diverged_at is None:
            self._diverged(f"{bad[0]} became {values[bad[0]]} at epoch {epoch + 1}")
        self.sink.log_metrics(self.run_id, values, epoch=epoch, epochs_done=epoch + 1)
        self._epochs_done = epoch + 1
        if self.confusion_matrix and self.diverged_at is None:
            self._save_confusion_matrix(epoch)

    def on_train_end(self, logs=None):
        self._heartbeat_stop.set()
        if self.sink is None:
            return
        if self.finalize and self.diverged_at is None:  # a diverged run's status is set already
            from services.training.lifecycle import outcome_of

            self.sink.set_status(self.run_id, outcome_of(stopped=self.stopped_by_request, diverged=False,
                                                         epochs=self.params.get("epochs"),
                                                         epochs_done=self._epochs_done))
        self.delivered = self.sink.close()

    # --- helpers ---------------------------------------------------------------------------
    def _diverged(self, message: str) -> None:
        self.diverged_at = self._epoch
        self.model.stop_training = True
        self.sink.update_summary(self.run_id, diverged_epoch=self._epoch + 1)
        self.sink.set_status(self.run_id, run_store.DIVERGED, error=f"Training diverged: {message}. "
                             "Try a lower learning rate.")

    def _start_heartbeat(self) -> None:
        """Heartbeats from a thread, so a run with very long batches does not look dead."""
        def beat():
            while not self._heartbeat_stop.wait(HEARTBEAT_EVERY_S):
                try:
                    self.sink.heartbeat(self.run_id)
                except Exception:  # never let the heartbeat kill training
                    pass

        self._heartbeat_stop.clear()
        self._heartbeat_thread = threading.Thread(target=beat, name="run-heartbeat", daemon=True)
        self._heartbeat_thread.start()

    def _labels_and_inputs(self):
        data = self.validation_data
        if isinstance(data, tuple):
            return data[0], np.asarray(data[1])
        if self._validation_labels is None:
            self._validation_labels = np.concatenate([np.asarray(y) for _, y in data])
        return data, self._validation_labels

    def _save_confusion_matrix(self, epoch: int) -> None:
        inputs, labels = self._labels_and_inputs()
        predictions = self.model.predict(inputs, verbose=0)
        if isinstance(predictions, (list, tuple)):
            predictions = predictions[0]
        if labels.ndim > 1:
            labels = labels.argmax(axis=-1)
        predicted = np.asarray(predictions).argmax(axis=-1)
        classes = int(max(predictions.shape[-1], labels.max() + 1))
        matrix = confusion_matrix(labels, predicted, classes)
        self.sink.confusion_matrix(self.run_id, epoch, {"classes": self.class_names or list(range(classes)),
                                                        "matrix": matrix.tolist()})


def _learning_rate(model) -> float | None:
    try:
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None


def _stop_flag_reader(path: Path):
    """A long-lived read-only connection: checking the flag costs microseconds per batch."""
    import sqlite3

    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout = 5000")
    return connection


def _read_stop_flag(connection, run_id: str) -> bool:
    import sqlite3

    try:
        row = connection.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
    except sqlite3.Error:
        return False
    return bool(row and row[0])
