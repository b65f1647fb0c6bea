"""A run's resume state in ``<run>/backup/`` (:func:`services.run_layout.backup_dir`), and how
every worker of a multi-worker run agrees on where to resume.

Writing (:class:`EpochBackup`, the chief only): after each epoch the model's and optimizer's
weights go to ``epoch-NNNN.weights.h5`` (N = epochs done). The file is written under a temporary
name, flushed to disk and then renamed, so a file with that name is always complete: a process
killed while saving leaves at most a ``saving-*`` file, which nothing reads and the next save
removes. The two newest epochs are kept (the older one in case the newest cannot be read).

Reading (:func:`restore`): the newest file that loads wins; the folder of Keras's
``BackupAndRestore`` (``latest.weights.h5`` and ``training_metadata.json``, runs started before
this module) is read too.

Agreement (:func:`resume`): before ``fit`` the chief restores its backup (or keeps its initial
weights), and under ``MultiWorkerMirroredStrategy`` every worker then takes the chief's weights,
optimizer state and epoch count over the cluster's collective channel. The chief's backup is the
single source of truth: the workers cannot resume at different epochs or from different weights,
and a worker started again on a fresh machine (no backup of its own) joins correctly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from services import untrusted_json
from services.runtime import tensorflow

tensorflow()  # imported only to train: configure TF before Keras loads it
import keras  # noqa: E402

KEEP = 2
"""Completed epochs whose weights stay on disk (the newest and the one before)."""
SNAPSHOT = re.compile(r"epoch-(\d{4,})\.weights\.h5")
PARTIAL_PREFIX = "saving-"
LEGACY_WEIGHTS, LEGACY_METADATA = "latest.weights.h5", "training_metadata.json"


def snapshot_path(folder: Path, epochs_done: int) -> Path:
    return Path(folder) / f"epoch-{epochs_done:04d}.weights.h5"


def _legacy_backups(folder: Path) -> list[tuple[int, Path]]:
    """Keras ``BackupAndRestore`` files (latest, then its ``.bkp`` copy), with their epoch counts."""
    found = []
    for suffix in ("", ".bkp"):
        weights, metadata = folder / (LEGACY_WEIGHTS + suffix), folder / (LEGACY_METADATA + suffix)
        try:
            epochs = int(untrusted_json.read(metadata)["epoch"])
        except (ValueError, KeyError, TypeError):
            continue
        if weights.is_file() and epochs > 0:
            found.append((epochs, weights))
    return found


def saved_epochs(folder: Path) -> list[tuple[int, Path]]:
    """The complete backups in ``folder``, newest first: (epochs done, weights file)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    snapshots = [(int(match.group(1)), path) for path in folder.iterdir()
                 if (match := SNAPSHOT.fullmatch(path.name))]
    return sorted(snapshots, reverse=True) or _legacy_backups(folder)


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk; folders cannot be opened on Windows."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def save(model, folder: Path, epochs_done: int) -> Path:
    """Write the weights after ``epochs_done`` epochs atomically, then drop all other backups but
    the one before it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{PARTIAL_PREFIX}{os.getpid()}.weights.h5"  # Keras wants the .weights.h5 ending
    model.save_weights(partial, overwrite=True)
    _fsync(partial)
    target = snapshot_path(folder, epochs_done)
    os.replace(partial, target)
    _fsync(folder)
    # the one before stays; any later epochs belong to a timeline this run has left (restarted)
    keep = {target, *[path for epochs, path in saved_epochs(folder) if epochs < epochs_done][:KEEP - 1]}
    for path in folder.iterdir():
        if path.name.startswith((PARTIAL_PREFIX, LEGACY_WEIGHTS, LEGACY_METADATA)) \
                or (SNAPSHOT.fullmatch(path.name) and path not in keep):
            path.unlink(missing_ok=True)
    return target


def _build_optimizer(model) -> None:
    """Create the optimizer's variables (slots, iteration count) so they can be restored and agreed."""
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        with model.distribute_strategy.scope():
            optimizer.build(model.trainable_variables)


def _state_variables(model) -> list:
    """Everything a resumed fit needs, in the same order on every worker: the model's variables
    (weights, normalisation statistics) and the optimizer's."""
    optimizer_variables = list(model.optimizer.variables) if model.optimizer is not None else []
    return list(model.variables) + optimizer_variables


def restore(model, folder: Path) -> int:
    """Load the newest readable backup of ``folder`` into ``model`` (weights and optimizer state);
    return the epochs it had done, 0 when there is none (the model is then left as it was)."""
    candidates = saved_epochs(folder)
    if not candidates:
        return 0
    _build_optimizer(model)
    variables = _state_variables(model)
    before = [variable.numpy() for variable in variables]  # a failed load may have assigned some
    for epochs, path in candidates:
        try:
            model.load_weights(path)
        except (OSError, ValueError) as error:
            print(f"backup: {path.name} cannot be loaded ({type(error).__name__}); trying an older one", flush=True)
            continue
        return epochs
    for variable, value in zip(variables, before):
        variable.assign(value)
    print("backup: no backup could be loaded; the run starts its epochs again", flush=True)
    return 0


def agree_with_chief(model, epochs_done: int, *, chief: bool) -> int:
    """Collective step run by every worker at the same point: all take the chief's variables and
    epoch count (an all-reduce sum to which only the chief contributes non-zeros: exact, since
    ``x + 0 == x``; one all-reduce per dtype, in the same order everywhere). Returns the chief's
    ``epochs_done``."""
    tf = tensorflow()
    strategy = model.distribute_strategy
    _build_optimizer(model)
    variables = _state_variables(model)
    values = [tf.convert_to_tensor(variable.value) for variable in variables]
    values.append(tf.constant(epochs_done, tf.int64))
    contribution = values if chief else [tf.zeros_like(value) for value in values]
    by_dtype: dict[str, list[int]] = {}
    for index, value in enumerate(contribution):
        by_dtype.setdefault(value.dtype.name, []).append(index)
    groups = [[contribution[index] for index in by_dtype[name]] for name in sorted(by_dtype)]

    @tf.function
    def broadcast():
        context = lambda: [tf.distribute.get_replica_context().all_reduce("sum", group) for group in groups]  # noqa: E731
        return strategy.run(context)

    agreed = [None] * len(contribution)
    for name, group in zip(sorted(by_dtype), broadcast()):
        for index, value in zip(by_dtype[name], group):
            agreed[index] = strategy.experimental_local_results(value)[0]
    for variable, value in zip(variables, agreed):
        variable.assign(value)
    return int(agreed[-1])


def resume(model, folder: Path, *, chief: bool, multi_worker: bool) -> int:
    """The epoch every worker starts ``fit`` at (pass it as ``initial_epoch``): the chief's backup
    decides; a non-chief's own disk is never read. Call after compiling, before ``fit``."""
    epochs_done = restore(model, folder) if chief else 0
    if multi_worker:
        epochs_done = agree_with_chief(model, epochs_done, chief=chief)
        print(f"backup: the workers agreed to start at epoch {epochs_done + 1} (the chief's backup)", flush=True)
    return epochs_done


class EpochBackup(keras.callbacks.Callback):
    """Saves the resume state after every epoch (see :func:`save`); give it to the chief only."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = Path(folder)

    def on_epoch_end(self, epoch, logs=None):
        save(self.model, self.folder, epoch + 1)
