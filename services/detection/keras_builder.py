"""A functional Keras model that computes exactly what Darknet computes for a cfg + weights.

- Convolutions pad ``padding`` pixels on every side (Darknet: ``size // 2`` with ``pad=1``), then
  convolve with 'valid' padding. TF's 'same' would pad stride-2 convolutions asymmetrically.
- Max-pooling pads ``padding // 2`` before and the rest after with -inf (Darknet and OpenCV),
  so the size-2 stride-1 pool of YOLOv3-tiny keeps the size and ignores the border.
- Batch normalisation is folded into the convolution with Darknet's epsilon.
- Route concatenates, or with ``groups`` takes group ``group_id`` of each source's channels.
- Every ``[yolo]`` layer is an output: the raw (H, W, anchors * (5 + classes)) map, decoded later.

Input: float32 NHWC RGB in [0, 1], any size that is a multiple of the network stride.
"""

from __future__ import annotations

import numpy as np

from services.detection.cfg import (Convolutional, DarknetConfig, MaxPool, Route, Shortcut, Upsample,
                                    Yolo)
from services.detection.weights import ConvWeights, DarknetWeights

BN_EPSILON = 1e-6
"""Darknet's normalize_cpu and OpenCV's importer both use 0.000001."""
LEAKY_SLOPE = 0.1


def fold_batch_norm(weights: ConvWeights) -> tuple[np.ndarray, np.ndarray]:
    """Keras kernel (kh, kw, in, out) and bias with batch normalisation folded in."""
    kernel = weights.kernel.astype(np.float64)
    bias = weights.biases.astype(np.float64)
    if weights.scales is not None:
        factor = weights.scales / np.sqrt(weights.rolling_variance.astype(np.float64) + BN_EPSILON)
        kernel = kernel * factor[:, None, None, None]
        bias = bias - weights.rolling_mean * factor
    return kernel.transpose(2, 3, 1, 0).astype(np.float32), bias.astype(np.float32)


def _custom_layers():
    import keras

    class DarknetMaxPool(keras.layers.Layer):
        """Max-pooling with Darknet's padding: ``padding // 2`` before, the rest after, -inf fill."""

        def __init__(self, size: int, stride: int, padding: int, **kwargs):
            super().__init__(**kwargs)
            self.size, self.stride, self.padding = size, stride, padding

        def call(self, inputs):
            before, after = self.padding // 2, self.padding - self.padding // 2
            if self.padding:
                inputs = keras.ops.pad(inputs, [[0, 0], [before, after], [before, after], [0, 0]],
                                       constant_values=float("-inf"))
            return keras.ops.max_pool(inputs, self.size, self.stride, padding="valid")

        def get_config(self):
            return {**super().get_config(), "size": self.size, "stride": self.stride, "padding": self.padding}

    class ChannelGroup(keras.layers.Layer):
        """Group ``group_id`` of ``groups`` equal channel groups (Darknet route groups)."""

        def __init__(self, groups: int, group_id: int, **kwargs):
            super().__init__(**kwargs)
            self.groups, self.group_id = groups, group_id

        def call(self, inputs):
            width = inputs.shape[-1] // self.groups
            return inputs[..., self.group_id * width:(self.group_id + 1) * width]

        def get_config(self):
            return {**super().get_config(), "groups": self.groups, "group_id": self.group_id}

    return DarknetMaxPool, ChannelGroup


def _activation(keras, tensor, activation: str, name: str):
    if activation == "leaky":
        return keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"{name}_leaky")(tensor)
    if activation == "linear":
        return tensor
    keras_name = {"mish": "mish", "logistic": "sigmoid", "relu": "relu"}[activation]
    return keras.layers.Activation(keras_name, name=f"{name}_{activation}")(tensor)


def build_model(config: DarknetConfig, weights: DarknetWeights | None = None, fixed_size: bool = False):
    """The Keras model of ``config``; with ``weights`` the convolutions get Darknet's values.

    Outputs: one raw tensor per ``[yolo]`` layer, in cfg order. ``fixed_size`` builds for the
    cfg's width/height; otherwise spatial dimensions are left open.
    """
    import keras

    DarknetMaxPool, ChannelGroup = _custom_layers()
    shape = (config.height, config.width, config.channels) if fixed_size else (None, None, config.channels)
    inputs = keras.Input(shape=shape, name="image")
    outputs: list = []
    heads = []
    convs: dict[int, keras.layers.Layer] = {}
    tensor = inputs
    for layer in config.layers:
        name = f"{layer.index:03d}_{layer.kind}"
        if isinstance(layer, Convolutional):
            if layer.padding:
                tensor = keras.layers.ZeroPadding2D(layer.padding, name=f"{name}_pad")(tensor)
            conv = keras.layers.Conv2D(layer.filters, layer.size, strides=layer.stride, padding="valid",
                                       use_bias=True, name=name)
            tensor = _activation(keras, conv(tensor), layer.activation, name)
            convs[layer.index] = conv
        elif isinstance(layer, MaxPool):
            tensor = DarknetMaxPool(layer.size, layer.stride, layer.padding, name=name)(tensor)
        elif isinstance(layer, Route):
            parts = [outputs[s] for s in layer.sources]
            if layer.groups > 1:
                parts = [ChannelGroup(layer.groups, layer.group_id, name=f"{name}_group{i}")(p)
                         for i, p in enumerate(parts)]
            tensor = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name=name)(parts)
        elif isinstance(layer, Shortcut):
            tensor = keras.layers.Add(name=name)([tensor, outputs[layer.source]])
            tensor = _activation(keras, tensor, layer.activation, name)
        elif isinstance(layer, Upsample):
            tensor = keras.layers.UpSampling2D(layer.stride, interpolation="nearest", name=name)(tensor)
        elif isinstance(layer, Yolo):
            tensor = keras.layers.Identity(name=f"yolo_{len(heads)}")(tensor)
            heads.append(tensor)
        outputs.append(tensor)
    model = keras.Model(inputs, heads, name=config.name.replace(".cfg", "").replace(".", "_").replace("-", "_"))
    if weights is not None:
        for index, conv in convs.items():
            conv.set_weights(list(fold_batch_norm(weights.convs[index])))
    return model
