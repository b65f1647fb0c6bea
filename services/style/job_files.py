"""The pictures a style job receives and writes, shared by both engines (no TensorFlow).

The page passes content, style and (in silhouette mode) mask as PNG bytes
(:func:`input_files`); the job body reads them back from its folder (:func:`read_inputs`),
writes previews and the result atomically (:func:`save_png`) and, in silhouette mode, both
maskings (:func:`write_silhouette_outputs`). File names come from :mod:`services.run_layout`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from services import run_layout
from services.errors import UserFacingError
from services.images import decode_image, encode_png
from services.style import masks
from services.style.settings import BadSettings, check_picture_shape, feather_of


@dataclass
class StyleInputs:
    content: np.ndarray
    """RGB uint8 (in silhouette mode: the silhouette as RGB)."""
    style: np.ndarray
    mask: np.ndarray | None = None
    """A validated silhouette (0/255) or None."""


def input_files(content: np.ndarray, style: np.ndarray, mask: np.ndarray | None = None) -> dict[str, bytes]:
    """The ``files`` of :meth:`JobManager.submit` for a style job."""
    check_picture_shape(content.shape, "content")
    check_picture_shape(style.shape, "style")
    files = {run_layout.CONTENT_INPUT: encode_png(content), run_layout.STYLE_INPUT: encode_png(style)}
    if mask is not None:
        files[run_layout.MASK_INPUT] = encode_png(masks.validate_mask(mask, content.shape[:2]).mask)
    return files


def _read(folder: Path, name: str, what: str) -> np.ndarray:
    path = folder / name
    if not path.is_file():
        raise UserFacingError(f"The {what} picture of this job is missing; start the job again.")
    pixels = decode_image(path).pixels
    check_picture_shape(pixels.shape, what)
    return pixels


def read_inputs(folder: Path, silhouette: bool) -> StyleInputs:
    """Content, style and (when ``silhouette``) the validated mask from a job folder."""
    folder = Path(folder)
    content = _read(folder, run_layout.CONTENT_INPUT, "content")
    style = _read(folder, run_layout.STYLE_INPUT, "style")
    mask = None
    if silhouette:
        mask = masks.validate_mask(_read(folder, run_layout.MASK_INPUT, "silhouette"), content.shape[:2]).mask
    return StyleInputs(content, style, mask)


def job_request(params: Any, folder: Path, settings_type) -> tuple[Any, float, StyleInputs]:
    """(validated settings, feathered edge, pictures) of a style job's (untrusted) parameters
    {"settings": ..., "silhouette": bool, "feather": px} and the pictures in its folder."""
    if not isinstance(params, dict):
        raise BadSettings("the parameters of this style job are malformed.")
    settings = settings_type.from_dict(params.get("settings") or {}).validate()
    return settings, feather_of(params), read_inputs(folder, bool(params.get("silhouette")))


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Write a PNG atomically (readers never see a half-written preview)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(encode_png(pixels))
    os.replace(temporary, path)


def fit_to(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize and centre-crop an RGB image to exactly (height, width) (cover, no distortion)."""
    height, width = shape
    scale = max(height / pixels.shape[0], width / pixels.shape[1])
    size = (max(width, round(pixels.shape[1] * scale)), max(height, round(pixels.shape[0] * scale)))
    resized = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return resized[top:top + height, left:left + width]


def resize_to(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an RGB uint8 image to exactly (height, width) (Lanczos; may change the aspect)."""
    if tuple(pixels.shape[:2]) == tuple(shape):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((shape[1], shape[0]), Image.Resampling.LANCZOS))


def write_result(folder: Path, result: np.ndarray, inputs: StyleInputs, feather: float) -> dict[str, Any]:
    """The result (and preview) and, in silhouette mode, both maskings; returns the result keys."""
    save_png(result, folder / run_layout.RESULT)
    save_png(result, folder / run_layout.PREVIEW)
    written: dict[str, Any] = {"result": run_layout.RESULT, "preview": run_layout.PREVIEW,
                               "size": list(result.shape[:2])}
    if inputs.mask is not None:
        written.update(write_silhouette_outputs(folder, result, inputs.style, inputs.mask, feather))
    return written


def write_silhouette_outputs(folder: Path, result: np.ndarray, style: np.ndarray, mask: np.ndarray,
                             feather: float) -> dict[str, str]:
    """The book's comparison: the style image masked directly, and the stylised result masked."""
    mask = masks.validate_mask(mask, result.shape[:2]).mask
    save_png(masks.apply_mask(result, mask, feather=feather), folder / run_layout.RESULT_MASKED)
    save_png(masks.apply_mask(fit_to(style, result.shape[:2]), mask, feather=feather), folder / run_layout.STYLE_MASKED)
    save_png(mask, folder / run_layout.MASK_INPUT)
    return {"result_masked": run_layout.RESULT_MASKED, "style_masked": run_layout.STYLE_MASKED,
            "mask": run_layout.MASK_INPUT}
