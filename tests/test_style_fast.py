"""Fast arbitrary style transfer with the real Magenta TF Lite networks (../shared fixtures):
the stylised picture, the strength slider, silhouette mode, the model files' checks and download."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from services.errors import DownloadFailed
from services.jobs import JobManager, run_inline
from services.style import builtin_images, fast, fast_models, submit
from services.style.settings import FastSettings
from tests.conftest import serve_folder
from tests.style_helpers import installed_magenta, job_inputs, magenta_fixture, painting  # noqa: F401 (fixtures)

pytestmark = pytest.mark.needs_shared


def _colour_stats(pixels: np.ndarray) -> np.ndarray:
    flat = pixels.reshape(-1, 3).astype(np.float64) / 255.0
    return np.concatenate([flat.mean(0), flat.std(0)])


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(_colour_stats(a) - _colour_stats(b)).sum())


@pytest.fixture(scope="module")
def pictures(shared_fixtures):
    return painting(shared_fixtures, "tubingen.jpg", 384), painting(shared_fixtures, "the_scream.jpg", 256)


def test_stylised_picture_moves_towards_the_style_colours(installed_magenta, pictures):
    content, style = pictures
    result = fast.stylise_fast(content, style, FastSettings(max_side=384))
    assert result.shape[:2] == fast.output_shape(content.shape, 384) and result.dtype == np.uint8
    resized = np.asarray(Image.fromarray(content).resize(result.shape[1::-1], Image.Resampling.LANCZOS))
    assert np.abs(result.astype(int) - resized).mean() > 20  # visibly different from the photo
    assert _distance(result, style) < 0.5 * _distance(resized, style)


def test_strength_zero_returns_the_content_and_half_lies_between(installed_magenta, pictures):
    content, style = pictures
    stylist = fast.stylist_for()
    none = fast.stylise_fast(content, style, FastSettings(strength=0.0), stylist)
    half = fast.stylise_fast(content, style, FastSettings(strength=0.5), stylist)
    full = fast.stylise_fast(content, style, FastSettings(strength=1.0), stylist)
    resized = np.asarray(Image.fromarray(content).resize(none.shape[1::-1], Image.Resampling.LANCZOS))
    assert np.abs(none.astype(int) - resized).mean() < 1.0
    assert _distance(full, style) < _distance(half, style) < _distance(none, style)


def test_both_networks_and_silhouette_mode_run_as_a_job(installed_magenta, pictures, tmp_path):
    _, style = pictures
    files = job_inputs(builtin_images.horse_silhouette_rgb(), style, builtin_images.horse_silhouette())
    for variant in fast_models.TRANSFER_VARIANTS:
        params = {"engine": "fast", "settings": FastSettings(max_side=256, variant=variant).to_dict(),
                  "silhouette": True}
        outcome = run_inline("fast-style-transfer", params, tmp_path / variant, files)
        assert outcome.status == "finished", outcome.error
        mask = np.asarray(Image.open(tmp_path / variant / outcome.result["mask"]))
        masked = np.asarray(Image.open(tmp_path / variant / outcome.result["result_masked"]))
        assert masked.shape[:2] == mask.shape and max(mask.shape) == 256
        assert (masked[mask == 255] == 255).all() and masked[mask == 0].std() > 5
        assert outcome.result["interpreter"] in ("LiteRT", "tf.lite")


def test_a_truncated_file_is_refused_with_a_clear_message(installed_magenta, tmp_path, shared_fixtures):
    transfer_file = installed_magenta / fast_models.TRANSFER_VARIANTS["f16"].file_name
    data = transfer_file.read_bytes()
    transfer_file.write_bytes(data[: len(data) // 2])
    current = fast_models.status("f16")
    assert not current.usable and "truncated: 211,043 bytes instead of 422,086" in current.reason
    outcome = run_inline("fast-style-transfer", {"settings": FastSettings().to_dict()}, tmp_path / "job",
                         job_inputs())
    assert outcome.status == "failed" and "truncated" in outcome.error and "Press download" in outcome.error
    assert str(tmp_path) not in outcome.error
    with pytest.raises(fast.BadModelFile, match="truncated or damaged"):
        fast.load_interpreter(transfer_file)
    (tmp_path / "notes.tflite").write_bytes(b"hello, not a model")
    with pytest.raises(fast.BadModelFile, match="not a TF Lite model"):
        fast.load_interpreter(tmp_path / "notes.tflite")
    assert fast_models.status("int8").usable  # the other network is untouched


def test_submit_needs_the_files_and_names_the_download(data_root, pictures):
    manager = JobManager(data_root / "jobs", autostart=False)
    content, style = pictures
    with pytest.raises(fast_models.FastModelMissing, match="style_predict_quantized_256.tflite"):
        submit.submit_fast(manager, content, style, FastSettings(), title="no files")
    assert manager.list() == []


def test_download_checks_size_and_checksum(data_root, shared_fixtures, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    for item in fast_models.files_for("int8"):
        shutil.copyfile(magenta_fixture(shared_fixtures, item.file_name), served / item.file_name)
    with serve_folder(served) as server:
        monkeypatch.setattr(fast_models, "_BASE_URL", server.url)
        outcome = run_inline("style-model-download", {"variant": "int8"}, tmp_path / "job")
        assert outcome.status == "finished", outcome.error
        assert fast_models.status("int8").usable and outcome.reports[-1][0] == pytest.approx(1.0)
        f16 = fast_models.TRANSFER_VARIANTS["f16"].file_name
        altered = bytearray(magenta_fixture(shared_fixtures, f16).read_bytes())
        altered[100] ^= 0xFF
        (served / f16).write_bytes(bytes(altered))
        with pytest.raises(DownloadFailed, match="sha256"):
            fast_models.download_files("f16")
    assert sorted(path.name for path in fast_models.folder().iterdir()) == sorted(
        item.file_name for item in fast_models.files_for("int8"))  # nothing of the altered file kept
