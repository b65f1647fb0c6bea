"""Inference backends. Each turns a float32 NHWC batch of one (RGB, [0, 1]) into rows in
OpenCV's yolo layout (see :mod:`services.detection.decode`).

- :class:`KerasBackend`: the Darknet model rebuilt in Keras (TensorFlow; GPU when present).
- :class:`OpenCVDarknetBackend`: ``cv2.dnn.readNetFromDarknet`` (the book's way; OpenCV 4.x).
- ONNX detectors: :class:`services.detection.onnx_model.OnnxDetector` (onnxruntime or OpenCV).

Every backend serialises inference on its model with a lock, so one cached instance can be
shared by concurrent sessions.
"""

from __future__ import annotations

import re
import threading

import cv2
import numpy as np

from services.config import get_settings
from services.detection.decode import decode_head
from services.detection.models import DarknetModel
from services.errors import UserFacingError

BACKENDS = ("TensorFlow", "OpenCV")
GRAPH_SHAPES = 4
"""Input shapes a :class:`KerasBackend` keeps a frozen graph for (the page uses one or two sizes)."""


def _nchw(batch: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def opencv_reason(error: Exception) -> str:
    """The reason in an OpenCV error, without its source file paths and function names."""
    text = " ".join(str(error).split())
    match = re.search(r"error: \([^)]*\) (.*?)(?: in function .*)?$", text)
    return (match.group(1) if match else "OpenCV refused it").strip()[:200]


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

        self._tf = runtime.tensorflow()
        self.keras_model = build_model(model.config, model.weights)
        self._graphs: dict[tuple[int, ...], object] = {}

    def _graph(self, shape: tuple[int, ...]):
        """The network traced for one input shape with its weights folded in as constants (made
        once per shape, the last ``GRAPH_SHAPES`` kept). Against a ``tf.function`` reading the
        weights as variables, Grappler can then fold and pre-arrange them: Yolo-Fastest 1.1 at
        320 runs in about 0.75x the time on this CPU, with the same outputs
        (bench/bench_detection.py)."""
        graph = self._graphs.get(shape)
        if graph is None:
            from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

            tf = self._tf
            traced = tf.function(lambda x: self.keras_model(x, training=False),
                                 input_signature=[tf.TensorSpec(shape, tf.float32)])
            graph = convert_variables_to_constants_v2(traced.get_concrete_function())
            while len(self._graphs) >= GRAPH_SHAPES:
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[shape] = graph
        return graph

    def _raw(self, batch: np.ndarray) -> list[np.ndarray]:
        outputs = self._graph(tuple(batch.shape))(self._tf.constant(batch, dtype=self._tf.float32))
        return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]


class OpenCVDarknetBackend(DarknetBackend):
    name = "OpenCV"

    def __init__(self, model: DarknetModel):
        super().__init__(model)
        require_opencv_4()
        try:
            self.net = cv2.dnn.readNetFromDarknet(str(model.cfg_path), str(model.weights_path))
        except cv2.error as error:
            raise UserFacingError(f"OpenCV could not load {model.cfg_path.name}: {opencv_reason(error)}.") from error
        if hasattr(self.net, "enableWinograd"):  # OpenCV >= 4.7
            self.net.enableWinograd(get_settings().opencv_winograd)
        # OpenCV puts a "permute_<index>" layer (NCHW -> NHWC) in front of each of its yolo
        # layers: its output is the head after the convolution's activation, which the
        # convolution's own output is not when that activation is not linear (new_coords models).
        self.head_inputs = [name for name in self.net.getLayerNames() if name.startswith("permute_")]
        if len(self.head_inputs) != len(model.config.yolo_layers):
            raise UserFacingError(f"OpenCV built {len(self.head_inputs)} detection heads for "
                                  f"{model.cfg_path.name}, which declares {len(model.config.yolo_layers)}.")
        self.yolo_outputs = list(self.net.getUnconnectedOutLayersNames())

    def _raw(self, batch: np.ndarray) -> list[np.ndarray]:
        self.net.setInput(_nchw(batch))
        return [np.asarray(output) for output in self.net.forward(self.head_inputs)]

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
