"""Gatys style transfer for real on tiny images: the optimisation, its settings, and the job body
run inline (the same function a worker process runs), including stop and resume."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
from PIL import Image

from services import run_layout
from services.jobs import JobManager, run_inline
from services.models import weights as registry
from services.style import builtin_images, submit, transfer
from services.style.settings import BadSettings, StyleSettings
from tests.style_helpers import (CONTENT, STYLE, installed_vgg19, job_inputs,  # noqa: F401 (fixtures)
                                 vgg19_weights_bytes)


def _settings(**changes) -> StyleSettings:
    return dataclasses.replace(StyleSettings(max_side=64, steps=10, preview_every=5), **changes)


def _params(**changes) -> dict:
    return {"engine": "gatys", "settings": _settings(weights="random", **changes).to_dict(), "silhouette": False}


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


def test_resume_starts_from_the_given_picture_for_the_remaining_steps():
    settings = _settings(steps=5, weights="random")
    _, fresh = transfer.stylise(CONTENT, STYLE, settings)
    grey = np.full_like(CONTENT, 128)
    result, resumed = transfer.stylise(CONTENT, STYLE, settings, resume=(grey, 3))
    assert [entry["step"] for entry in resumed] == [4, 5] and result.shape == CONTENT.shape
    # Started from the content picture, the content term is ~0 at first; from grey it is large.
    assert resumed[0]["content"] > 10 * max(fresh[0]["content"], 1e-6)


def test_settings_round_trip():
    settings = _settings(coarse_to_fine=True)
    assert StyleSettings.from_dict(settings.to_dict()) == settings


@pytest.mark.parametrize("change, words", [
    (dict(max_side=8), "longest side"), (dict(steps=0), "Steps"), (dict(steps=10**9), "Steps"),
    (dict(weights="pretrained"), "weights"), (dict(learning_rate=0.0), "learning rate"),
    (dict(learning_rate=float("nan")), "learning rate must be a finite"),
    (dict(learning_rate=float("inf")), "learning rate must be a finite"),
    (dict(epsilon=float("nan")), "epsilon must be a finite"), (dict(epsilon=-1.0), "epsilon"),
    (dict(beta_1=1.0), "beta_1"), (dict(preview_every=2.5), "whole number"),
])
def test_bad_settings_are_refused_with_their_name(change, words):
    with pytest.raises(BadSettings, match=words):
        _settings(**change).validate()


@pytest.mark.parametrize("content", [float("nan"), float("inf"), -1.0])
def test_content_weight_must_be_finite_and_not_negative(content):
    settings = _settings(loss=dataclasses.replace(_settings().loss, content=content))
    with pytest.raises(BadSettings, match="content weight"):
        settings.validate()


def test_memory_estimate_refuses_what_cannot_fit():
    big = _settings(max_side=2048)
    with pytest.raises(BadSettings, match="GiB of memory"):
        big.check_memory((2048, 1536), available=4 * 1024**3)
    _settings(max_side=256).check_memory((300, 400), available=4 * 1024**3)  # fits


def test_job_with_nan_parameters_fails_with_a_message_not_a_black_picture(tmp_path):
    params = _params()
    params["settings"]["learning_rate"] = float("nan")
    outcome = run_inline("style-transfer", params, tmp_path / "job", job_inputs())
    assert outcome.status == "failed" and "learning rate must be a finite number" in outcome.error
    assert not (tmp_path / "job" / run_layout.RESULT).exists()
    malformed = run_inline("style-transfer", {"settings": {"steps": "many", "colour": 1}}, tmp_path / "bad",
                           job_inputs())
    assert malformed.status == "failed" and "unknown style settings: colour" in malformed.error


def test_silhouette_job_writes_previews_and_both_maskings(tmp_path):
    files = job_inputs(builtin_images.horse_silhouette_rgb(), STYLE, builtin_images.horse_silhouette())
    outcome = run_inline("style-transfer", {**_params(), "silhouette": True}, tmp_path, files)
    assert outcome.status == "finished", outcome.error
    result = np.asarray(Image.open(tmp_path / outcome.result["result"]))
    mask = np.asarray(Image.open(tmp_path / outcome.result["mask"]))
    assert result.shape[:2] == mask.shape == (52, 64)
    assert "RANDOM" in outcome.result["weights_label"] and outcome.result["random_weights"]
    for name in ("result_masked", "style_masked"):
        masked = np.asarray(Image.open(tmp_path / outcome.result[name]))
        assert (masked[mask == 255] == 255).all() and masked.shape == result.shape
    assert outcome.result["preview_step"] == 10 and len(outcome.result["history"]) == 10
    assert outcome.result["seconds_to_first_preview"] > 0


def test_stopped_job_keeps_its_last_image_and_a_resumed_one_continues_from_it(tmp_path):
    params = _params(steps=12, preview_every=4)
    stopped = run_inline("style-transfer", params, tmp_path, job_inputs(), stop_after=6)
    assert stopped.status == "stopped"
    progress = json.loads((tmp_path / run_layout.STYLE_PROGRESS).read_text())
    done = progress["steps_done"]
    assert 1 <= done < 12 and (tmp_path / run_layout.RESULT).is_file()
    resumed = run_inline("style-transfer", params, tmp_path, resumed=True)
    assert resumed.status == "finished", resumed.error
    assert resumed.result["resumed_at_step"] == done and resumed.result["steps_done"] == 12
    assert [row["step"] for row in resumed.result["history"]] == list(range(1, 13))


def test_thinned_history_keeps_the_last_row():
    rows = [{"step": step} for step in range(1, 2502)]
    thinned = transfer.thinned(rows, points=1000)
    assert len(thinned) <= 1001 and thinned[0]["step"] == 1 and thinned[-1]["step"] == 2501


def test_submit_without_weights_is_refused_with_the_fix(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    manager = JobManager(data_root / "jobs", autostart=False)
    with pytest.raises(registry.WeightsMissing, match="upload"):
        submit.submit_gatys(manager, CONTENT, STYLE, _settings(), title="no weights")
    with pytest.raises(BadSettings, match="too elongated"):
        submit.submit_gatys(manager, np.zeros((2, 2000, 3), np.uint8), STYLE, _settings(weights="random"),
                            title="strip")
    assert manager.list() == []


def test_submit_writes_the_inputs_and_parameters_of_the_job(data_root):
    manager = JobManager(data_root / "jobs", autostart=False)
    job_id = submit.submit_gatys(manager, CONTENT, STYLE, _settings(weights="random"), title="queued",
                                 mask=builtin_images.horse_silhouette())
    state = manager.get(job_id)
    assert state.kind == "style-transfer" and state.params["silhouette"] and state.params["random_weights"]
    folder = manager.job_dir(job_id)
    assert {run_layout.CONTENT_INPUT, run_layout.STYLE_INPUT, run_layout.MASK_INPUT} <= set(state.files)
    mask = np.asarray(Image.open(folder / run_layout.MASK_INPUT))
    assert mask.shape == CONTENT.shape[:2] and set(np.unique(mask)) == {0, 255}


def test_a_stopped_worker_job_resumes_from_its_last_preview(data_root):
    """The real path: a worker process runs the job, Stop ends it, Resume continues it."""
    manager = JobManager(data_root / "jobs")
    try:
        job_id = submit.submit_gatys(manager, CONTENT, STYLE, _settings(steps=2000, preview_every=3,
                                                                        weights="random"), title="resume me")
        deadline = time.monotonic() + 120
        while (manager.get(job_id).result or {}).get("preview_step", 0) < 3:
            assert manager.get(job_id).status in ("queued", "running"), manager.get(job_id).error
            assert time.monotonic() < deadline, "no preview"
            time.sleep(0.1)
        manager.stop(job_id)
        stopped = manager.wait(job_id, timeout=60)
        assert stopped.status == "stopped" and manager.file(stopped, "result") is not None
        done = json.loads((manager.job_dir(job_id) / run_layout.STYLE_PROGRESS).read_text())["steps_done"]
        manager.resume(job_id)
        while (manager.get(job_id).result or {}).get("preview_step", 0) <= done:
            assert time.monotonic() < deadline + 60, manager.get(job_id)
            time.sleep(0.1)
        manager.stop(job_id)
        resumed = manager.wait(job_id, timeout=60)
        steps = [row["step"] for row in resumed.result["history"]]
        assert resumed.status == "stopped" and resumed.result["resumed_at_step"] == done
        assert steps == list(range(1, len(steps) + 1)) and len(steps) > done
    finally:
        manager.shutdown_runner()
