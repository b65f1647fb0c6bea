"""Strategy C end to end: cached features of a frozen backbone, then a small head fitted on them.

Runs in its own OS process (``python -m services.transfer.strategy_c <run_id> --store PATH``,
started by :func:`start_strategy_c`), like the training worker: the Keras work stays out of the
server process, and that process keeps a single run-store object (see docs/transfer_learning.md
on the run store's file locks). Recorded as a training-monitor run (source ``transfer``) with
the same summary fields as the worker's runs, plus ``extraction_seconds`` (0 when every split came from the cache),
``features_reused`` and the cache keys. The head is saved on its backbone (``final.keras``) so
the comparison page can classify and explain tiles with it like any other run.
"""

from __future__ import annotations

import os
import time

from services.errors import UserFacingError
from services.jobs import JobStopped
from services.transfer import features as feature_cache
from services.transfer.metrics import evaluate, parameter_counts


def start_strategy_c(spec, backbone: str, label: str, *, store) -> str:
    """Record the run and start its process; returns the run id at once."""
    from services.training import store as run_store
    from services.training.launcher import spawn_run_process
    from services.training.data import is_synthetic

    hyperparameters = {"backbone": backbone, "weights": spec.weights, "epochs": spec.epochs,
                       "batch_size": spec.batch_size, "learning_rate": spec.head_learning_rate,
                       "head_units": spec.head_units, "image_size": spec.image_size, "strategy": "C"}
    run_id = store.create_run(label, model="feature_head", dataset=spec.dataset, split=spec.split,
                              source="transfer", hyperparameters=hyperparameters, epochs=spec.epochs,
                              config={"spec": spec.to_dict(), "backbone": backbone}, status=run_store.RUNNING,
                              synthetic=is_synthetic(spec.dataset))
    store.set_status(run_id, run_store.RUNNING)  # started and heartbeat now: not taken for a dead run
    spawn_run_process("services.transfer.strategy_c", run_id, store)
    return run_id


def run_strategy_c(run_id: str, *, store) -> str:
    """Extract (or reuse) features, fit the head, score it, record everything in ``run_id``."""
    from services.runtime import tensorflow

    tensorflow()
    import keras

    from services.models import weights as registry
    from services.training import store as run_store
    from services.training.callback import DashboardCallback
    from services.transfer import models
    from services.transfer.experiments import ExperimentSpec

    run = store.get_run(run_id)
    spec, backbone = ExperimentSpec.from_dict(run.config["spec"]), run.config["backbone"]
    started = time.time()
    last_report = [0.0]

    def should_stop() -> bool:
        return store.stop_requested(run_id)

    def progress(fraction: float, message: str) -> None:
        if time.monotonic() - last_report[0] > 0.5:
            last_report[0] = time.monotonic()
            store.update_summary(run_id, progress=fraction, stage=message)

    try:
        store.set_status(run_id, run_store.RUNNING, pid=os.getpid())
        frame, class_names = feature_cache.split_rows(spec.dataset, spec.split, spec.seed)
        keras.utils.set_random_seed(spec.seed)
        base = registry.load_backbone(backbone, input_shape=(spec.image_size,) * 2 + (3,), weights=spec.weights)
        sets = feature_cache.extract_splits(base, backbone, frame, image_size=spec.image_size,
                                            batch_size=spec.batch_size, should_stop=should_stop,
                                            progress=lambda fraction, message: progress(0.8 * fraction, message))
        store.update_summary(run_id, extraction_seconds=sum(s.seconds for s in sets.values()),
                             features_reused=all(s.reused for s in sets.values()),
                             feature_keys={split: s.key.digest for split, s in sets.items()}, classes=class_names,
                             progress=0.8, stage="training the head on cached features")
        head = models.feature_head(sets["train"].features.shape[1:], len(class_names), units=spec.head_units)
        models.compile_model(head, spec.head_learning_rate)
        validation = (sets["val"].features, sets["val"].labels)
        dashboard = DashboardCallback(run_id=run_id, store_path=store.path, hyperparameters=run.hyperparameters,
                                      batch_size=spec.batch_size, validation_data=validation,
                                      class_names=class_names, finalize=False)
        head.fit(sets["train"].features, sets["train"].labels, validation_data=validation, epochs=spec.epochs,
                 batch_size=spec.batch_size, shuffle=True, verbose=0, callbacks=[dashboard])
        if dashboard.stopped_by_request:
            raise JobStopped()
        composed = models.compose(base, backbone, head, name=f"{backbone}_feature_head")
        counts = parameter_counts(composed)
        summary = _scores(head, sets, class_names) | {"total_parameters": counts["params_total"],
                                                      "trainable_parameters": counts["params_trainable"]}
        seconds = store.epoch_table(run_id).get("epoch_seconds")
        path = store.run_dir(run_id) / "final.keras"
        composed.save(path)
        store.add_artifact(run_id, "final_model", path)
        store.update_summary(run_id, **summary, wall_seconds=time.time() - started, progress=1.0,
                             seconds_per_epoch=float(seconds.mean()) if seconds is not None else None)
        store.set_status(run_id, run_store.FINISHED)
        return run_store.FINISHED
    except JobStopped:
        store.set_status(run_id, run_store.STOPPED)
        return run_store.STOPPED
    except BaseException as error:  # noqa: BLE001 - the process records every way it can end
        message = str(error) if isinstance(error, UserFacingError) else f"{type(error).__name__}: {error}"
        store.set_status(run_id, run_store.FAILED, error=message)
        raise


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


def main(argv: list[str] | None = None) -> int:
    import argparse

    from services.training.store import RunStore

    parser = argparse.ArgumentParser(description="Run one strategy-C run of the run store.")
    parser.add_argument("run_id")
    parser.add_argument("--store", required=True)
    args = parser.parse_args(argv)
    status = run_strategy_c(args.run_id, store=RunStore(args.store))
    print(f"run {args.run_id}: {status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
