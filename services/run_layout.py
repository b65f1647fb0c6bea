"""The one module that names the files inside a training run's folder and a job's folder.

Training runs live in ``<data root>/runs/<run id>/``, jobs in ``<data root>/jobs/<job id>/``.
Everything else asks this module for a path instead of spelling a file name. A feature's own
outputs inside its job folder are named beside its job (a tissue map's in
:mod:`services.tissuemap.job`, a batch detection's in :mod:`services.detection.batch`);
``tests/test_owned_names.py`` fails when any other module spells one of these names.
"""

from __future__ import annotations

from pathlib import Path

# --- training runs (also transfer-learning strategies) -----------------------------------------
BEST_MODEL = "best.keras"
"""The checkpoint with the best monitored validation metric (kept by default)."""
LAST_MODEL = "last.keras"
"""The model after the last completed epoch (kept while the run can be resumed)."""
FINAL_MODEL = "final.keras"
"""The exported model of a finished run (strategy C: the head on its backbone)."""
BACKUP_DIR = "backup"
"""Resume state (services/training/backup.py); deleted when a run ends well."""
TENSORBOARD_DIR = "tensorboard"
WORKER_LOG = "worker.log"
"""stdout and stderr of the process that ran the run or job."""
CONFUSION_DIR = "confusion"
"""Per-epoch validation confusion matrices (``epoch_0000.json``...)."""
VAL_PREDICTIONS = "val_predictions.csv"
CLASSES = "classes.json"
INITIAL_WEIGHTS = "initial.weights.h5"
"""The weights before the first epoch (the book's habit, for fair comparisons)."""
TRACEBACK = "traceback.txt"
"""The full traceback of a failed run (the user sees a clean message; this is for the log)."""

# --- jobs ---------------------------------------------------------------------------------------
PREVIEW = "preview.png"
RESULT = "result.png"
# Style-transfer jobs (both engines): inputs written by the page, outputs of silhouette mode.
CONTENT_INPUT, STYLE_INPUT, MASK_INPUT = "content.png", "style.png", "mask.png"
RESULT_MASKED, STYLE_MASKED = "result_masked.png", "style_masked.png"
STYLE_PROGRESS = "style_progress.json"
"""Steps done and loss history as of the last preview (a resumed style job continues from it)."""
EXPERIMENT_STATE = "experiment.json"
"""Transfer comparison jobs: the items finished and the run in flight (a resumed job continues)."""


def best_model(run_dir: Path) -> Path:
    return Path(run_dir) / BEST_MODEL


def last_model(run_dir: Path) -> Path:
    return Path(run_dir) / LAST_MODEL


def final_model(run_dir: Path) -> Path:
    return Path(run_dir) / FINAL_MODEL


def backup_dir(run_dir: Path) -> Path:
    return Path(run_dir) / BACKUP_DIR


def tensorboard_dir(run_dir: Path) -> Path:
    return Path(run_dir) / TENSORBOARD_DIR


def worker_log(folder: Path) -> Path:
    return Path(folder) / WORKER_LOG


def confusion_matrix_file(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / CONFUSION_DIR / f"epoch_{int(epoch):04d}.json"


def val_predictions(run_dir: Path) -> Path:
    return Path(run_dir) / VAL_PREDICTIONS


def classes_file(run_dir: Path) -> Path:
    return Path(run_dir) / CLASSES


def initial_weights(run_dir: Path) -> Path:
    return Path(run_dir) / INITIAL_WEIGHTS


def traceback_file(run_dir: Path) -> Path:
    return Path(run_dir) / TRACEBACK


def experiment_state(job_dir: Path) -> Path:
    return Path(job_dir) / EXPERIMENT_STATE


MODEL_ARTIFACTS = {"best_model": BEST_MODEL, "last_model": LAST_MODEL, "final_model": FINAL_MODEL}
"""Artifact kind (as recorded in the run store) -> file name in the run folder."""


def folder_bytes(folder: Path) -> int:
    """Disk use of a folder (regular files only; links are not followed)."""
    total = 0
    for path in Path(folder).rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue
    return total
