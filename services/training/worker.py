"""The training process: ``python -m services.training.worker <run_id> [--store PATH]``.

The job body :func:`training_job` (kind ``training``; the dashboard submits it with
:func:`services.training.launcher.start_run`, the job runner runs it in a worker process that
outlives the browser and the page) and the CLI above run one run of the store to its end. It builds
the model with ``catalog.build_model(config.model, **config.options)``, trains it with
``ModelCheckpoint`` (best and last ``.keras``), a per-epoch backup (:mod:`services.training.backup`:
a killed run resumes at its next epoch, all workers of a multi-worker run from the chief's), TensorBoard event files and :class:`DashboardCallback`, then scores the best
model on validation and test data and records the summary, all through
:mod:`services.training.lifecycle`. Any exception marks the run failed with its message.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from services import provenance, run_layout
from services.errors import UserFacingError
from services.training import lifecycle
from services.training import store as run_store
from services.metrics.honesty import LEAKAGE_FIELD, split_leakage
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
    """The dashboard callback first (an epoch it logged but the backup did not save is forgotten
    and redone on resume), then the chief's resume backup (:mod:`services.training.backup`),
    best/last checkpoints, TensorBoard.

    A non-chief worker of a multi-worker run gets the dashboard callback only (it logs nothing):
    only the chief writes checkpoints and the backup every worker resumes from."""
    import keras

    from services.training.backup import EpochBackup

    folder = Path(run_dir)
    monitor = "val_main_accuracy" if multi_output else "val_accuracy"
    if not chief:
        return [dashboard_callback]
    callbacks = [dashboard_callback, EpochBackup(run_layout.backup_dir(folder)),
                 keras.callbacks.ModelCheckpoint(str(run_layout.best_model(folder)), monitor=monitor, mode="max",
                                                 save_best_only=True, initial_value_threshold=best_so_far),
                 keras.callbacks.ModelCheckpoint(str(run_layout.last_model(folder)))]
    if tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(str(run_layout.tensorboard_dir(folder)), update_freq="epoch",
                                                     write_graph=False, profile_batch=0))
    return callbacks


def _shard_by_data(dataset):
    """Multi-worker input: every worker reads the same (seeded) pipeline and takes its share of
    each global batch, so a step sees the same images as one process with that batch size."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options) if dataset is not None else None


def train(store, run_id: str, config: RunConfig, *, scratch: Path | None = None, should_stop=None) -> str:
    """Train ``run_id`` to its end; return its final status. Raises on errors (see :func:`execute`).

    ``scratch`` is set for a non-chief worker of a multi-worker run (its throw-away store's
    folder): it writes no checkpoints, takes the chief's backup, and scores or exports nothing."""
    from services import runtime
    from services.training import backup
    from services.training.distribution import describe, is_multi_worker, prepare_multi_worker_fit, select_strategy

    strategy = select_strategy(config.distribution)  # must come before any other TF work
    import keras

    from services.models.histology import has_auxiliary_heads, inference_model
    from services.training.callback import DashboardCallback
    from services.training.data import load_run_data, with_aux_labels
    from services.training.overview import best_val_accuracy

    chief = scratch is None
    run_dir = store.run_dir(run_id) if chief else Path(scratch)
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
    if is_multi_worker(strategy):
        train_data, val_data = _shard_by_data(train_data), _shard_by_data(val_data)
        prepare_multi_worker_fit(model, train_data)
    initial = run_layout.initial_weights(run_dir)
    if chief and not initial.exists():
        model.save_weights(initial)  # the book's habit: keep initial weights for fair comparisons
    replicas = strategy.num_replicas_in_sync
    if chief:
        lifecycle.record_model(store, run_id, model, strategy=describe(strategy), precision=policy,
                               replicas=replicas, global_batch_size=config.batch_size,
                               replica_batch_size=config.batch_size // max(replicas, 1),
                               weights=weights_label(config), classes=data.class_names,
                               train_images=int((data.frame.split == "train").sum()),
                               val_images=int((data.frame.split == "val").sum()),
                               test_images=int((data.frame.split == "test").sum()),
                               **{LEAKAGE_FIELD: split_leakage(data.frame)})
        store.update_run(run_id, synthetic=data.synthetic)  # the callback records the device
    dashboard = DashboardCallback(run_id=run_id, store_path=store.path, hyperparameters=config.hyperparameters(),
                                  # per-epoch confusion matrices predict on one worker only: under
                                  # MultiWorkerMirroredStrategy every worker must run the same collectives
                                  batch_size=config.batch_size,
                                  validation_data=data.val if chief and not is_multi_worker(strategy) else None,
                                  class_names=data.class_names, finalize=False, is_chief=chief,
                                  should_stop=should_stop)
    callbacks = training_callbacks(run_dir, dashboard, multi_output=multi_output, chief=chief,
                                   best_so_far=best_val_accuracy(store.epoch_table(run_id)) if chief else None)
    try:
        # every worker takes the chief's backup here (a collective step under MultiWorkerMirroredStrategy)
        initial_epoch = backup.resume(model, run_layout.backup_dir(run_dir), chief=chief,
                                      multi_worker=is_multi_worker(strategy))
        model.fit(train_data, validation_data=val_data, epochs=config.epochs, initial_epoch=initial_epoch,
                  verbose=0, shuffle=False, callbacks=callbacks)
    except Exception as error:
        if is_multi_worker(strategy) and type(error).__module__.startswith("tensorflow"):
            raise UserFacingError(
                "A worker of this multi-worker run stopped answering (killed, crashed or unreachable), so "
                f"the run cannot go on ({type(error).__name__}). Start every worker again with the same "
                "--run-id to resume from the last backup.") from error
        raise
    if not chief:
        return run_store.FINISHED

    def evaluate():
        """The best checkpoint (auxiliary heads stripped) scored on validation and test data."""
        from services.models.catalog import load_saved_model

        best_path = run_layout.best_model(run_dir)
        best = load_saved_model(best_path) if best_path.exists() else model
        final = inference_model(best)
        summary = lifecycle.score(store, run_id, final, {"val": data.val, "test": data.test}, data.class_names,
                                  val_rows=data.part("val"),
                                  groups={part: data.part(part)["source_image"].tolist() for part in ("val", "test")})
        return final, summary, best

    return lifecycle.conclude(store, run_id, dashboard, evaluate, class_names=data.class_names, started=started,
                              keep=config.keep)


