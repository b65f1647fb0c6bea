"""Strategy C end to end: cached features of a frozen backbone, then a small head fitted on them.

Runs inside the comparison's job (:func:`services.transfer.experiments.experiment_job`, a worker
process under the job queue), never in a process of its own. Recorded as a training-monitor run
(source ``transfer``) through the training lifecycle (:mod:`services.training.lifecycle`): the
same status handling, summary names, scores and export as every other run, plus
``extraction_seconds`` (0 when every split came from the cache), ``features_reused``, the cache
keys, ``head_pooling`` and, with ``folds`` >= 2, a cross-validation grouped by source image
(``cv_*``). The head is exported on its backbone (``final.keras``) so the comparison page can
classify and explain tiles with it like any other run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from services.transfer import features as feature_cache
from services.transfer.spec import ExperimentSpec, weights_label

Progress = Callable[[float, str], None]


def create_run(store, spec: ExperimentSpec, backbone: str, label: str, job_id: str | None = None,
               owner: str | None = None) -> str:
    """Record a strategy-C run (running from now on, in this process); returns its id."""
    from services.training import store as run_store
    from services.training.data import is_synthetic

    hyperparameters = {"backbone": backbone, "weights": spec.weights, "epochs": spec.epochs,
                       "batch_size": spec.batch_size, "learning_rate": spec.head_learning_rate,
                       "head_units": spec.head_units, "head_pooling": spec.head_pooling,
                       "image_size": spec.image_size, "strategy": "C", "folds": spec.folds}
    return store.create_run(label, model="feature_head", dataset=spec.dataset, split=spec.split,
                            source="transfer", hyperparameters=hyperparameters, epochs=spec.epochs,
                            config={"spec": spec.to_dict(), "backbone": backbone, "job_id": job_id},
                            status=run_store.RUNNING, synthetic=is_synthetic(spec.dataset), owner=owner)


def run_strategy_c(store, run_id: str, spec: ExperimentSpec, backbone: str, *,
                   should_stop: Callable[[], bool], progress: Progress, job_id: str | None = None) -> str:
    """Extract (or reuse) features, fit the head, score it, record everything in ``run_id``;
    returns the run's final status (finished, stopped, failed or diverged). Never raises for a
    training error: the lifecycle records it."""
    from services.training import lifecycle

    return lifecycle.run(store, run_id, lambda: _train(store, run_id, spec, backbone, should_stop, progress),
                         job_id=job_id)


def _train(store, run_id: str, spec: ExperimentSpec, backbone: str, should_stop, progress: Progress) -> str:
    from services.runtime import tensorflow

    tensorflow()
    import keras

    from services.models import weights as registry
    from services.metrics.honesty import LEAKAGE_FIELD, split_leakage
    from services.training import lifecycle
    from services.training.callback import DashboardCallback
    from services.transfer import models

    started = time.time()
    frame, class_names = feature_cache.split_rows(spec.dataset, spec.split, spec.seed)
    keras.utils.set_random_seed(spec.seed)
    base = registry.load_backbone(backbone, input_shape=(spec.image_size,) * 2 + (3,), weights=spec.weights)
    sets = feature_cache.extract_splits(base, backbone, frame, image_size=spec.image_size,
                                        batch_size=spec.batch_size, should_stop=should_stop,
                                        progress=lambda fraction, message: progress(0.5 * fraction, message),
                                        pooled=spec.head_pooling == "avg")
    sets = {split: dataclasses.replace(part, features=head_inputs(part.features, spec.head_pooling))
            for split, part in sets.items()}
    head = build_head(sets["train"].features.shape[1:], len(class_names), spec)
    composed = models.compose(base, backbone, head, name=f"{backbone}_feature_head")
    lifecycle.record_model(store, run_id, composed, classes=class_names, weights=weights_label(spec.weights),
                           strategy="C", head_pooling=spec.head_pooling,
                           extraction_seconds=sum(s.seconds for s in sets.values()),
                           features_reused=all(s.reused for s in sets.values()),
                           feature_keys={split: s.key.digest for split, s in sets.items()},
                           **{LEAKAGE_FIELD: split_leakage(frame)},
                           **{f"{split}_images": len(s.paths) for split, s in sets.items()})
    # the comparison's throttled watcher (at most one store read a second, not one per batch)
    fit_stop = lifecycle.watcher(store, run_id, lambda fraction, message: progress(0.5 + 0.4 * fraction, f"head {message}"),
                           should_stop)
    validation = (sets["val"].features, sets["val"].labels)
    dashboard = DashboardCallback(run_id=run_id, store_path=store.path, hyperparameters=store.get_run(run_id).hyperparameters,
                                  batch_size=spec.batch_size, validation_data=validation, class_names=class_names,
                                  finalize=False, should_stop=fit_stop)
    head.fit(sets["train"].features, sets["train"].labels, validation_data=validation, epochs=spec.epochs,
             batch_size=spec.batch_size, shuffle=True, verbose=0, callbacks=[dashboard])

    def evaluate():
        """The head scored on the cached validation and test features (macro F1 intervals over
        source images), with the composed model's parameter counts and the optional cross-validation."""
        parts = {split: (sets[split].features, sets[split].labels) for split in ("val", "test") if split in sets}
        source = dict(zip(frame["path"].astype(str), frame["source_image"].astype(str)))
        groups = {split: [source.get(p) or p for p in sets[split].paths] for split in parts}
        summary = lifecycle.score(store, run_id, head, parts, class_names, groups=groups)
        summary |= lifecycle.parameter_summary(composed)  # the callback recorded the head's alone
        if spec.folds >= 2:
            progress(0.9, f"{spec.folds}-fold cross-validation grouped by source image")
            summary |= cross_validation(sets, frame, class_names, spec, should_stop).summary()
        return composed, summary, None

    return lifecycle.conclude(store, run_id, dashboard, evaluate, class_names=class_names, started=started)


