"""Detection benchmark: TensorFlow (Keras rebuild) vs OpenCV DNN latency, and NMS speed.

    .venv/bin/python bench/bench_detection.py [--size 416] [--repeats 10] [--models yolov3-tiny yolov3]

Random weights in the exact Darknet layout (same FLOPs as the real ones). Prints the median
latency of each backend measured side by side in one run and the ratio TF / OpenCV (goal
<= 1.5 on CPU), then NMS on 10,000 candidate boxes: vectorised numpy vs a plain Python loop
(and OpenCV's NMSBoxes for reference).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services import runtime  # noqa: E402
from services.detection.backends import KerasBackend, OpenCVDarknetBackend  # noqa: E402
from services.detection.decode import preprocess  # noqa: E402
from services.detection.models import load_darknet  # noqa: E402
from services.detection.nms import class_wise_nms, nms  # noqa: E402
from services.detection.registry import REGISTRY, coco_names  # noqa: E402
from services.detection.cfg import parse_cfg  # noqa: E402
from services.detection.weights import random_weights_bytes  # noqa: E402


def median_ms(function, repeats: int) -> float:
    function()  # warm-up (tracing, allocation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench_backends(key: str, size: int, repeats: int, folder: Path) -> None:
    spec = REGISTRY[key]
    config = parse_cfg(spec.cfg_path.read_text(), spec.cfg_file)
    weights = folder / f"{key}.weights"
    weights.write_bytes(random_weights_bytes(config, seed=0))
    model = load_darknet(spec.cfg_path, weights, coco_names(), key=key)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    batch, _ = preprocess(image, size)
    tf_backend, cv_backend = KerasBackend(model), OpenCVDarknetBackend(model)
    difference = max(float(np.abs(a - b).max()) for a, b in zip(tf_backend.raw(batch), cv_backend.raw(batch)))
    device = "GPU" if runtime.has_gpu() else "CPU"
    tf_ms = median_ms(lambda: tf_backend.raw(batch), repeats)
    cv_ms = median_ms(lambda: cv_backend.raw(batch), repeats)
    book_ms = median_ms(lambda: cv_backend.yolo_layer_rows(batch), repeats)
    print(f"{key:12s} {size}: TensorFlow ({device}) {tf_ms:7.1f} ms | OpenCV (CPU) raw heads {cv_ms:7.1f} ms, "
          f"yolo outputs (book) {book_ms:7.1f} ms | TF/OpenCV {tf_ms / cv_ms:4.2f} (vs book {tf_ms / book_ms:4.2f}) "
          f"| max |diff| {difference:.1e}")


def python_loop_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """The straightforward version: plain Python lists and one IoU at a time."""
    boxes_list = boxes.tolist()
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        bx1, by1, bx2, by2 = boxes_list[best]
        best_area = (bx2 - bx1) * (by2 - by1)
        survivors = []
        for i in order:
            x1, y1, x2, y2 = boxes_list[i]
            w = min(bx2, x2) - max(bx1, x1)
            h = min(by2, y2) - max(by1, y1)
            overlap = w * h if w > 0 and h > 0 else 0.0
            union = best_area + (x2 - x1) * (y2 - y1) - overlap
            if overlap / union <= threshold:
                survivors.append(i)
        order = survivors
    return keep


def candidate_boxes(kind: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """``clustered``: jittered boxes around 100 objects, like a detector's raw candidates;
    ``uniform``: boxes scattered everywhere (about half survive: the worst case)."""
    if kind == "uniform":
        xy, wh = rng.uniform(0, 1000, (count, 2)), rng.uniform(10, 120, (count, 2))
    else:
        centres, sizes = rng.uniform(0, 1000, (100, 2)), rng.uniform(20, 150, (100, 2))
        pick = rng.integers(0, 100, count)
        wh = sizes[pick] * rng.uniform(0.8, 1.2, (count, 2))
        xy = centres[pick] + rng.normal(0, 5, (count, 2))
    return np.hstack([xy, xy + wh])


def bench_nms(count: int = 10_000, threshold: float = 0.45) -> None:
    import cv2

    rng = np.random.default_rng(0)
    for kind in ("clustered", "uniform"):
        boxes = candidate_boxes(kind, count, rng)
        scores = rng.uniform(size=count)
        classes = rng.integers(0, 5, count)
        vector_ms = median_ms(lambda: nms(boxes, scores, threshold), 5)
        classwise_ms = median_ms(lambda: class_wise_nms(boxes, scores, classes, threshold), 5)
        start = time.perf_counter()
        loop_keep = python_loop_nms(boxes, scores, threshold)
        loop_ms = (time.perf_counter() - start) * 1e3
        xywh = np.hstack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).tolist()
        cv_ms = median_ms(lambda: cv2.dnn.NMSBoxes(xywh, scores.tolist(), 0.0, threshold), 5)
        kept = nms(boxes, scores, threshold)
        assert kept.tolist() == loop_keep, "vectorised NMS disagrees with the Python loop"
        print(f"NMS {kind:9s} {count:,} boxes ({len(kept):,} kept): numpy {vector_ms:7.1f} ms | class-wise "
              f"{classwise_ms:7.1f} ms | Python loop {loop_ms:8.0f} ms | cv2.dnn.NMSBoxes {cv_ms:6.1f} ms | "
              f"loop/numpy {loop_ms / vector_ms:5.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=["yolov3-tiny", "yolov3"])
    parser.add_argument("--skip-nms", action="store_true")
    args = parser.parse_args()
    import cv2

    tf = runtime.tensorflow()
    print(f"TensorFlow {tf.__version__}, OpenCV {cv2.__version__}, devices: "
          f"{', '.join(d.name for d in runtime.quick_summary())}")
    with tempfile.TemporaryDirectory() as folder:
        for key in args.models:
            bench_backends(key, args.size, args.repeats, Path(folder))
    if not args.skip_nms:
        bench_nms()


if __name__ == "__main__":
    main()
