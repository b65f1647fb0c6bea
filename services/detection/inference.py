"""Running the chosen model on one image, for the detector page: which backend runs where (OpenCV
and onnxruntime in the calling process, TensorFlow in the model service), the model's facts, and
a session's cache of network results (the network runs once per image, model, backend, size and
letterbox setting; thresholds and the class filter only redo NMS and the drawing).

The in-process backends come from ``backends``, an object with ``darknet_model(key)``,
``opencv_backend(key)`` and ``onnx_detector(name, runtime)`` (the dashboard holds them with
``st.cache_resource``: :mod:`dashboard.detection_adapters`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from services.detection.decode import preprocess
from services.detection.detector import ImageResult, run_detection
from services.detection.model_key import ModelKey
from services.detection.timing import WarmTiming, warm_timing

TENSORFLOW = "TensorFlow"
CACHE_LIMIT = 40


class Backends(Protocol):
    def darknet_model(self, key: str) -> Any: ...
    def opencv_backend(self, key: str) -> Any: ...
    def onnx_detector(self, name: str, runtime: str) -> Any: ...


@dataclass(frozen=True)
class ModelFacts:
    names: list[str]
    title: str
    random_weights: bool
    fixed_size: int | None
    """The input size an ONNX model was exported for (None: any size)."""


def model_facts(backends: Backends, key: str) -> ModelFacts:
    """What the page needs to know of model ``key``; raises UserFacingError when it cannot load."""
    parsed = ModelKey.parse(key)
    if parsed.is_onnx:
        detector = backends.onnx_detector(parsed.name, "onnxruntime")
        return ModelFacts(detector.names, parsed.name, False, detector.input_size)
    model = backends.darknet_model(key)
    return ModelFacts(model.names, model.title, model.random_weights, None)


@dataclass
class ServiceResult:
    result: ImageResult
    heads: list[np.ndarray]
    """Raw yolo-layer inputs, when asked for (side-by-side comparison)."""


def tensorflow_detect(key: str, pixels: np.ndarray, size: int, letterbox: bool, *, name: str = "image",
                      raw: bool = False) -> ServiceResult:
    """Detection on the TensorFlow backend, in the model service (``darknet.detect``)."""
    from services.detection.service_ops import candidates_from_rows
    from services.model_service import client

    reply = client.call("darknet.detect", {"model": key, "input_size": size, "letterbox": letterbox, "raw": raw},
                        arrays={"image": np.ascontiguousarray(pixels, dtype=np.uint8)})
    heads = [reply.arrays[f"head{i}"] for i in range(len(reply.arrays)) if f"head{i}" in reply.arrays]
    timings = {k: float(v) for k, v in dict(reply.result.get("timings_ms") or {}).items()}
    return ServiceResult(ImageResult(name, candidates_from_rows(reply.arrays["candidates"]), TENSORFLOW, size,
                                     timings), heads)


def run_network(backends: Backends, key: str, backend_name: str, name: str, pixels: np.ndarray, size: int,
                letterbox: bool, raw: bool = False) -> tuple[ImageResult, list | None]:
    """(ImageResult, raw outputs or None) of one image on one backend."""
    if backend_name == TENSORFLOW:
        reply = tensorflow_detect(key, pixels, size, letterbox, name=name, raw=raw)
        return reply.result, reply.heads
    parsed = ModelKey.parse(key)
    if parsed.is_onnx:
        backend = backends.onnx_detector(parsed.name, backend_name)
        outputs = (lambda batch: [backend.rows(batch)])
    else:
        backend = backends.opencv_backend(key)
        outputs = backend.raw
    result = run_detection(backend, pixels, size, name=name, letterbox=letterbox)
    return result, (outputs(preprocess(pixels, size, letterbox=letterbox)[0]) if raw else None)


@dataclass(frozen=True)
class Comparison:
    """Two backends on the same image: each one's result and warm timing, and how far apart their
    raw outputs are."""
    results: dict[str, ImageResult]
    timings: dict[str, WarmTiming]
    max_difference: float


def _compared_run(backends: Backends, key: str, backend_name: str, name: str, pixels, size: int, letterbox: bool):
    """(ImageResult, raw outputs, WarmTiming): the first call is shown and counted as cold; more
    warm calls give the inference times."""
    result, raw = run_network(backends, key, backend_name, name, pixels, size, letterbox, raw=True)
    timing = warm_timing(result.timings_ms.get("inference", 0.0), lambda: run_network(
        backends, key, backend_name, name, pixels, size, letterbox)[0].timings_ms.get("inference", 0.0))
    return result, raw, timing


@dataclass
class ResultCache:
    """A session's network results, at most ``limit`` (the oldest go first); ``runs`` counts the
    times the network actually ran."""
    entries: dict = field(default_factory=dict)
    runs: int = 0
    limit: int = CACHE_LIMIT

    def get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per ``key`` (the network runs only on a cache miss)."""
        if key not in self.entries:
            self.entries[key] = compute()
            self.runs += 1
            while len(self.entries) > self.limit:
                self.entries.pop(next(iter(self.entries)))
        return self.entries[key]

    def candidates(self, backends: Backends, key: str, backend_name: str, image_id: str, name: str, pixels,
                   size: int, letterbox: bool) -> ImageResult:
        """Every candidate box of one image (before thresholds and NMS)."""
        return self.get((key, backend_name, size, letterbox, image_id),
                        lambda: run_network(backends, key, backend_name, name, pixels, size, letterbox)[0])

    def compare(self, backends: Backends, key: str, pair: tuple[str, str], image_id: str, name: str, pixels,
                size: int, letterbox: bool) -> Comparison:
        """The two backends of ``pair`` side by side on one image."""
        runs = {b: self.get(("compare", key, b, size, letterbox, image_id),
                            lambda b=b: _compared_run(backends, key, b, name, pixels, size, letterbox))
                for b in pair}
        first, second = (runs[b][1] for b in pair)
        difference = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(first, second))
        return Comparison({b: runs[b][0] for b in pair}, {b: runs[b][2] for b in pair}, difference)
