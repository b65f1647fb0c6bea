"""Processes for the backup tests (tests/test_training_backup.py), run as
``python -m tests.backup_helpers COMMAND ...`` so that a test can kill them or start two as a cluster.

- ``save-forever FOLDER``: saves a model's backup after "epoch" 1, 2, 3 ... until killed.
- ``agree CHIEF_FOLDER WORKER_FOLDER ...``: one worker of a ``TF_CONFIG`` cluster; for each pair of
  folders (the chief reads the first, worker 1 is given the second) it builds a model, scrambles
  its weights on non-chiefs, runs :func:`services.training.backup.resume` and prints one JSON line
  ``{"replicas", "epoch", "digest"}``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def tiny_model(width: int = 8, hidden: int = 1):
    """A compiled dense model (Adam: its optimizer has slots and an iteration count)."""
    import keras

    model = keras.Sequential([keras.Input((4,)), *[keras.layers.Dense(width, activation="relu") for _ in range(hidden)],
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    return model


def tiny_data():
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.random((16, 4), dtype=np.float32), np.arange(16) % 2


def state_digest(model) -> str:
    """A hash of everything a resumed fit starts from: model and optimizer variables."""
    digest = hashlib.sha256()
    for variable in [*model.variables, *model.optimizer.variables]:
        digest.update(variable.numpy().tobytes())
    return digest.hexdigest()


def save_forever(folder: Path) -> None:
    from services.training import backup

    model = tiny_model(width=1024, hidden=2)  # about 12 MB with Adam's slots: each save takes a while
    x, y = tiny_data()
    model.fit(x, y, epochs=1, verbose=0)
    epochs = 0
    while True:
        epochs += 1
        backup.save(model, folder, epochs)


def agree(folders: list[Path]) -> None:
    import numpy as np

    from services.training import backup
    from services.training.distribution import is_chief, select_strategy

    strategy = select_strategy("multi_worker")
    chief = is_chief()
    for chief_folder, own_folder in zip(folders[::2], folders[1::2]):
        with strategy.scope():
            model = tiny_model()
        if not chief:  # a worker whose weights differ from the chief's must still end up with the chief's
            for variable in model.variables:
                variable.assign(np.full(variable.shape, 0.5, dtype=variable.dtype))
        epoch = backup.resume(model, chief_folder if chief else own_folder, chief=chief, multi_worker=True)
        print(json.dumps({"replicas": strategy.num_replicas_in_sync, "epoch": epoch, "digest": state_digest(model)}),
              flush=True)


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    if command == "save-forever":
        save_forever(Path(arguments[0]))
    elif command == "agree":
        agree([Path(argument) for argument in arguments])
    else:
        sys.exit(f"unknown command {command}")
