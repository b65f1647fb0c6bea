"""Grad-CAM on a model whose decision depends on a known region: the heatmap must peak there."""

from __future__ import annotations

import numpy as np
import pytest

from services.errors import UserFacingError
from services.transfer import gradcam, graph

SIZE = 32


def colour_detector():
    """Class 0 = "a red blob is present", class 1 = "a blue blob is present".

    Conv channel 0 fires only on strongly red pixels, channel 1 only on strongly blue ones
    (grey noise stays below the bias); global average pooling and an identity dense layer turn
    the two detectors into the class scores. The decision therefore depends only on where the
    coloured blobs are.
    """
    import keras

    inputs = keras.Input((SIZE, SIZE, 3))
    detectors = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="detectors")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(detectors)
    outputs = keras.layers.Dense(2, activation="softmax", name="scores")(pooled)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((3, 3, 3, 2), np.float32)
    kernel[1, 1, 0, 0], kernel[1, 1, 2, 0] = 1.0, -1.0  # red minus blue
    kernel[1, 1, 2, 1], kernel[1, 1, 0, 1] = 1.0, -1.0  # blue minus red
    model.get_layer("detectors").set_weights([kernel, np.full(2, -0.5, np.float32)])
    model.get_layer("scores").set_weights([np.eye(2, dtype=np.float32) * 50, np.zeros(2, np.float32)])
    return model


def tile_with_blobs(red_at: tuple[int, int], blue_at: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = np.repeat(rng.uniform(0.3, 0.6, (SIZE, SIZE, 1)), 3, axis=2).astype(np.float32)
    for (row, col), colour in ((red_at, (1.0, 0.0, 0.0)), (blue_at, (0.0, 0.0, 1.0))):
        image[row:row + 6, col:col + 6] = colour
    return image


def peak(heatmap: np.ndarray) -> tuple[int, int]:
    return tuple(int(v) for v in np.unravel_index(np.argmax(heatmap), heatmap.shape))


def test_heatmap_peaks_on_the_region_that_decides_the_class():
    model = colour_detector()
    image = tile_with_blobs(red_at=(4, 20), blue_at=(22, 3))
    red_map = gradcam.gradcam(model, image, "detectors", class_index=0)
    blue_map = gradcam.gradcam(model, image, "detectors", class_index=1)
    row, col = peak(red_map)
    assert 4 <= row < 10 and 20 <= col < 26
    row, col = peak(blue_map)
    assert 22 <= row < 28 and 3 <= col < 9
    # outside the blob the red class's map is (near) zero: the noise did not raise the score
    assert red_map[16:, :16].max() < 0.05
    assert red_map.max() == pytest.approx(1.0)


def test_heatmap_follows_the_region_when_it_moves():
    model = colour_detector()
    moved = tile_with_blobs(red_at=(24, 24), blue_at=(2, 2))
    row, col = peak(gradcam.gradcam(model, moved))  # predicted class: both blobs equal size
    assert (24 <= row < 30 and 24 <= col < 30) or (2 <= row < 8 and 2 <= col < 8)
    row, col = peak(gradcam.gradcam(model, moved, class_index=0))  # default layer = last conv
    assert 24 <= row < 30 and 24 <= col < 30


def test_overlay_feature_maps_and_bad_layer():
    model = colour_detector()
    image = tile_with_blobs(red_at=(4, 20), blue_at=(22, 3))
    heatmap = gradcam.gradcam(model, image, class_index=0)
    rgb = np.uint8(image * 255)
    blended = gradcam.overlay(rgb, heatmap)
    assert blended.shape == rgb.shape and blended.dtype == np.uint8
    # the blend is reddest (jet's hot end) over the red blob's detector response
    assert blended[6, 22, 0] > blended[28, 28, 0] or blended[6, 22, 2] < blended[28, 28, 2]
    maps = gradcam.feature_maps(model, image, "detectors")
    assert maps.shape == (SIZE, SIZE, 2)
    assert maps[6, 22, 0] > 0 and maps[28, 28, 0] == 0
    grid = gradcam.feature_map_grid(maps, count=12, columns=4, cell=16)
    assert grid.shape == (18, 72) and grid.dtype == np.uint8
    assert graph.spatial_layers(model) == ["detectors"]
    with pytest.raises(UserFacingError, match="no layer named"):
        gradcam.gradcam(model, image, "block99")
    with pytest.raises(UserFacingError, match="no spatial output"):
        gradcam.feature_maps(model, image, "scores")