def head_inputs(features: np.ndarray, pooling: str) -> np.ndarray:
    """What the head is fitted and scored on: for the global-average-pooling head the maps
    averaged once, as 1 x 1 maps (the head's pooling of them is the identity, and every epoch
    reads 25x less data for MobileNet v2 at 150 px: bench/bench_transfer.py); the book's Flatten
    head needs the whole maps. Strategy C reads them pooled from the cache already
    (:func:`services.transfer.features.load_cached`), so the whole maps are never in memory."""
    if pooling != "avg" or features.shape[1:3] == (1, 1):
        return features
    return feature_cache.pool_maps(features)


def build_head(feature_shape, num_classes: int, spec: ExperimentSpec):
    """Strategy C's head for ``spec`` (units, pooling), compiled with its learning rate."""
    from services.transfer import models

    head = models.feature_head(feature_shape, num_classes, units=spec.head_units, pooling=spec.head_pooling)
    models.compile_model(head, spec.head_learning_rate)
    return head


def fit_predict_head(spec: ExperimentSpec, num_classes: int):
    """``fit_predict(train_x, train_y, test_x)`` training a fresh head (same seed) per call."""
    def fit_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
        import keras

        keras.utils.set_random_seed(spec.seed)
        head = build_head(train_x.shape[1:], num_classes, spec)
        head.fit(train_x, train_y, epochs=spec.epochs, batch_size=spec.batch_size, shuffle=True, verbose=0)
        return np.asarray(head.predict(test_x, verbose=0))

    return fit_predict


def cross_validation(sets: dict, frame, class_names: list[str], spec: ExperimentSpec, should_stop):
    """k-fold cross-validation of the head over every part's cached features, grouped by the
    tiles' source image (a tile whose source is unknown is its own group)."""
    from services.transfer.crossval import cross_validate

    source = dict(zip(frame["path"].astype(str), frame["source_image"].astype(str)))
    paths = [p for s in sets.values() for p in s.paths]
    features = np.concatenate([s.features for s in sets.values()])
    labels = np.concatenate([s.labels for s in sets.values()])
    groups = [source.get(p) or p for p in paths]
    return cross_validate(features, labels, groups, class_names, fit_predict_head(spec, len(class_names)),
                          folds=spec.folds, seed=spec.seed, should_stop=should_stop)
