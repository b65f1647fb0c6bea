"""Run a backend on one image: preprocess, inference, candidates, with the time of each stage.

The result keeps *all* candidates above a small floor, so the page can change the score and
NMS thresholds and the class filter without running the network again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from services.detection.decode import Detections, preprocess, rows_to_candidates


@dataclass
class ImageResult:
    name: str
    candidates: Detections
    backend: str
    input_size: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    """preprocess, inference, postprocess."""


def run_detection(backend, image: np.ndarray, input_size: int, *, name: str = "image",
                  letterbox: bool = False) -> ImageResult:
    """``backend`` is anything with ``rows(batch)``; see :mod:`services.detection.backends`."""
    start = time.perf_counter()
    batch, transform = preprocess(image, input_size, letterbox=letterbox)
    prepared = time.perf_counter()
    rows = backend.rows(batch)
    inferred = time.perf_counter()
    candidates = rows_to_candidates(rows, transform)
    done = time.perf_counter()
    return ImageResult(name, candidates, backend.name, input_size, {
        "preprocess": (prepared - start) * 1e3, "inference": (inferred - prepared) * 1e3,
        "postprocess": (done - inferred) * 1e3})