def weights_label(config: RunConfig) -> str:
    """How the run's weights start, for the runs table: random init unless the model loads
    pretrained (ImageNet) or earlier weights."""
    options = config.options or {}
    if options.get("init_model"):
        return "from an earlier run"
    return provenance.weights_label(options.get("weights"))


def train_unlogged(config: RunConfig, run_key: str | None = None) -> str:
    """A non-chief machine of a multi-worker job: trains its share, logs to a throw-away store in a
    scratch folder under ``<runs>/workers/`` that is deleted when it ends. It keeps no backup: on
    a restart it takes the chief's (:func:`services.training.backup.resume`). ``run_key`` (the
    chief's run id) names the scratch run."""
    from services.config import get_settings

    workers_dir = get_settings().runs_dir / "workers"
    workers_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"{run_store.check_run_id(run_key)}-" if run_key else "worker-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=workers_dir) as scratch:
        store = run_store.RunStore(Path(scratch) / "scratch.sqlite")
        run_id = store.create_run(config.name, model=config.model, dataset=config.dataset, config=config.to_dict(),
                                  status=run_store.RUNNING, run_id=run_key)
        return train(store, run_id, config, scratch=Path(scratch))


def execute(run_id: str, store_path: str | os.PathLike | None = None, *, store=None, should_stop=None,
            job_id: str | None = None) -> str:
    """Run ``run_id`` in this process and record how it ended; never raises for a training error."""
    store = store if store is not None else run_store.RunStore(store_path)
    config = RunConfig.from_dict(store.get_run(run_id).config)
    return lifecycle.run(store, run_id, lambda: train(store, run_id, config, should_stop=should_stop), job_id=job_id)


def training_job(params: dict, context) -> dict:
    """Job body of kind ``training`` (services/jobs/kinds.py): params ``{"run_id": ...}`` and
    optionally ``"store"`` (the run store path; default the data root's). Resumable: a resumed
    attempt continues from the run's last backup. A run that fails raises its message; a
    stopped one ends the job stopped."""
    store = run_store.RunStore(params.get("store"))
    run_id = run_store.check_run_id(params["run_id"])
    watch = lifecycle.watcher(store, run_id, context.progress, context.should_stop)
    status = execute(run_id, store=store, should_stop=watch, job_id=getattr(context, "job_id", None))
    lifecycle.raise_unless_finished(store, run_id, status)
    return {"run_id": run_id, "status": status, "epochs_done": store.get_run(run_id).epochs_done}


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
