"""Strategies B/C/D: architectures, preprocessing, availability rules, and real runs end to end
(worker processes for D, the in-job head for C) with generated weights on the demo set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.errors import UserFacingError
from services.models import weights as registry
from services.transfer import experiments, models, report
from services.transfer.results import BOOK_REFERENCE_COLUMN
from tests.transfer_helpers import BACKBONE, SIZE, demo_split, install_generated_weights


def test_strategy_b_is_the_books_vgg16_v4_and_c_is_the_books_head():
    from services.models.histology import parameter_counts

    vgg = registry.load_backbone("vgg16", input_shape=(150, 150, 3), weights="random")
    model = models.frozen_backbone_model(vgg, "vgg16", 8)
    assert parameter_counts(model)["total"] == 23_112_520
    assert parameter_counts(model)["trainable"] == 15_477_256
    assert model.get_layer("block5_conv3").trainable and not model.get_layer("block4_conv3").trainable
    head = models.feature_head((4, 4, 512), 8)
    dense = [layer for layer in head.layers if layer.__class__.__name__ == "Dense"]
    dropout = [layer.rate for layer in head.layers if layer.__class__.__name__ == "Dropout"]
    assert [d.units for d in dense] == [512, 512, 8] and dropout == [0.3, 0.3]
    models.compile_model(head, models.HEAD_C_LEARNING_RATE)
    assert float(head.optimizer.learning_rate) == pytest.approx(1e-4)


def test_the_pooling_head_is_fitted_on_maps_pooled_once_and_reads_whole_maps():
    from services.transfer.strategy_c import head_inputs

    maps = np.random.default_rng(0).normal(size=(6, 5, 5, 16)).astype(np.float32)
    pooled = head_inputs(maps, "avg")
    assert pooled.shape == (6, 1, 1, 16) and head_inputs(maps, "flatten") is maps
    np.testing.assert_allclose(pooled[:, 0, 0], maps.mean(axis=(1, 2)), rtol=1e-6)
    head = models.feature_head(maps.shape[1:], 3, units=8, pooling="avg")
    np.testing.assert_allclose(head.predict(maps, verbose=0), head.predict(pooled, verbose=0), atol=1e-6)


@pytest.mark.parametrize("backbone", sorted(registry.BACKBONES))
def test_preprocessing_inside_the_models_equals_the_backbones_own(backbone):
    unit = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    inside = np.asarray(models.preprocess_layer(backbone)(unit))
    own = np.asarray(registry.preprocess_function(backbone)(unit * 255.0))
    np.testing.assert_allclose(inside, own, rtol=1e-5, atol=1e-3)


def test_fine_tuning_unfreezes_only_the_top_block_without_batch_norm():
    base = registry.load_backbone(BACKBONE, input_shape=(SIZE, SIZE, 3), weights="random")
    model = models.frozen_backbone_model(base, BACKBONE, 3, trainable_top_layers=0)
    assert all(not model.get_layer(n).trainable for n in models.backbone_layer_names(model))
    unfrozen = models.unfreeze_top_block(model, BACKBONE, models.backbone_layer_names(model))
    assert {"block_16_expand", "block_16_depthwise", "block_16_project", "Conv_1"} <= set(unfrozen)
    assert not model.get_layer("Conv_1_bn").trainable and not model.get_layer("block_15_project").trainable


def test_without_imagenet_weights_transfer_is_disabled_with_reason_and_fix(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(data_root / "no-keras-cache"))
    spec = experiments.ExperimentSpec("demo", "grouped", ["A", "B", "C"], backbones=[BACKBONE, "inception_v3"],
                                      image_size=64)
    items = {item.label: item for item in experiments.plan(spec)}
    assert items["A · cnn_v1"].enabled
    for label in ("B · mobilenet_v2", "C · mobilenet_v2"):
        assert not items[label].enabled
        assert "no ImageNet weights" in items[label].reason and registry.spec(BACKBONE).file_name in items[label].reason
    assert "accepts inputs from 75" in items["B · inception_v3"].reason  # size refused with the range
    random_init = experiments.plan(experiments.ExperimentSpec("demo", "grouped", ["C"], weights="random",
                                                              image_size=SIZE))
    assert random_init[0].enabled and random_init[0].label == "C · mobilenet_v2 (random init)"
    demo_split()
    submitted = []

    class Recorder:  # start_experiment must refuse before anything is queued
        def submit(self, kind, title, params):
            submitted.append((kind, title, json.loads(json.dumps(params))))
            return "job-1"

    with pytest.raises(UserFacingError, match="nothing to run"):
        experiments.start_experiment(Recorder(), experiments.ExperimentSpec("demo", "grouped", ["C"], image_size=SIZE))
    with pytest.raises(UserFacingError, match="no saved split"):
        experiments.start_experiment(Recorder(), experiments.ExperimentSpec("demo", "nope", ["A"]))
    assert submitted == []
    assert experiments.start_experiment(Recorder(), random_spec := experiments.ExperimentSpec(
        "demo", "grouped", ["C"], weights="random", image_size=SIZE)) == "job-1"
    assert submitted == [("transfer", "C on demo/grouped", {"spec": random_spec.to_dict()})]


def test_strategies_b_aug_c_and_d_run_end_to_end_and_c_reuses_its_features(data_root, monkeypatch):
    from services import run_layout
    from services.jobs.context import run_inline
    from services.models.catalog import load_saved_model
    from services.training.store import RunStore

    monkeypatch.setenv("DASHBOARD_TENSORBOARD", "0")
    demo_split(per_class=9)
    install_generated_weights()
    store = RunStore()
    spec = experiments.ExperimentSpec("demo", "grouped", ["B+aug", "C", "D"], backbones=[BACKBONE], image_size=SIZE,
                                      epochs=1, fine_tune_epochs=1, batch_size=16)
    state = run_inline("transfer", {"spec": spec.to_dict()}, data_root / "jobs" / "one")
    assert state.status == "finished", state.error
    messages = [message for _, message in state.reports if message]
    assert any("B+aug · mobilenet_v2 (1/3): epoch" in m for m in messages)  # per-epoch progress of B
    assert any("phase 2 (fine-tuning), epoch" in m for m in messages)
    results = {r.strategy: r for r in experiments.collect_results(state.result, store)}
    from services.datasets.splits import load_split

    test_tiles = int((load_split("demo", "grouped").split == "test").sum())
    for result in results.values():
        assert result.status == "finished" and result.weights == "imagenet" and result.synthetic
        assert 0 <= result.val_accuracy <= 1 and 0 <= result.test_accuracy <= 1 and result.macro_f1 is not None
        assert sum(map(sum, result.confusion)) == test_tiles  # every test tile scored once
        assert set(result.per_class_recall) == set(result.class_names) and len(result.class_names) == 8
        assert result.total_parameters > result.trainable_parameters > 0
        assert result.seconds_per_epoch > 0 and result.wall_seconds > 0 and result.history["val_accuracy"]
    b, c, d = results["B+aug"], results["C"], results["D"]
    assert b.augment and store.get_run(b.run_id).config["augment"] is True
    assert b.trainable_parameters > c.trainable_parameters  # B also trains the backbone's last 4 layers
    assert store.get_run(b.run_id).model == "transfer_frozen" and b.extraction_seconds is None
    assert c.extraction_seconds > 0 and c.features_reused is False
    assert c.trainable_parameters == 1280 * 512 + 512 + 512 * 512 + 512 + 512 * 8 + 8  # only the head trains
    entry_d = next(e for e in state.result["entries"] if e["strategy"] == "D")
    assert len(entry_d["run_ids"]) == 2 and len(d.history["val_accuracy"]) == 2  # head phase + fine-tune
    assert [store.get_run(i).model for i in entry_d["run_ids"]] == ["transfer_frozen", "transfer_finetune"]
    tuned = load_saved_model(d.model_path)
    assert tuned.get_layer("Conv_1").trainable and not tuned.get_layer("block_1_project").trainable
    composed = load_saved_model(c.model_path)  # the head back on its backbone, for inspection
    assert composed.output.shape[-1] == 8 and composed.input.shape[1:] == (SIZE, SIZE, 3)

    for run_id in (b.run_id, *entry_d["run_ids"]):  # the best checkpoint only, no backups
        folder = store.run_dir(run_id)
        assert run_layout.best_model(folder).exists() and not run_layout.backup_dir(folder).exists()
        assert not run_layout.last_model(folder).exists()

    again = experiments.ExperimentSpec("demo", "grouped", ["C"], backbones=[BACKBONE], image_size=SIZE,
                                       epochs=1, batch_size=16, head_units=32, head_pooling="avg")
    rerun = run_inline("transfer", {"spec": again.to_dict()}, data_root / "jobs" / "two")
    [second] = experiments.collect_results(rerun.result, store)
    assert second.features_reused is True and second.extraction_seconds == 0 and second.head_pooling == "avg"
    assert second.trainable_parameters == 1280 * 32 + 32 + 32 * 32 + 32 + 32 * 8 + 8
    assert load_saved_model(second.model_path).get_layer("head_pool")  # global average pooling head
    document = report.html_report([b, c, d, second])
    assert "C · mobilenet_v2" in document and BOOK_REFERENCE_COLUMN in document


def test_a_stopped_comparison_resumes_the_same_run_and_cross_validates(data_root, monkeypatch):
    from services.jobs.context import run_inline
    from services.training.store import RunStore

    monkeypatch.setenv("DASHBOARD_TENSORBOARD", "0")
    demo_split(per_class=6)
    spec = experiments.ExperimentSpec("demo", "grouped", ["C"], weights="random", image_size=SIZE, epochs=2,
                                      batch_size=16, head_units=16, folds=3)
    folder = data_root / "jobs" / "resumable"
    stopped = run_inline("transfer", {"spec": spec.to_dict()}, folder, stop_after=2)
    assert stopped.status == "stopped"
    store = RunStore()
    [run] = store.list_runs()
    assert run.status == "stopped" and run.source == "transfer"
    resumed = run_inline("transfer", {"spec": spec.to_dict()}, folder, resumed=True)
    assert resumed.status == "finished", resumed.error
    [entry] = resumed.result["entries"]
    assert entry["run_ids"] == [run.id] and len(store.list_runs()) == 1  # the same run, continued
    [result] = experiments.collect_results(resumed.result, store)
    assert result.cv_folds == 3 and 0 <= result.cv_accuracy_mean <= 1 and result.cv_accuracy_std >= 0
    summary = store.get_run(run.id).summary
    assert sum(summary["cv_fold_sizes"]) == 6 * 8  # every tile of the split held out once


def test_a_scratch_model_too_big_for_the_image_size_is_planned_disabled():
    from services.transfer.spec import ExperimentSpec, plan

    spec = ExperimentSpec(dataset="demo", split="s", strategies=["A"], scratch_models=["cnn_v1", "cnn_v2"],
                          image_size=32)
    items = {item.model: item for item in plan(spec)}
    assert not items["cnn_v1"].enabled and "48 px" in items["cnn_v1"].reason
    assert items["cnn_v2"].enabled
