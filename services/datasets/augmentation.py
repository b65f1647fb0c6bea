"""The book's data augmentation as Keras 3 preprocessing layers (ch. 8, vgg16_v4).

The book used ``ImageDataGenerator(rotation_range=40, width_shift_range=0.2,
height_shift_range=0.2, shear_range=0.2, zoom_range=0.2, horizontal_flip=True,
fill_mode='nearest')`` (plus vertical flips); Keras 3 removed it. The same transformations as a
Keras layer run inside a model or a ``tf.data`` map, on the GPU when there is one, and only in
training mode. Keras is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import numpy as np

from services import runtime

BOOK_DEFAULTS = {"rotation_degrees": 40.0, "shift": 0.2, "shear": 0.2, "zoom": 0.2,
                 "horizontal_flip": True, "vertical_flip": True, "fill_mode": "nearest"}


def book_augmentation(rotation_degrees: float = 40, shift: float = 0.2, shear: float = 0.2, zoom: float = 0.2,
                      horizontal_flip: bool = True, vertical_flip: bool = True, fill_mode: str = "nearest",
                      seed: int | None = None):
    """The book's augmentations as one Keras preprocessing layer, active only in training mode.

    Inputs are float images in any value range (the layer only moves pixels). A strength of 0
    turns that transformation off.
    """
    runtime.tensorflow()
    from services.datasets.augmentation_layer import BookAugmentation

    return BookAugmentation(rotation_degrees=rotation_degrees, shift=shift, shear=shear, zoom=zoom,
                            horizontal_flip=horizontal_flip, vertical_flip=vertical_flip,
                            fill_mode=fill_mode, seed=seed)


def preview_variants(pixels: np.ndarray, count: int = 8, *, seed: int = 0, **options) -> list[np.ndarray]:
    """``count`` augmented variants of one RGB uint8 tile, as uint8 arrays (for the preview)."""
    augmentation = book_augmentation(seed=seed, **options)
    batch = np.repeat(pixels[None].astype("float32"), count, axis=0)
    augmented = np.asarray(augmentation(batch, training=True))
    return [np.clip(v, 0, 255).round().astype(np.uint8) for v in augmented]
