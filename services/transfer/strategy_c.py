"""Strategy C end to end: cached features of a frozen backbone, then a small head fitted on them.

Recorded as a training-monitor run (source ``transfer``) with the same summary fields as the
worker's runs, plus ``extraction_seconds`` (0 when every split came from the cache),
``features_reused`` and the cache keys. The head is saved on its backbone (``final.keras``) so
the comparison page can classify and explain tiles with it like any other run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from services.errors import UserFacingError
from services.jobs import JobStopped
from services.transfer import features as feature_cache
from services.transfer.metrics import evaluate, parameter_counts

SPLITS = ("train", "val", "test")


def _stop_callback(should_stop: Callable[[], bool]):
    import keras

    class StopWhenAsked(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if should_stop():
                self.model.stop_training = True

    return StopWhenAsked()


def extract_splits(base, backbone: str, frame, *, image_size: int, batch_size: int, progress, should_stop):
    """FeatureSets of train/val/test (cached or extracted now) and the extraction seconds."""
    from services.models import weights as registry

    digest = feature_cache.weights_hash(base)
    preprocessing = f"keras.applications.{registry.spec(backbone).module}.preprocess_input"
    sets, total = {}, max(1, len(frame))
    done_before = 0
    for split in SPLITS:
        rows = frame[frame["split"] == split].reset_index(drop=True)
        if rows.empty:
            continue

        def report(done: int, _count: int, offset=done_before, split=split) -> None:
            progress(0.8 * (offset + done) / total, f"features of {split}: {done}/{len(rows)}")

        try:
            sets[split] = feature_cache.ensure_features(
                base, backbone, rows, split, preprocess=registry.preprocess_function(backbone),
                preprocessing=preprocessing, image_size=(image_size, image_size), batch_size=batch_size,
                progress=report, should_stop=should_stop, weights_digest=digest)
        except feature_cache.StopRequested:
            raise JobStopped() from None
        done_before += len(rows)
    return sets


def run_strategy_c(spec, backbone: str, label: str, *, store, progress, should_stop) -> str:
    """Extract (or reuse) features, fit the head, score it; returns the monitor run id."""
    from services.runtime import tensorflow

    tensorflow()
    import keras

    from services.models import weights as registry
    from services.training import store as run_store
    from services.training.callback import DashboardCallback
    from services.training.data import is_synthetic
    from services.transfer import models

    started = time.time()
    frame, class_names = _split(spec)
    hyperparameters = {"backbone": backbone, "weights": spec.weights, "epochs": spec.epochs,
                       "batch_size": spec.batch_size, "learning_rate": spec.head_learning_rate,
                       "head_units": spec.head_units, "image_size": spec.image_size, "strategy": "C"}
    run_id = store.create_run(label, model="feature_head", dataset=spec.dataset, split=spec.split,
                              source="transfer", hyperparameters=hyperparameters, config=hyperparameters,
                              epochs=spec.epochs, status=run_store.RUNNING, synthetic=is_synthetic(spec.dataset))
    try:
        keras.utils.set_random_seed(spec.seed)
        base = registry.load_backbone(backbone, input_shape=(spec.image_size,) * 2 + (3,), weights=spec.weights)
        sets = extract_splits(base, backbone, frame, image_size=spec.image_size, batch_size=spec.batch_size,
                              progress=progress, should_stop=should_stop)
        extraction = sum(s.seconds for s in sets.values())
        store.update_summary(run_id, extraction_seconds=extraction,
                             features_reused=all(s.reused for s in sets.values()),
                             feature_keys={split: s.key.digest for split, s in sets.items()}, classes=class_names)
        progress(0.8, "training the head on cached features")
        head = models.feature_head(sets["train"].features.shape[1:], len(class_names), units=spec.head_units)
        models.compile_model(head, spec.head_learning_rate)
        validation = (sets["val"].features, sets["val"].labels)
        dashboard = DashboardCallback(run_id=run_id, store_path=store.path, hyperparameters=hyperparameters,
                                      batch_size=spec.batch_size, validation_data=validation,
                                      class_names=class_names, finalize=False)
        head.fit(sets["train"].features, sets["train"].labels, validation_data=validation, epochs=spec.epochs,
                 batch_size=spec.batch_size, shuffle=True, verbose=0,
                 callbacks=[dashboard, _stop_callback(should_stop)])
        if should_stop() or dashboard.stopped_by_request:
            raise JobStopped()
        composed = models.compose(base, backbone, head, name=f"{backbone}_feature_head")
        counts = parameter_counts(composed)
        summary = _scores(head, sets, class_names) | {"total_parameters": counts["params_total"],
                                                      "trainable_parameters": counts["params_trainable"]}
        seconds = store.epoch_table(run_id).get("epoch_seconds")
        path = store.run_dir(run_id) / "final.keras"
        composed.save(path)
        store.add_artifact(run_id, "final_model", path)
        store.update_summary(run_id, **summary, wall_seconds=time.time() - started,
                             seconds_per_epoch=float(seconds.mean()) if seconds is not None else None)
        store.set_status(run_id, run_store.FINISHED)
        return run_id
    except JobStopped:
        store.set_status(run_id, run_store.STOPPED)
        raise
    except Exception as error:
        store.set_status(run_id, run_store.FAILED, error=str(error) if isinstance(error, UserFacingError)
                         else f"{type(error).__name__}: {error}")
        raise


def _split(spec):
    from services.training.config import RunConfig
    from services.training.data import split_frame

    config = RunConfig(model="transfer_frozen", dataset=spec.dataset, split=spec.split, seed=spec.seed)
    return split_frame(config)


def _scores(head, sets, class_names) -> dict:
    summary = {}
    for split in ("val", "test"):
        if split not in sets:
            continue
        probabilities = head.predict(sets[split].features, verbose=0)
        result = evaluate(sets[split].labels, probabilities, class_names)
        summary |= {f"{split}_accuracy": result.accuracy, f"{split}_macro_f1": result.macro_f1,
                    f"{split}_recall": result.per_class_recall, f"{split}_confusion_matrix": result.confusion}
    return summary
