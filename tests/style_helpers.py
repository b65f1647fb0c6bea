"""Fixtures shared by the style-transfer tests: a generated VGG19 weights file in the registry."""

from __future__ import annotations

import pytest

from services.models import weights as registry


@pytest.fixture(scope="session")
def vgg19_weights_bytes(tmp_path_factory) -> bytes:
    """A randomly initialised VGG19 (notop) in the HDF5 layout of Keras's ImageNet file."""
    path = tmp_path_factory.mktemp("vgg19") / registry.BACKBONES["vgg19"].file_name
    return registry.write_weights_file(registry.BACKBONES["vgg19"].build((64, 64, 3)), path).read_bytes()


@pytest.fixture
def installed_vgg19(data_root, tmp_path, monkeypatch, vgg19_weights_bytes):
    """The generated file installed through the upload path (the Keras cache kept empty)."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    return registry.install_weights_file("vgg19", vgg19_weights_bytes, original_name="generated.h5")


@pytest.fixture
def no_vgg19(data_root, tmp_path, monkeypatch):
    """No VGG19 weights anywhere, downloads off."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
