"""ONNX YOLO detectors on onnxruntime (CPU; CUDA when its execution provider is present), with
OpenCV's DNN module as a second runtime for the files it can read.

A file is checked before anything big is allocated: it must parse, have one image input
``(1, 3, H, W)`` whose declared size stays under :data:`MAX_INPUT_PIXELS`, and outputs that one
of the layouts of :mod:`services.detection.onnx_layouts` explains. Class names and the input
size come from the model's metadata when it carries them (Ultralytics exports do: ``names``,
``imgsz``, ``stride``), else from a names file (COCO's 80 names for 80-class outputs).

A detector is an inference backend like the Darknet ones: ``rows(batch)`` takes a float32 NHWC
batch of one (RGB, [0, 1]) and returns rows in OpenCV's yolo layout.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from services.detection.onnx_layouts import (Layout, OnnxLayoutError, OutputSpec, describe_outputs, detect_layout,
                                              to_rows)
from services.detection.models import coco_names
from services.errors import UserFacingError

RUNTIMES = ("onnxruntime", "OpenCV")
DEFAULT_SIZE = 640
MAX_INPUT_PIXELS = 4096 * 4096
"""A declared input larger than this is refused before any probe is allocated."""
MAX_METADATA_CHARS = 1_000_000
INPUT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8}
_NAME_ENTRY = re.compile(r"""(\d+)\s*:\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""")


def _providers() -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def open_session(data: bytes, label: str):
    """An onnxruntime session on the model bytes (never a path: its errors would name it)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(data, options, providers=_providers())
    except Exception as error:  # onnxruntime raises its own exception types for bad files
        kind = "truncated or not an ONNX file" if "protobuf" in str(error).lower() else "onnxruntime cannot load it"
        raise OnnxLayoutError(f"{label}: not a readable ONNX model ({kind}).") from error


def metadata_names(metadata: dict[str, str]) -> list[str] | None:
    """Ultralytics' ``names`` entry (``{0: 'person', 1: 'bicycle', ...}``) as a list, when it is
    well formed (read with a regular expression, never evaluated)."""
    text = metadata.get("names", "")
    if not text or len(text) > MAX_METADATA_CHARS:
        return None
    entries = {int(m.group(1)): (m.group(2) if m.group(2) is not None else m.group(3)).strip()
               for m in _NAME_ENTRY.finditer(text)}
    if not entries or sorted(entries) != list(range(len(entries))) or not all(entries.values()):
        return None
    return [entries[i] for i in range(len(entries))]


def metadata_size(metadata: dict[str, str]) -> int | None:
    """A square ``imgsz`` from the metadata (``[640, 640]`` or ``640``)."""
    numbers = [int(v) for v in re.findall(r"\d+", metadata.get("imgsz", ""))[:2]]
    if numbers and all(n == numbers[0] for n in numbers) and 32 <= numbers[0] <= 4096:
        return numbers[0]
    return None


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: type
    size: int | None
    """Declared square size, None when the file leaves it open."""


def check_input(session, label: str) -> InputSpec:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise OnnxLayoutError(f"{label}: expected one image input, found {len(inputs)}.")
    spec = inputs[0]
    dims = [d if isinstance(d, int) and d > 0 else None for d in spec.shape]
    shown = tuple(d if d is not None else "?" for d in dims)
    if len(dims) != 4 or dims[1] not in (3, None) or dims[0] not in (1, None):
        raise OnnxLayoutError(f"{label}: input shape {shown} is not (1, 3, H, W).")
    if spec.type not in INPUT_TYPES:
        raise OnnxLayoutError(f"{label}: input type {spec.type} is not supported (float, float16 or uint8).")
    height, width = dims[2], dims[3]
    if (height or 1) * (width or 1) > MAX_INPUT_PIXELS:
        raise OnnxLayoutError(f"{label}: declares a {height} x {width} input, more than the limit of "
                              f"{MAX_INPUT_PIXELS:,} pixels; refused before allocating it.")
    if height and width and height != width:
        raise OnnxLayoutError(f"{label}: only square inputs are supported, found {shown}.")
    return InputSpec(spec.name, INPUT_TYPES[spec.type], height or width)


def resolve_names(layout: Layout, from_metadata: list[str] | None, given: list[str] | None,
                  label: str) -> list[str]:
    """Metadata names, else the given names, else COCO's for 80 classes; checked against the shapes."""
    names = from_metadata or given
    if names is None:
        if layout.classes in (None, 80):
            return coco_names()
        raise OnnxLayoutError(f"{label}: the outputs have {layout.classes} classes and the model carries no "
                              f"class names; add a names file with {layout.classes} lines.")
    if layout.classes is not None and len(names) != layout.classes:
        source = "its metadata" if from_metadata else "the names file"
        raise OnnxLayoutError(f"{label}: the outputs have {layout.classes} classes but {source} lists "
                              f"{len(names)} names.")
    return list(names)


