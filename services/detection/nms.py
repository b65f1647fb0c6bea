"""Greedy and class-wise non-maximum suppression through OpenCV (``cv2.dnn.NMSBoxes`` and
``cv2.dnn.NMSBoxesBatched``).

Boxes are (x1, y1, x2, y2) in pixels. The book's procedure (ch. 7): keep the best box, remove
the boxes whose IoU with it exceeds the NMS threshold, repeat. OpenCV's C++ loop is faster than
the vectorised numpy version this replaced (bench/bench_detection.py), and the kept indices are
the same, in the same order (tests/test_detection_decode.py compares them with a plain greedy
loop), because of three adjustments:

- Order: OpenCV sorts by float32 score; it is given each box's rank in a stable descending
  sort of the scores instead, so ties keep index order and float64 scores do not collapse.
- Empty boxes (zero or negative width or height) have IoU 0 with everything: they are always
  kept and never suppress anything. OpenCV would multiply two negative sides into a positive
  area, and suppress one of two empty boxes, so they are kept aside and merged back in order.
- Classes: ``NMSBoxesBatched`` shifts class ``c`` by ``c * (max coordinate + 1)``, which only
  separates the classes when no coordinate is negative: the boxes are moved to start at 0.

OpenCV compares the IoU with the threshold in float32, so an IoU within float32 rounding of the
threshold (about 1e-7) may be decided the other way than in exact arithmetic.
"""

from __future__ import annotations

import cv2
import numpy as np


def _prepare(boxes, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes as float64 (n, 4), each box's rank as a float32 score (n for the best), empty mask)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64).reshape(-1), kind="stable")
    rank = np.empty(len(order), dtype=np.float32)
    rank[order] = np.arange(len(order), 0, -1, dtype=np.float32)
    sides = boxes[:, 2:] - boxes[:, :2]
    empty = ~((sides[:, 0] > 0) & (sides[:, 1] > 0) & (sides[:, 0] * sides[:, 1] > 0))
    return boxes, rank, empty


def _run(opencv_nms, boxes: np.ndarray, rank: np.ndarray, empty: np.ndarray, *extra) -> np.ndarray:
    """``opencv_nms`` on the non-empty boxes, the empty ones merged back; best rank first."""
    solid = np.flatnonzero(~empty)
    kept = np.zeros(0, dtype=np.int64)
    if solid.size:
        xywh = np.hstack([boxes[solid, :2], boxes[solid, 2:] - boxes[solid, :2]])
        # Python lists convert to OpenCV's vectors faster than numpy arrays do.
        found = opencv_nms(xywh.tolist(), rank[solid].tolist(), *[e[solid].tolist() for e in extra], 0.0)
        kept = solid[np.asarray(found, dtype=np.int64).reshape(-1)]
    kept = np.concatenate([kept, np.flatnonzero(empty)])
    return kept[np.argsort(-rank[kept], kind="stable")]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS (IoU <= ``iou_threshold`` survives), best score first."""
    boxes, rank, empty = _prepare(boxes, scores)
    return _run(lambda b, s, t: cv2.dnn.NMSBoxes(b, s, t, float(iou_threshold)), boxes, rank, empty)


def class_wise_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                   iou_threshold: float) -> np.ndarray:
    """NMS within each class only (a box never suppresses a box of another class); best score first."""
    boxes, rank, empty = _prepare(boxes, scores)
    if boxes.size:
        boxes = boxes - min(float(boxes.min()), 0.0)
    # Class ids renumbered 0..k-1: any integers (negative, huge) are then safe for OpenCV's shift.
    class_ids = np.unique(np.asarray(class_ids, dtype=np.int64).reshape(-1), return_inverse=True)[1]
    return _run(lambda b, s, c, t: cv2.dnn.NMSBoxesBatched(b, s, c, t, float(iou_threshold)),
                boxes, rank, empty, class_ids)
