"""The training process: ``python -m services.training.worker <run_id> [--store PATH]``.

Runs one run of the store to its end, in its own OS process (the dashboard starts it with
:func:`services.training.launcher.start_run`; it outlives the browser and the page). It builds
the model with ``catalog.build_model(config.model, **config.options)``, trains it with
``ModelCheckpoint`` (best and last ``.keras``), ``BackupAndRestore`` (a killed worker resumes at
its next epoch), TensorBoard event files and :class:`DashboardCallback`, then scores the best
model on validation and test data and records the summary. Any exception marks the run failed
with its message; when it ends, the next queued run starts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from services.errors import UserFacingError
from services.training import store as run_store
from services.training.config import RunConfig


def tensorboard_available() -> bool:
    """TensorBoard event files beside each run, unless ``DASHBOARD_TENSORBOARD=0``; they need the
    ``tensorboard`` package (in requirements.txt): without it they are skipped."""
    import importlib.util

    from services.config import get_settings

    return get_settings().tensorboard and importlib.util.find_spec("tensorboard") is not None


def make_optimizer(name: str, learning_rate: float):
    import keras

    classes = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
               "rmsprop": keras.optimizers.RMSprop, "adamw": keras.optimizers.AdamW}
    return classes[name](learning_rate=learning_rate)


def compile_model(model, config: RunConfig) -> None:
    """Sparse categorical cross-entropy; GoogLeNet loss weights for models with auxiliary heads."""
    from services.models.histology import AUX_LOSS_WEIGHTS, has_auxiliary_heads

    loss = "sparse_categorical_crossentropy"
    if has_auxiliary_heads(model):
        model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate),
                      loss={name: loss for name in AUX_LOSS_WEIGHTS}, loss_weights=dict(AUX_LOSS_WEIGHTS),
                      metrics={"main": ["accuracy"]})
    else:
        model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate), loss=loss,
                      metrics=["accuracy"])


def build_for_run(config: RunConfig, num_classes: int):
    from services.models.catalog import build_model

    return build_model(config.model, input_shape=(config.image_size, config.image_size, 3),
                       num_classes=num_classes, **config.options)


def training_callbacks(run_dir: Path, dashboard_callback, *, multi_output: bool, chief: bool,
                       best_so_far: float | None = None) -> list:
    """The dashboard callback first (an epoch it logged but BackupAndRestore did not save is
    forgotten and redone on resume), then BackupAndRestore, best/last checkpoints, TensorBoard."""
    import keras

    folder = run_dir if chief else run_dir / f"worker-{os.getpid()}"
    monitor = "val_main_accuracy" if multi_output else "val_accuracy"
    callbacks = [
        dashboard_callback,
        # double_checkpoint keeps the previous backup: a worker killed while writing the latest
        # one resumes from the epoch before instead of failing on a half-written file.
        keras.callbacks.BackupAndRestore(str(folder / "backup"), delete_checkpoint=False, double_checkpoint=True),
        keras.callbacks.ModelCheckpoint(str(folder / "best.keras"), monitor=monitor, mode="max",
                                        save_best_only=True, initial_value_threshold=best_so_far),
        keras.callbacks.ModelCheckpoint(str(folder / "last.keras")),
    ]
    if tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(str(folder / "tensorboard"), update_freq="epoch",
                                                     write_graph=False, profile_batch=0))
    return callbacks


def predict_labels(model, dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true labels, predicted labels, confidence) over a dataset of (images, labels)."""
    truths, probabilities = [], []
    for images, labels in dataset:
        output = model(images, training=False)
        truths.append(np.asarray(labels["main"] if isinstance(labels, dict) else labels))
        probabilities.append(np.asarray(output))
    probability = np.concatenate(probabilities)
    return np.concatenate(truths), probability.argmax(axis=-1), probability.max(axis=-1)


def score_and_export(store, run_id: str, run_dir: Path, model, data) -> dict:
    """Score the best checkpoint on val and test, save the inference model and val predictions."""
    from services.models.catalog import load_saved_model
    from services.models.histology import inference_model
    from services.training.evaluation import scores

    best_path = run_dir / "best.keras"
    best = load_saved_model(best_path) if best_path.exists() else model
    final = inference_model(best)
    summary = {}
    for part, dataset in (("val", data.val), ("test", data.test)):
        if dataset is None:
            continue
        truth, predicted, confidence = predict_labels(final, dataset)
        result = scores(truth, predicted, data.class_names)
        summary |= {f"{part}_accuracy": result["accuracy"], f"{part}_macro_f1": result["macro_f1"],
                    f"{part}_recall": result["recall"], f"{part}_confusion_matrix": result["confusion_matrix"]}
        if part == "val":
            frame = data.part("val")[["path", "label", "label_index"]].copy()
            frame["predicted_index"], frame["confidence"] = predicted[: len(frame)], confidence[: len(frame)]
            frame["predicted"] = [data.class_names[i] for i in frame["predicted_index"]]
            frame.to_csv(run_dir / "val_predictions.csv", index=False)
            store.add_artifact(run_id, "val_predictions", run_dir / "val_predictions.csv")
    final_path = run_dir / "final.keras"
    final.save(final_path)
    for kind, path in (("best_model", best_path), ("last_model", run_dir / "last.keras"),
                       ("final_model", final_path)):
        if path.exists():
            store.add_artifact(run_id, kind, path)
    (run_dir / "classes.json").write_text(json.dumps(data.class_names))
    return summary


