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
