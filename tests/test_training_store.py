"""The SQLite run store: round trips, atomic writes under a SIGKILLed writer, foreign files,
liveness, Stop."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.training import liveness
from services.training.ingest import deliver
from services.training.store import INTERRUPTED, QUEUED, RUNNING, STOPPED, RunNotFound, RunStore, StoreError

REPO = Path(__file__).resolve().parent.parent
GROUP = 20  # rows per transaction written by the writer process

WRITER = f"""
import sys, itertools, time
sys.path.insert(0, {str(REPO)!r})
from services.training.store import RunStore
store = RunStore(sys.argv[1])
print("ready", flush=True)
for group in itertools.count():
    store.log_metrics(sys.argv[2], {{f"m{{i}}": group for i in range({GROUP})}}, epoch=group, step=group)
    time.sleep(0.002)
"""


def test_runs_metrics_and_artifacts_round_trip(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run("first", model="cnn_v1", dataset="demo", hyperparameters={"lr": 0.01}, epochs=2)
    store.log_metrics(run_id, {"loss": 1.5, "val_loss": float("inf")}, epoch=0)
    store.log_metrics(run_id, {"batch_loss": 1.2}, epoch=1, step=7)
    store.add_artifact(run_id, "best_model", tmp_path / "best.keras", epoch=1)
    store.update_summary(run_id, test_accuracy=0.5)
    store.update_summary(run_id, macro_f1=0.4)
    run = store.get_run(run_id)
    assert (run.name, run.status, run.hyperparameters, run.epochs) == ("first", QUEUED, {"lr": 0.01}, 2)
    assert run.summary == {"test_accuracy": 0.5, "macro_f1": 0.4}
    frame = store.metrics(run_id)
    assert list(frame.name) == ["loss", "val_loss", "batch_loss"]
    assert frame.value.iloc[1] == float("inf")
    table = store.epoch_table(run_id)
    assert list(table.epoch) == [0] and table.loss.iloc[0] == 1.5  # batch rows are not epoch rows
    assert store.artifacts(run_id).kind.tolist() == ["best_model"]
    assert store.artifact_path(run_id, "best_model") is None  # the file does not exist
    assert [r.id for r in store.list_runs()] == [run_id]
    assert store.get_run(run_id).heartbeat is not None
    store.delete_run(run_id)
    with pytest.raises(RunNotFound):
        store.get_run(run_id)
    assert store.metrics(run_id).empty


def test_reader_never_sees_half_written_rows_of_a_sigkilled_writer(tmp_path):
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    run_id = store.create_run("busy", status=RUNNING)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), run_id], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    checks = 0
    deadline = time.monotonic() + 30
    while checks < 40 and time.monotonic() < deadline:
        frame = store.metrics(run_id)  # concurrent reads while the writer commits
        sizes = frame.groupby("epoch").size()
        assert (sizes == GROUP).all(), sizes[sizes != GROUP]
        checks += 1 if len(sizes) else 0
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert checks >= 40
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    sizes = RunStore(path).metrics(run_id).groupby("epoch").size()
    assert len(sizes) > 0 and (sizes == GROUP).all()
    assert list(sizes.index) == list(range(len(sizes)))  # every committed group, in order


@pytest.mark.parametrize("content", [
    b"this is my thesis, not a database\n" * 10,
    b"SQLite format 3\x00" + b"\x13" * 400,  # header, then garbage
])
def test_corrupt_file_is_refused_and_left_untouched(tmp_path, content):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="untouched|damaged"):
        store = RunStore(path)
        store.list_runs()
    assert path.read_bytes() == content


def test_another_programs_database_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER, amount REAL)")
        connection.execute("INSERT INTO invoices VALUES (1, 9.5)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="another program"):
        RunStore(path)
    assert path.read_bytes() == before


def test_vanished_worker_is_marked_interrupted(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    local = store.create_run("local", status=RUNNING)
    store.update_run(local, host=socket.gethostname(), pid=gone.pid)
    remote_alive = store.create_run("remote alive", status=RUNNING)
    store.update_run(remote_alive, host="gpu-server-7", heartbeat=time.time())
    remote_silent = store.create_run("remote silent", status=RUNNING)
    store.update_run(remote_silent, host="gpu-server-7", heartbeat=time.time() - 3600)
    mine = store.create_run("this process", status=RUNNING)
    store.update_run(mine, host=socket.gethostname(), pid=os.getpid())
    job_run = store.create_run("a job's run (the job runner watches it)", status=RUNNING)
    store.update_run(job_run, host=socket.gethostname(), pid=gone.pid, job_id="job1")
    assert sorted(liveness.interrupt_vanished(store)) == sorted([local, remote_silent])
    assert store.get_run(job_run).status == RUNNING
    assert store.get_run(local).status == INTERRUPTED and "vanished" in store.get_run(local).error
    assert store.get_run(remote_alive).status == RUNNING and store.get_run(mine).status == RUNNING


def test_stop_of_a_queued_run_ends_it_and_of_a_running_one_raises_its_flag(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    queued = store.create_run("a", source="script")
    running = store.create_run("b", source="script", status=RUNNING)
    store.request_stop(queued)
    store.request_stop(running)
    assert store.get_run(queued).status == STOPPED and store.get_run(queued).ended
    assert store.get_run(running).status == RUNNING and store.stop_requested(running)


def test_opening_a_second_store_in_one_process_keeps_the_first_ones_writes_visible(tmp_path):
    """Opening a store must not drop this process's SQLite locks: if it did, another process
    closing its connection would delete the WAL and the first store's writes would be lost."""
    path = tmp_path / "runs.sqlite"
    first = RunStore(path)
    first.create_run("before")
    RunStore(path)  # e.g. the worker opening a second store on the same file
    reader = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
              "print(c.execute('select count(*) from runs').fetchone()[0]); c.close()")
    subprocess.run([sys.executable, "-c", reader, str(path)], check=True, capture_output=True)
    first.create_run("after")
    output = subprocess.run([sys.executable, "-c", reader, str(path)], check=True, capture_output=True, text=True)
    assert output.stdout.strip() == "2"
    assert [run.name for run in RunStore(path).list_runs()] == ["after", "before"]


