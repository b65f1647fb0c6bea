"""The book's ch. 3 view of a trained CNN: first-layer kernels and feature maps of one tile
before and after pooling (imports TensorFlow when called)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class FirstLayerView:
    kernels: np.ndarray
    """First conv layer's kernels as images: (count, k, k, 3) scaled to [0, 1]."""
    before_pooling: np.ndarray
    """(count, H, W) activations of the first conv layer, each scaled to [0, 1]."""
    after_pooling: np.ndarray | None
    """(count, H', W') after the first pooling layer that follows it (None when there is none)."""
    conv_name: str
    pool_name: str | None


def _scale(values: np.ndarray, axes) -> np.ndarray:
    low = values.min(axis=axes, keepdims=True)
    high = values.max(axis=axes, keepdims=True)
    return (values - low) / np.where(high - low > 0, high - low, 1)


def _flat_layers(model):
    """Layers in order, looking inside nested models (e.g. a VGG16 backbone)."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _flat_layers(layer)
        else:
            yield layer


def first_layer_view(model_path: str | Path, image_path: str | Path, count: int = 12) -> FirstLayerView:
    """Kernels of the first Conv2D layer and the first ``count`` feature maps of the tile."""
    from services.images import decode_image
    from services.models.catalog import load_saved_model

    return first_layer_view_of(load_saved_model(model_path), decode_image(image_path).pixels, count)


def first_layer_view_of(model, pixels: np.ndarray, count: int = 12) -> FirstLayerView:
    """:func:`first_layer_view` for a loaded model and a decoded RGB tile (uint8, HxWx3)."""
    import keras
    from PIL import Image

    layers = list(_flat_layers(model))
    conv_index = next((i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)), None)
    if conv_index is None:
        from services.errors import UserFacingError

        raise UserFacingError("This model has no convolution layer to show.")
    conv = layers[conv_index]
    pool = next((layer for layer in layers[conv_index + 1:] if isinstance(layer, keras.layers.MaxPooling2D)), None)
    height, width = model.input_shape[1:3]
    tile = np.asarray(Image.fromarray(pixels).resize((width, height)), dtype="float32")[None] / 255.0
    kernel = np.asarray(conv.kernel)  # (k, k, in, filters)
    count = min(count, kernel.shape[-1])
    kernels = _scale(np.moveaxis(kernel[..., :count], -1, 0), axes=(1, 2, 3))
    # Apply the first layers one by one (works for Sequential and functional models alike).
    x = keras.ops.convert_to_tensor(tile)
    before = after = None
    for layer in layers[: layers.index(pool) + 1 if pool is not None else conv_index + 1]:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        x = layer(x, training=False)
        if layer is conv:
            before = np.asarray(x)[0]
    if pool is not None:
        after = np.asarray(x)[0]
    before_maps = _scale(np.moveaxis(before[..., :count], -1, 0), axes=(1, 2))
    after_maps = _scale(np.moveaxis(after[..., :count], -1, 0), axes=(1, 2)) if after is not None else None
    return FirstLayerView(kernels, before_maps, after_maps, conv.name, pool.name if pool else None)
