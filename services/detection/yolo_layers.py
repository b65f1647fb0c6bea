"""Box coding of ``[yolo]`` layers with ``new_coords=1`` (Scaled-YOLOv4 and its relatives).

The convolution before such a layer already applies the logistic, so the layer itself applies
no activation (Darknet's ``forward_yolo_layer`` and OpenCV's region layer agree):

    x = (col + tx * s - (s - 1) / 2) / W,  likewise y          (s = scale_x_y)
    w = (2 tw)^2 * anchor_w / input_w,     likewise h
    objectness = to,  class score = to * tc

Rows use the layout of :mod:`services.detection.decode` (OpenCV's yolo-layer rows). The usual
coding (``new_coords=0``) is :func:`services.detection.decode.decode_head`.
"""

from __future__ import annotations

import numpy as np

from services.detection.cfg import Yolo


def head_cells(raw: np.ndarray, layer: Yolo) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A raw yolo-layer input (H, W, anchors * (5 + classes)), with or without the batch axis,
    as values (H, W, anchors, 5 + classes), the column and row index of every cell (broadcastable
    to (H, W, anchors)) and the layer's anchors (anchors, 2) in input pixels."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim == 4:
        raw = raw[0]
    rows, cols, _ = raw.shape
    anchors = np.asarray(layer.layer_anchors, dtype=np.float32)
    values = raw.reshape(rows, cols, len(anchors), 5 + layer.classes)
    grid_x = np.arange(cols, dtype=np.float32)[None, :, None]
    grid_y = np.arange(rows, dtype=np.float32)[:, None, None]
    return values, grid_x, grid_y, anchors


def new_coords_rows(raw: np.ndarray, layer: Yolo, input_width: int, input_height: int) -> np.ndarray:
    """Raw yolo-layer input (H, W, anchors * (5 + classes)) -> rows (H * W * anchors, 5 + classes)."""
    values, grid_x, grid_y, anchors = head_cells(raw, layer)
    rows, cols = values.shape[:2]
    s = layer.scale_x_y
    out = np.empty_like(values)
    out[..., 0] = (grid_x + values[..., 0] * s - (s - 1) / 2) / cols
    out[..., 1] = (grid_y + values[..., 1] * s - (s - 1) / 2) / rows
    out[..., 2] = (2 * values[..., 2]) ** 2 * anchors[:, 0] / input_width
    out[..., 3] = (2 * values[..., 3]) ** 2 * anchors[:, 1] / input_height
    out[..., 4] = values[..., 4]
    out[..., 5:] = values[..., 4:5] * values[..., 5:]
    return out.reshape(-1, 5 + layer.classes)
