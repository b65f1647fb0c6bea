"""Real science on real files: ImageNet MobileNet v1 (alpha 0.25) features on genuine Kather 2016
tiles, and models trained on one colorectal tile set scored on the other (NCT-CRC-HE)."""

from __future__ import annotations

import shutil

import pytest

from services.models import weights as registry
from services.transfer import experiments

MOBILENET = "mobilenet_v1_0.25"
pytestmark = pytest.mark.needs_shared


@pytest.fixture
def real_data(data_root, shared_fixtures, monkeypatch):
    """The 97 Kather tiles and 18 NCT tiles as datasets of the data root, each with a split
    grouped by source image, and the real ImageNet MobileNet installed as a user would."""
    from services.datasets import index, sources, splits

    monkeypatch.setenv("KERAS_HOME", str(data_root / "no-keras-cache"))
    monkeypatch.setenv("DASHBOARD_TENSORBOARD", "0")
    histology = shared_fixtures / "histology"
    for name, folder in (("kather-real", "kather2016"), ("nct-real", "nct-crc-he-100k")):
        shutil.copytree(histology / folder, data_root / "datasets" / name)
        frame = index.usable(index.load_index(sources.dataset_folder(name)))
        splits.save_split(name, "grouped", splits.make_split(frame, method="grouped", seed=3))
    real = shared_fixtures / "keras" / "mobilenet_v1_0.25_224.h5"
    registry.install_weights_file(MOBILENET, real.read_bytes(), original_name=real.name)
    return data_root


def _comparison(folder, **values):
    from services.jobs.context import run_inline
    from services.training.store import RunStore

    spec = experiments.ExperimentSpec(strategies=["C"], backbones=[MOBILENET], split="grouped", epochs=30,
                                      batch_size=16, head_pooling="avg", **values)
    state = run_inline("transfer", {"spec": spec.to_dict()}, folder)
    assert state.status == "finished", state.error
    [result] = experiments.collect_results(state.result, RunStore())
    return result


def test_imagenet_features_beat_random_features_by_20_points_grouped_by_source_image(real_data):
    """Strategy C, 5-fold cross-validation grouped by source image over the 97 real tiles: the
    same head on ImageNet features against random-init features (figures in
    docs/transfer_learning.md)."""
    imagenet = _comparison(real_data / "jobs" / "imagenet", dataset="kather-real", weights="imagenet", folds=5)
    random = _comparison(real_data / "jobs" / "random", dataset="kather-real", weights="random", folds=5)
    assert imagenet.cv_folds == random.cv_folds == 5 and not imagenet.synthetic
    print(f"\nImageNet {imagenet.cv_accuracy_mean:.3f} ± {imagenet.cv_accuracy_std:.3f}, "
          f"random init {random.cv_accuracy_mean:.3f} ± {random.cv_accuracy_std:.3f}")
    assert imagenet.cv_accuracy_mean - random.cv_accuracy_mean >= 0.20


def test_kather_model_on_nct_tiles_and_back_with_an_explicit_class_mapping(real_data):
    from services.datasets import index, sources
    from services.model_service.cache import ModelCache
    from services.transfer import crossdataset, service_ops

    cache = ModelCache()

    def evaluate(model_path, dataset, mapping):
        info, _ = service_ops.describe(cache, {"model_path": model_path}, {})
        frame = index.usable(index.load_index(sources.dataset_folder(dataset)))

        def classify(tiles):
            return service_ops.classify(cache, {"model_path": model_path}, {"tiles": tiles})[1]["probabilities"]

        return crossdataset.evaluate_paths(list(frame.path), list(frame.label), classify, info["class_names"],
                                           tuple(info["input_shape"][:2]), mapping), frame

    kather_model = _comparison(real_data / "jobs" / "kather", dataset="kather-real", weights="imagenet")
    on_nct, nct = evaluate(kather_model.model_path, "nct-real", crossdataset.NCT_TILES_ON_KATHER_MODEL)
    assert on_nct.tiles == on_nct.scored == len(nct) == 18 and on_nct.unmappable_tiles == {}
    assert "crop" in on_nct.fit  # 224 px NCT tiles centre-cropped to the 150 px model: same um/px
    assert sum(sum(p.values()) for p in on_nct.predictions.values()) == 18
    assert set(on_nct.unmatched_predictions) <= {"COMPLEX"} and "COMPLEX" in on_nct.notes
    assert 0 <= on_nct.accuracy <= 1

    nct_model = _comparison(real_data / "jobs" / "nct", dataset="nct-real", weights="imagenet", image_size=224)
    on_kather, kather = evaluate(nct_model.model_path, "kather-real", crossdataset.KATHER_TILES_ON_NCT_MODEL)
    complex_tiles = int((kather.label == "COMPLEX").sum())
    assert on_kather.unmappable_tiles == {"COMPLEX": complex_tiles} and complex_tiles > 0
    assert on_kather.scored == len(kather) - complex_tiles and on_kather.per_class_accuracy["COMPLEX"] is None
    assert sum(on_kather.predictions["COMPLEX"].values()) == complex_tiles  # reported, not scored
    assert "resize" in on_kather.fit
    print(f"\nKather model on NCT: {on_nct.accuracy:.3f} {on_nct.per_class_accuracy}\n"
          f"NCT model on Kather: {on_kather.accuracy:.3f} {on_kather.per_class_accuracy}")
