"""From images to network input, and from raw YOLO outputs to boxes in image pixels.

Rows use OpenCV's yolo-layer layout: (cx, cy, w, h) relative to the network input, objectness,
then one score per class (objectness x class probability).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from services.detection.cfg import Yolo
from services.detection.nms import class_wise_nms
from services.detection.yolo_layers import head_cells, new_coords_rows
from services.errors import UserFacingError

LETTERBOX_FILL = 0.5
"""Darknet fills letterbox borders with grey 0.5."""
CANDIDATE_FLOOR = 0.005
"""Rows whose best score is below this are never kept (keeps cached candidates small)."""


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * values) + 1.0)  # overflow-free logistic


@dataclass(frozen=True)
class Transform:
    """How an image was mapped onto the network input."""

    image_width: int
    image_height: int
    input_width: int
    input_height: int
    letterbox: bool = False

    @property
    def scale(self) -> tuple[float, float]:
        if self.letterbox:
            factor = min(self.input_width / self.image_width, self.input_height / self.image_height)
            return factor, factor
        return self.input_width / self.image_width, self.input_height / self.image_height

    @property
    def offset(self) -> tuple[float, float]:
        if not self.letterbox:
            return 0.0, 0.0
        sx, sy = self.scale
        return ((self.input_width - round(self.image_width * sx)) // 2,
                (self.input_height - round(self.image_height * sy)) // 2)


def preprocess(image: np.ndarray, width: int, height: int | None = None,
               letterbox: bool = False) -> tuple[np.ndarray, Transform]:
    """RGB uint8 image -> float32 NHWC batch of one in [0, 1] (the book: 1/255, swapRB, no crop),
    plain-resized with bilinear interpolation like ``cv2.dnn.blobFromImage``, or letterboxed."""
    height = height or width
    image_h, image_w = image.shape[:2]
    transform = Transform(image_w, image_h, width, height, letterbox)
    if letterbox:
        sx, sy = transform.scale
        new_w, new_h = max(1, round(image_w * sx)), max(1, round(image_h * sy))
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        canvas = np.full((height, width, 3), LETTERBOX_FILL, dtype=np.float32)
        ox, oy = (int(v) for v in transform.offset)
        canvas[oy:oy + new_h, ox:ox + new_w] = resized
    else:
        canvas = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    return canvas[None], transform


def decode_head(raw: np.ndarray, layer: Yolo, input_width: int, input_height: int) -> np.ndarray:
    """Raw yolo-layer input (H, W, anchors * (5 + classes)) -> rows (H * W * anchors, 5 + classes).

    x = (col + sigmoid(tx) * s - (s - 1) / 2) / W, likewise y; w = exp(tw) * anchor_w / input_w;
    objectness = sigmoid(to); class scores = objectness * sigmoid(tc).
    ``new_coords=1`` layers use their own coding (:mod:`services.detection.yolo_layers`).
    """
    if layer.new_coords:
        return new_coords_rows(raw, layer, input_width, input_height)
    values, grid_x, grid_y, anchors = head_cells(raw, layer)
    rows, cols = values.shape[:2]
    s = layer.scale_x_y
    out = np.empty_like(values)
    out[..., 0] = (grid_x + sigmoid(values[..., 0]) * s - (s - 1) / 2) / cols
    out[..., 1] = (grid_y + sigmoid(values[..., 1]) * s - (s - 1) / 2) / rows
    with np.errstate(over="ignore"):
        out[..., 2] = np.exp(values[..., 2]) * anchors[:, 0] / input_width
        out[..., 3] = np.exp(values[..., 3]) * anchors[:, 1] / input_height
    objectness = sigmoid(values[..., 4])
    out[..., 4] = objectness
    out[..., 5:] = objectness[..., None] * sigmoid(values[..., 5:])
    return out.reshape(-1, 5 + layer.classes)


@dataclass
class Detections:
    """Boxes (x1, y1, x2, y2) in image pixels with their best class and score."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, indices: np.ndarray) -> "Detections":
        return Detections(self.boxes[indices], self.scores[indices], self.class_ids[indices])

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def rows_to_candidates(rows: np.ndarray, transform: Transform, floor: float = CANDIDATE_FLOOR) -> Detections:
    """Every row whose best class score reaches ``floor``, as a pixel box in the original image.
    These are cached per image so that thresholds can change without re-running the network."""
    rows = np.asarray(rows, dtype=np.float32)
    if rows.size == 0:
        return Detections.empty()
    class_scores = rows[:, 5:]
    class_ids = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(rows)), class_ids]
    keep = np.isfinite(rows[:, :4]).all(axis=1) & (scores >= floor)
    rows, class_ids, scores = rows[keep], class_ids[keep], scores[keep]
    sx, sy = transform.scale
    ox, oy = transform.offset
    cx = (rows[:, 0] * transform.input_width - ox) / sx
    cy = (rows[:, 1] * transform.input_height - oy) / sy
    w = rows[:, 2] * transform.input_width / sx
    h = rows[:, 3] * transform.input_height / sy
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, transform.image_width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, transform.image_height)
    return Detections(boxes.astype(np.float32), scores.astype(np.float32), class_ids.astype(np.int64))


def check_threshold(value, label: str) -> float:
    """``value`` as a float in [0, 1], or :class:`UserFacingError` (NaN, -1, 1.5, text...)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserFacingError(f"the {label} must be a number between 0 and 1.") from None
    if not 0.0 <= number <= 1.0:  # also False for NaN
        raise UserFacingError(f"the {label} must be between 0 and 1 (got {number}).")
    return number


def threshold_or_default(value, label: str, default: float) -> tuple[float, str | None]:
    """(``value``, None) when it is a threshold in [0, 1]; else (``default``, the refusal in a
    sentence), e.g. for a value a crafted session put where a slider's value belongs."""
    try:
        return check_threshold(value, label), None
    except UserFacingError as error:
        return default, f"Refused: {error} The default {default} is used instead."


INPUT_SIZES = range(32, 4097, 32)


def check_input_size(value) -> int:
    """``value`` as a network input size (a multiple of 32 in [32, 4096]), or :class:`UserFacingError`."""
    if not isinstance(value, int) or value not in INPUT_SIZES:
        raise UserFacingError("the input size must be a multiple of 32 between 32 and 4096.")
    return value


def select(candidates: Detections, score_threshold: float, nms_threshold: float,
           classes: set[int] | list[int] | None = None) -> Detections:
    """Score threshold, optional class filter, then class-wise NMS; best score first."""
    score_threshold = check_threshold(score_threshold, "score threshold")
    nms_threshold = check_threshold(nms_threshold, "NMS threshold")
    keep = candidates.scores >= score_threshold
    if classes is not None:
        keep &= np.isin(candidates.class_ids, np.asarray(list(classes), dtype=np.int64))
    chosen = candidates.take(np.flatnonzero(keep))
    if not len(chosen):
        return chosen
    return chosen.take(class_wise_nms(chosen.boxes, chosen.scores, chosen.class_ids, nms_threshold))


@dataclass(frozen=True)
class Preset:
    name: str
    score: float
    nms: float
    note: str


PRESETS = (
    Preset("Book (ch. 7)", 0.6, 0.2,
           "rows above 0.15 kept, then cv2.dnn.NMSBoxes with score 0.6 and NMS 0.2"),
    Preset("Darknet default", 0.25, 0.45, "darknet detect: -thresh 0.25, NMS 0.45"),
    Preset("Show more", 0.15, 0.45, "the book's first filter (0.15) alone"),
)
