"""ONNX detectors through OpenCV's ONNX importer: a generated model whose output is known."""

from __future__ import annotations

import numpy as np
import pytest

from services.detection import registry
from services.detection.backends import OnnxBackend, OnnxLayoutError
from services.detection.decode import select
from services.detection.detector import run_detection

SIZE = 32


def _constant_detector(path, output: np.ndarray, input_shape=(1, 3, SIZE, SIZE)):
    """An ONNX graph whose output is ``output`` whatever the image (0 * mean(image) + constant)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=1),
         helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
         helper.make_node("Reshape", ["zeros", "one_shape"], ["flat"]),
         helper.make_node("Add", ["flat", "constant"], ["output"])],
        "constant_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(output.shape))],
        [numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
         numpy_helper.from_array(np.ones(len(output.shape), np.int64), "one_shape"),
         numpy_helper.from_array(output.astype(np.float32), "constant")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_yolov5_layout_gives_the_known_box(tmp_path):
    # one confident box centred at (16, 8) in input pixels, 8 x 4, class 1 of 2; one weak box
    output = np.array([[[16, 8, 8, 4, 0.9, 0.1, 0.8], [5, 5, 2, 2, 0.1, 0.5, 0.5]]], np.float32)
    backend = OnnxBackend(_constant_detector(tmp_path / "v5.onnx", output), ["cat", "dog"])
    assert backend.layout == "yolov5" and backend.input_size == SIZE
    image = np.zeros((64, 128, 3), np.uint8)  # plain resize: x * 4, y * 2
    found = select(run_detection(backend, image, SIZE).candidates, 0.5, 0.45)
    assert found.class_ids.tolist() == [1]
    assert found.scores == pytest.approx([0.72])
    assert np.allclose(found.boxes, [[48, 12, 80, 20]], atol=1e-3)


def test_yolov8_layout_without_objectness(tmp_path):
    output = np.zeros((1, 4 + 3, 5), np.float32)
    output[0, :, 2] = [8, 8, 4, 4, 0.1, 0.2, 0.6]
    backend = OnnxBackend(_constant_detector(tmp_path / "v8.onnx", output), ["a", "b", "c"])
    found = select(run_detection(backend, np.zeros((SIZE, SIZE, 3), np.uint8), SIZE).candidates, 0.5, 0.45)
    assert backend.layout == "yolov8" and found.class_ids.tolist() == [2]
    assert np.allclose(found.boxes, [[6, 6, 10, 10]], atol=1e-3)


@pytest.mark.parametrize("shape, names, message", [
    ((1, 4, 7, 1), ["a", "b"], "not a YOLO export"),
    ((1, 4, 9), ["a", "b"], "does not match 2 class names"),
])
def test_unexpected_output_layouts_are_refused(tmp_path, shape, names, message):
    path = _constant_detector(tmp_path / "odd.onnx", np.zeros(shape, np.float32))
    with pytest.raises(OnnxLayoutError, match=message):
        OnnxBackend(path, names)


def test_non_image_input_and_garbage_files_are_refused(tmp_path):
    path = _constant_detector(tmp_path / "flat.onnx", np.zeros((1, 2, 7), np.float32), input_shape=(1, 12))
    with pytest.raises(OnnxLayoutError, match=r"is not \(1, 3, H, W\)"):
        OnnxBackend(path, ["a", "b"])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(OnnxLayoutError, match="garbage.onnx"):
        OnnxBackend(garbage, ["a"])


def test_saved_onnx_models_are_validated_before_they_are_kept(data_root):
    output = np.array([[[16, 8, 8, 4, 0.9, 0.1, 0.8]]], np.float32)
    source = _constant_detector(data_root / "v5.onnx", output)
    with pytest.raises(OnnxLayoutError):
        registry.save_onnx("my detector.onnx", b"not a model", ["cat", "dog"])
    assert registry.onnx_models() == []
    stem = registry.save_onnx("my detector.onnx", source.read_bytes(), ["cat", "dog"])
    assert stem == "my_detector" and registry.onnx_models() == [stem]
    assert registry.onnx_names(stem) == ["cat", "dog"]
    assert sorted(p.name for p in registry.onnx_dir().iterdir()) == ["my_detector.names", "my_detector.onnx"]
