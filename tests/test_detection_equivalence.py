"""The Keras rebuild equals OpenCV 4.x readNetFromDarknet on the same cfg and random weights."""

from __future__ import annotations

import numpy as np
import pytest

from services.detection.backends import KerasBackend, OpenCVDarknetBackend
from services.detection.decode import preprocess
from tests.detection_helpers import SYNTHETIC_CFG, write_model

TOLERANCE = 1e-3


def _random_image(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size + 20, 3), dtype=np.uint8)


def _assert_backends_agree(model, size: int) -> None:
    batch, _ = preprocess(_random_image(size), size)
    keras_heads = KerasBackend(model).raw(batch)
    opencv = OpenCVDarknetBackend(model)
    opencv_heads = opencv.raw(batch)
    assert [h.shape for h in keras_heads] == [(1, *layer.output_shape) for layer in model.config.yolo_layers]
    for keras_head, opencv_head in zip(keras_heads, opencv_heads):
        assert np.isfinite(keras_head).all() and np.abs(keras_head).max() > 1e-2  # not trivially zero
        assert np.abs(keras_head - opencv_head).max() <= TOLERANCE
    # The decoded rows equal what OpenCV's own yolo layers report (they zero class scores < 0.2).
    rows = opencv.rows(batch)
    reference = np.concatenate(opencv.yolo_layer_rows(batch))
    assert rows.shape == reference.shape
    boxes_close = np.abs(rows[:, :5] - reference[:, :5]) <= TOLERANCE * np.maximum(1, np.abs(reference[:, :5]))
    assert boxes_close.all()
    clear = np.abs(rows[:, 5:] - 0.2) > 1e-4
    thresholded = np.where(rows[:, 5:] > 0.2, rows[:, 5:], 0)
    assert np.allclose(thresholded[clear], reference[:, 5:][clear], atol=TOLERANCE)


def test_synthetic_cfg_with_every_layer_type_matches_opencv(tmp_path):
    _assert_backends_agree(write_model(tmp_path, SYNTHETIC_CFG, "synthetic.cfg", 64, seed=3), 64)


@pytest.mark.parametrize("name, size", [("yolov3-tiny.cfg", 128), ("yolov3.cfg", 128)])
def test_real_topologies_match_opencv(shared_fixtures, tmp_path, name, size):
    text = (shared_fixtures / "darknet" / name).read_text()
    _assert_backends_agree(write_model(tmp_path, text, name, size, seed=1), size)


def test_yolov4_tiny_loads_and_runs_on_both_backends(tmp_path):
    from tests.test_detection_cfg import CFGS

    model = write_model(tmp_path, (CFGS / "yolov4-tiny.cfg").read_text(), "yolov4-tiny.cfg", 96, seed=2)
    _assert_backends_agree(model, 96)


def test_a_shared_backend_is_safe_under_concurrent_sessions(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    model = write_model(tmp_path, SYNTHETIC_CFG, "synthetic.cfg", 64, seed=4)
    backend = OpenCVDarknetBackend(model)  # one cv2.dnn.Net, shared like st.cache_resource shares it
    batches = [preprocess(_random_image(64, seed), 64)[0] for seed in range(6)]
    expected = [backend.rows(batch) for batch in batches]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(backend.rows, batches * 4))
    assert all(np.array_equal(result, expected[i % 6]) for i, result in enumerate(results))
