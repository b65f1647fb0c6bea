"""Pretrained-weights registry: generated weight files go through the real ImageNet code path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from services.download import file_digest
from services.errors import DownloadFailed, PathOutsideRoot, UserFacingError
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
    with pytest.raises(UserFacingError, match="imagenet"):
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
    with pytest.raises(UserFacingError, match="unknown backbone"):
        registry.check_input_size("alexnet", 224)


# --- MobileNet v1 and full-model uploads ---------------------------------------------------------

MOBILENET = "mobilenet_v1_0.25"


def test_mobilenet_v1_uses_keras_own_file_names_and_urls():
    from keras.src.applications import mobilenet

    for alpha, text in ((0.25, "2_5"), (0.5, "5_0"), (0.75, "7_5"), (1.0, "1_0")):
        spec = registry.BACKBONES[f"mobilenet_v1_{alpha:.2f}"]
        assert spec.file_name == f"mobilenet_{text}_224_tf_no_top.h5"
        assert spec.url == mobilenet.BASE_WEIGHT_PATH + spec.file_name
        assert spec.full_file_name == f"mobilenet_{text}_224_tf.h5" and spec.preprocess_mode == "tf"
        model = spec.build((32, 32, 3))
        assert model.get_layer("conv1").filters == int(32 * alpha)
    assert registry.preprocess_function(MOBILENET) is mobilenet.preprocess_input


@pytest.fixture(scope="session")
def generated_full_mobilenet(tmp_path_factory) -> tuple[Path, object]:
    """A random MobileNet v1 (alpha 0.25) *with* its top, saved as Keras 2 saves a full model."""
    from services.models.weights_h5 import write_full_model_file

    model = registry.BACKBONES[MOBILENET].build(include_top=True)
    path = write_full_model_file(model, tmp_path_factory.mktemp("full") / "mobilenet_v1_full.h5")
    return path, model


def test_full_model_h5_upload_gives_the_backbone_its_layers_by_name(caches, generated_full_mobilenet):
    path, source = generated_full_mobilenet
    installed = registry.install_weights_file(MOBILENET, path.read_bytes(), original_name="mine.h5")
    assert installed.name == "mobilenet_2_5_224_tf_no_top.h5"
    assert "full model" in registry.read_manifest(installed)["extracted_from"]
    loaded = registry.load_backbone(MOBILENET, input_shape=(64, 64, 3))
    for name in ("conv1", "conv_dw_7", "conv_pw_13_bn"):
        for mine, theirs in zip(loaded.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert registry.weights_status(MOBILENET).state == registry.PRESENT


def test_full_model_of_another_width_is_refused_naming_the_layer(caches, generated_full_mobilenet):
    with pytest.raises(registry.WeightsMismatch, match="'conv1'.*shapes"):
        registry.install_weights_file("mobilenet_v1_0.50", generated_full_mobilenet[0].read_bytes(),
                                      original_name="quarter.h5")
    with pytest.raises(registry.WeightsMismatch, match="'block1_conv1'.*not in the file"):
        registry.install_weights_file("vgg16", generated_full_mobilenet[0].read_bytes())
    assert not list(caches[0].iterdir())


def test_full_model_keras_file_upload(caches, generated_full_mobilenet, tmp_path):
    _, source = generated_full_mobilenet
    path = tmp_path / "full.keras"
    source.save(path)
    registry.install_weights_file(MOBILENET, path.read_bytes(), original_name="full.keras")
    loaded = registry.load_backbone(MOBILENET, input_shape=(32, 32, 3))
    np.testing.assert_array_equal(loaded.get_layer("conv_pw_5").get_weights()[0],
                                  source.get_layer("conv_pw_5").get_weights()[0])
    with pytest.raises(registry.WeightsMismatch, match="not a complete .keras file"):
        registry.install_weights_file(MOBILENET, path.read_bytes()[:4000], original_name="cut.keras")


@pytest.mark.needs_shared
def test_real_imagenet_mobilenet_file_loads_and_sees_a_dog(caches, shared_fixtures):
    """The real Keras 2.8 full model (ImageNet, alpha 0.25): installed as an upload, and its
    classifier calls Darknet's dog.jpg one of ImageNet's dog classes (indices 151-268)."""
    from PIL import Image

    from services.models.weights_h5 import load_by_name

    real = shared_fixtures / "keras" / "mobilenet_v1_0.25_224.h5"
    registry.install_weights_file(MOBILENET, real.read_bytes(), original_name=real.name)
    assert registry.load_backbone(MOBILENET, input_shape=(224, 224, 3)).count_params() > 200_000
    classifier = registry.spec(MOBILENET).build(include_top=True)  # ImageNet's 1000-class top
    load_by_name(classifier, real, real.name)  # taken by name; the saved config is never read
    image = Image.open(shared_fixtures / "darknet" / "dog.jpg").convert("RGB").resize((224, 224))
    batch = registry.preprocess_function(MOBILENET)(np.asarray(image, np.float32)[None])
    top = int(np.argmax(classifier.predict(batch, verbose=0)[0]))
    assert 151 <= top <= 268, top


def test_weights_job_downloads_or_installs_an_upload_naming_no_server_path(
        caches, generated_vgg19, generated_full_mobilenet, weights_server, monkeypatch, tmp_path):
    from services.jobs.context import run_inline

    path, _ = generated_vgg19
    _with_spec(monkeypatch, "vgg19", url=weights_server.url + path.name, md5=file_digest(path, "md5"))
    downloaded = run_inline("weights-download", {"backbone": "vgg19"}, tmp_path / "download")
    assert downloaded.status == "finished", downloaded.error
    assert downloaded.result == {"backbone": "vgg19", "file": path.name}
    assert downloaded.reports[-1][1].endswith("MB") and registry.weights_status("vgg19").state == registry.PRESENT

    upload = {registry.UPLOAD_FILE: generated_full_mobilenet[0].read_bytes()}
    installed = run_inline("weights-download", {"backbone": MOBILENET, "original_name": "mine.h5"},
                           tmp_path / "upload", files=upload)
    assert installed.status == "finished", installed.error
    assert installed.result == {"backbone": MOBILENET, "file": "mobilenet_2_5_224_tf_no_top.h5",
                                "installed_from": "mine.h5"}
    assert not (tmp_path / "upload" / registry.UPLOAD_FILE).exists()  # no second copy kept
    refused = run_inline("weights-download", {"backbone": "resnet50", "original_name": "mine.h5"},
                         tmp_path / "refused", files=upload)
    assert refused.status == "failed" and "mine.h5 does not fit ResNet50" in refused.error
    assert str(tmp_path) not in refused.error
