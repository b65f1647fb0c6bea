"""Custom Keras layers used by the dashboard's models (imports Keras: import only when needed).

They are registered as serialisable, so saved models load with ``safe_mode=True``; import this
module before ``keras.saving.load_model`` (``services.models.catalog.load_saved_model`` does).
"""

from __future__ import annotations

import keras

IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="dashboard")
class CaffePreprocess(keras.layers.Layer):
    """``vgg16.preprocess_input`` for [0, 1] RGB input: x*255, RGB->BGR, minus ImageNet means."""

    def call(self, inputs):
        bgr = keras.ops.flip(inputs * 255.0, axis=-1)
        return bgr - keras.ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=bgr.dtype)


@keras.saving.register_keras_serializable(package="dashboard")
class BookAugmentation(keras.layers.Layer):
    """The book's augmentation (rotation 40 deg, shift/shear/zoom 0.2, horizontal and vertical
    flips, 'nearest' fill) as ONE random affine transform per image, active only in training.

    Same distribution of transforms as ``services.datasets.augmentation.book_augmentation``
    (a stack of RandomFlip/Rotation/Translation/Shear/Zoom layers, one resampling each), but a
    single bilinear resampling per image: about 3.5x faster on CPU (bench/bench_training.py).
    Input: a batch of float images in any value range (TensorFlow backend, e.g. a tf.data map).
    """

    def __init__(self, rotation_degrees=40.0, shift=0.2, shear=0.2, zoom=0.2, horizontal_flip=True,
                 vertical_flip=True, fill_mode="nearest", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rotation_degrees, self.shift, self.shear, self.zoom = rotation_degrees, shift, shear, zoom
        self.horizontal_flip, self.vertical_flip = horizontal_flip, vertical_flip
        self.fill_mode, self.seed = fill_mode, seed

    def _uniform(self, tf, count, bound, offset=0.0):
        return offset + tf.random.uniform([count], -bound, bound, seed=self.seed)

    def _flip(self, tf, count, enabled):
        if not enabled:
            return tf.ones([count])
        return tf.where(tf.random.uniform([count], seed=self.seed) < 0.5, -1.0, 1.0)

    def transforms(self, images):
        """Per image, the output->input affine map (rotation @ shear @ zoom @ flip, about the
        centre, plus a shift) in the 8-number form of ``keras.ops.image.affine_transform``."""
        import math

        from services.runtime import tensorflow

        tf = tensorflow()

        count = tf.shape(images)[0]
        height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
        angle = self._uniform(tf, count, self.rotation_degrees * math.pi / 180)
        shear = self._uniform(tf, count, self.shear)
        zoom_x, zoom_y = self._uniform(tf, count, self.zoom, 1.0), self._uniform(tf, count, self.zoom, 1.0)
        flip_x, flip_y = self._flip(tf, count, self.horizontal_flip), self._flip(tf, count, self.vertical_flip)
        cos, sin = tf.cos(angle), tf.sin(angle)
        a00, a01 = cos * zoom_x * flip_x, (cos * shear - sin) * zoom_y * flip_y
        a10, a11 = sin * zoom_x * flip_x, (sin * shear + cos) * zoom_y * flip_y
        cx, cy = (width - 1) / 2, (height - 1) / 2
        b0 = cx - a00 * cx - a01 * cy + self._uniform(tf, count, self.shift) * width
        b1 = cy - a10 * cx - a11 * cy + self._uniform(tf, count, self.shift) * height
        zeros = tf.zeros([count])
        return tf.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        return keras.ops.image.affine_transform(inputs, self.transforms(inputs), interpolation="bilinear",
                                                fill_mode=self.fill_mode)

    def get_config(self):
        return {**super().get_config(), "rotation_degrees": self.rotation_degrees, "shift": self.shift,
                "shear": self.shear, "zoom": self.zoom, "horizontal_flip": self.horizontal_flip,
                "vertical_flip": self.vertical_flip, "fill_mode": self.fill_mode, "seed": self.seed}
