"""Inference backends. Each turns a float32 NHWC batch of one (RGB, [0, 1]) into rows in
OpenCV's yolo layout (see :mod:`services.detection.decode`).

- :class:`KerasBackend`: the Darknet model rebuilt in Keras (TensorFlow; GPU when present).
- :class:`OpenCVDarknetBackend`: ``cv2.dnn.readNetFromDarknet`` (the book's way; OpenCV 4.x).
- :class:`OnnxBackend`: ``cv2.dnn.readNetFromONNX`` for exported YOLO detectors with the common
  output layouts ``(1, N, 5 + C)`` (YOLOv5 style, with objectness) or ``(1, 4 + C, N)``
  (YOLOv8 style, without), boxes as (cx, cy, w, h) in input pixels.

Every backend serialises inference on its model with a lock, so one cached instance can be
shared by concurrent sessions.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np

from services.detection.decode import decode_head
from services.detection.models import DarknetModel
from services.errors import UserFacingError

BACKENDS = ("TensorFlow", "OpenCV")


class OnnxLayoutError(UserFacingError):
    """An ONNX model whose input or output layout is not a supported YOLO export."""


def _nchw(batch: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def require_opencv_4() -> None:
    major = int(cv2.__version__.split(".")[0])
    if major != 4 or not hasattr(cv2.dnn, "readNetFromDarknet"):
        raise UserFacingError(f"OpenCV {cv2.__version__} has no Darknet importer; the OpenCV backend needs "
                              "OpenCV 4.x (readNetFromDarknet was removed in OpenCV 5).")


class DarknetBackend:
    """Shared part of the Darknet backends: raw heads -> decoded rows."""

    name = ""

    def __init__(self, model: DarknetModel):
        self.model = model
        self._lock = threading.Lock()

    def raw(self, batch: np.ndarray) -> list[np.ndarray]:
        """The raw input of each yolo layer, (1, H, W, anchors * (5 + classes)) each."""
        with self._lock:
            return self._raw(batch)

    def _raw(self, batch: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def rows(self, batch: np.ndarray) -> np.ndarray:
        height, width = batch.shape[1:3]
        heads = self.raw(batch)
        return np.concatenate([decode_head(head, layer, width, height)
                               for head, layer in zip(heads, self.model.config.yolo_layers)])


class KerasBackend(DarknetBackend):
    name = "TensorFlow"

    def __init__(self, model: DarknetModel):
        super().__init__(model)
        from services import runtime
        from services.detection.keras_builder import build_model

        tf = runtime.tensorflow()
        self.keras_model = build_model(model.config, model.weights)
        self._call = tf.function(lambda x: self.keras_model(x, training=False), reduce_retracing=True)
        self._tf = tf

    def _raw(self, batch: np.ndarray) -> list[np.ndarray]:
        outputs = self._call(self._tf.constant(batch, dtype=self._tf.float32))
        return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


class OpenCVDarknetBackend(DarknetBackend):
    name = "OpenCV"

    def __init__(self, model: DarknetModel):
        super().__init__(model)
        require_opencv_4()
        try:
            self.net = cv2.dnn.readNetFromDarknet(str(model.cfg_path), str(model.weights_path))
        except cv2.error as error:
            raise UserFacingError(f"OpenCV could not load {model.cfg_path.name}: {error}") from error
        names = list(self.net.getLayerNames())
        # OpenCV names each Darknet layer's last operation "<kind>_<index>".
        self.head_inputs = [[n for n in names if n.rsplit("_", 1)[-1] == str(layer.index - 1)][-1]
                            for layer in model.config.yolo_layers]
        self.yolo_outputs = list(self.net.getUnconnectedOutLayersNames())

    def _raw(self, batch: np.ndarray) -> list[np.ndarray]:
        self.net.setInput(_nchw(batch))
        return [o.transpose(0, 2, 3, 1) for o in self.net.forward(self.head_inputs)]

    def yolo_layer_rows(self, batch: np.ndarray) -> list[np.ndarray]:
        """What the book reads: the outputs of OpenCV's own yolo layers (class scores under
        OpenCV's internal 0.2 threshold are zeroed there)."""
        with self._lock:
            self.net.setInput(_nchw(batch))
            return list(self.net.forward(self.yolo_outputs))


def make_darknet_backend(model: DarknetModel, name: str) -> DarknetBackend:
    if name == "TensorFlow":
        return KerasBackend(model)
    if name == "OpenCV":
        return OpenCVDarknetBackend(model)
    raise UserFacingError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}.")


class OnnxBackend:
    """A YOLO detector exported to ONNX, run with OpenCV's ONNX importer."""

    name = "OpenCV ONNX"

    def __init__(self, path: str | os.PathLike, names: list[str], input_size: int = 640):
        self.path = Path(path)
        self.names = names
        self._lock = threading.Lock()
        self.input_size = self._declared_input_size() or input_size
        try:
            self.net = cv2.dnn.readNetFromONNX(str(self.path))
        except cv2.error as error:
            raise OnnxLayoutError(f"{self.path.name}: OpenCV cannot read this ONNX model ({error}).") from error
        probe = np.zeros((1, self.input_size, self.input_size, 3), np.float32)
        self.layout = self._validate(self._forward(probe).shape)

    def _declared_input_size(self) -> int | None:
        """A fixed square input size declared in the file, read with the onnx package."""
        try:
            import onnx
        except ImportError:
            return None
        try:
            graph = onnx.load(str(self.path), load_external_data=False).graph
        except Exception as error:
            raise OnnxLayoutError(f"{self.path.name}: not a readable ONNX file ({error}).") from error
        initialisers = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initialisers]
        if len(inputs) != 1:
            raise OnnxLayoutError(f"{self.path.name}: expected one image input, found {len(inputs)}.")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
        if len(dims) != 4 or dims[1] not in (3, None):
            raise OnnxLayoutError(f"{self.path.name}: input shape {dims} is not (1, 3, H, W).")
        if dims[2] and dims[3]:
            if dims[2] != dims[3]:
                raise OnnxLayoutError(f"{self.path.name}: only square inputs are supported, found {dims}.")
            return dims[2]
        return None

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            self.net.setInput(_nchw(batch))
            try:
                return np.asarray(self.net.forward())
            except cv2.error as error:
                raise OnnxLayoutError(f"{self.path.name}: inference failed in OpenCV ({error}).") from error

    def _validate(self, shape: tuple[int, ...]) -> str:
        classes = len(self.names)
        expected = (f"expected (1, N, 5 + {classes}) (YOLOv5 style) or (1, 4 + {classes}, N) "
                    "(YOLOv8 style) for the given names")
        if len(shape) != 3 or shape[0] != 1:
            raise OnnxLayoutError(f"{self.path.name}: output shape {tuple(shape)} is not a YOLO export; {expected}.")
        if shape[2] == 5 + classes:
            return "yolov5"
        if shape[1] == 4 + classes:
            return "yolov8"
        raise OnnxLayoutError(f"{self.path.name}: output shape {tuple(shape)} does not match "
                              f"{classes} class names; {expected}.")

    def rows(self, batch: np.ndarray) -> np.ndarray:
        output = self._forward(batch)[0]
        height, width = batch.shape[1:3]
        if self.layout == "yolov8":
            output = output.T
            objectness = output[:, 4:].max(axis=1, keepdims=True)
            scores = output[:, 4:]
        else:
            objectness = output[:, 4:5]
            scores = output[:, 5:] * objectness
        boxes = output[:, :4] / np.array([width, height, width, height], np.float32)
        return np.concatenate([boxes, objectness, scores], axis=1).astype(np.float32)
