"""Fixtures shared by the style-transfer tests: a generated VGG19 weights file in the registry,
the real Magenta TF Lite files in the model cache, and job inputs as the page writes them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.models import weights as registry
from services.style import builtin_images, fast_models, job_files

CONTENT = np.asarray(Image.fromarray(builtin_images.CONTENT_IMAGES["Chelsea the cat"].load()).resize((64, 43)))
STYLE = builtin_images.stained_glass((64, 64), tiles=16)


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


def magenta_fixture(shared_fixtures: Path, name: str) -> Path:
    return shared_fixtures / "style" / "magenta" / name


@pytest.fixture
def installed_magenta(data_root, shared_fixtures) -> Path:
    """The real Magenta TF Lite files copied into the model cache, as a user would put them."""
    target = fast_models.folder()
    target.mkdir(parents=True, exist_ok=True)
    for item in [fast_models.PREDICT, *fast_models.TRANSFER_VARIANTS.values()]:
        shutil.copyfile(magenta_fixture(shared_fixtures, item.file_name), target / item.file_name)
    return target


def painting(shared_fixtures: Path, name: str, side: int = 256) -> np.ndarray:
    """A fixture painting or photo as RGB uint8, longest side ``side``."""
    folder = "photos" if name in ("tubingen.jpg", "golden_gate.jpg") else "paintings"
    image = Image.open(shared_fixtures / "style" / folder / name).convert("RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image)


def job_inputs(content=CONTENT, style=STYLE, mask=None) -> dict[str, bytes]:
    """The files a style job receives, exactly as the page submits them."""
    return job_files.input_files(content, style, mask)
