"""One lifecycle for every training run: how it starts, how it ends, how it is scored and exported.

Used by the training worker (:mod:`services.training.worker`) and by the transfer-learning
strategies, so a run's status, failure text, summary names, scores and exported files are
written in this one place. No TensorFlow is imported at module level.

API (all take the process's one :class:`~services.training.store.RunStore`)::

    lifecycle.begin(store, run_id, job_id=None)          # status running, pid, host, heartbeat
    lifecycle.record_model(store, run_id, model, **more) # total_parameters, trainable_parameters, ...
    lifecycle.outcome(store, run_id, stopped=..., diverged=...) -> status
        # finished when the last epoch completed (even if Stop arrived after it), else stopped
    lifecycle.conclude(store, run_id, callback, evaluate, class_names=...) -> status
        # the end of every training-like run: outcome, then score, export, classes.json, finish
    lifecycle.raise_unless_finished(store, run_id, status)   # a job body's JobStopped / error
    lifecycle.watcher(store, run_id, report, should_stop)    # the job's stop + epoch progress
    lifecycle.score(store, run_id, model, parts, class_names, val_rows=None) -> summary dict
        # parts: {"val": dataset or (x, y), "test": ...}; writes <part>_accuracy, <part>_macro_f1,
        # <part>_recall, <part>_confusion_matrix, val_predictions.csv and ``calibration``
        # (temperature fitted on val, ECE before/after on test: services.metrics.calibration)
    lifecycle.export_final(store, run_id, model, best=None) -> Path   # final.keras (or best.keras)
    lifecycle.finish(store, run_id, started=..., **summary)  # summary + finished + tidy()
    lifecycle.fail(store, run_id, error)                 # failed (or stopped) with a clean message
    lifecycle.tidy(store, run_id, keep="best")           # backups and last.keras deleted
    lifecycle.run(store, run_id, body) -> status         # begin, body(), fail() on any exception

Summary names (one set, everywhere): ``total_parameters``, ``trainable_parameters``,
``non_trainable_parameters``, ``val_accuracy``, ``val_macro_f1``, ``val_recall``,
``val_confusion_matrix``, ``test_*`` likewise, ``wall_seconds``, ``seconds_per_epoch``,
``weights`` (``"random init"``, ``"imagenet"``... as chosen), ``strategy``, ``precision``,
``classes``, ``train_images`` / ``val_images`` / ``test_images``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from services import run_layout
from services.csv_files import write_csv
from services.errors import UserFacingError
from services.training import store as run_store

KEEP_BEST, KEEP_ALL = "best", "all"
"""What a run keeps when it ends well: the best checkpoint only (default), or every checkpoint."""


def begin(store: run_store.RunStore, run_id: str, job_id: str | None = None) -> run_store.Run:
    """Mark the run running in this process (a resumed run keeps its first start time)."""
    run = store.get_run(run_id)
    fields: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), "started": run.started or time.time(),
                              "stop_requested": 0}
    if job_id is not None:
        fields["job_id"] = job_id
    store.set_status(run_id, run_store.RUNNING, **fields)
    return store.get_run(run_id)


def parameter_summary(model) -> dict[str, int]:
    from services.models.histology import parameter_counts

    counts = parameter_counts(model)
    return {"total_parameters": counts["total"], "trainable_parameters": counts["trainable"],
            "non_trainable_parameters": counts["non_trainable"]}


def record_model(store: run_store.RunStore, run_id: str, model, **more: Any) -> None:
    """The model's parameter counts (and anything else known at start) in the summary."""
    store.update_summary(run_id, **parameter_summary(model), **more)


def outcome_of(*, stopped: bool, diverged: bool, epochs: int | None, epochs_done: int) -> str:
    """How a fit that returned ended: diverged, finished (its last epoch completed, even when a
    Stop arrived after it), or stopped."""
    if diverged:
        return run_store.DIVERGED
    if not stopped or (epochs is not None and epochs_done >= epochs):
        return run_store.FINISHED
    return run_store.STOPPED


def outcome(store: run_store.RunStore, run_id: str, *, stopped: bool, diverged: bool) -> str:
    """:func:`outcome_of` for a recorded run (its epochs and completed epochs)."""
    run = store.get_run(run_id)
    return outcome_of(stopped=stopped, diverged=diverged, epochs=run.epochs, epochs_done=run.epochs_done)


