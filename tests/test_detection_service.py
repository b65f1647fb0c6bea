"""The model-service operations for Darknet on TensorFlow, called directly with a ModelCache."""

from __future__ import annotations

import numpy as np
import pytest

from services.detection import registry, service_ops
from services.detection.backends import OpenCVDarknetBackend
from services.detection.decode import select
from services.detection.detector import run_detection
from services.detection.samples import load_sample
from services.errors import UserFacingError
from services.model_service.cache import ModelCache


def test_detect_matches_opencv_and_the_model_is_cached(data_root):
    cache = ModelCache()
    described, _ = service_ops.describe(cache, {"model": registry.DEMO_KEY}, {})
    assert described["random_weights"] and len(described["names"]) == 80
    image = load_sample("coffee")
    result, arrays = service_ops.detect(cache, {"model": registry.DEMO_KEY, "input_size": 320, "raw": True},
                                        {"image": image})
    assert len(cache) == 1 and result["backend"] == "TensorFlow" and set(result["timings_ms"]) == {
        "preprocess", "inference", "postprocess"}
    assert {"candidates", "head0", "head1"} == set(arrays)
    ours = select(service_ops.candidates_from_rows(arrays["candidates"]), 0.05, 0.45)
    reference = select(run_detection(OpenCVDarknetBackend(registry.load_demo()), image, 320).candidates, 0.05, 0.45)
    assert len(ours) == len(reference) > 0
    assert np.allclose(ours.boxes, reference.boxes, atol=0.05) and ours.class_ids.tolist() == reference.class_ids.tolist()


@pytest.mark.parametrize("args, arrays, message", [
    ({"model": registry.DEMO_KEY, "input_size": 100}, {"image": np.zeros((8, 8, 3), np.uint8)}, "multiple of 32"),
    ({"model": registry.DEMO_KEY, "input_size": 320}, {"image": np.zeros((8, 8), np.float32)}, "RGB uint8"),
    ({"model": "onnx:x", "input_size": 320}, {}, "Darknet model key"),
    ({"model": "yolov3", "input_size": 320}, {"image": np.zeros((8, 8, 3), np.uint8)}, "yolov3.weights"),
])
def test_bad_requests_are_refused_clearly(data_root, args, arrays, message):
    with pytest.raises(UserFacingError, match=message):
        service_ops.detect(ModelCache(), args, arrays)
