"""Run configuration, launcher and worker: refusals before launch, failures at start, and a
worker SIGKILLed mid-run that resumes at its next epoch with the same history."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from services.errors import UserFacingError
from services.training import launcher
from services.training.config import InvalidConfig, RunConfig
from tests.conftest import stop_background_processes, wait_for
from services.training.inspection import first_layer_view
from services.training.store import FAILED, FINISHED, INTERRUPTED, QUEUED, RUNNING, RunStore


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    """One indexed demo dataset for the whole module (generating it is the slow part)."""
    root = tmp_path_factory.mktemp("training-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DASHBOARD_DATA_DIR", str(root))
        from services.datasets.demo import ensure_demo_dataset
        from services.datasets.index import load_index

        load_index(ensure_demo_dataset())
    yield root
    stop_background_processes(root)


@pytest.fixture
def data_root(demo_root, monkeypatch):
    """The shared demo data root with an empty run store."""
    monkeypatch.setenv("DASHBOARD_DATA_DIR", str(demo_root))
    shutil.rmtree(demo_root / "runs", ignore_errors=True)
    return demo_root


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, "epochs"), ({"batch_size": -4}, "batch size"), ({"learning_rate": float("nan")}, "Learning rate"),
    ({"learning_rate": 0}, "Learning rate"), ({"optimizer": "adamax9"}, "optimizer"), ({"model": "nope"}, "Unknown model"),
    ({"image_size": 20}, "cnn_v1 needs at least 48"), ({"epochs": 2.5}, "epochs"),
    ({"dataset": "nowhere"}, "no dataset called 'nowhere'"), ({"split": "never-saved"}, "no saved split"),
])
def test_invalid_hyperparameters_are_refused_before_launch(data_root, change, message):
    with pytest.raises(InvalidConfig, match=message):
        launcher.start_run(RunConfig(**change))
    assert RunStore().list_runs() == []


def _run_in_process(config: RunConfig) -> str:
    from services.training.worker import execute

    store = RunStore()  # recorded as it was queued; its data may have vanished since
    run_id = store.create_run(config.name, model=config.model, dataset=config.dataset, split=config.split,
                              source="cli", config=config.to_dict(), status=RUNNING)
    execute(run_id)
    return run_id


@pytest.mark.parametrize("change, message", [
    ({"dataset": "vanished"}, "no dataset called 'vanished'"),
    ({"split": "deleted-split"}, "no saved split 'deleted-split'"),
    ({"options": {"wings": 2}}, "Invalid option for cnn_v1"),
])
def test_runs_whose_data_or_model_cannot_be_had_fail_cleanly_at_start(data_root, change, message):
    run_id = _run_in_process(RunConfig(**{"epochs": 1, "image_size": 48, **change}))
    run = RunStore().get_run(run_id)
    assert run.status == FAILED and message in run.error
    assert run.epochs_done == 0


@pytest.fixture
def manager(data_root):
    """The data root's job manager; its runner (and workers) are shut down after the test."""
    from services.jobs import JobManager

    jobs = JobManager()
    yield jobs
    jobs.shutdown_runner()


def test_sigkilled_worker_is_interrupted_and_resumes_at_its_next_epoch_with_the_same_history(data_root, manager):
    store = RunStore()
    config = RunConfig(model="cnn_v1", dataset="demo", epochs=8, batch_size=16, image_size=48)
    run_id = launcher.start_run(config, store, manager)  # a training job in a real worker process
    first_job = store.get_run(run_id).job_id
    assert manager.get(first_job).kind == "training" and manager.get(first_job).params["run_id"] == run_id
    waiting = launcher.start_run(RunConfig(model="cnn_v1", dataset="demo", epochs=1, batch_size=16, image_size=48,
                                           name="waits for the slot"), store, manager)
    wait_for(lambda: store.get_run(run_id).epochs_done >= 2, timeout=240)
    assert store.get_run(waiting).status == QUEUED  # the TensorFlow slot is taken: it waits
    assert manager.get(store.get_run(waiting).job_id).status == "queued"
    launcher.stop_run(waiting, store, manager)  # leave the slot to the resumed run below
    os.killpg(store.get_run(run_id).pid, signal.SIGKILL)
    # the job runner gives the run its job's ending (no page involved)
    wait_for(lambda: store.get_run(run_id).status == INTERRUPTED, timeout=120)
    killed = store.get_run(run_id)
    assert killed.status == INTERRUPTED and "Resume continues" in killed.error
    before = store.epoch_table(run_id)
    done_at_kill = killed.epochs_done
    assert len(before) == done_at_kill
    assert (store.run_dir(run_id) / "backup").is_dir() and (store.run_dir(run_id) / "last.keras").exists()

    job_id = launcher.resume_run(run_id, store, manager)  # re-submitted as a new training job
    assert job_id != first_job
    state = manager.wait(job_id, timeout=300)
    assert state.status == "finished", (state.error, store.get_run(run_id).error)

    after = store.epoch_table(run_id)
    resumed_at = int(store.metrics(run_id, names=["resumed_at_epoch"]).value.iloc[0])
    assert resumed_at in (done_at_kill - 1, done_at_kill)  # the last backed-up epoch
    assert list(after.epoch) == list(range(8))  # each epoch exactly once
    kept = before[before.epoch < resumed_at].set_index("epoch")[["loss", "val_loss", "accuracy"]]
    assert not kept.empty
    assert after.set_index("epoch").loc[kept.index, kept.columns].equals(kept)
    run = store.get_run(run_id)
    assert run.status == FINISHED and run.epochs_done == 8
    assert "test_accuracy" in run.summary and "val_macro_f1" in run.summary
    assert run.summary["total_parameters"] > 0 and run.summary["weights"] == "random init"
    assert not {"parameters", "params_total", "total"} & set(run.summary)  # one name for one figure
    assert store.artifact_path(run_id, "best_model") and store.artifact_path(run_id, "final_model")
    assert any((store.run_dir(run_id) / "tensorboard").rglob("events.out.tfevents*"))
    # a run that ended well keeps its best checkpoint only: no backups, no last-epoch copy
    assert not (store.run_dir(run_id) / "backup").exists() and not (store.run_dir(run_id) / "last.keras").exists()
    assert store.artifact_path(run_id, "final_model") == store.artifact_path(run_id, "best_model")


