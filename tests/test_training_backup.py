"""The resume backup (services/training/backup.py): written whole or not at all, read newest
readable first, and agreed by every worker of a multi-worker run (the chief's decides).

Real Keras fits on tiny arrays; a real process killed while it saves; a real two-process
MultiWorkerMirroredStrategy cluster on 127.0.0.1 for the agreement rule."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.backup_helpers import state_digest, tiny_data, tiny_model

REPO = Path(__file__).resolve().parent.parent


def fit_with_backup(folder: Path, epochs: int):
    """A fit whose backup goes to ``folder``; returns the model and its state digest after each epoch."""
    import keras

    from services.training.backup import EpochBackup

    keras.utils.set_random_seed(0)
    model = tiny_model()
    digests: list[str] = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: digests.append(state_digest(model)))
    x, y = tiny_data()
    model.fit(x, y, epochs=epochs, batch_size=4, verbose=0, callbacks=[EpochBackup(folder), record])
    return model, digests


def helper_environment(tf_config: dict | None = None) -> dict[str, str]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def test_each_epoch_is_saved_whole_and_a_resumed_fit_starts_after_it(tmp_path):
    from services.training import backup

    folder = tmp_path / "backup"
    _, digests = fit_with_backup(folder, 3)
    assert sorted(path.name for path in folder.iterdir()) == ["epoch-0002.weights.h5", "epoch-0003.weights.h5"]
    resumed = tiny_model()
    assert backup.restore(resumed, folder) == 3
    assert state_digest(resumed) == digests[2]  # weights and optimizer state (slots, iteration count)
    x, y = tiny_data()
    history = resumed.fit(x, y, epochs=4, initial_epoch=3, batch_size=4, verbose=0)
    assert len(history.history["loss"]) == 1


def test_an_unreadable_or_unfinished_backup_is_never_trusted(tmp_path):
    from services.training import backup

    folder = tmp_path / "backup"
    _, digests = fit_with_backup(folder, 3)
    newest, previous = backup.snapshot_path(folder, 3), backup.snapshot_path(folder, 2)
    content = newest.read_bytes()
    (folder / "saving-999.weights.h5").write_bytes(content)  # complete, but never renamed: not trusted
    newest.write_bytes(content[: len(content) // 2])  # what a non-atomic writer killed halfway leaves
    resumed = tiny_model()
    assert backup.restore(resumed, folder) == 2 and state_digest(resumed) == digests[1]

    previous.write_bytes(b"\x89HDF\r\n\x1a\n garbage")
    fresh = tiny_model()
    fresh.optimizer.build(fresh.trainable_variables)
    untouched = state_digest(fresh)
    assert backup.restore(fresh, folder) == 0
    assert state_digest(fresh) == untouched  # a load that failed halfway is undone

    backup.save(fresh, folder, 1)
    assert [path.name for path in folder.iterdir()] == ["epoch-0001.weights.h5"]  # leftovers removed


def test_a_keras_backup_and_restore_folder_is_still_resumed(tmp_path):
    """Runs started before this module have Keras's BackupAndRestore files; they resume too."""
    import keras

    from services.training import backup

    folder = tmp_path / "backup"
    keras.utils.set_random_seed(0)
    model = tiny_model()
    x, y = tiny_data()
    model.fit(x, y, epochs=2, batch_size=4, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(str(folder), delete_checkpoint=False, double_checkpoint=True)])
    resumed = tiny_model()
    assert backup.restore(resumed, folder) == 2 and state_digest(resumed) == state_digest(model)
    backup.save(resumed, folder, 3)
    assert [path.name for path in folder.iterdir()] == ["epoch-0003.weights.h5"]  # the old format is gone


def test_a_process_killed_while_saving_leaves_only_complete_backups(tmp_path):
    from services.training import backup

    folder = tmp_path / "backup"
    log = tmp_path / "saver.log"
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "tests.backup_helpers", "save-forever", str(folder)],
                                   cwd=REPO, env=helper_environment(), stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        # kill it the moment a save is under way, after at least two complete ones
        while not (len(backup.saved_epochs(folder)) >= 2 and any(folder.glob("saving-*"))):
            assert process.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the saving process never got going"
            time.sleep(0.001)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    complete = backup.saved_epochs(folder)
    assert complete and all(path.name.startswith("epoch-") for _, path in complete)
    for _, path in complete:  # every file under a trusted name loads
        model = tiny_model(width=1024, hidden=2)
        model.optimizer.build(model.trainable_variables)
        model.load_weights(path)
    assert backup.restore(tiny_model(width=1024, hidden=2), folder) == complete[0][0]


def run_cluster(arguments: list[str], timeout: float = 300) -> list[list[dict]]:
    """Two ``tests.backup_helpers agree`` processes as a MultiWorkerMirroredStrategy cluster; each
    one's printed JSON lines."""
    from services.training.distribution import local_cluster

    processes = [subprocess.Popen([sys.executable, "-m", "tests.backup_helpers", "agree", *arguments], cwd=REPO,
                                  env=helper_environment(tf_config), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
                 for tf_config in local_cluster(2)]
    outputs = []
    try:
        deadline = time.monotonic() + timeout
        for process in processes:
            output, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert process.returncode == 0, output[-3000:]
            outputs.append([json.loads(line) for line in output.splitlines() if line.startswith("{")])
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)
    return outputs


def test_every_worker_resumes_where_the_chief_backup_says_whatever_its_own_disk_holds(tmp_path):
    """Case 1: the chief has a backup after epoch 2, worker 1 only an unreadable one (a kill
    while saving): both resume at 2 with the chief's weights and optimizer state. Case 2: the
    chief has none, worker 1 a readable one after epoch 3: both start at 0, from the same state."""
    from services.training import backup

    chief_1, worker_1, chief_2, worker_2 = (tmp_path / name for name in ("chief1", "worker1", "chief2", "worker2"))
    fit_with_backup(chief_1, 2)
    worker_1.mkdir()
    backup.snapshot_path(worker_1, 3).write_bytes(b"\x89HDF\r\n\x1a\n half-written")
    _, worker_2_digests = fit_with_backup(worker_2, 3)
    expected = tiny_model()
    assert backup.restore(expected, chief_1) == 2

    chief, worker = run_cluster([str(chief_1), str(worker_1), str(chief_2), str(worker_2)])
    assert [line["replicas"] for line in chief + worker] == [2, 2, 2, 2]  # a real two-worker cluster
    assert [(line["epoch"], line["digest"]) for line in chief] == [(2, state_digest(expected)),
                                                                  (0, chief[1]["digest"])]
    assert [(line["epoch"], line["digest"]) for line in worker] == [(line["epoch"], line["digest"]) for line in chief]
    assert chief[1]["digest"] != worker_2_digests[2]


@pytest.mark.parametrize("epochs_done", [0, 4])
def test_without_a_cluster_resume_is_the_local_backup(tmp_path, epochs_done):
    from services.training import backup

    folder = tmp_path / "backup"
    if epochs_done:
        fit_with_backup(folder, epochs_done)
    assert backup.resume(tiny_model(), folder, chief=True, multi_worker=False) == epochs_done
