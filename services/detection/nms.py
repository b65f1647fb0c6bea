"""IoU and class-wise non-maximum suppression, vectorised with numpy.

Boxes are (x1, y1, x2, y2) in pixels. The book's procedure (ch. 7): drop boxes under a score
threshold, keep the best box, remove the boxes whose IoU with it exceeds the NMS threshold,
repeat. Each round is one vectorised IoU of the kept box against all remaining ones.
"""

from __future__ import annotations

import numpy as np


def area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)): area of overlap / area of union (0 where the union is 0)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    overlap = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = area(a)[:, None] + area(b)[None, :] - overlap
    return np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first.

    Coordinates are sorted by score once into contiguous columns; each round compares the best
    remaining box with all others in one vectorised step (``overlap <= t * union`` is
    ``IoU <= t`` without a division) and compacts the survivors.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[order, k]) for k in range(4))
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    remaining = order
    keep = []
    while remaining.size:
        keep.append(remaining[0])
        width = np.minimum(x2[0], x2[1:]) - np.maximum(x1[0], x1[1:])
        height = np.minimum(y2[0], y2[1:]) - np.maximum(y1[0], y1[1:])
        overlap = np.clip(width, 0, None) * np.clip(height, 0, None)
        survive = overlap <= iou_threshold * (areas[0] + areas[1:] - overlap)
        x1, y1, x2, y2, areas, remaining = (column[1:][survive] for column in (x1, y1, x2, y2, areas, remaining))
    return np.asarray(keep, dtype=np.int64)


def class_wise_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                   iou_threshold: float) -> np.ndarray:
    """NMS within each class only, in one pass: boxes of different classes are shifted apart
    so that they can never overlap."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    offset = (boxes.max() - boxes.min() + 1.0) * np.asarray(class_ids, dtype=np.float64)
    return nms(boxes + offset[:, None], scores, iou_threshold)