def test_training_job_body_runs_inline_and_keeps_what_it_was_asked_to(data_root):
    """The job body through run_inline (as a worker process would run it)."""
    from services.jobs import run_inline

    store = RunStore()
    run_id = launcher.create_run_for(RunConfig(model="cnn_v1", dataset="demo", epochs=2, batch_size=32,
                                               image_size=48, keep="all"), store)
    result = run_inline("training", {"run_id": run_id, "store": str(store.path)}, data_root / "jobs" / "inline")
    assert result.status == "finished" and result.result["status"] == FINISHED
    run = store.get_run(run_id)
    assert run.status == FINISHED and "test_accuracy" in run.summary
    assert (store.run_dir(run_id) / "last.keras").exists()  # keep="all" keeps the last checkpoint
    assert not (store.run_dir(run_id) / "backup").exists()


def test_only_ended_runs_can_be_resumed(data_root):
    store = RunStore()
    run_id = store.create_run("done", source="dashboard", status=FINISHED)
    with pytest.raises(UserFacingError, match="Only stopped, interrupted or failed"):
        launcher.resume_run(run_id, store)


def test_cli_run_logs_to_the_store_and_its_model_is_inspected_in_the_monitor(data_root, capsys):
    from services.training.__main__ import main

    code = main(["--model", "cnn_v1", "--dataset", "demo", "--epochs", "1", "--image-size", "48",
                 "--batch-size", "32", "--name", "headless"])
    assert code == 0
    [run] = RunStore().list_runs()
    assert (run.name, run.source, run.status, run.epochs_done) == ("headless", "cli", FINISHED, 1)
    assert f"run {run.id}: finished" in capsys.readouterr().out
    assert main(["--epochs", "0"]) == 2  # refused before anything runs
    assert len(RunStore().list_runs()) == 1

    store = RunStore()
    tile = store.artifacts(run.id, "val_predictions")  # written for the monitor's tile grid
    predictions = pd.read_csv(tile.path.iloc[0])
    assert set(predictions.columns) >= {"path", "label", "predicted", "confidence"} and len(predictions) > 0
    view = first_layer_view(store.artifact_path(run.id, "final_model"), predictions.path.iloc[0])
    assert view.kernels.shape == (12, 3, 3, 3) and view.before_pooling.shape == (12, 16, 16)
    assert view.after_pooling.shape == (12, 8, 8)  # cnn_v1 at 48 px: stride-3 conv, then pool 2
    assert 0 <= view.before_pooling.min() and view.before_pooling.max() <= 1

    # ... and the monitor shows the same view for that run
    app = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages" / "training_monitor.py"),
                            default_timeout=60).run()
    assert not app.exception
    tile_captions = [caption for image in app.get("image") for caption in image.captions]
    assert any(c.startswith(("correct: true", "WRONG: true")) for c in tile_captions)  # the tile grid
    [show] = [b for b in app.button if b.label == "Show filters and feature maps"]
    show.click().run()
    assert not app.exception
    captions = [c.value for c in app.caption]
    assert any("Learned kernels of `conv2d" in c for c in captions)
    assert any("after `max_pooling2d" in c for c in captions)


def test_strategy_selection_and_chief(monkeypatch):
    from services.training import distribution

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribution.is_chief()
    assert distribution.select_strategy("auto").num_replicas_in_sync == 1
    assert type(distribution.select_strategy("mirrored")).__name__ == "MirroredStrategy"
    cluster = {"worker": ["a:2222", "b:2222"]}
    monkeypatch.setenv("TF_CONFIG", f'{{"cluster": {cluster!r}, "task": {{"type": "worker", "index": 1}}}}'.replace("'", '"'))
    assert not distribution.is_chief()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:2222"]}, "task": {"type": "worker", "index": 0}}')
    assert distribution.is_chief()
    monkeypatch.setenv("TF_CONFIG", "not json")
    with pytest.raises(UserFacingError, match="TF_CONFIG"):
        distribution.is_chief()


def test_a_job_that_dies_before_its_run_starts_fails_the_run_in_the_monitor(data_root, manager):
    """A training job that fails before the run could record anything (here: its store path is
    unusable) leaves the run queued; the job runner's sweep gives the run the job's failure."""
    store = RunStore()
    run_id = launcher.create_run_for(RunConfig(epochs=1, image_size=48), store)
    (data_root / "not-a-folder").write_text("a file")
    job_id = manager.submit("training", "doomed", {"run_id": run_id, "store": str(data_root / "not-a-folder" / "x.sqlite")})
    store.update_run(run_id, job_id=job_id)
    assert manager.wait(job_id, timeout=120).status == "failed"
    wait_for(lambda: store.get_run(run_id).status != QUEUED, timeout=30)
    run = store.get_run(run_id)
    assert run.status == FAILED and run.error and "Traceback" not in run.error
