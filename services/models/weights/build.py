"""Building a backbone with its weights: the input sizes it accepts, its preprocessing, and
:func:`load_backbone` (ImageNet weights from :func:`~services.models.weights.cache.resolve_weights`,
or the explicitly requested random initialisation)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from services.errors import UserFacingError
from services.models.backbones import BackboneSpec, spec
from services.models.weights.cache import resolve_weights
from services.models.weights_h5 import WeightsMismatch, first_mismatch
from services.provenance import IMAGENET, RANDOM

MAX_SIDE = 2048
"""Largest input side accepted by :func:`check_input_size` (memory, not architecture)."""


class BadInputSize(UserFacingError):
    """An input size a backbone does not accept (names the allowed range)."""


def check_input_size(name: str, size: int | Sequence[int]) -> tuple[int, int, int]:
    """The (height, width, 3) input shape for ``size`` (a side or a shape), or :class:`BadInputSize`.

    ``None`` sides (a fully convolutional backbone taking any size) pass unchecked.
    """
    backbone = spec(name)
    if isinstance(size, int):
        size = (size, size)
    dims = tuple(None if d is None else int(d) for d in size)
    if len(dims) == 3 and dims[2] != 3:
        raise BadInputSize(f"{backbone.title} with ImageNet weights needs 3 colour channels, not {dims[2]}.")
    if len(dims) not in (2, 3):
        raise BadInputSize(f"input size {size!r} is not (height, width) or (height, width, 3).")
    height, width = dims[:2]
    if height is None or width is None:  # any size, checked per image by the caller
        return height, width, 3
    if min(height, width) < backbone.min_side or max(height, width) > MAX_SIDE:
        raise BadInputSize(
            f"{backbone.title} accepts inputs from {backbone.min_side} to {MAX_SIDE} pixels per side "
            f"(default {backbone.default_side}); {height}x{width} is outside that range."
        )
    return height, width, 3


def preprocess_function(name: str) -> Callable:
    """The backbone's own ``preprocess_input`` (expects 0..255 RGB)."""
    return spec(name).keras_module().preprocess_input


def load_backbone(name: str, *, input_shape: Sequence[int] | int | None = None, weights: str = IMAGENET):
    """Build ``name`` without its top and load its weights.

    ``weights="imagenet"`` loads the resolved file (never downloads; see :func:`resolve_weights`)
    and raises :class:`WeightsMissing` if there is none. ``weights="random"`` is the explicitly
    requested random initialisation (an untrained baseline that callers must label as such).
    """
    backbone = spec(name)
    if weights not in (IMAGENET, RANDOM):
        raise UserFacingError(f"weights must be {IMAGENET!r} or {RANDOM!r}, not {weights!r}.")
    shape = check_input_size(name, input_shape or backbone.default_side)
    path = resolve_weights(name) if weights == IMAGENET else None
    model = backbone.build(shape)
    if path is not None:
        _load_checked(model, path, backbone)
    return model


def _load_checked(model, path: Path, backbone: BackboneSpec, shown_name: str | None = None) -> None:
    shown_name = shown_name or path.name
    mismatch = first_mismatch(model, path, shown_name)
    if mismatch:
        raise WeightsMismatch(f"{shown_name} does not fit {backbone.title}: {mismatch}.")
    try:
        model.load_weights(str(path))
    except (KeyError, ValueError, OSError) as error:  # changed since it was checked, or read differently by Keras
        raise WeightsMismatch(f"{shown_name} could not be loaded into {backbone.title}: the file does not match "
                              "the architecture. Delete it from the model cache and install the weights again.") from error
