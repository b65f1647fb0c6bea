"""Model registry: sizes implied by the cfgs, download from a local server, uploads, demo model."""

from __future__ import annotations

import dataclasses

import pytest

from services.detection import models, registry
from services.detection.cfg import CfgError, parse_cfg
from services.detection.models import NamesError
from services.detection.weights import Header, WeightsError, expected_size, random_weights_bytes
from tests.conftest import serve_folder
from tests.detection_helpers import SYNTHETIC_CFG


@pytest.mark.parametrize("key", list(registry.REGISTRY))
def test_registered_sizes_are_what_the_shipped_cfgs_imply(key):
    spec = registry.REGISTRY[key]
    config = parse_cfg(spec.cfg_path.read_text(), spec.cfg_file)
    assert expected_size(config, Header(0, 2, 0, 0)) == spec.weights_size
    assert config.classes == len(models.coco_names()) == 80
    assert spec.weights_url.startswith("https://")


def test_missing_weights_say_what_and_where(data_root):
    with pytest.raises(registry.UserFacingError) as caught:
        registry.load_registered("yolov3")
    message = str(caught.value)
    assert "yolov3.weights" in message and "https://pjreddie.com/media/files/yolov3.weights" in message
    assert "put it at <model cache>/darknet/yolov3.weights" in message and str(data_root) not in message


@pytest.fixture
def local_server(tmp_path):
    with serve_folder(tmp_path) as server:
        yield tmp_path, server.url.rstrip("/")


def test_weights_download_from_a_local_server_then_load(data_root, local_server, monkeypatch):
    folder, url = local_server
    spec = registry.REGISTRY["yolov4-tiny"]
    config = parse_cfg(spec.cfg_path.read_text(), spec.cfg_file)
    (folder / "yolov4-tiny.weights").write_bytes(random_weights_bytes(config, seed=5))
    monkeypatch.setitem(registry.REGISTRY, spec.key,
                        dataclasses.replace(spec, weights_url=f"{url}/yolov4-tiny.weights"))
    seen = []
    path = registry.fetch_weights(registry.REGISTRY[spec.key], lambda done, total: seen.append((done, total)))
    assert path == data_root / "models" / "darknet" / "yolov4-tiny.weights"
    assert seen[-1] == (spec.weights_size, spec.weights_size)
    model = registry.load_registered("yolov4-tiny")
    assert model.names[0] == "person" and len(model.weights.convs) == 21 and not model.random_weights
    assert registry.missing_files_message(registry.REGISTRY[spec.key]) is None


def test_offline_download_explains_what_to_do(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    with pytest.raises(registry.UserFacingError, match="put it at"):
        registry.fetch_weights(registry.REGISTRY["yolov3-tiny"])


def _upload(config_text=SYNTHETIC_CFG, names="a\nb\n", weights=None, stem="mine"):
    weights = weights if weights is not None else random_weights_bytes(parse_cfg(SYNTHETIC_CFG))
    return registry.save_upload((f"{stem}.cfg", config_text.encode()), (f"{stem}.weights", weights),
                                (f"{stem}.names", names.encode())).model


def test_uploads_are_validated_and_a_bad_one_keeps_the_good_one(data_root):
    good = _upload()
    assert good.key == "upload:mine" and good.names == ["a", "b"]
    with pytest.raises(NamesError, match="3 class names but .* classes=2"):
        _upload(names="a\nb\nc\n")
    with pytest.raises(WeightsError, match="expected .* bytes"):
        _upload(weights=b"\0" * 100)
    with pytest.raises(CfgError, match=r"mine.cfg: the first section must be \[net\] \(found \[nett\] at line 1\)"):
        _upload(config_text="[nett]\n")
    assert registry.uploaded_models() == ["mine"]
    assert registry.load_uploaded("mine").names == ["a", "b"]
    assert not [p for p in (registry.darknet_dir() / "uploads").iterdir() if p.name.startswith(".")]


def test_two_sessions_adding_the_same_name_at_once_both_succeed(data_root):
    from concurrent.futures import ThreadPoolExecutor

    weights = [random_weights_bytes(parse_cfg(SYNTHETIC_CFG), seed=seed) for seed in range(4)]
    with ThreadPoolExecutor(4) as pool:
        saved = list(pool.map(lambda w: _upload(weights=w), weights))
    assert sorted(m.key for m in saved) == ["upload:mine", "upload:mine-2", "upload:mine-3", "upload:mine-4"]
    assert registry.uploaded_models() == ["mine", "mine-2", "mine-3", "mine-4"]
    with pytest.raises(registry.UserFacingError, match="no uploaded Darknet model"):
        registry.load_uploaded("../mine")


def test_demo_model_has_random_weights_in_the_exact_layout(data_root):
    model = registry.load_demo()
    assert model.random_weights and model.title == registry.DEMO_TITLE
    assert model.weights_path.stat().st_size == registry.REGISTRY["yolov3-tiny"].weights_size


def test_upload_names_cannot_climb_out_of_the_uploads_folder(data_root):
    registry.darknet_dir().mkdir(parents=True)
    keep = registry.darknet_dir() / "yolov3.weights"
    keep.write_bytes(b"downloaded")
    model = _upload(stem="..")  # a file called "...cfg" has the stem ".."
    assert model.key == "upload:uploaded" and keep.read_bytes() == b"downloaded"
    assert models.safe_stem("../../.hidden x.onnx", "model") == "hidden_x"
