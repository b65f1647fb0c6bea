"""The output layouts of exported YOLO detectors: which family a model is, from its output shapes
(and what the user chose), and how its outputs become rows in OpenCV's yolo layout (see
:mod:`services.detection.decode`: cx, cy, w, h relative to the input, objectness, class scores).

Families:

- ``yolov5``: one output ``(1, N, 5 + C)``: cx, cy, w, h in input pixels, objectness, class
  probabilities (YOLOv5, YOLOv7); N is 3 anchors per grid cell at strides 8, 16 and 32.
- ``yolov8``: one output ``(1, 4 + C, N)``: cx, cy, w, h in input pixels, class scores, no
  objectness (YOLOv8, YOLO11; quantized exports too); N is one per grid cell.
- ``yolox``: one output ``(1, N, 5 + C)`` of *raw grid offsets* (YOLOX's official export): N is
  one per grid cell at strides 8, 16, 32; x, y are offsets in cells, w, h log-sizes in cells,
  objectness and class scores are already sigmoids. Its input is BGR 0-255 (no scaling).
- ``nms``: exports with NMS inside: one output ``(1, K, 6)`` (x1, y1, x2, y2, score, class), or
  separate outputs for boxes ``(1, K, 4)``, scores ``(1, K)``, classes ``(1, K)`` and optionally a
  detection count ``(1, 1)``. Boxes are in input pixels (or relative, when none exceeds 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.errors import UserFacingError

FAMILIES = {
    "auto": "detect from the outputs",
    "yolov5": "YOLOv5 / v7: (1, N, 5 + C) with objectness",
    "yolov8": "YOLOv8 / YOLO11: (1, 4 + C, N)",
    "yolox": "YOLOX: raw grid outputs (1, N, 5 + C), BGR 0-255 input",
    "nms": "NMS inside the model: (1, K, 6) or boxes / scores / classes",
}
STRIDES = (8, 16, 32)
SUPPORTED = "; ".join(f"{name}: {text}" for name, text in FAMILIES.items() if name != "auto")


class OnnxLayoutError(UserFacingError):
    """An ONNX model whose input or output layout is not a supported YOLO export."""


@dataclass(frozen=True)
class OutputSpec:
    name: str
    shape: tuple[int, ...]
    integer: bool = False


@dataclass(frozen=True)
class Layout:
    family: str
    outputs: tuple[str, ...]
    """The output(s) read, in the order the decoder expects (nms parts: boxes, scores, classes, count)."""
    classes: int | None
    """Class count implied by the shapes (None when the shapes do not say: NMS exports)."""


def describe_outputs(outputs: list[OutputSpec]) -> str:
    return ", ".join(f"{o.name} {tuple(o.shape)}" for o in outputs) or "none"


def grid_cells(width: int, height: int) -> int:
    """One per cell of the stride 8, 16 and 32 grids of a ``width`` x ``height`` input."""
    return sum((height // s) * (width // s) for s in STRIDES)


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape[1:] if len(shape) >= 2 and shape[0] == 1 else shape


def _nms_parts(outputs: list[OutputSpec]) -> tuple[str, ...] | None:
    """Names of (boxes, scores, classes[, count]) when the outputs look like a split NMS export."""
    boxes = [o for o in outputs if len(_squeezed(o.shape)) == 2 and _squeezed(o.shape)[1] == 4]
    if len(boxes) != 1 or len(outputs) < 3:
        return None
    k = _squeezed(boxes[0].shape)[0]
    flat = [o for o in outputs if _squeezed(o.shape) in ((k,), (k, 1))]
    counts = [o for o in outputs if o is not boxes[0] and o not in flat and int(np.prod(o.shape)) == 1]
    scores = [o for o in flat if not o.integer]
    classes = [o for o in flat if o.integer]
    if len(flat) == 2 and len(scores) == 2:  # both float: go by name
        classes = [o for o in flat if any(w in o.name.lower() for w in ("class", "label", "cls"))]
        scores = [o for o in flat if o not in classes]
    if len(scores) != 1 or len(classes) != 1:
        return None
    return (boxes[0].name, scores[0].name, classes[0].name) + ((counts[0].name,) if counts else ())


def detect_layout(outputs: list[OutputSpec], width: int, height: int, family: str = "auto",
                  classes_hint: int | None = None, end2end: bool = False) -> Layout:
    """The layout of a model with these (concrete) output shapes, or :class:`OnnxLayoutError`
    naming the shapes seen. ``family`` other than ``auto`` is the user's choice, checked against
    the shapes; ``classes_hint`` (from metadata or names) settles ambiguous shapes."""
    if family not in FAMILIES:
        raise OnnxLayoutError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}.")
    seen = f"outputs seen: {describe_outputs(outputs)}"
    parts = _nms_parts(outputs)
    if parts and family in ("auto", "nms"):
        return Layout("nms", parts, None)
    single = [o for o in outputs if len(o.shape) == 3 and o.shape[0] == 1]
    if len(single) != 1:
        raise OnnxLayoutError(f"this model's outputs match no supported layout ({seen}). Supported: {SUPPORTED}.")
    output = single[0]
    _, a, b = output.shape
    cells = grid_cells(width, height)
    if family == "auto":
        family = _guess(a, b, cells, classes_hint, end2end)
        if family is None:
            raise OnnxLayoutError(f"cannot tell which YOLO family this model is at input {width} x {height} "
                                  f"({seen}); choose the family by hand. Supported: {SUPPORTED}.")
    layout = {"yolov5": (b > 5, b - 5), "yolox": (b > 5, b - 5), "yolov8": (a > 4, a - 4),
              "nms": (b == 6, None)}[family]
    if not layout[0]:
        raise OnnxLayoutError(f"the outputs do not fit the {family} layout ({FAMILIES[family]}; {seen}).")
    if family == "yolox" and a != cells:
        raise OnnxLayoutError(f"a YOLOX output at input {width} x {height} has {cells} rows (one per grid "
                              f"cell at strides 8, 16, 32), this one has {a} ({seen}).")
    return Layout(family, (output.name,), layout[1])


def _guess(a: int, b: int, cells: int, classes: int | None, end2end: bool) -> str | None:
    if end2end and b == 6:
        return "nms"
    if b > 5 and a == 3 * cells:
        return "yolov5"
    if b > 5 and a == cells:
        return "yolox"
    if a > 4 and b == cells:
        return "yolov8"
    if b == 6 and a not in (cells, 3 * cells):
        return "nms"
    if classes is not None:
        if b == 5 + classes:
            return "yolov5"
        if a == 4 + classes:
            return "yolov8"
    return None


# ---------------------------------------------------------------- decoding
def to_rows(layout: Layout, outputs: dict[str, np.ndarray], width: int, height: int, classes: int) -> np.ndarray:
    """Model outputs -> rows (cx, cy, w, h relative to the input, objectness, ``classes`` scores)."""
    arrays = [np.asarray(outputs[name], dtype=np.float32) for name in layout.outputs]
    scale = np.array([width, height, width, height], np.float32)
    if layout.family == "nms":
        return _nms_rows(arrays, scale, classes)
    output = arrays[0][0]
    if layout.family == "yolov8":
        output = output.T
        scores = output[:, 4:]
        objectness = scores.max(axis=1, keepdims=True) if scores.size else np.zeros((len(output), 1), np.float32)
        boxes = output[:, :4]
    else:
        if layout.family == "yolox":
            output = _yolox_boxes(output, width, height)
        objectness = output[:, 4:5]
        scores = output[:, 5:] * objectness
        boxes = output[:, :4]
    return np.concatenate([boxes / scale, objectness, scores], axis=1).astype(np.float32)


def _yolox_boxes(output: np.ndarray, width: int, height: int) -> np.ndarray:
    """YOLOX's grid decoding: centre = (offset + cell) * stride, size = exp(log-size) * stride."""
    grids, strides = [], []
    for stride in STRIDES:
        rows, cols = height // stride, width // stride
        yy, xx = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        grids.append(np.stack([xx, yy], axis=-1).reshape(-1, 2))
        strides.append(np.full((rows * cols, 1), stride))
    grid = np.concatenate(grids).astype(np.float32)
    stride = np.concatenate(strides).astype(np.float32)
    decoded = output.copy()
    decoded[:, :2] = (output[:, :2] + grid) * stride
    with np.errstate(over="ignore"):
        decoded[:, 2:4] = np.exp(output[:, 2:4]) * stride
    return decoded


