"""The book's histology models: parameter counts, auxiliary heads, weights files, the catalog."""

from __future__ import annotations

import numpy as np
import pytest

from services.errors import UserFacingError
from services.models import catalog
from services.models.histology import AUX_LOSS_WEIGHTS, inference_model, parameter_counts


@pytest.mark.parametrize("name, total", [("cnn_v1", 85_512), ("cnn_v2", 5_447_912), ("cnn_v3", 639_240),
                                         ("mini_inception", 72_212)])
def test_book_parameter_counts(name, total):
    counts = parameter_counts(catalog.build_model(name))
    assert counts == {"total": total, "trainable": total, "non_trainable": 0}


def test_vgg16_v4_parameter_counts_with_random_weights():
    model = catalog.build_model("vgg16_v4", weights=None)
    assert parameter_counts(model) == {"total": 23_112_520, "trainable": 15_477_256, "non_trainable": 7_635_264}
    assert model.output_shape == (None, 8)


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_vgg16_v4_loads_a_weights_file_and_refuses_a_foreign_one(tmp_path):
    import keras

    backbone = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.weights.h5"
    backbone.save_weights(path)
    model = catalog.build_model("vgg16_v4", input_shape=(32, 32, 3), weights=str(path))
    loaded = model.get_layer("vgg16").get_layer("block5_conv3").get_weights()[0]
    np.testing.assert_array_equal(loaded, backbone.get_layer("block5_conv3").get_weights()[0])
    foreign = tmp_path / "other.weights.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(foreign)
    with pytest.raises(UserFacingError, match="does not hold VGG16"):
        catalog.build_model("vgg16_v4", input_shape=(32, 32, 3), weights=str(foreign))


def test_vgg16_v4_saved_model_loads_in_safe_mode(tmp_path):
    model = catalog.build_model("vgg16_v4", input_shape=(32, 32, 3), num_classes=2)
    path = tmp_path / "v4.keras"
    model.save(path)
    loaded = catalog.load_saved_model(path)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def test_mini_inception_trains_with_weighted_auxiliary_losses_and_exports_without_them():
    import keras

    model = catalog.build_model("mini_inception", input_shape=(32, 32, 3), num_classes=4)
    assert model.output_names == ["main", "aux1", "aux2"]
    model.compile("adam", loss={k: "sparse_categorical_crossentropy" for k in AUX_LOSS_WEIGHTS},
                  loss_weights=AUX_LOSS_WEIGHTS)
    x = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
    y = np.arange(8) % 4
    logs = model.evaluate(x, {"main": y, "aux1": y, "aux2": y}, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["main_loss"] + 0.3 * logs["aux1_loss"] + 0.3 * logs["aux2_loss"], rel=1e-4)
    exported = inference_model(model)
    assert len(exported.outputs) == 1 and exported.output_shape == (None, 4)
    assert not any(layer.name.startswith("aux") for layer in exported.layers)
    assert isinstance(exported, keras.Model)


def test_book_models_take_smaller_tiles_and_refuse_too_small_ones():
    assert catalog.build_model("cnn_v1", input_shape=(48, 48, 3)).output_shape == (None, 8)
    assert catalog.build_model("cnn_v3", input_shape=(81, 81, 3), num_classes=3).output_shape == (None, 3)
    with pytest.raises(UserFacingError, match="at least 48x48"):
        catalog.build_model("cnn_v1", input_shape=(32, 32, 3))
    with pytest.raises(UserFacingError, match="Unknown model"):
        catalog.build_model("resnet_9000")
    with pytest.raises(UserFacingError, match="Invalid option"):
        catalog.build_model("cnn_v1", wings=2)


def test_vgg16_v4_imagenet_weights_come_through_the_weights_registry(data_root, tmp_path, monkeypatch):
    from services.models import weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))  # no weights cached anywhere
    with pytest.raises(UserFacingError):  # nothing installed, nothing downloaded
        catalog.build_model("vgg16_v4", input_shape=(32, 32, 3), weights="imagenet")
    # a randomly initialised file through the exact path real ImageNet files take
    source = weights.BACKBONES["vgg16"].build((32, 32, 3))
    path = weights.write_weights_file(source, tmp_path / weights.BACKBONES["vgg16"].file_name)
    weights.install_weights_file("vgg16", path.read_bytes(), original_name=path.name)
    model = catalog.build_model("vgg16_v4", input_shape=(32, 32, 3), weights="imagenet")
    np.testing.assert_array_equal(model.get_layer("vgg16").get_layer("block1_conv1").get_weights()[0],
                                  source.get_layer("block1_conv1").get_weights()[0])


def test_the_training_form_offers_only_models_that_build_without_options():
    offered = catalog.model_names(standalone=True)
    assert {"cnn_v1", "cnn_v2", "cnn_v3", "mini_inception", "vgg16_v4"} <= set(offered)
    assert "transfer_finetune" in catalog.model_names() and "transfer_finetune" not in offered
