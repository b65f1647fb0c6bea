"""Model-service operations of the Dataset explorer (run in the model service, where TensorFlow
may be imported; listed in :mod:`services.model_service.ops`)."""

from __future__ import annotations

import numpy as np

from services.datasets.augmentation import BOOK_DEFAULTS, preview_variants
from services.errors import UserFacingError

MAX_VARIANTS = 16
MAX_TILE_SIDE = 1024
"""Longest side of a tile the preview augments (the page sends display copies)."""


def _options(args: dict) -> dict:
    """The augmentation settings in ``args``, checked (untrusted JSON)."""
    options = {}
    for name, default in BOOK_DEFAULTS.items():
        value = args.get(name, default)
        if isinstance(default, bool):
            options[name] = bool(value)
        elif isinstance(default, str):
            if value not in ("nearest", "reflect", "wrap", "constant"):
                raise UserFacingError(f"unknown fill mode {str(value)[:20]!r}.")
            options[name] = value
        else:
            number = float(value)
            limit = 180.0 if name == "rotation_degrees" else 1.0
            if not 0.0 <= number <= limit:
                raise UserFacingError(f"{name} must be between 0 and {limit:g}.")
            options[name] = number
    return options


def augment_preview(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    """``count`` augmented variants of ``arrays["tile"]`` (RGB uint8) as ``variant_0`` ..."""
    tile = arrays.get("tile")
    if tile is None or tile.dtype != np.uint8 or tile.ndim != 3 or tile.shape[2] != 3:
        raise UserFacingError("the augmentation preview needs an RGB uint8 tile.")
    if max(tile.shape[:2]) > MAX_TILE_SIDE:
        raise UserFacingError(f"the tile is larger than {MAX_TILE_SIDE} pixels on a side; send a display copy.")
    count = int(args.get("count", 8))
    if not 1 <= count <= MAX_VARIANTS:
        raise UserFacingError(f"between 1 and {MAX_VARIANTS} variants can be previewed.")
    variants = preview_variants(tile, count, seed=int(args.get("seed", 0)), **_options(args))
    return {"count": count}, {f"variant_{i}": variant for i, variant in enumerate(variants)}
