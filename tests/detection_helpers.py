"""Helpers for the detection tests: cfgs with small inputs and random weights on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.detection.cfg import parse_cfg
from services.detection.models import DarknetModel, load_darknet
from services.detection.weights import random_weights_bytes

# A small network that uses every supported layer type and option: stride-2 conv (Darknet
# padding), size-2 stride-1 maxpool, route groups, multi-source route, shortcut, upsample,
# leaky / linear / mish / logistic / relu activations, conv without batch norm, scale_x_y.
SYNTHETIC_CFG = """\
[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=mish

[route]
layers=-1
groups=2
group_id=1

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=logistic

[route]
layers=-1,-2

[convolutional]
filters=16
size=3
stride=1
pad=1
activation=relu

[shortcut]
from=-5
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=3,4,5
anchors=4,5, 8,9, 12,10, 16,20, 24,30, 40,36
classes=2
num=6
scale_x_y=1.05

[route]
layers=-3

[upsample]
stride=2

[route]
layers=-1,-8

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=0,1,2
anchors=4,5, 8,9, 12,10, 16,20, 24,30, 40,36
classes=2
num=6
"""


def write_model(directory: Path, text: str, name: str, size: int, seed: int = 0,
                kernel_scale: float | None = None) -> DarknetModel:
    """cfg (with the input size changed) + random weights on disk, loaded through load_darknet."""
    directory.mkdir(parents=True, exist_ok=True)
    config = parse_cfg(text, name).with_input_size(size)
    lines = [f"width={size}" if l.startswith("width") else f"height={size}" if l.startswith("height") else l
             for l in text.splitlines()]
    cfg_path = directory / name
    cfg_path.write_text("\n".join(lines) + "\n")
    weights_path = directory / (Path(name).stem + ".weights")
    weights_path.write_bytes(random_weights_bytes(config, seed=seed, kernel_scale=kernel_scale))
    names = [f"class{i}" for i in range(config.classes)]
    return load_darknet(cfg_path, weights_path, names, random_weights=True)


def opencv_heads(model: DarknetModel, batch) -> list:
    """The input of every [yolo] layer as OpenCV computes it, (1, H, W, C) each: the outputs of
    the permute layers OpenCV puts before its yolo layers, i.e. after the head's activation."""
    import cv2

    net = cv2.dnn.readNetFromDarknet(str(model.cfg_path), str(model.weights_path))
    names = [name for name in net.getLayerNames() if name.startswith("permute_")]
    net.setInput(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
    return [np.asarray(output) for output in net.forward(names)]


def opencv_yolo_rows(model: DarknetModel, batch) -> list:
    """The rows OpenCV's own yolo layers report (class scores under 0.2 zeroed), one array per layer."""
    import cv2

    net = cv2.dnn.readNetFromDarknet(str(model.cfg_path), str(model.weights_path))
    net.setInput(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
    return [np.asarray(output) for output in net.forward(list(net.getUnconnectedOutLayersNames()))]


# ---------------------------------------------------------------- small ONNX detectors
SIZE = 32
"""Input side of the small ONNX graphs below."""


def _model_bytes(nodes, outputs, initialisers, input_shape=(1, 3, SIZE, SIZE), opset=13) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "detector",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))],
                              outputs, initialisers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def constant_detector(output: np.ndarray, input_shape=(1, 3, SIZE, SIZE), input_gain: np.ndarray | None = None,
                      channel: int = 0) -> bytes:
    """Output = constant + mean(input channel ``channel``) * ``input_gain`` (zero by default)."""
    from onnx import TensorProto, helper, numpy_helper

    gain = np.zeros_like(output) if input_gain is None else input_gain
    nodes = [helper.make_node("Gather", ["images", "channel"], ["plane"], axis=1),
             helper.make_node("ReduceMean", ["plane"], ["mean"], keepdims=1),
             helper.make_node("Reshape", ["mean", "one"], ["flat"]),
             helper.make_node("Mul", ["flat", "gain"], ["scaled"]),
             helper.make_node("Add", ["scaled", "constant"], ["output"])]
    initialisers = [numpy_helper.from_array(np.array([channel], np.int64), "channel"),
                    numpy_helper.from_array(np.ones(1, np.int64), "one"),
                    numpy_helper.from_array(gain.astype(np.float32), "gain"),
                    numpy_helper.from_array(output.astype(np.float32), "constant")]
    return _model_bytes(nodes, [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(output.shape))],
                        initialisers, input_shape)


def nms_inside_detector(boxes: np.ndarray, scores: np.ndarray) -> bytes:
    """A real ONNX NonMaxSuppression inside the graph: boxes (N, 4) xyxy, scores (C, N) ->
    outputs boxes (K, 4), scores (K,), classes (K,) int64."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
             helper.make_node("Add", ["boxes_const", "nothing"], ["boxes_2d"]),
             helper.make_node("Unsqueeze", ["boxes_2d", "axis0"], ["boxes_3d"]),
             helper.make_node("NonMaxSuppression", ["boxes_3d", "scores_3d", "max_out", "iou", "floor"], ["sel"]),
             helper.make_node("Gather", ["sel", "col1"], ["classes"], axis=1),
             helper.make_node("Gather", ["sel", "col2"], ["index"], axis=1),
             helper.make_node("Gather", ["boxes_2d", "index"], ["det_boxes"], axis=0),
             helper.make_node("GatherND", ["scores_3d", "sel"], ["det_scores"])]
    initialisers = [numpy_helper.from_array(np.zeros((), np.float32), "zero"),
                    numpy_helper.from_array(boxes.astype(np.float32), "boxes_const"),
                    numpy_helper.from_array(np.array([0], np.int64), "axis0"),
                    numpy_helper.from_array(scores[None].astype(np.float32), "scores_3d"),
                    numpy_helper.from_array(np.array([10], np.int64), "max_out"),
                    numpy_helper.from_array(np.array([0.5], np.float32), "iou"),
                    numpy_helper.from_array(np.array([0.3], np.float32), "floor"),
                    numpy_helper.from_array(np.array(1, np.int64), "col1"),
                    numpy_helper.from_array(np.array(2, np.int64), "col2")]
    outputs = [helper.make_tensor_value_info("det_boxes", TensorProto.FLOAT, ["K", 4]),
               helper.make_tensor_value_info("det_scores", TensorProto.FLOAT, ["K"]),
               helper.make_tensor_value_info("classes", TensorProto.INT64, ["K"])]
    return _model_bytes(nodes, outputs, initialisers, opset=13)


def greedy_nms_reference(boxes: np.ndarray, scores: np.ndarray, threshold: float,
                         class_ids: np.ndarray | None = None) -> list[int]:
    """The book's greedy NMS as a plain loop in exact float64 arithmetic (the oracle for
    :mod:`services.detection.nms`): best score first (ties by index), a box survives the kept
    box when overlap <= threshold * union (empty boxes overlap nothing), only within its class."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    classes = np.zeros(len(boxes), np.int64) if class_ids is None else np.asarray(class_ids)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    order = list(np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"))
    keep = []
    while order:
        best = order.pop(0)
        keep.append(int(best))
        survivors = []
        for i in order:
            width = min(boxes[best, 2], boxes[i, 2]) - max(boxes[best, 0], boxes[i, 0])
            height = min(boxes[best, 3], boxes[i, 3]) - max(boxes[best, 1], boxes[i, 1])
            overlap = max(width, 0.0) * max(height, 0.0)
            if classes[i] != classes[best] or overlap <= threshold * (areas[best] + areas[i] - overlap):
                survivors.append(i)
        order = survivors
    return keep