def train(store, run_id: str, config: RunConfig) -> str:
    """Train ``run_id`` to its end; return its final status. Raises on errors (see :func:`execute`)."""
    from services import runtime
    from services.training.distribution import describe, is_chief, select_strategy

    strategy = select_strategy(config.distribution)  # must come before any other TF work
    import keras

    from services.models.histology import has_auxiliary_heads, parameter_counts
    from services.training.callback import DashboardCallback
    from services.training.data import load_run_data, with_aux_labels
    from services.training.overview import best_val_accuracy

    chief = is_chief()
    run_dir = store.run_dir(run_id)
    keras.backend.clear_session()  # the book's habit: a fresh graph and seed for every model
    keras.utils.set_random_seed(config.seed)
    policy = runtime.set_mixed_precision(config.mixed_precision)
    started = time.time()
    data = load_run_data(config)
    with strategy.scope():
        model = build_for_run(config, num_classes=len(data.class_names))
        compile_model(model, config)
    multi_output = has_auxiliary_heads(model)
    train_data, val_data = (with_aux_labels(data.train), with_aux_labels(data.val)) if multi_output \
        else (data.train, data.val)
    initial = run_dir / "initial.weights.h5"
    if chief and not initial.exists():
        model.save_weights(initial)  # the book's habit: keep initial weights for fair comparisons
    store.update_summary(run_id, **{f"{k}_parameters": v for k, v in parameter_counts(model).items()},
                         strategy=describe(strategy), precision=policy, classes=data.class_names,
                         train_images=int((data.frame.split == "train").sum()),
                         val_images=int((data.frame.split == "val").sum()),
                         test_images=int((data.frame.split == "test").sum()))
    store.update_run(run_id, synthetic=data.synthetic)  # the callback records the device
    dashboard = DashboardCallback(run_id=run_id, store_path=store.path, hyperparameters=config.hyperparameters(),
                                  batch_size=config.batch_size, validation_data=data.val,
                                  class_names=data.class_names, finalize=False, is_chief=chief)
    model.fit(train_data, validation_data=val_data, epochs=config.epochs, verbose=0, shuffle=False,
              callbacks=training_callbacks(run_dir, dashboard, multi_output=multi_output, chief=chief,
                                           best_so_far=best_val_accuracy(store.epoch_table(run_id))))
    if not chief:
        return run_store.FINISHED
    if dashboard.diverged_at is not None:
        return run_store.DIVERGED
    if dashboard.stopped_by_request:
        store.set_status(run_id, run_store.STOPPED)
        return run_store.STOPPED
    summary = score_and_export(store, run_id, run_dir, model, data)
    table = store.epoch_table(run_id)
    seconds = table["epoch_seconds"].dropna() if "epoch_seconds" in table else []
    store.update_summary(run_id, **summary, wall_seconds=time.time() - started,
                         seconds_per_epoch=float(np.mean(seconds)) if len(seconds) else None)
    store.set_status(run_id, run_store.FINISHED)
    return run_store.FINISHED


def train_unlogged(config: RunConfig) -> str:
    """A non-chief machine of a multi-worker job: trains its share, logs to a throw-away store."""
    import tempfile

    store = run_store.RunStore(Path(tempfile.mkdtemp(prefix="worker-")) / "runs.sqlite")
    run_id = store.create_run(config.name, model=config.model, dataset=config.dataset,
                              config=config.to_dict(), status=run_store.RUNNING)
    return train(store, run_id, config)


def failure_message(error: BaseException) -> str:
    if isinstance(error, UserFacingError):
        return str(error)
    name = type(error).__name__
    if name == "ResourceExhaustedError" or isinstance(error, MemoryError):
        return f"Out of memory ({name}). Lower the batch size or the image size."
    return f"{name}: {error}"


def execute(run_id: str, store_path: str | os.PathLike | None = None) -> str:
    """Run ``run_id`` and record how it ended; never raises for a training error."""
    store = run_store.RunStore(store_path)
    run = store.get_run(run_id)
    store.update_run(run_id, status=run_store.RUNNING, pid=os.getpid(), heartbeat=time.time(),
                     started=run.started or time.time(), ended=None, error=None, stop_requested=0,
                     host=socket.gethostname())
    try:
        status = train(store, run_id, RunConfig.from_dict(run.config))
    except BaseException as error:  # noqa: BLE001 - a worker records every way it can end
        (store.run_dir(run_id) / "traceback.txt").write_text(traceback.format_exc())
        stopped = isinstance(error, KeyboardInterrupt)
        store.set_status(run_id, run_store.STOPPED if stopped else run_store.FAILED,
                         error=None if stopped else failure_message(error))
        status = run_store.STOPPED if stopped else run_store.FAILED
    finally:
        from services.training.launcher import schedule

        schedule(store)  # a slot is free: start the next queued run
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_id")
    parser.add_argument("--store", help="run store path (default: <data_root>/runs/runs.sqlite)")
    args = parser.parse_args(argv)
    try:
        status = execute(run_store.check_run_id(args.run_id), args.store)
    except UserFacingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"run {args.run_id}: {status}")
    return 0 if status in (run_store.FINISHED, run_store.STOPPED) else 1


if __name__ == "__main__":
    sys.exit(main())
