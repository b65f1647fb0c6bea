"""Fast arbitrary style transfer (Ghiasi et al. 2017) with Magenta's TF Lite networks.

One forward pass instead of an optimisation: the prediction network turns the style picture
(centre-cropped, 256x256) into a 100-number *style bottleneck*; the transfer network renders the
content picture (resized to 384x384) with that bottleneck; the result is resized back to the
content's aspect ratio at the requested size. The *style strength* s blends the style's
bottleneck with the content picture's own, ``s * style + (1 - s) * content`` (as TensorFlow's
example does), and the rendered picture with the content picture itself by the same s, so
s = 0 gives the content picture and s = 1 the full style.

The interpreter is LiteRT's (``ai_edge_litert``) when installed, else TensorFlow 2.21's
``tf.lite.Interpreter`` (deprecated in favour of LiteRT but present; its warning is silenced).
:func:`fast_style_job` is the body of the ``fast-style-transfer`` job (a worker process).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from services import runtime
from services.errors import UserFacingError
from services.style import fast_models, job_files
from services.style.settings import MIN_SIDE, FastSettings

STYLE_SIDE = 256
"""The prediction network's input side."""
BOTTLENECK = 100


class BadModelFile(UserFacingError):
    """A TF Lite file that cannot be used (not TF Lite, truncated, unexpected tensors)."""


