"""Pretrained-weights registry: generated weight files go through the real ImageNet code path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from services.download import file_digest
from services.errors import DownloadFailed, PathOutsideRoot
from services.models import weights as registry
from tests.conftest import serve_folder


@pytest.fixture(scope="session")
def generated_vgg19(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """A randomly initialised VGG19 (notop) saved under Keras's file name, and its weights."""
    model = registry.BACKBONES["vgg19"].build((64, 64, 3))
    folder = tmp_path_factory.mktemp("generated-weights")
    path = registry.write_weights_file(model, folder / registry.BACKBONES["vgg19"].file_name)
    return path, model.get_weights()


@pytest.fixture(scope="session")
def small_mobilenet_file(tmp_path_factory) -> Path:
    """MobileNetV2 with alpha 0.35: the right family, the wrong shapes for alpha 1.0."""
    import keras

    model = keras.applications.MobileNetV2(alpha=0.35, include_top=False, weights=None, input_shape=(96, 96, 3))
    return registry.write_weights_file(model, tmp_path_factory.mktemp("small") / "mobilenet_small.h5")


@pytest.fixture
def caches(data_root, tmp_path, monkeypatch) -> tuple[Path, Path]:
    """An empty model cache and an empty Keras cache of this test's own."""
    keras_home = tmp_path / "keras-home"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    return data_root / "models", keras_home / "models"


def _with_spec(monkeypatch, name: str, **changes) -> registry.BackboneSpec:
    changed = dataclasses.replace(registry.BACKBONES[name], **changes)
    monkeypatch.setitem(registry.BACKBONES, name, changed)
    return changed


def test_registry_lists_the_backbones_with_keras_file_names_and_hashes():
    for name in ("vgg16", "vgg19", "resnet50", "mobilenet_v2", "efficientnet_b0", "inception_v3"):
        spec = registry.BACKBONES[name]
        assert spec.url.startswith("https://storage.googleapis.com/") and spec.url.endswith("/" + spec.file_name)
        assert "notop" in spec.file_name or "no_top" in spec.file_name
    assert registry.BACKBONES["vgg19"].md5 == "253f8cb515780f3b799900260a226db6"
    import keras

    assert registry.preprocess_function("vgg19") is keras.applications.vgg19.preprocess_input
    assert registry.preprocess_function("inception_v3") is keras.applications.inception_v3.preprocess_input


def test_nothing_cached_is_downloadable_online_and_missing_offline(caches, monkeypatch):
    status = registry.weights_status("vgg19")
    assert status.state == registry.DOWNLOADABLE and not status.usable
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    status = registry.weights_status("vgg19")
    assert status.state == registry.MISSING
    assert registry.BACKBONES["vgg19"].url in status.fix
    with pytest.raises(registry.WeightsMissing, match="upload"):
        registry.load_backbone("vgg19", input_shape=64)


def test_random_weights_only_when_asked(caches):
    model = registry.load_backbone("vgg19", input_shape=(64, 64, 3), weights="random")
    assert model.output_shape == (None, 2, 2, 512)
    with pytest.raises(registry.UserFacingError, match="imagenet"):
        registry.load_backbone("vgg19", input_shape=64, weights="pretrained-ish")


def test_installed_file_loads_through_the_imagenet_path(caches, generated_vgg19):
    path, expected = generated_vgg19
    installed = registry.install_weights_file("vgg19", path.read_bytes(), original_name="my_vgg19.h5")
    assert installed == caches[0] / path.name
    status = registry.weights_status("vgg19")
    assert status.state == registry.PRESENT and status.source == "model cache"
    assert not status.official and "not the official" in status.reason
    assert registry.read_manifest(installed)["md5"] == file_digest(installed, "md5")
    model = registry.load_backbone("vgg19", input_shape=(80, 64, 3))
    for loaded, original in zip(model.get_weights(), expected):
        np.testing.assert_array_equal(loaded, original)


def test_cache_hit_in_keras_cache_needs_the_official_hash(caches, generated_vgg19, monkeypatch):
    path, _ = generated_vgg19
    keras_cache = caches[1]
    keras_cache.mkdir(parents=True)
    (keras_cache / path.name).write_bytes(path.read_bytes())
    status = registry.weights_status("vgg19")
    assert status.state == registry.DOWNLOADABLE and "refused" in status.reason  # wrong md5
    _with_spec(monkeypatch, "vgg19", md5=file_digest(path, "md5"))
    status = registry.weights_status("vgg19")
    assert (status.state, status.source, status.official) == (registry.PRESENT, "Keras cache", True)
    assert registry.resolve_weights("vgg19") == keras_cache / path.name


