"""Style-transfer losses checked against plain numpy."""

from __future__ import annotations

import numpy as np

from services.style import losses


def test_gram_matrix_matches_numpy():
    features = np.random.default_rng(0).normal(size=(2, 5, 7, 4)).astype(np.float32)
    expected = np.stack([f.reshape(-1, 4).T @ f.reshape(-1, 4) / (5 * 7) for f in features])
    np.testing.assert_allclose(np.asarray(losses.gram_matrix(features)), expected, rtol=1e-5, atol=1e-5)


def test_total_variation_is_the_sum_of_neighbour_differences():
    image = np.random.default_rng(1).uniform(size=(1, 6, 5, 3)).astype(np.float32)
    expected = np.abs(np.diff(image, axis=1)).sum() + np.abs(np.diff(image, axis=2)).sum()
    np.testing.assert_allclose(float(losses.total_variation_loss(image)), expected, rtol=1e-5)


def test_weighted_losses_apply_the_weights_per_term_and_layer():
    rng = np.random.default_rng(2)
    grams = [rng.normal(size=(1, 3, 3)).astype(np.float32) for _ in range(2)]
    targets = [g + 1.0 for g in grams]  # each layer's mean squared difference is exactly 1
    content = [rng.normal(size=(1, 2, 2, 3)).astype(np.float32)]
    image = np.zeros((1, 4, 4, 3), np.float32)  # no total variation
    weights = losses.LossWeights(style=2.0, content=5.0, total_variation=7.0)
    total, style, content_term, tv = losses.weighted_losses(
        grams, content, image, (targets, [content[0] + 2.0]), weights, [1.0, 3.0])
    assert np.isclose(float(style), 2.0 * (1.0 + 3.0) / 2)
    assert np.isclose(float(content_term), 5.0 * 4.0)
    assert float(tv) == 0.0 and np.isclose(float(total), 4.0 + 20.0)


def test_book_defaults():
    weights = losses.LossWeights()
    assert (weights.style, weights.content, weights.total_variation) == (1e-2, 1e4, 30.0)
    assert losses.CONTENT_LAYERS == ("block5_conv2",)
    assert list(weights.style_layers) == [f"block{i}_conv1" for i in range(1, 6)]
