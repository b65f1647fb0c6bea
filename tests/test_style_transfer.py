"""Style transfer runs for real on tiny images: VGG19 weights through the registry's ImageNet path."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from PIL import Image

from services.errors import UserFacingError
from services.jobs import FINISHED, STOPPED, JobManager
from services.models import weights as registry
from services.style import builtin_images, transfer
from tests.style_helpers import installed_vgg19, vgg19_weights_bytes  # noqa: F401 (fixtures)

CONTENT = np.asarray(Image.fromarray(builtin_images.CONTENT_IMAGES["Chelsea the cat"].load()).resize((64, 43)))
STYLE = builtin_images.stained_glass((64, 64), tiles=16)


@pytest.fixture
def manager(data_root):
    jobs = JobManager(data_root / "jobs", max_workers=1)
    yield jobs
    jobs.shutdown()


def _settings(**changes) -> transfer.StyleSettings:
    return dataclasses.replace(transfer.StyleSettings(max_side=64, steps=10, preview_every=5), **changes)


def test_loss_decreases_over_ten_steps_with_registry_weights(installed_vgg19):
    result, history = transfer.stylise(CONTENT, STYLE, _settings())
    assert result.shape == (43, 64, 3) and result.dtype == np.uint8
    totals = [entry["total"] for entry in history]
    assert len(totals) == 10 and totals[-1] < 0.8 * totals[0]
    assert all(entry["style"] >= 0 and entry["content"] >= 0 for entry in history)


def test_coarse_to_fine_produces_the_requested_size():
    settings = _settings(steps=6, coarse_to_fine=True, weights="random")
    result, history = transfer.stylise(CONTENT, STYLE, settings)
    assert result.shape == (43, 64, 3)
    assert [entry["side"] for entry in history] == [32, 32, 32, 64, 64, 64]


def test_settings_are_validated_and_round_trip():
    settings = _settings(coarse_to_fine=True)
    assert transfer.StyleSettings.from_dict(settings.to_dict()) == settings
    for bad in (dict(max_side=8), dict(steps=0), dict(weights="pretrained"), dict(learning_rate=0.0)):
        with pytest.raises(UserFacingError):
            _settings(**bad).validate()


def test_job_without_weights_is_refused_with_the_fix(data_root, manager, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    inputs = transfer.StyleJobInputs(CONTENT, STYLE, _settings())
    with pytest.raises(registry.WeightsMissing, match="upload"):
        transfer.start_style_job(manager, inputs, title="no weights")
    assert manager.list() == []


def test_silhouette_job_writes_previews_and_both_maskings(manager):
    silhouette = builtin_images.horse_silhouette()
    inputs = transfer.StyleJobInputs(builtin_images.horse_silhouette_rgb(), STYLE, _settings(weights="random"),
                                     mask=silhouette)
    job_id = transfer.start_style_job(manager, inputs, title="horse")
    state = manager.wait(job_id, timeout=60)
    assert state.status == FINISHED, state.error
    assert state.params["random_weights"] and "RANDOM" in state.result["weights_label"]
    folder = manager.job_dir(job_id)
    result = np.asarray(Image.open(folder / state.result["result"]))
    mask = np.asarray(Image.open(folder / "mask.png"))
    assert result.shape[:2] == mask.shape == (52, 64)
    for name in ("result_masked", "style_masked"):
        masked = np.asarray(Image.open(folder / state.result[name]))
        assert (masked[mask == 255] == 255).all() and masked.shape == result.shape
    assert state.result["preview_step"] == 10 and len(state.result["history"]) == 10


def test_stop_keeps_the_last_image(manager):
    inputs = transfer.StyleJobInputs(CONTENT, STYLE, _settings(steps=10_000, preview_every=2, weights="random"))
    job_id = transfer.start_style_job(manager, inputs, title="stop me")
    while (manager.get(job_id).result or {}).get("preview_step") is None:
        assert manager.get(job_id).active, manager.get(job_id).error
        time.sleep(0.05)
    manager.stop(job_id)
    state = manager.wait(job_id, timeout=60)
    assert state.status == STOPPED and state.result["stopped_early"]
    assert 1 <= state.result["steps_done"] < 10_000
    assert (manager.job_dir(job_id) / "result.png").is_file()
