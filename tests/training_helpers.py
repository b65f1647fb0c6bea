"""Helpers for the training tests: runs with recorded metrics, tiny arrays (no TensorFlow here)."""

from __future__ import annotations

import json
import os

import numpy as np

from services.training.store import FINISHED, RUNNING, RunStore


def tiny_arrays(count: int = 16, size: int = 32, classes: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((count, size, size, 3), dtype=np.float32), rng.integers(0, classes, count)


def recorded_run(store: RunStore, *, status: str = FINISHED, epochs: int = 3, done: int = 3, name: str = "recorded",
                 classes: tuple[str, ...] = ("TUMOR", "STROMA")) -> str:
    """A run as the callback would have written it: epoch metrics, batch losses, confusion matrices."""
    run_id = store.create_run(name, model="cnn_v1", dataset="demo", source="dashboard", epochs=epochs,
                              hyperparameters={"batch_size": 8, "learning_rate": 0.001}, status=RUNNING)
    store.update_run(run_id, pid=os.getpid(), steps_per_epoch=4, device="test CPU")
    for epoch in range(done):
        for step in range(4):
            store.log_metrics(run_id, {"batch_loss": 2.0 - 0.1 * (epoch * 4 + step)}, epoch=epoch, step=epoch * 4 + step)
        store.log_metrics(run_id, {"loss": 2.0 - epoch * 0.3, "accuracy": 0.3 + epoch * 0.1, "val_loss": 2.1 - epoch * 0.2,
                                   "val_accuracy": 0.25 + epoch * 0.1, "epoch_seconds": 1.5, "images_per_second": 20.0},
                          epoch=epoch, epochs_done=epoch + 1)
        path = store.run_dir(run_id) / "confusion" / f"epoch_{epoch:04d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"epoch": epoch, "classes": list(classes), "matrix": [[3, epoch], [1, 2]]}))
        store.add_artifact(run_id, "confusion_matrix", path, epoch=epoch)
    if status != RUNNING:
        store.update_summary(run_id, val_accuracy=0.45, test_accuracy=0.4, test_macro_f1=0.38, total_parameters=85512,
                             seconds_per_epoch=1.5, test_recall={c: 0.5 for c in classes})
        store.set_status(run_id, status)
    return run_id
