"""Detections as a table, CSV and COCO results JSON."""

from __future__ import annotations

import json

import pandas as pd

from services.csv_files import csv_bytes
from services.detection.decode import Detections

# COCO's 80 detection classes (coco.names order) -> the category ids of the COCO annotations.
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31,
    32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57,
    58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87,
    88, 89, 90,
)
COLUMNS = ["image", "class_id", "class", "score", "x1", "y1", "x2", "y2", "width", "height"]


def detections_table(image_name: str, detections: Detections, names: list[str]) -> pd.DataFrame:
    rows = []
    for box, score, class_id in zip(detections.boxes, detections.scores, detections.class_ids):
        x1, y1, x2, y2 = (round(float(v), 1) for v in box)
        rows.append({"image": image_name, "class_id": int(class_id),
                     "class": names[int(class_id)] if int(class_id) < len(names) else str(int(class_id)),
                     "score": round(float(score), 4), "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                     "width": round(x2 - x1, 1), "height": round(y2 - y1, 1)})
    return pd.DataFrame(rows, columns=COLUMNS)


def counts_per_class(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return pd.DataFrame({"class": [], "count": []})
    return table.groupby("class").size().reset_index(name="count").sort_values("count", ascending=False)


def to_csv(table: pd.DataFrame) -> bytes:
    return csv_bytes(table)


def category_id(class_id: int, names: list[str]) -> int:
    """COCO category id for models trained on COCO's 80 classes, class index + 1 otherwise."""
    return COCO_CATEGORY_IDS[class_id] if len(names) == 80 else class_id + 1


def to_coco_results(table: pd.DataFrame, names: list[str], image_ids: dict[str, int] | None = None) -> bytes:
    """COCO results format: [{image_id, category_id, bbox: [x, y, w, h], score}, ...]."""
    ids = image_ids or {name: index + 1 for index, name in enumerate(dict.fromkeys(table["image"]))}
    results = [{"image_id": ids[row.image], "file_name": row.image,
                "category_id": category_id(int(row.class_id), names),
                "bbox": [float(row.x1), float(row.y1), float(row.width), float(row.height)],
                "score": float(row.score)} for row in table.itertuples()]
    return json.dumps(results, indent=1).encode("utf-8")