def interpreter_type() -> tuple[type, str]:
    """(Interpreter class, its name): LiteRT's where installed, else TensorFlow's tf.lite."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "LiteRT"
    except ImportError:
        return runtime.tensorflow().lite.Interpreter, "tf.lite"


def load_interpreter(path: str | os.PathLike, shown_name: str | None = None):
    """A ready (allocated) interpreter for the TF Lite file at ``path``, or :class:`BadModelFile`."""
    path = Path(path)
    name = shown_name or path.name
    try:
        data = path.read_bytes()
    except OSError:
        raise BadModelFile(f"{name} cannot be read.") from None
    if len(data) < 8 or data[4:8] != fast_models.TFLITE_IDENTIFIER:
        raise BadModelFile(f"{name} is not a TF Lite model (no TFL3 identifier in its header).")
    interpreter_class, _ = interpreter_type()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = interpreter_class(model_content=data, num_threads=max(1, os.cpu_count() or 1))
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise BadModelFile(f"{name} could not be loaded as a TF Lite model; it may be truncated or damaged "
                           f"({str(error).splitlines()[0][:120] if str(error) else type(error).__name__}).") from None
    return interpreter


def _tensor_index(interpreter, details: list[dict], last_dim: int, name: str, role: str) -> int:
    for detail in details:
        if int(detail["shape"][-1]) == last_dim:
            return int(detail["index"])
    shapes = ", ".join(str(list(map(int, d["shape"]))) for d in details)
    raise BadModelFile(f"{name} is not the Magenta {role} network (tensors {shapes}).")


class FastStylist:
    """The two Magenta networks, loaded once (a warm worker keeps them between jobs)."""

    def __init__(self, predict_path: Path, transfer_path: Path):
        self._lock = threading.Lock()
        self.predict = load_interpreter(predict_path)
        self.transfer = load_interpreter(transfer_path)
        self.runtime = interpreter_type()[1]
        predict_in = self.predict.get_input_details()
        self._style_in = _tensor_index(self.predict, predict_in, 3, Path(predict_path).name, "style prediction")
        self._bottleneck_out = _tensor_index(self.predict, self.predict.get_output_details(), BOTTLENECK,
                                             Path(predict_path).name, "style prediction")
        transfer_in = self.transfer.get_input_details()
        self._content_in = _tensor_index(self.transfer, transfer_in, 3, Path(transfer_path).name, "style transfer")
        self._bottleneck_in = _tensor_index(self.transfer, transfer_in, BOTTLENECK, Path(transfer_path).name,
                                            "style transfer")
        self._image_out = int(self.transfer.get_output_details()[0]["index"])
        self.content_side = int(next(d["shape"][1] for d in transfer_in if int(d["index"]) == self._content_in))

    def bottleneck(self, picture: np.ndarray) -> np.ndarray:
        """The 1x1x1x100 style bottleneck of an RGB uint8 picture (centre-cropped square)."""
        square = job_files.fit_to(picture, (STYLE_SIDE, STYLE_SIDE))
        with self._lock:
            self.predict.set_tensor(self._style_in, _as_input(square))
            self.predict.invoke()
            return self.predict.get_tensor(self._bottleneck_out).copy()

    def render(self, content: np.ndarray, bottleneck: np.ndarray) -> np.ndarray:
        """The content picture (any size; resized to the network's square) rendered with
        ``bottleneck``: an RGB uint8 picture of the network's size."""
        square = job_files.resize_to(content, (self.content_side, self.content_side))
        with self._lock:
            self.transfer.set_tensor(self._content_in, _as_input(square))
            self.transfer.set_tensor(self._bottleneck_in, bottleneck.astype(np.float32))
            self.transfer.invoke()
            output = self.transfer.get_tensor(self._image_out)[0]
        return np.clip(np.round(output * 255.0), 0, 255).astype(np.uint8)


def _as_input(pixels: np.ndarray) -> np.ndarray:
    return (pixels[None].astype(np.float32) / 255.0).copy()


_stylists: dict[tuple, FastStylist] = {}
_stylists_lock = threading.Lock()


def stylist_for(variant: str = fast_models.DEFAULT_VARIANT) -> FastStylist:
    """The networks of ``variant`` from the model cache (raises FastModelMissing with the fix)."""
    predict_path, transfer_path = fast_models.resolve(variant)
    key = tuple((str(path), path.stat().st_mtime_ns) for path in (predict_path, transfer_path))
    with _stylists_lock:
        if key not in _stylists:
            _stylists[key] = FastStylist(predict_path, transfer_path)
        return _stylists[key]


def output_shape(content_shape: tuple[int, ...], max_side: int) -> tuple[int, int]:
    """The result's (height, width): the content's aspect ratio with its longest side ``max_side``."""
    height, width = content_shape[:2]
    scale = max_side / max(height, width)
    return max(MIN_SIDE, round(height * scale)), max(MIN_SIDE, round(width * scale))


def stylise_fast(content: np.ndarray, style: np.ndarray, settings: FastSettings,
                 stylist: FastStylist | None = None) -> np.ndarray:
    """The stylised content picture (RGB uint8, longest side ``settings.max_side``)."""
    settings.validate()
    stylist = stylist or stylist_for(settings.variant)
    strength = float(settings.strength)
    bottleneck = stylist.bottleneck(style)
    if strength < 1.0:
        bottleneck = strength * bottleneck + (1.0 - strength) * stylist.bottleneck(content)
    shape = output_shape(content.shape, settings.max_side)
    rendered = job_files.resize_to(stylist.render(content, bottleneck), shape).astype(np.float32)
    original = job_files.resize_to(content, shape).astype(np.float32)
    blended = strength * rendered + (1.0 - strength) * original
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def fast_style_job(params: dict[str, Any], context) -> dict[str, Any]:
    """Body of the ``fast-style-transfer`` job: ``params`` = {"settings": FastSettings.to_dict(),
    "silhouette": bool, "feather": px}; content.png, style.png (and mask.png) in the folder."""
    settings, feather, inputs = job_files.job_request(params, context.dir, FastSettings)
    started = time.monotonic()
    context.progress(0.1, "loading the Magenta networks")
    stylist = stylist_for(settings.variant)
    loaded = time.monotonic()
    context.progress(0.4, "stylising")
    result = stylise_fast(inputs.content, inputs.style, settings, stylist)
    summary = job_files.write_result(context.dir, result, inputs, feather)
    summary.update(engine="fast", strength=settings.strength, interpreter=stylist.runtime,
                   native_side=stylist.content_side, seconds_loading=round(loaded - started, 3),
                   seconds=round(time.monotonic() - started, 3))
    context.progress(1.0, f"done in {summary['seconds']:.2f} s")
    context.flush()
    return summary

