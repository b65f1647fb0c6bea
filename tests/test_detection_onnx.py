"""ONNX detectors on onnxruntime and OpenCV: small graphs built with the onnx helper API whose
outputs are known (YOLOv5, YOLOv8, YOLOX raw grids, NMS inside), bad files, and the real int8
YOLOv8n on dog.jpg."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.detection import onnx_store
from services.detection.decode import Detections, check_threshold, select
from services.detection.detector import run_detection
from services.detection.onnx_layouts import OnnxLayoutError
from services.detection.onnx_model import OnnxDetector
from services.errors import UserFacingError
from tests.detection_helpers import SIZE, constant_detector, nms_inside_detector


def _found(detector, image, score=0.5):
    return select(run_detection(detector, image, detector.input_size).candidates, score, 0.45)


@pytest.mark.parametrize("runtime", ["onnxruntime", "OpenCV"])
def test_yolov5_layout_gives_the_known_box_on_both_runtimes(runtime):
    # one confident box centred at (16, 8) in input pixels, 8 x 4, class 1 of 2; one weak box
    output = np.array([[[16, 8, 8, 4, 0.9, 0.1, 0.8], [5, 5, 2, 2, 0.1, 0.5, 0.5]]], np.float32)
    detector = OnnxDetector(constant_detector(output), "v5.onnx", names=["cat", "dog"], runtime=runtime,
                            family="yolov5")
    assert detector.family == "yolov5" and detector.input_size == SIZE and detector.name == runtime
    found = _found(detector, np.zeros((64, 128, 3), np.uint8))  # plain resize: x * 4, y * 2
    assert found.class_ids.tolist() == [1]
    assert found.scores == pytest.approx([0.72])
    assert np.allclose(found.boxes, [[48, 12, 80, 20]], atol=1e-3)


def test_yolov8_layout_is_detected_from_the_grid_size():
    cells = SIZE // 8 * (SIZE // 8) + (SIZE // 16) ** 2 + (SIZE // 32) ** 2  # 16 + 4 + 1
    output = np.zeros((1, 4 + 3, cells), np.float32)
    output[0, :, 2] = [8, 8, 4, 4, 0.1, 0.2, 0.6]
    detector = OnnxDetector(constant_detector(output), "v8.onnx", names=["a", "b", "c"])
    found = _found(detector, np.zeros((SIZE, SIZE, 3), np.uint8))
    assert detector.family == "yolov8" and found.class_ids.tolist() == [2]
    assert np.allclose(found.boxes, [[6, 6, 10, 10]], atol=1e-3)


def test_yolox_raw_grid_outputs_are_decoded_with_bgr_0_255_input():
    size = 64
    cells = [(size // s) ** 2 for s in (8, 16, 32)]  # 64, 16, 4
    output = np.zeros((1, sum(cells), 5 + 2), np.float32)
    row = cells[0] + 2 * (size // 16) + 1  # stride 16, column 1, row 2
    output[0, row] = [0.5, 0.5, math.log(2), math.log(2), 0.0, 0.9, 0.1]
    gain = np.zeros_like(output)
    gain[0, row, 4] = 1 / 255  # objectness = mean of the first input channel / 255
    detector = OnnxDetector(constant_detector(output, (1, 3, size, size), gain, channel=0), "yolox.onnx",
                            names=["cell", "other"])
    assert detector.family == "yolox"
    blue, red = np.zeros((size, size, 3), np.uint8), np.zeros((size, size, 3), np.uint8)
    blue[..., 2], red[..., 0] = 255, 255
    found = _found(detector, blue)  # BGR: blue is channel 0, at 255 (no /255): objectness 1
    assert found.class_ids.tolist() == [0] and found.scores == pytest.approx([0.9], abs=1e-4)
    # centre ((0.5 + 1) * 16, (0.5 + 2) * 16) = (24, 40), size exp(ln 2) * 16 = 32
    assert np.allclose(found.boxes, [[8, 24, 40, 56]], atol=1e-3)
    assert len(_found(detector, red, score=0.01)) == 0  # red is channel 2 in BGR: objectness 0


def test_nms_inside_the_model_with_separate_outputs():
    boxes = np.array([[2, 2, 12, 12], [3, 3, 12, 12], [20, 20, 30, 28]], np.float32)
    scores = np.array([[0.9, 0.8, 0.1], [0.0, 0.0, 0.7]], np.float32)  # class 0: two overlapping boxes
    detector = OnnxDetector(nms_inside_detector(boxes, scores), "nms.onnx", names=["a", "b"])
    assert detector.family == "nms" and detector.layout.outputs == ("det_boxes", "det_scores", "classes")
    found = _found(detector, np.zeros((SIZE, SIZE, 3), np.uint8))
    assert found.class_ids.tolist() == [0, 1] and found.scores == pytest.approx([0.9, 0.7])
    assert np.allclose(found.boxes[found.class_ids == 1], [[20, 20, 30, 28]], atol=1e-3)


def test_nms_inside_with_one_k_by_6_output():
    output = np.zeros((1, 5, 6), np.float32)
    output[0, 0] = [4, 4, 20, 12, 0.8, 1]  # x1, y1, x2, y2, score, class; the other rows are padding
    detector = OnnxDetector(constant_detector(output), "end2end.onnx", names=["a", "b"])
    found = _found(detector, np.zeros((SIZE, SIZE, 3), np.uint8))
    assert detector.family == "nms" and found.class_ids.tolist() == [1]
    assert np.allclose(found.boxes, [[4, 4, 20, 12]], atol=1e-3)


@pytest.mark.parametrize("shape, names, family, message", [
    ((1, 4, 7, 1), None, "auto", r"outputs seen: output \(1, 4, 7, 1\)"),
    ((1, 9, 4), ["a", "b"], "auto", r"cannot tell which YOLO family .*output \(1, 9, 4\)"),
    ((1, 3, 9), ["a", "b"], "yolox", r"YOLOX output at input 32 x 32 has 21 rows"),
    ((1, 3, 9), ["a"], "yolov5", "the outputs have 4 classes but the names file lists 1 names"),
    ((1, 3, 7), None, "yolov5", "add a names file with 2 lines"),
])
def test_layouts_it_cannot_interpret_are_refused_with_the_shapes(shape, names, family, message):
    with pytest.raises(OnnxLayoutError, match=message):
        OnnxDetector(constant_detector(np.zeros(shape, np.float32)), "odd.onnx", names=names, family=family)


def test_bad_files_are_refused_without_paths_or_huge_probes():
    good = constant_detector(np.zeros((1, 3, 7), np.float32))
    with pytest.raises(OnnxLayoutError, match=r"^cut.onnx: not a readable ONNX model \(truncated"):
        OnnxDetector(good[: len(good) // 2], "cut.onnx")
    with pytest.raises(OnnxLayoutError, match="not a readable ONNX model"):
        OnnxDetector(b"not a model at all", "garbage.onnx")
    flat = constant_detector(np.zeros((1, 3, 7), np.float32), input_shape=(1, 12))
    with pytest.raises(OnnxLayoutError, match=r"is not \(1, 3, H, W\)"):
        OnnxDetector(flat, "flat.onnx")
    huge = constant_detector(np.zeros((1, 3, 7), np.float32), input_shape=(1, 3, 30000, 30000))
    with pytest.raises(OnnxLayoutError, match="declares a 30000 x 30000 input, more than the limit"):
        OnnxDetector(huge, "huge.onnx")  # 10.8 GB of float32 if a probe were allocated


@pytest.mark.parametrize("value", [-1, 1.5, float("nan"), "abc", None])
def test_thresholds_outside_0_1_are_refused(value):
    with pytest.raises(UserFacingError, match="between 0 and 1"):
        check_threshold(value, "score threshold")
    empty = Detections.empty()
    with pytest.raises(UserFacingError):
        select(empty, value, 0.45)
    with pytest.raises(UserFacingError):
        select(empty, 0.25, value)


def test_saved_models_keep_family_and_names_and_never_replace(data_root):
    output = np.array([[[16, 8, 8, 4, 0.9, 0.1, 0.8]]], np.float32)
    data = constant_detector(output)
    saved = onnx_store.save_onnx("my detector.onnx", data, ["cat", "dog"], family="yolov5")
    assert saved.info.stem == "my_detector" and saved.warning is None
    assert saved.info.runtimes == ("onnxruntime", "OpenCV")
    assert onnx_store.onnx_models() == ["my_detector"]
    assert onnx_store.save_onnx("my detector.onnx", data, ["cat", "dog"], "yolov5").message.startswith(
        "my_detector is already installed")
    other = constant_detector(output * 0.5)
    second = onnx_store.save_onnx("my detector.onnx", other, ["cat", "dog"], "yolov5")
    assert second.info.stem == "my_detector-2" and "is kept" in second.message
    assert onnx_store.onnx_models() == ["my_detector", "my_detector-2"]
    loaded = onnx_store.load_onnx("my_detector", "OpenCV")
    assert loaded.family == "yolov5" and loaded.names == ["cat", "dog"]
    assert not [p for p in onnx_store.onnx_dir().iterdir() if p.name.startswith(".")]  # no temporary left
    with pytest.raises(OnnxLayoutError):
        onnx_store.save_onnx("bad.onnx", b"not a model", ["cat", "dog"])
    with pytest.raises(UserFacingError, match="no uploaded ONNX model"):
        onnx_store.onnx_info("../etc")


def test_a_model_finding_nothing_on_the_sample_says_so(data_root):
    silent = constant_detector(np.zeros((1, 3, 7), np.float32))  # every score 0
    saved = onnx_store.save_onnx("silent.onnx", silent, ["a", "b"], family="yolov5")
    assert "scored no box above 0.005" in saved.warning and "choose the family by hand" in saved.warning


@pytest.mark.needs_shared
def test_real_int8_yolov8n_finds_the_dog(shared_fixtures, data_root):
    from services.images import decode_image

    data = (shared_fixtures / "onnx" / "yolov8n_int8.onnx").read_bytes()
    saved = onnx_store.save_onnx("yolov8n_int8.onnx", data)  # names, size and family from the metadata
    assert saved.info.family == "yolov8" and saved.info.runtimes == ("onnxruntime",)  # OpenCV: ConvInteger
    detector = onnx_store.load_onnx(saved.info.stem)
    assert detector.names_from_metadata and detector.names[16] == "dog" and detector.input_size == 640
    image = decode_image(shared_fixtures / "darknet" / "dog.jpg").pixels
    found = _found(detector, image, score=0.25)
    labels = {detector.names[c] for c in found.class_ids}
    assert {"dog", "bicycle"} <= labels
    dog = found.boxes[[detector.names[c] == "dog" for c in found.class_ids]][0]
    assert 100 < dog[0] < 170 and 480 < dog[3] < 580  # left part of the photo, down to the ground
    with pytest.raises(UserFacingError, match="cannot run on OpenCV"):
        onnx_store.load_onnx(saved.info.stem, "OpenCV")


def test_metadata_names_are_parsed_never_evaluated():
    from services.detection.onnx_model import metadata_names, metadata_size

    assert metadata_names({"names": "{0: 'person', 1: \"bi cycle\", 2: 'tv'}"}) == ["person", "bi cycle", "tv"]
    assert metadata_names({"names": "{0: 'a', 2: 'c'}"}) is None  # a gap: not a class list
    assert metadata_names({"names": "__import__('os').system('touch /tmp/owned')"}) is None
    assert metadata_names({"names": "{0: 'a', " * 200_000}) is None  # over the size cap
    assert metadata_size({"imgsz": "[640, 640]"}) == 640 and metadata_size({"imgsz": "[640, 480]"}) is None


def test_cuda_is_preferred_when_onnxruntime_offers_it(monkeypatch):
    import onnxruntime

    from services.detection import onnx_model

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["AzureExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    assert onnx_model._providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_two_sessions_adding_the_same_onnx_name_at_once_both_succeed(data_root):
    from concurrent.futures import ThreadPoolExecutor

    models = [constant_detector(np.array([[[16, 8, 8, 4, 0.9, 0.1, 0.1 * k]]], np.float32)) for k in range(1, 4)]
    with ThreadPoolExecutor(3) as pool:
        saved = list(pool.map(lambda data: onnx_store.save_onnx("same.onnx", data, ["a", "b"], "yolov5"), models))
    assert sorted(s.info.stem for s in saved) == ["same", "same-2", "same-3"]
    assert {onnx_store.onnx_info(s.info.stem).sha256 for s in saved} == {s.info.sha256 for s in saved}