def test_checksum_mismatch_in_model_cache_is_refused(caches, generated_vgg19):
    path, _ = generated_vgg19
    caches[0].mkdir(parents=True)
    (caches[0] / path.name).write_bytes(path.read_bytes())  # copied by hand: no install manifest
    with pytest.raises(registry.WeightsMissing, match="md5"):
        registry.resolve_weights("vgg19")
    with pytest.raises(registry.WeightsMismatch, match="Delete"):
        registry.resolve_weights("vgg19", download=True)


@pytest.fixture
def weights_server(generated_vgg19):
    with serve_folder(generated_vgg19[0].parent) as server:
        yield server


def test_download_from_local_server_resumes_and_checks_md5(caches, generated_vgg19, weights_server, monkeypatch):
    path, expected = generated_vgg19
    _with_spec(monkeypatch, "vgg19", url=weights_server.url + path.name, md5=file_digest(path, "md5"))
    caches[0].mkdir(parents=True)
    (caches[0] / (path.name + ".part")).write_bytes(path.read_bytes()[:1000])  # an interrupted download
    seen = []
    resolved = registry.resolve_weights("vgg19", download=True, progress=lambda done, total: seen.append(done))
    assert weights_server.range_headers == ["bytes=1000-"]
    assert resolved.read_bytes() == path.read_bytes() and seen[-1] == path.stat().st_size
    assert registry.read_manifest(resolved)["source"] == "download"
    status = registry.weights_status("vgg19")
    assert status.state == registry.PRESENT and status.official
    np.testing.assert_array_equal(registry.load_backbone("vgg19", input_shape=64).get_weights()[0], expected[0])


def test_download_with_wrong_md5_caches_nothing(caches, generated_vgg19, weights_server, monkeypatch):
    path, _ = generated_vgg19
    _with_spec(monkeypatch, "vgg19", url=weights_server.url + path.name, md5="0" * 32)
    with pytest.raises(DownloadFailed, match="md5"):
        registry.resolve_weights("vgg19", download=True)
    assert not list(caches[0].iterdir())
    assert registry.weights_status("vgg19").state == registry.DOWNLOADABLE


def test_mismatching_upload_names_the_layer_and_caches_nothing(caches, small_mobilenet_file, generated_vgg19):
    with pytest.raises(registry.WeightsMismatch, match="first mismatching layer is #0 'Conv1'"):
        registry.install_weights_file("mobilenet_v2", small_mobilenet_file.read_bytes())
    with pytest.raises(registry.WeightsMismatch, match="'block1_conv1'"):
        registry.install_weights_file("vgg19", small_mobilenet_file.read_bytes())
    with pytest.raises(registry.WeightsMismatch, match="^vgg19.h5 does not fit ResNet50: .*#0 'conv1_conv'"):
        registry.install_weights_file("resnet50", generated_vgg19[0].read_bytes(), original_name="vgg19.h5")
    with pytest.raises(registry.WeightsMismatch, match="not an HDF5"):
        registry.install_weights_file("vgg19", b"this is not a weights file")
    assert not list(caches[0].iterdir())
    assert registry.weights_status("vgg19").state == registry.DOWNLOADABLE


def test_pointed_to_file_must_lie_under_the_data_root(caches, data_root, generated_vgg19):
    with pytest.raises(PathOutsideRoot):
        registry.install_weights_file("vgg19", generated_vgg19[0])
    inside = data_root / "uploads" / "vgg19.h5"
    inside.parent.mkdir()
    inside.write_bytes(generated_vgg19[0].read_bytes())
    assert registry.install_weights_file("vgg19", "uploads/vgg19.h5").is_file()
    assert registry.read_manifest(caches[0] / generated_vgg19[0].name)["original_name"] == "vgg19.h5"


def test_input_size_limits():
    assert registry.check_input_size("vgg19", 64) == (64, 64, 3)
    assert registry.check_input_size("inception_v3", (299, 320, 3)) == (299, 320, 3)
    with pytest.raises(registry.BadInputSize, match="from 75 to"):
        registry.check_input_size("inception_v3", 64)
    with pytest.raises(registry.BadInputSize, match="3 colour channels"):
        registry.check_input_size("vgg19", (64, 64, 1))
    with pytest.raises(registry.UserFacingError, match="unknown backbone"):
        registry.check_input_size("alexnet", 224)
