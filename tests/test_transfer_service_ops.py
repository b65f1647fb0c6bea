"""The model service's Keras operations on every kind of model the pages train or load."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from services import run_layout
from services.errors import UserFacingError
from services.model_service.cache import ModelCache
from services.transfer import service_ops

CLASSES = [f"tissue {i}" for i in range(8)]
FIRST_CONV = {"vgg16_v4": "vgg16/block1_conv1", "flat_b": "Conv1"}


def _saved(model, folder, classes=CLASSES) -> str:
    folder.mkdir(parents=True)
    path = run_layout.final_model(folder)
    model.save(path)
    run_layout.classes_file(folder).write_text(json.dumps(classes))
    return str(path)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """Strategy A's Sequential cnn_v1, the book's vgg16_v4 (VGG16 nested as one layer) and a flat
    strategy-B model, saved as runs save them (random weights: shapes matter, not skill)."""
    from services.models import catalog, weights as registry
    from services.transfer import models

    root = tmp_path_factory.mktemp("ops-data")
    cnn_v1 = catalog.build_model("cnn_v1", input_shape=(64, 64, 3))
    FIRST_CONV["cnn_v1"] = cnn_v1.layers[0].name  # Keras numbers auto-named layers per process
    paths = {
        "cnn_v1": _saved(cnn_v1, root / "runs" / "a"),
        "vgg16_v4": _saved(catalog.build_model("vgg16_v4", input_shape=(32, 32, 3)), root / "runs" / "v4"),
        "flat_b": _saved(models.frozen_backbone_model(
            registry.load_backbone("mobilenet_v2", input_shape=(32, 32, 3), weights="random"), "mobilenet_v2", 8),
            root / "runs" / "b"),
    }
    return root, paths


@pytest.fixture
def ops_env(models_dir, monkeypatch):
    monkeypatch.setenv("DASHBOARD_DATA_DIR", str(models_dir[0]))
    return ModelCache(), models_dir[1]


def _tile(height=50, width=70) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["cnn_v1", "vgg16_v4", "flat_b"])
def test_describe_inspect_feature_maps_and_classify_work_for_every_model(ops_env, name):
    cache, paths = ops_env
    first_conv = FIRST_CONV[name]
    args = {"model_path": paths[name]}
    info, _ = service_ops.describe(cache, args, {})
    size = tuple(info["input_shape"][:2])
    assert info["class_names"] == CLASSES and info["feature_layer"] == first_conv
    assert info["gradcam_layer"] == info["spatial_layers"][-1] and first_conv in info["spatial_layers"]
    assert not any(layer.endswith("_preprocess") for layer in info["spatial_layers"])
    result, arrays = service_ops.inspect_tile(cache, args, {"tile": _tile()})
    assert len(result["probabilities"]) == 8 and sum(result["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert arrays["overlay"].shape == (*size, 3) and arrays["overlay"].dtype == np.uint8
    assert any("resized from 70x50" in note for note in result["notes"])
    assert not np.array_equal(arrays["overlay"], arrays["tile"])  # the heatmap is blended in
    maps, mosaic = service_ops.feature_maps(cache, args, {"tile": _tile()})
    assert maps["layer"] == first_conv and mosaic["mosaic"].ndim == 2 and maps["shown"] <= 12
    deeper, _ = service_ops.feature_maps(cache, {**args, "layer": info["gradcam_layer"]}, {"tile": _tile()})
    assert deeper["layer"] == info["gradcam_layer"]
    tiles = np.stack([_tile(*size), _tile(*size)[::-1]])
    classified, out = service_ops.classify(cache, args, {"tiles": tiles})
    assert out["probabilities"].shape == (2, 8) and classified["class_names"] == CLASSES
    single, _ = service_ops.inspect_tile(cache, args, {"tile": tiles[0]})
    np.testing.assert_allclose(out["probabilities"][0], single["probabilities"], atol=1e-4)
    assert len(cache) == 1  # one load per model file


def test_bad_requests_get_clear_messages(ops_env, models_dir, tmp_path):
    cache, paths = ops_env
    args = {"model_path": paths["cnn_v1"]}
    with pytest.raises(UserFacingError, match="RGB image"):
        service_ops.inspect_tile(cache, args, {"tile": _tile().astype(np.float32)})
    with pytest.raises(UserFacingError, match="no feature maps"):
        service_ops.feature_maps(cache, {**args, "layer": "dense"}, {"tile": _tile()})
    with pytest.raises(UserFacingError, match="out of range"):
        service_ops.inspect_tile(cache, {**args, "class_index": 8}, {"tile": _tile()})
    with pytest.raises(UserFacingError, match="this model takes 64x64"):
        service_ops.classify(cache, args, {"tiles": np.zeros((1, 32, 32, 3), np.uint8)})
    with pytest.raises(UserFacingError, match="outside the data root"):
        service_ops.describe(cache, {"model_path": str(tmp_path / "x.keras")}, {})


def test_a_model_with_an_unknown_class_is_refused_in_words(ops_env, models_dir):
    cache, paths = ops_env
    forged = models_dir[0] / "runs" / "forged.keras"
    with zipfile.ZipFile(paths["cnn_v1"]) as source, zipfile.ZipFile(forged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                data = data.replace(b'"class_name": "Dense"', b'"class_name": "EvilLayer"', 1)
                data = data.replace(b'"module": "keras.layers"', b'"module": "os"', 1)
            target.writestr(item, data)
    with pytest.raises(UserFacingError) as refused:
        service_ops.describe(cache, {"model_path": str(forged)}, {})
    message = str(refused.value)
    assert "forged.keras" in message and "does not know" in message and "TypeError" not in message
    assert str(models_dir[0]) not in message  # no server path