def _nms_rows(arrays: list[np.ndarray], scale: np.ndarray, classes: int) -> np.ndarray:
    if len(arrays) == 1:  # (1, K, 6): x1, y1, x2, y2, score, class
        table = arrays[0].reshape(-1, 6)
        boxes, scores, labels = table[:, :4], table[:, 4], table[:, 5]
    else:
        boxes = arrays[0].reshape(-1, 4)
        scores, labels = arrays[1].reshape(-1), arrays[2].reshape(-1)
        if len(arrays) == 4:
            count = int(np.clip(arrays[3].reshape(-1)[0], 0, len(boxes)))
            boxes, scores, labels = boxes[:count], scores[:count], labels[:count]
    if boxes.size and np.abs(boxes).max() <= 1.0:  # relative coordinates
        scale = np.ones(4, np.float32)
    ids = np.round(labels).astype(np.int64)
    keep = (scores > 0) & (ids >= 0) & (ids < classes) & np.isfinite(boxes).all(axis=1)
    boxes, scores, ids = boxes[keep], scores[keep], ids[keep]
    rows = np.zeros((len(boxes), 5 + classes), np.float32)
    rows[:, 0] = (boxes[:, 0] + boxes[:, 2]) / 2 / scale[0]
    rows[:, 1] = (boxes[:, 1] + boxes[:, 3]) / 2 / scale[1]
    rows[:, 2] = np.abs(boxes[:, 2] - boxes[:, 0]) / scale[0]
    rows[:, 3] = np.abs(boxes[:, 3] - boxes[:, 1]) / scale[1]
    rows[:, 4] = scores
    rows[np.arange(len(rows)), 5 + ids] = scores
    return rows