def test_the_lifecycle_records_failures_cleanly_and_a_stop_as_stopped(data_root):
    from services.errors import UserFacingError
    from services.training import lifecycle
    from services.training.store import FAILED, QUEUED, STOPPED

    store = RunStore()
    run_id = store.create_run("fails", source="dashboard", status=QUEUED)

    def broken():
        raise ValueError("bad shape (3, 4)\n  File /secret/path.py, line 9")

    assert lifecycle.run(store, run_id, broken, job_id="abc123") == FAILED
    run = store.get_run(run_id)
    assert run.error == "ValueError: bad shape (3, 4)" and run.job_id == "abc123" and run.pid
    assert "Traceback" in (store.run_dir(run_id) / "traceback.txt").read_text()

    def refused():
        raise UserFacingError("The dataset has no val part.")

    assert lifecycle.run(store, run_id, refused) == FAILED
    assert store.get_run(run_id).error == "The dataset has no val part."

    def interrupted():
        raise KeyboardInterrupt

    assert lifecycle.run(store, run_id, interrupted) == STOPPED
    assert store.get_run(run_id).error is None
    assert lifecycle.failure_message(MemoryError()).startswith("Out of memory")


def test_a_version_1_store_is_upgraded_in_place(data_root):
    import sqlite3

    store = RunStore()
    run_id = store.create_run("old", status="finished")
    store.close()
    connection = sqlite3.connect(store.path)
    for column in ("notes", "tags", "job_id"):
        connection.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    connection.execute("DROP TABLE deliveries")
    connection.execute("PRAGMA user_version = 1")
    connection.commit()
    connection.close()
    upgraded = RunStore(store.path)
    run = upgraded.get_run(run_id)
    assert (run.name, run.notes, run.tags) == ("old", "", [])
    upgraded.set_notes(run_id, "kept", ["a"])
    assert upgraded.get_run(run_id).tags == ["a"]
    assert deliver(upgraded, "client", 0, lambda connection, store: None)
    assert not deliver(upgraded, "client", 0, lambda connection, store: None)  # a repeat changes nothing


def test_runs_record_their_owner_and_old_stores_gain_the_column(tmp_path):
    import sqlite3

    from services.training.store import RunStore

    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    run_id = store.create_run("mine", owner="ann@lab.org")
    assert store.get_run(run_id).owner == "ann@lab.org"
    assert store.get_run(store.create_run("script")).owner is None
    # A version-2 file (no owner column) is migrated in place and keeps its runs.
    legacy = tmp_path / "legacy" / "runs.sqlite"
    legacy.parent.mkdir()
    connection = sqlite3.connect(path)
    connection.execute(f"VACUUM INTO '{legacy}'")
    connection.close()
    connection = sqlite3.connect(legacy)
    connection.execute("ALTER TABLE runs DROP COLUMN owner")
    connection.execute("PRAGMA user_version = 2")
    connection.commit()
    connection.close()
    migrated = RunStore(legacy)
    assert migrated.get_run(run_id).owner is None and migrated.get_run(run_id).name == "mine"


def test_an_impossible_batch_is_refused_by_its_memory_estimate():
    import pytest

    from services.training.config import InvalidConfig, RunConfig, check_batch_memory

    with pytest.raises(InvalidConfig, match="smaller batch"):
        RunConfig(batch_size=4096, image_size=1024).validate()
    check_batch_memory(32, 150, available=8 * 1024**3)  # the defaults fit in 8 GB
    with pytest.raises(InvalidConfig):
        check_batch_memory(512, 512, available=8 * 1024**3)
