"""Yolo-Fastest 1.1: a real COCO-trained Darknet model (grouped / depthwise convolutions,
dropout, SPP) on TensorFlow (the Keras rebuild) and on OpenCV, with its published weights."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.detection.backends import KerasBackend, OpenCVDarknetBackend
from services.detection.cfg import Dropout
from services.detection.decode import preprocess, rows_to_candidates, select
from services.detection.models import load_darknet, parse_names
from services.detection.nms import class_wise_nms, nms
from tests.detection_helpers import greedy_nms_reference
from tests.test_detection_cfg import CFGS

pytestmark = pytest.mark.needs_shared

TOLERANCE = 1e-4
# Boxes read by hand off dog.jpg (768 x 576), x1, y1, x2, y2: approximate, for IoU >= 0.5 only.
OBJECTS = {"dog": (128, 224, 314, 540), "bicycle": (127, 127, 568, 427), "car": (468, 74, 686, 171)}


@pytest.fixture(scope="module")
def model(shared_fixtures):
    darknet = shared_fixtures / "darknet"
    names = parse_names((darknet / "coco.names").read_text(), "coco.names")
    # The cfg shipped with the product, the weights from the fixtures (never shipped).
    return load_darknet(CFGS / "yolo-fastest-1.1.cfg", darknet / "yolo-fastest-1.1.weights", names)


@pytest.fixture(scope="module")
def dog(shared_fixtures):
    image = cv2.imread(str(shared_fixtures / "darknet" / "dog.jpg"), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def backends(model):
    return KerasBackend(model), OpenCVDarknetBackend(model)


def _iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    overlap = max(w, 0) * max(h, 0)
    return overlap / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap)


def test_the_shipped_cfg_is_yolo_fastest_with_grouped_convolutions(model, shared_fixtures):
    shipped = (CFGS / "yolo-fastest-1.1.cfg").read_bytes()
    assert shipped == (shared_fixtures / "darknet" / "yolo-fastest-1.1.cfg").read_bytes()
    config = model.config
    depthwise = [layer for layer in config.conv_layers if layer.depthwise]
    assert len(config.layers) == 131 and len(depthwise) == 28
    assert any(isinstance(layer, Dropout) for layer in config.layers)
    assert {layer.size for layer in depthwise} == {3, 5}
    assert [layer.output_shape for layer in config.yolo_layers] == [(10, 10, 255), (20, 20, 255)]


def test_tensorflow_equals_opencv_on_dog_jpg(model, dog, backends):
    batch, _ = preprocess(dog, model.config.width)
    keras_heads, opencv_heads = (backend.raw(batch) for backend in backends)
    for keras_head, opencv_head in zip(keras_heads, opencv_heads):
        assert keras_head.shape == opencv_head.shape
        assert np.abs(keras_head).max() > 1  # real activations, not near zero
        assert np.abs(keras_head - opencv_head).max() <= TOLERANCE


@pytest.mark.parametrize("backend_index", [0, 1], ids=["TensorFlow", "OpenCV"])
def test_both_backends_find_dog_bicycle_and_car(model, dog, backends, backend_index):
    batch, transform = preprocess(dog, model.config.width)
    found = select(rows_to_candidates(backends[backend_index].rows(batch), transform), 0.25, 0.45)
    labels = [model.names[i] for i in found.class_ids]
    for name, box in OBJECTS.items():
        boxes = [found.boxes[i] for i, label in enumerate(labels) if label == name]
        assert boxes, f"no {name} among {labels}"
        assert max(_iou(b, box) for b in boxes) >= 0.5, f"{name} found in the wrong place"


def test_nms_on_the_real_candidates_equals_the_greedy_loop(model, dog, backends):
    batch, transform = preprocess(dog, model.config.width)
    candidates = rows_to_candidates(backends[1].rows(batch), transform)
    chosen = candidates.take(np.flatnonzero(candidates.scores >= 0.01))
    assert len(chosen) > 50  # real, overlapping candidates
    for threshold in (0.2, 0.45, 0.7):
        assert nms(chosen.boxes, chosen.scores, threshold).tolist() == greedy_nms_reference(
            chosen.boxes, chosen.scores, threshold)
        assert class_wise_nms(chosen.boxes, chosen.scores, chosen.class_ids, threshold).tolist() == (
            greedy_nms_reference(chosen.boxes, chosen.scores, threshold, chosen.class_ids))
