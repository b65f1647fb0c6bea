"""Where a model looked: Grad-CAM heatmaps and the feature maps of one layer (book ch. 3).

Grad-CAM (Selvaraju et al. 2017): weight each channel of a convolutional layer's output by the
mean gradient of the class score with respect to it, sum, keep the positive part. The result,
upscaled to the image, shows the regions that raised the score of that class.

Works on any Keras classifier: Functional or Sequential, loaded from a file or not, with nested
backbones (layers are run one by one by :mod:`services.transfer.graph`).
"""

from __future__ import annotations

import numpy as np

from services.errors import UserFacingError
from services.runtime import tensorflow
from services.transfer import graph


def last_conv_layer_name(model) -> str:
    """The last layer with a spatial output: the usual Grad-CAM layer."""
    return graph.last_spatial_layer(model)


def _batch(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image, dtype=np.float32)
    return array[None] if array.ndim == 3 else array


def gradcam(model, image: np.ndarray, layer_name: str | None = None, class_index: int | None = None) -> np.ndarray:
    """Grad-CAM heatmap of ``image`` (H x W x C, already preprocessed for ``model``).

    Returns a float32 array of the layer's spatial size, scaled to 0..1 (all zeros when nothing
    raised the class score). ``class_index`` defaults to the predicted class; ``layer_name`` (a
    layer path, nested backbones included) to the last spatial layer.
    """
    return explain(model, image, layer_name, class_index)[1]


def explain(model, image: np.ndarray, layer_name: str | None = None,
            class_index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(class probabilities, Grad-CAM heatmap) of ``image`` from one forward pass (see :func:`gradcam`)."""
    tf = tensorflow()
    layer_name = layer_name or last_conv_layer_name(model)
    batch = tf.convert_to_tensor(_batch(image))
    with tf.GradientTape() as tape:
        predictions, found = graph.run(model, batch, [layer_name], tape=tape)
        activations = found[layer_name]
        if class_index is None:
            class_index = int(tf.argmax(predictions[0]))
        if not 0 <= class_index < int(predictions.shape[-1]):
            raise UserFacingError(f"class index {class_index} is out of range: the model has "
                                  f"{int(predictions.shape[-1])} classes.")
        score = predictions[:, class_index]
    if len(activations.shape) != 4:
        raise UserFacingError(f"layer {layer_name} has no spatial output (shape {tuple(activations.shape[1:])}).")
    gradients = tape.gradient(score, activations)
    if gradients is None:
        raise UserFacingError(f"the output of {model.name} does not depend on layer {layer_name}.")
    channel_weights = tf.reduce_mean(gradients, axis=(0, 1, 2))
    heatmap = tf.nn.relu(tf.reduce_sum(activations[0] * channel_weights, axis=-1)).numpy()
    peak = float(heatmap.max())
    return (np.asarray(predictions[0], np.float32),
            (heatmap / peak if peak > 0 else heatmap).astype(np.float32))


def upscale(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D map to ``size`` = (height, width) with bilinear interpolation."""
    import cv2

    return cv2.resize(heatmap.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """A 0..1 map as an RGB uint8 image (jet colour map: blue low, red high)."""
    import cv2

    scaled = np.uint8(np.clip(heatmap, 0.0, 1.0) * 255)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """The heatmap, upscaled and coloured, blended over an RGB uint8 image."""
    colours = colorize(upscale(heatmap, image.shape[:2])).astype(np.float32)
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colours
    return np.clip(blended, 0, 255).astype(np.uint8)


def feature_maps(model, image: np.ndarray, layer_name: str) -> np.ndarray:
    """The output of ``layer_name`` (a layer path) for one preprocessed image: H x W x channels."""
    _, found = graph.run(model, _batch(image), [layer_name])
    output = np.asarray(found[layer_name])[0]
    if output.ndim != 3:
        raise UserFacingError(f"layer {layer_name} has no spatial output (shape {output.shape}).")
    return output


def feature_map_grid(maps: np.ndarray, count: int = 12, columns: int = 4, cell: int = 64) -> np.ndarray:
    """The first ``count`` channels of H x W x C maps as one greyscale uint8 mosaic (book ch. 3:
    the first 12 feature maps of a layer), each channel scaled to its own range."""
    import cv2

    count = min(count, maps.shape[-1])
    rows = -(-count // columns)
    grid = np.full((rows * (cell + 2), columns * (cell + 2)), 255, np.uint8)
    for index in range(count):
        channel = maps[..., index].astype(np.float32)
        low, high = float(channel.min()), float(channel.max())
        scaled = np.zeros_like(channel) if high <= low else (channel - low) / (high - low)
        tile = cv2.resize(np.uint8(scaled * 255), (cell, cell), interpolation=cv2.INTER_NEAREST)
        row, column = divmod(index, columns)
        grid[row * (cell + 2):row * (cell + 2) + cell, column * (cell + 2):column * (cell + 2) + cell] = tile
    return grid
