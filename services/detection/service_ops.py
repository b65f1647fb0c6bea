"""Model-service operations for Darknet YOLO on the TensorFlow backend (run inside the model
service, where TensorFlow may be imported; see docs/architecture.md).

- ``darknet.describe``: args ``{"model": key}`` -> title, class names, random-weights flag.
- ``darknet.detect``: args ``{"model": key, "input_size": int, "letterbox": bool, "raw": bool}``,
  arrays ``{"image": uint8 H x W x 3 RGB}`` -> result ``{"timings_ms", "backend"}``, arrays
  ``{"candidates": float32 (K, 6)}`` (:func:`candidate_rows`) and, with ``raw``, the raw input
  of each yolo layer as ``head0``, ``head1``... (for the side-by-side comparison).

The Keras model is cached per model key and weights file (a replaced file is loaded again) and
used under the cache's per-model lock.
"""

from __future__ import annotations

import numpy as np

from services.detection.decode import Detections, check_input_size
from services.detection.model_key import ModelKey
from services.errors import UserFacingError


def candidate_rows(candidates: Detections) -> np.ndarray:
    """Candidates as one float32 array: x1, y1, x2, y2, score, class id per row."""
    return np.concatenate([candidates.boxes, candidates.scores[:, None],
                           candidates.class_ids[:, None].astype(np.float32)], axis=1).astype(np.float32)


def candidates_from_rows(rows: np.ndarray) -> Detections:
    rows = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
    return Detections(rows[:, :4].copy(), rows[:, 4].copy(), rows[:, 5].astype(np.int64))


def _model_key(args: dict) -> str:
    key = args.get("model")
    if not isinstance(key, str) or ModelKey.parse(key).is_onnx:
        raise UserFacingError("darknet ops need a Darknet model key.")
    return key


def _backend(cache, key: str):
    from services.detection import registry

    cache_key = ("darknet", key, registry.model_fingerprint(key))
    return cache_key, cache.get(cache_key, lambda: registry.open_backend(key, "TensorFlow"))


def describe(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    _, opened = _backend(cache, _model_key(args))
    return {"title": opened.title, "names": opened.names, "random_weights": opened.random_weights}, {}


def detect(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    from services.detection.decode import preprocess
    from services.detection.detector import run_detection

    key = _model_key(args)
    size = check_input_size(args.get("input_size"))
    image = arrays.get("image")
    if image is None or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 2:
        raise UserFacingError("darknet.detect needs an RGB uint8 image of at least 2 x 2 pixels.")
    letterbox = bool(args.get("letterbox", False))
    cache_key, opened = _backend(cache, key)
    with cache.lock(cache_key):
        result = run_detection(opened.backend, image, size, letterbox=letterbox)
        heads = opened.backend.raw(preprocess(image, size, letterbox=letterbox)[0]) if args.get("raw") else []
    out = {"candidates": candidate_rows(result.candidates)}
    out.update({f"head{i}": np.asarray(head, np.float32) for i, head in enumerate(heads)})
    return {"timings_ms": result.timings_ms, "backend": result.backend}, out
