"""Decoding, preprocessing, IoU and NMS against hand-computed cases; annotation and exports."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from services.detection.annotate import annotate, class_colour, text_colour
from services.provenance import DETECTION_MARK, mark_random_weights
from services.detection.cfg import Yolo
from services.detection.decode import (Detections, Transform, decode_head, preprocess, rows_to_candidates,
                                       select)
from services.detection.exports import counts_per_class, detections_table, to_coco_results, to_csv
from services.detection.nms import class_wise_nms, nms
from tests.detection_helpers import greedy_nms_reference


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_decode_head_by_hand():
    layer = Yolo(0, 1, mask=(1,), anchors=((10, 20), (30, 40)), classes=2, scale_x_y=1.0)
    raw = np.zeros((2, 3, 7), np.float32)  # 2 rows x 3 cols, one anchor, 5 + 2 values
    raw[1, 2] = [_logit(0.25), _logit(0.75), math.log(2.0), math.log(0.5), _logit(0.8), _logit(0.5), _logit(0.25)]
    rows = decode_head(raw, layer, input_width=96, input_height=64)
    assert rows.shape == (6, 7)
    row = rows[1 * 3 + 2]  # row-major over (y, x, anchor), like OpenCV
    expected = [(2 + 0.25) / 3, (1 + 0.75) / 2, 2 * 30 / 96, 0.5 * 40 / 64, 0.8, 0.8 * 0.5, 0.8 * 0.25]
    assert np.allclose(row, expected, atol=1e-6)
    assert np.allclose(rows[0, :2], [0.5 / 3, 0.5 / 2])


def test_scale_x_y_stretches_the_cell_offset():
    layer = Yolo(0, 1, mask=(0,), anchors=((1, 1),), classes=1, scale_x_y=1.05)
    raw = np.zeros((1, 1, 6), np.float32)
    raw[0, 0, 0] = 50.0  # sigmoid -> 1: x = (0 + 1.05 - 0.025) / 1
    assert decode_head(raw, layer, 32, 32)[0, 0] == pytest.approx(1.025, abs=1e-6)


def test_plain_resize_maps_relative_boxes_to_image_pixels():
    transform = Transform(image_width=640, image_height=480, input_width=416, input_height=416)
    rows = np.array([[0.5, 0.5, 0.25, 0.5, 0.9, 0.1, 0.9]], np.float32)
    found = rows_to_candidates(rows, transform)
    assert np.allclose(found.boxes, [[240, 120, 400, 360]]) and found.class_ids.tolist() == [1]
    assert found.scores == pytest.approx([0.9])


def test_letterbox_round_trip():
    image = np.zeros((100, 200, 3), np.uint8)
    image[40:60, 90:110] = 255
    batch, transform = preprocess(image, 64, letterbox=True)
    assert batch.shape == (1, 64, 64, 3) and transform.scale == (0.32, 0.32) and transform.offset == (0, 16)
    assert batch[0, 0, 0, 0] == pytest.approx(0.5) and batch[0, 32, 32, 0] == pytest.approx(1.0)
    # a box around the white square in network coordinates comes back in image pixels
    rows = np.array([[0.5, 0.5, 20 * 0.32 / 64, 20 * 0.32 / 64, 1.0, 1.0]], np.float32)
    assert np.allclose(rows_to_candidates(rows, transform).boxes, [[90, 40, 110, 60]], atol=1e-3)


def test_plain_preprocess_matches_opencv_blob():
    import cv2

    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    batch, _ = preprocess(image, 32)
    blob = cv2.dnn.blobFromImage(image[..., ::-1], 1 / 255.0, (32, 32), swapRB=True, crop=False)
    assert np.allclose(batch.transpose(0, 3, 1, 2), blob, atol=1e-6)


def test_nms_keeps_the_best_and_drops_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], float)
    scores = np.array([0.8, 0.9, 0.7, 0.6])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.95).tolist() == [1, 0, 2, 3]


def test_class_wise_nms_never_suppresses_across_classes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    kept = class_wise_nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 1, 0]), 0.5)
    assert kept.tolist() == [0, 1]


def _random_boxes(rng, count: int, clustered: bool, origin: float = 0.0) -> np.ndarray:
    if clustered:
        centres = rng.uniform(0, 200, (8, 2))
        xy = centres[rng.integers(0, 8, count)] + rng.normal(0, 3, (count, 2))
    else:
        xy = rng.uniform(0, 200, (count, 2))
    return np.hstack([xy, xy + rng.uniform(5, 40, (count, 2))]) + origin


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.45, 0.7, 1.0])
def test_nms_equals_the_greedy_loop_on_random_boxes(seed, threshold):
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, 300, clustered=seed % 2 == 0, origin=-100.0 * (seed % 3))
    scores = rng.uniform(size=300)
    if seed >= 3:
        scores = np.round(scores, 1).astype(np.float32)  # many exact ties: index order decides
    classes = rng.integers(0, 4, 300)
    assert nms(boxes, scores, threshold).tolist() == greedy_nms_reference(boxes, scores, threshold)
    assert (class_wise_nms(boxes, scores, classes, threshold).tolist()
            == greedy_nms_reference(boxes, scores, threshold, classes))


def test_nms_edge_cases_equal_the_greedy_loop():
    half = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], float)  # IoU exactly 0.5
    assert nms(half, [0.9, 0.8], 0.5).tolist() == [0, 1] == greedy_nms_reference(half, [0.9, 0.8], 0.5)
    assert nms(half, [0.9, 0.8], 0.49).tolist() == [0] == greedy_nms_reference(half, [0.9, 0.8], 0.49)
    # Empty boxes (zero, negative sides; two negative sides would multiply to a positive area)
    # overlap nothing: always kept, never suppressing, in score order.
    boxes = np.array([[0, 0, 10, 10], [5, 5, 5, 20], [5, 5, 5, 20], [8, 8, 2, 2], [1, 1, 10, 10],
                      [3, 3, 3, 3]], float)
    scores = np.array([0.5, 0.9, 0.8, 0.95, 0.6, 0.5])
    assert nms(boxes, scores, 0.3).tolist() == [3, 1, 2, 4, 5] == greedy_nms_reference(boxes, scores, 0.3)
    assert class_wise_nms(boxes, scores, [0, 0, 0, 0, 1, 1], 0.3).tolist() == [3, 1, 2, 4, 0, 5]
    # Identical boxes: the first of equal scores wins.
    same = np.tile([[1.5, 2.5, 30.25, 40.0]], (4, 1))
    assert nms(same, [0.7, 0.9, 0.9, 0.1], 0.99).tolist() == [1]
    # Negative coordinates never let one class's boxes reach another's.
    shifted = np.array([[-500, -500, -400, -400], [-500, -500, -400, -400], [0, 0, 1, 1]], float)
    assert class_wise_nms(shifted, [0.9, 0.8, 0.7], [0, 1, 2], 0.1).tolist() == [0, 1, 2]
    assert class_wise_nms(shifted, [0.9, 0.8, 0.7], [-7, 10**9, -7], 0.1).tolist() == [0, 1, 2]
    for function in (lambda b, s: nms(b, s, 0.5), lambda b, s: class_wise_nms(b, s, [], 0.5)):
        assert function(np.zeros((0, 4)), np.zeros(0)).tolist() == []
    assert nms([[0, 0, 1, 1]], [0.3], 0.5).tolist() == [0]


def test_select_applies_threshold_class_filter_and_nms():
    candidates = Detections(np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10]], np.float32),
                            np.array([0.9, 0.8, 0.3, 0.95], np.float32), np.array([0, 0, 1, 2]))
    assert select(candidates, 0.5, 0.5).scores.tolist() == pytest.approx([0.95, 0.9])
    assert select(candidates, 0.2, 0.5, classes=[1]).class_ids.tolist() == [1]
    assert len(select(candidates, 0.99, 0.5)) == 0


def test_annotation_draws_boxes_and_readable_labels():
    image = np.full((120, 160, 3), 255, np.uint8)
    found = Detections(np.array([[20, 40, 100, 100]], np.float32), np.array([0.87], np.float32), np.array([3]))
    drawn = annotate(image, found, ["a", "b", "c", "motorbike"])
    assert drawn.shape == image.shape and (drawn != 255).any()
    assert tuple(drawn[70, 20]) in (class_colour(3), (0, 0, 0))  # left edge of the box
    assert (drawn[75, 60] == 255).all()  # inside the box untouched
    assert text_colour((255, 255, 0)) == (0, 0, 0) and text_colour((0, 0, 160)) == (255, 255, 255)


def test_exports_table_csv_and_coco_json():
    names = [f"c{i}" for i in range(80)]
    found = Detections(np.array([[10, 20, 50, 80]], np.float32), np.array([0.5], np.float32), np.array([11]))
    table = detections_table("dog.jpg", found, names)
    assert table.iloc[0][["class", "width", "height"]].tolist() == ["c11", 40, 60]
    assert counts_per_class(table).to_dict("records") == [{"class": "c11", "count": 1}]
    assert to_csv(table).decode().splitlines()[0].startswith("image,class_id,class,score")
    coco = json.loads(to_coco_results(table, names))
    assert coco == [{"image_id": 1, "file_name": "dog.jpg", "category_id": 13, "bbox": [10, 20, 40, 60], "score": 0.5}]
    assert json.loads(to_coco_results(table, names[:20]))[0]["category_id"] == 12  # custom classes: index + 1


@pytest.mark.parametrize("shape", [(512, 512, 3), (12, 300, 3), (600, 40, 3), (90, 1600, 3), (50, 80)])
def test_random_weights_banner_is_drawn_like_on_the_picture_itself(shape):
    """The banner is drawn once per width and pasted: the same pixels as drawing it on the picture."""
    from PIL import Image, ImageDraw, ImageFont

    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    canvas = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(10, min(48, round(canvas.width / 28))))
    left, top, right, bottom = draw.textbbox((0, 0), DETECTION_MARK, font=font)
    draw.rectangle([0, 0, canvas.width, bottom - top + 10], fill=(255, 140, 0))
    draw.text((max(4, (canvas.width - (right - left)) // 2) - left, 5 - top), DETECTION_MARK, fill=(0, 0, 0),
              font=font)
    for _ in range(2):  # drawn, then from the cache
        marked = mark_random_weights(image)
        assert marked.flags.writeable and np.array_equal(marked, np.asarray(canvas))
