"""The book's data augmentation as Keras 3 preprocessing layers (ch. 8, vgg16_v4).

The book used ``ImageDataGenerator(rotation_range=40, width_shift_range=0.2,
height_shift_range=0.2, shear_range=0.2, zoom_range=0.2, horizontal_flip=True,
fill_mode='nearest')`` (plus vertical flips); Keras 3 removed it. The same transformations as
layers run inside a model or a ``tf.data`` map, on the GPU when there is one, and only in
training mode. Keras is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import numpy as np

from services import runtime

BOOK_DEFAULTS = {"rotation_degrees": 40.0, "shift": 0.2, "shear": 0.2, "zoom": 0.2,
                 "horizontal_flip": True, "vertical_flip": True, "fill_mode": "nearest"}


def _flip_mode(horizontal: bool, vertical: bool) -> str | None:
    if horizontal and vertical:
        return "horizontal_and_vertical"
    return "horizontal" if horizontal else "vertical" if vertical else None


def book_augmentation(rotation_degrees: float = 40, shift: float = 0.2, shear: float = 0.2, zoom: float = 0.2,
                      horizontal_flip: bool = True, vertical_flip: bool = True, fill_mode: str = "nearest",
                      seed: int | None = None):
    """A ``keras.Sequential`` of preprocessing layers applying the book's augmentations.

    Inputs are float images (any value range: the layers only move pixels). Layers whose
    strength is 0 are left out.
    """
    runtime.tensorflow()
    import keras

    layers = []
    flip = _flip_mode(horizontal_flip, vertical_flip)
    if flip:
        layers.append(keras.layers.RandomFlip(flip, seed=seed))
    if rotation_degrees:
        layers.append(keras.layers.RandomRotation(rotation_degrees / 360.0, fill_mode=fill_mode, seed=seed))
    if shift:
        layers.append(keras.layers.RandomTranslation(shift, shift, fill_mode=fill_mode, seed=seed))
    if shear:
        layers.append(keras.layers.RandomShear(x_factor=shear, y_factor=shear, fill_mode=fill_mode, seed=seed))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, zoom, fill_mode=fill_mode, seed=seed))
    return keras.Sequential(layers, name="book_augmentation")


def preview_variants(pixels: np.ndarray, count: int = 8, *, seed: int = 0, **options) -> list[np.ndarray]:
    """``count`` augmented variants of one RGB uint8 tile, as uint8 arrays (for the preview)."""
    augmentation = book_augmentation(seed=seed, **options)
    batch = np.repeat(pixels[None].astype("float32"), count, axis=0)
    if not augmentation.layers:
        return [pixels.copy() for _ in range(count)]
    augmented = np.asarray(augmentation(batch, training=True))
    return [np.clip(v, 0, 255).round().astype(np.uint8) for v in augmented]
