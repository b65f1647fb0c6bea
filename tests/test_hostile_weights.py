"""Hostile weights files (issue 17): a Keras weights file listing a layer the architecture lacks."""

from __future__ import annotations

import h5py
import pytest

from services.errors import UserFacingError
from services.models import weights as registry


@pytest.fixture
def caches(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    return data_root / "models"


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory):
    model = registry.BACKBONES["vgg19"].build((64, 64, 3))
    return registry.write_weights_file(model, tmp_path_factory.mktemp("w") / "vgg19.h5")


def _with_ghost_layer(path, target):
    """The same weights, with 'ghost_layer' added to the file's layer list (no weights for it)."""
    target.write_bytes(path.read_bytes())
    with h5py.File(target, "a") as root:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in root.attrs["layer_names"]]
        root.attrs["layer_names"] = [n.encode() for n in [*names, "ghost_layer"]]
    return target


def test_weights_naming_a_layer_the_architecture_lacks_are_refused_at_install(caches, vgg19_file, tmp_path):
    ghost = _with_ghost_layer(vgg19_file, tmp_path / "ghost.h5")
    with pytest.raises(registry.WeightsMismatch, match="lists a layer 'ghost_layer' but holds no weights"):
        registry.install_weights_file("vgg19", ghost.read_bytes(), original_name="ghost.h5")
    assert not list(caches.glob("*.h5"))
    registry.install_weights_file("vgg19", vgg19_file.read_bytes())  # the untouched file still installs
    # A cached file edited after its install: the load says so in a sentence, never KeyError.
    cached = caches / registry.BACKBONES["vgg19"].file_name
    _with_ghost_layer(vgg19_file, cached)
    with pytest.raises(UserFacingError) as refused:
        registry.load_backbone("vgg19", input_shape=64)
    assert "refused" in str(refused.value) and "KeyError" not in str(refused.value)
