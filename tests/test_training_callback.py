"""DashboardCallback on real (tiny) Keras fits: rows written, stop within one batch, NaN."""

from __future__ import annotations

import numpy as np
import pytest

from services.training.store import DIVERGED, FINISHED, STOPPED, RunStore
from tests.training_helpers import tiny_arrays

keras = pytest.importorskip("keras")


def _tiny_model(activation="relu"):
    from services.runtime import tensorflow

    tensorflow()
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, strides=2, activation=activation),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(8, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class BatchCounter(keras.callbacks.Callback):
    def __init__(self, on_batch=None):
        super().__init__()
        self.batches, self.on_batch = 0, on_batch

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.on_batch:
            self.on_batch(self.batches)


def test_callback_on_a_real_fit_writes_the_expected_rows(data_root):
    from services.training.callback import DashboardCallback

    x, y = tiny_arrays(16)
    callback = DashboardCallback("tiny", hyperparameters={"lr": 0.001}, batch_size=4, batch_log_interval=0.0,
                                 validation_data=(x[:8], y[:8]), class_names=list("ABCDEFGH"))
    _tiny_model().fit(x, y, batch_size=4, epochs=2, validation_data=(x[:8], y[:8]), callbacks=[callback], verbose=0)
    store = RunStore()
    run = store.get_run(callback.run_id)
    assert (run.status, run.epochs_done, run.epochs, run.steps_per_epoch) == (FINISHED, 2, 2, 4)
    assert run.source == "script" and run.hyperparameters == {"lr": 0.001} and run.summary["total_parameters"] > 0 and "parameters" not in run.summary
    table = store.epoch_table(run.id)
    assert list(table.epoch) == [0, 1]
    for column in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds",
                   "images_per_second"):
        assert table[column].notna().all(), column
    assert table.learning_rate.iloc[0] == pytest.approx(0.001)
    batches = store.metrics(run.id, names=["batch_loss"])
    assert list(batches.step) == list(range(8))  # interval 0: every batch, global step numbering
    matrices = store.artifacts(run.id, "confusion_matrix")
    assert list(matrices.epoch) == [0, 1]
    import json
    from pathlib import Path

    matrix = json.loads(Path(matrices.path.iloc[1]).read_text())
    assert matrix["classes"] == list("ABCDEFGH") and np.sum(matrix["matrix"]) == 8


def test_batch_logging_is_throttled_by_time(data_root):
    from services.training.callback import DashboardCallback

    x, y = tiny_arrays(16)
    callback = DashboardCallback("throttled", batch_log_interval=3600)
    _tiny_model().fit(x, y, batch_size=2, epochs=2, callbacks=[callback], verbose=0)
    assert list(RunStore().metrics(callback.run_id, names=["batch_loss"]).step) == [0]  # only the first


@pytest.mark.parametrize("images, batch, epochs, stop_at, status, done", [
    (32, 2, 5, 3, STOPPED, 1),  # the flag raised during batch 3 is seen at the end of batch 3
    (16, 4, 2, 8, FINISHED, 2),  # Stop during the last batch: every epoch completed, so finished
])
def test_stop_flag_stops_within_one_batch(data_root, images, batch, epochs, stop_at, status, done):
    from services.training.callback import DashboardCallback

    x, y = tiny_arrays(images)
    callback = DashboardCallback("to stop")
    store = RunStore()
    counter = BatchCounter(on_batch=lambda n: n == stop_at and store.request_stop(callback.run_id))
    _tiny_model().fit(x, y, batch_size=batch, epochs=epochs, callbacks=[counter, callback], verbose=0)
    assert counter.batches == stop_at and callback.stopped_by_request
    run = store.get_run(callback.run_id)
    assert (run.status, run.epochs_done) == (status, done)


def test_nan_loss_marks_the_run_diverged_with_its_epoch(data_root):
    from services.training.callback import DashboardCallback

    x, y = tiny_arrays(16)
    poisoned = x.copy()
    poisoned[:] = np.nan
    model = _tiny_model(activation=None)  # NaN inputs give a NaN loss (a relu could map them to 0)
    callback = DashboardCallback("diverging")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # a healthy first epoch (not logged)
    history = model.fit(poisoned, y, batch_size=8, epochs=3, callbacks=[callback], verbose=0)
    run = RunStore().get_run(callback.run_id)
    assert run.status == DIVERGED
    assert "epoch 1, batch 1" in run.error and "learning rate" in run.error
    assert run.summary["diverged_epoch"] == 1
    assert len(history.history["loss"]) == 1  # stopped in its first epoch