class _OrtRunner:
    name = "onnxruntime"

    def __init__(self, session):
        self.session = session

    def run(self, input_name: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(None, {input_name: tensor})
        return {o.name: value for o, value in zip(self.session.get_outputs(), outputs)}


class _OpenCVRunner:
    name = "OpenCV"

    def __init__(self, data: bytes, output_names: list[str], label: str):
        try:
            self.net = cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))
        except cv2.error as error:
            operator = re.search(r"\[(\w+)@", str(error))
            detail = f" (operator {operator.group(1)})" if operator else ""
            raise UserFacingError(f"{label}: OpenCV's ONNX importer cannot read this model{detail}; "
                                  "use onnxruntime.") from error
        self.output_names = output_names

    def run(self, input_name: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
        self.net.setInput(tensor.astype(np.float32))
        try:
            values = self.net.forward(self.output_names)
        except cv2.error as error:
            raise UserFacingError("OpenCV could not run this ONNX model; use onnxruntime.") from error
        return dict(zip(self.output_names, values))


class OnnxDetector:
    """One ONNX YOLO detector on one runtime; inference is serialised by a lock."""

    def __init__(self, data: bytes, label: str, *, names: list[str] | None = None, family: str = "auto",
                 runtime: str = "onnxruntime", input_size: int = DEFAULT_SIZE):
        if runtime not in RUNTIMES:
            raise UserFacingError(f"unknown ONNX runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}.")
        self.label = label
        session = open_session(data, label)
        self.input = check_input(session, label)
        self.metadata = dict(session.get_modelmeta().custom_metadata_map)
        self.input_size = self.input.size or metadata_size(self.metadata) or input_size
        if self.input_size * self.input_size > MAX_INPUT_PIXELS:
            raise OnnxLayoutError(f"{label}: input size {self.input_size} is over the limit.")
        output_names = [o.name for o in session.get_outputs()]
        self._runner = _OrtRunner(session) if runtime == "onnxruntime" else _OpenCVRunner(data, output_names, label)
        self.name = self._runner.name
        self._lock = threading.Lock()
        self.family = family  # the probe's input is blank: the family's colour order does not matter yet
        self.outputs = self._probe(session)
        from_metadata = metadata_names(self.metadata)
        end2end = self.metadata.get("end2end") == "True" or "'nms': True" in self.metadata.get("args", "")
        self.layout = detect_layout(self.outputs, self.input_size, self.input_size, family,
                                    len(from_metadata or names or []) or None, end2end)
        self.family = self.layout.family
        self.names = resolve_names(self.layout, from_metadata, names, label)
        self.names_from_metadata = from_metadata is not None

    def _probe(self, session) -> list[OutputSpec]:
        """Concrete output shapes, from one run on a blank input of the (bounded) input size."""
        blank = np.zeros((1, self.input_size, self.input_size, 3), np.float32)
        try:
            values = self._raw(blank)
        except UserFacingError:
            raise
        except Exception as error:  # onnxruntime's own error types; their text names internals
            raise OnnxLayoutError(f"{self.label}: the model fails on a {self.input_size} x {self.input_size} "
                                  "input; it may need another input size.") from error
        integer = {o.name: "int" in o.type for o in session.get_outputs()}
        return [OutputSpec(name, tuple(int(d) for d in np.shape(value)), integer.get(name, False))
                for name, value in values.items()]

    def describe(self) -> str:
        return (f"{self.family} layout, {len(self.names)} classes, input {self.input_size} x {self.input_size}, "
                f"outputs {describe_outputs(self.outputs)}")

    def _tensor(self, batch: np.ndarray) -> np.ndarray:
        """NHWC RGB [0, 1] -> the model's NCHW input (YOLOX: BGR 0-255)."""
        bgr_0_255 = self.family == "yolox"
        images = batch[..., ::-1] * 255.0 if bgr_0_255 else batch
        tensor = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        if self.input.dtype is np.uint8:
            scaled = tensor if bgr_0_255 else tensor * 255.0
            return np.clip(np.round(scaled), 0, 255).astype(np.uint8)
        return tensor.astype(self.input.dtype)

    def _raw(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            return self._runner.run(self.input.name, self._tensor(batch))

    def rows(self, batch: np.ndarray) -> np.ndarray:
        height, width = batch.shape[1:3]
        return to_rows(self.layout, self._raw(batch), width, height, len(self.names))
