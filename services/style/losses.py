"""The Gatys et al. losses as the book (and the TensorFlow tutorial it condenses) defines them.

Style: mean squared difference of Gram matrices (normalised by H*W) per style layer, weighted
per layer, times ``style_weight / n_style``. Content: mean squared difference of the content
layer's features, times ``content_weight / n_content``. Total variation: the summed absolute
differences of neighbouring pixels (``tf.image.total_variation``), times ``tv_weight``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.runtime import tensorflow

CONTENT_LAYERS = ("block5_conv2",)
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


@dataclass(frozen=True)
class LossWeights:
    """The weights of the three loss terms; the book's values are the defaults."""

    style: float = 1e-2
    content: float = 1e4
    total_variation: float = 30.0
    style_layers: Mapping[str, float] = field(default_factory=lambda: {name: 1.0 for name in STYLE_LAYERS})
    """Relative weight of each style layer (the book: all equal)."""


def gram_matrix(features):
    """Gram matrix per image: einsum('bijc,bijd->bcd', F, F) / (H*W)."""
    tf = tensorflow()
    result = tf.linalg.einsum("bijc,bijd->bcd", features, features)
    shape = tf.shape(features)
    return result / tf.cast(shape[1] * shape[2], result.dtype)


def style_loss(style_grams: Sequence, target_grams: Sequence, layer_weights: Sequence[float]):
    """Sum over style layers of layer_weight * mean((G(x) - G(style))^2), divided by n layers."""
    tf = tensorflow()
    terms = [weight * tf.reduce_mean(tf.square(gram - target))
             for gram, target, weight in zip(style_grams, target_grams, layer_weights)]
    return tf.add_n(terms) / float(len(terms))


def content_loss(content_features: Sequence, target_features: Sequence):
    tf = tensorflow()
    terms = [tf.reduce_mean(tf.square(f - t)) for f, t in zip(content_features, target_features)]
    return tf.add_n(terms) / float(len(terms))


def total_variation_loss(image):
    tf = tensorflow()
    return tf.reduce_sum(tf.image.total_variation(tf.convert_to_tensor(image)))


def weighted_losses(style_grams, content_features, image, targets, weights: LossWeights, layer_weights):
    """(total, style, content, tv) with the weights applied; ``targets`` = (style grams, content features)."""
    style = weights.style * style_loss(style_grams, targets[0], layer_weights)
    content = weights.content * content_loss(content_features, targets[1])
    tv = weights.total_variation * total_variation_loss(image)
    return style + content + tv, style, content, tv