def conclude(store: run_store.RunStore, run_id: str, callback, evaluate: Callable[[], tuple[Any, dict, Any]], *,
             class_names: list[str], started: float | None = None, keep: str = KEEP_BEST) -> str:
    """The end of any training-like run once its fit returned; returns the run's status.

    ``callback`` is the fit's :class:`~services.training.callback.DashboardCallback` (whether
    Stop or a diverging loss ended it). A diverged or stopped run ends so; a finished one is
    scored by ``evaluate()`` -> ``(model to export, summary, best checkpoint's model or None)``,
    its model exported (:func:`export_final`), its classes written, and :func:`finish`\ ed."""
    status = outcome(store, run_id, stopped=callback.stopped_by_request, diverged=callback.diverged_at is not None)
    if status != run_store.FINISHED:
        if status == run_store.STOPPED:
            store.set_status(run_id, run_store.STOPPED)
        return status  # a diverged run was recorded by the callback
    model, summary, best = evaluate()
    export_final(store, run_id, model, best=best)
    run_layout.classes_file(store.run_dir(run_id)).write_text(json.dumps(class_names))
    return finish(store, run_id, started=started, keep=keep, **summary)


def raise_unless_finished(store: run_store.RunStore, run_id: str, status: str, label: str | None = None) -> None:
    """A job body's answer to how its run ended: nothing when finished, ``JobStopped`` (the job
    ends stopped) when stopped, otherwise a :class:`UserFacingError` with the run's error."""
    from services.jobs.context import JobStopped

    if status == run_store.FINISHED:
        return
    if status == run_store.STOPPED:
        raise JobStopped()
    run = store.find_run(run_id)
    error = run.error if run else None
    if label:
        raise UserFacingError(f"run {label} ended {status}: {error or 'see the training monitor'}")
    raise UserFacingError(error or f"the run ended {status}")


PROGRESS_INTERVAL_S = 1.0
"""At most one read of the run store a second by a :func:`watcher` (not one per batch)."""


def _eta(seconds_per_epoch: float | None, remaining_epochs: int) -> str:
    if not seconds_per_epoch or remaining_epochs <= 0:
        return ""
    left = seconds_per_epoch * remaining_epochs
    return f", about {left:.0f} s left" if left < 120 else f", about {left / 60:.0f} min left"


def watcher(store: run_store.RunStore, run_id: str, report: Callable[[float, str], None],
            should_stop: Callable[[], bool]) -> Callable[[], bool]:
    """The one run watcher of a job: a ``should_stop`` for the fit (the job's) that also reports
    the run's epochs and an ETA, at most once a second: ``report(fraction of the run, message)``."""
    last = [float("-inf")]

    def watch() -> bool:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL_S:
            last[0] = now
            run = store.find_run(run_id)
            if run is not None and run.epochs:
                table = store.epoch_table(run_id)
                seconds = table["epoch_seconds"].dropna() if "epoch_seconds" in table else []
                mean = float(np.mean(seconds)) if len(seconds) else None
                report(run.epochs_done / run.epochs,
                       f"epoch {run.epochs_done}/{run.epochs}{_eta(mean, run.epochs - run.epochs_done)}")
        return should_stop()

    return watch


def failure_message(error: BaseException) -> str:
    """What the user reads for a run that failed: the message of a :class:`UserFacingError`,
    a hint for out-of-memory, otherwise the exception's type and first line (no traceback)."""
    if isinstance(error, UserFacingError):
        return str(error)
    name = type(error).__name__
    if name == "ResourceExhaustedError" or isinstance(error, MemoryError):
        return f"Out of memory ({name}). Lower the batch size or the image size."
    first = (str(error).strip().splitlines() or [""])[0][:300]
    return f"{name}: {first}" if first else name


def _is_stop(error: BaseException) -> bool:
    return isinstance(error, KeyboardInterrupt) or type(error).__name__ == "JobStopped"


def fail(store: run_store.RunStore, run_id: str, error: BaseException) -> str:
    """Record ``error`` (the traceback goes to the run folder) and return the status set."""
    try:
        run_layout.traceback_file(store.run_dir(run_id)).write_text(
            "".join(traceback.format_exception(type(error), error, error.__traceback__)))
    except OSError:
        pass
    if _is_stop(error):
        store.set_status(run_id, run_store.STOPPED)
        return run_store.STOPPED
    store.set_status(run_id, run_store.FAILED, error=failure_message(error))
    return run_store.FAILED


def run(store: run_store.RunStore, run_id: str, body: Callable[[], str], job_id: str | None = None) -> str:
    """``begin``, then ``body()`` (which returns the final status it set); any exception is
    recorded with :func:`fail`. Never raises for a training error."""
    begin(store, run_id, job_id)
    try:
        return body()
    except BaseException as error:  # noqa: BLE001 - a run records every way it can end
        return fail(store, run_id, error)


def _predictions(model, data) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, class probabilities) over ``(x, y)`` arrays or a dataset of batches."""
    if isinstance(data, tuple):
        probabilities = np.asarray(model.predict(data[0], verbose=0))
        return np.asarray(data[1]), probabilities
    truths, probabilities = [], []
    for images, labels in data:
        output = model(images, training=False)
        truths.append(np.asarray(labels["main"] if isinstance(labels, dict) else labels))
        probabilities.append(np.asarray(output))
    return np.concatenate(truths), np.concatenate(probabilities)


def score(store: run_store.RunStore, run_id: str, model, parts: dict[str, Any], class_names: list[str],
          val_rows=None, groups: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score ``model`` on each part; ``val_rows`` (a frame with path, label, label_index in the
    order of the validation data) also writes the per-tile validation predictions. ``groups``
    (part -> source image of every tile, in the part's order) adds ``<part>_macro_f1_interval``:
    macro F1 with a bootstrap over source images (:mod:`services.metrics.intervals`)."""
    from services.metrics.calibration import calibrate
    from services.metrics.intervals import bootstrap_macro_f1
    from services.training.evaluation import scores

    summary: dict[str, Any] = {}
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for part, data in parts.items():
        if data is None:
            continue
        truth, probabilities = _predictions(model, data)
        if truth.ndim > 1:
            truth = truth.argmax(axis=-1)
        outputs[part] = (probabilities, truth)
        predicted, confidence = probabilities.argmax(axis=-1), probabilities.max(axis=-1)
        result = scores(truth, predicted, class_names)
        summary |= {f"{part}_accuracy": result["accuracy"], f"{part}_macro_f1": result["macro_f1"],
                    f"{part}_recall": result["recall"], f"{part}_confusion_matrix": result["confusion_matrix"]}
        part_groups = (groups or {}).get(part)
        if part_groups is not None and len(part_groups) == len(truth):
            summary[f"{part}_macro_f1_interval"] = bootstrap_macro_f1(
                truth, predicted, list(part_groups), len(class_names)).to_dict()
        if part == "val" and val_rows is not None:
            frame = val_rows[["path", "label", "label_index"]].copy()
            frame["predicted_index"], frame["confidence"] = predicted[: len(frame)], confidence[: len(frame)]
            frame["predicted"] = [class_names[i] for i in frame["predicted_index"]]
            path = run_layout.val_predictions(store.run_dir(run_id))
            write_csv(frame, path)
            store.add_artifact(run_id, "val_predictions", path)
    if "val" in outputs:  # temperature scaling fitted on validation, judged on the held-out test split
        summary["calibration"] = calibrate(outputs["val"], outputs.get("test"))
    return summary


def export_final(store: run_store.RunStore, run_id: str, model, best=None) -> Path:
    """Record the model to use for inference as ``final_model``. When it is the best
    checkpoint itself (no auxiliary heads to strip), the checkpoint is recorded instead of
    writing a second copy of the same weights."""
    run_dir = store.run_dir(run_id)
    best_path = run_layout.best_model(run_dir)
    if best is not None and model is best and best_path.exists():
        path = best_path
    else:
        path = run_layout.final_model(run_dir)
        model.save(path)
    store.add_artifact(run_id, "final_model", path)
    if best_path.exists():
        store.add_artifact(run_id, "best_model", best_path)
    return path


def tidy(store: run_store.RunStore, run_id: str, keep: str = KEEP_BEST) -> int:
    """After a good end: delete the resume state (backup folder) and, unless ``keep="all"``,
    the last-epoch checkpoint. Returns the bytes freed."""
    run_dir = store.run_dir(run_id)
    freed = 0
    backup = run_layout.backup_dir(run_dir)
    if backup.is_dir():
        freed += run_layout.folder_bytes(backup)
        shutil.rmtree(backup, ignore_errors=True)
    last = run_layout.last_model(run_dir)
    if keep != KEEP_ALL and last.exists() and run_layout.best_model(run_dir).exists():
        freed += last.stat().st_size
        last.unlink()
    elif last.exists():
        store.add_artifact(run_id, "last_model", last)
    return freed


def finish(store: run_store.RunStore, run_id: str, *, started: float | None = None, keep: str = KEEP_BEST,
           **summary: Any) -> str:
    """Write the final summary (with wall time and seconds per epoch), mark the run finished
    and :func:`tidy` its folder."""
    table = store.epoch_table(run_id)
    seconds = table["epoch_seconds"].dropna() if "epoch_seconds" in table else []
    extra: dict[str, Any] = {"seconds_per_epoch": float(np.mean(seconds)) if len(seconds) else None}
    if started is not None:
        extra["wall_seconds"] = time.time() - started
    store.update_summary(run_id, **summary, **extra)
    store.set_status(run_id, run_store.FINISHED)
    tidy(store, run_id, keep)
    return run_store.FINISHED

