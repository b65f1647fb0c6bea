"""A Keras model that computes exactly what Darknet (and OpenCV's importer) computes for a cfg + weights.

- Convolutions pad ``padding`` pixels on every side (Darknet: ``size // 2`` with ``pad=1``), then
  convolve with 'valid' padding. TF's 'same' would pad stride-2 convolutions asymmetrically;
  at stride 1 with an odd kernel 'same' is the same symmetric padding and is used (no Pad op).
  The bias is a ``BiasAdd`` on TensorFlow, so Grappler fuses convolution + bias + activation.
  ``groups=`` gives grouped convolutions; one group per input channel is a depthwise convolution.
- Batch normalisation is folded into the convolution with Darknet's epsilon.
- Max-pooling pads ``padding // 2`` before and the rest after with -inf (Darknet and OpenCV),
  so the size-2 stride-1 pool of YOLOv3-tiny keeps the size and ignores the border.
- ``[avgpool]`` is global average pooling; ``[dropout]`` the identity.
- Route concatenates, or with ``groups`` takes group ``group_id`` of each source's channels.
- Shortcut adds the source over the previous layer's channels; ``[scale_channels]`` and
  ``[sam]`` multiply the source by the previous layer (per channel / per element).
- Every ``[yolo]`` layer is an output: its raw (H, W, anchors * (5 + classes)) input, decoded later.

The model is a :class:`keras.Model` subclass whose ``call`` walks the layers in a loop: one Keras
layer per Darknet layer, no functional graph. Keras's functional graph is mapped recursively and
fails at about 1,000 layers; this never recurses. Each output is dropped after its last reader.

Input: float32 NHWC RGB in [0, 1], any size that is a multiple of the network stride.
"""

from __future__ import annotations

import functools

import numpy as np

from services.detection.cfg import (AvgPool, Convolutional, DarknetConfig, Dropout, Layer, MaxPool, Route, Sam,
                                    ScaleChannels, Shortcut, Upsample, Yolo)
from services.detection.weights import ConvWeights, DarknetWeights

BN_EPSILON = 1e-6
"""Darknet's normalize_cpu and OpenCV's importer both use 0.000001."""
LEAKY_SLOPE = 0.1


def fold_batch_norm(weights: ConvWeights) -> tuple[np.ndarray, np.ndarray]:
    """Keras kernel (kh, kw, in / groups, out) and bias with batch normalisation folded in."""
    kernel = weights.kernel.astype(np.float64)
    bias = weights.biases.astype(np.float64)
    if weights.scales is not None:
        factor = weights.scales / np.sqrt(weights.rolling_variance.astype(np.float64) + BN_EPSILON)
        kernel = kernel * factor[:, None, None, None]
        bias = bias - weights.rolling_mean * factor
    return kernel.transpose(2, 3, 1, 0).astype(np.float32), bias.astype(np.float32)


def keras_kernel(layer: Convolutional, weights: ConvWeights) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias in the layout :class:`DarknetConv` keeps: Conv2D's (kh, kw, in / groups,
    out), or for a depthwise layer DepthwiseConv2D's (kh, kw, in, out / in). Darknet's filter
    ``f`` of a depthwise layer reads channel ``f // (out / in)``, which is that reshape."""
    kernel, bias = fold_batch_norm(weights)
    if layer.depthwise:
        kernel = kernel.reshape(layer.size, layer.size, layer.input_channels, layer.filters // layer.input_channels)
    return kernel, bias


def activate(keras, tensor, activation: str):
    """Darknet's activations as OpenCV implements them."""
    ops = keras.ops
    if activation == "leaky":
        return ops.leaky_relu(tensor, negative_slope=LEAKY_SLOPE)
    if activation == "mish":
        return tensor * ops.tanh(ops.softplus(tensor))
    functions = {"linear": lambda x: x, "logistic": ops.sigmoid, "relu": ops.relu, "swish": ops.silu,
                 "tanh": ops.tanh}
    return functions[activation](tensor)


def add_bias(keras, tensor, bias):
    """``tensor + bias`` over the last axis; on TensorFlow a ``BiasAdd``, which Grappler fuses with
    the convolution before it and the activation after it into one oneDNN kernel."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.nn.bias_add(tensor, bias)
    return tensor + bias


@functools.cache
def _layer_classes(keras):
    """The custom Keras layers, defined on first use so that importing this module imports no Keras."""

    class DarknetConv(keras.layers.Layer):
        """Zero padding, (grouped / depthwise) convolution with bias, activation."""

        def __init__(self, spec: Convolutional, **kwargs):
            super().__init__(**kwargs)
            self.spec = spec

        def build(self, input_shape=None):
            spec = self.spec
            if spec.depthwise:
                shape = (spec.size, spec.size, spec.input_channels, spec.filters // spec.input_channels)
            else:
                shape = (spec.size, spec.size, spec.input_channels // spec.groups, spec.filters)
            self.kernel = self.add_weight(shape=shape, initializer="glorot_uniform", name="kernel")
            self.bias = self.add_weight(shape=(spec.filters,), initializer="zeros", name="bias")
            self.built = True

        def call(self, inputs):
            spec, ops = self.spec, keras.ops
            padding = "valid"
            if spec.padding and spec.stride == 1 and 2 * spec.padding == spec.size - 1:
                padding = "same"  # stride 1, odd kernel: 'same' pads size // 2 on every side
            elif spec.padding:
                p = spec.padding
                inputs = ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]])
            if spec.depthwise:
                out = ops.depthwise_conv(inputs, self.kernel, strides=spec.stride, padding=padding)
            else:
                out = ops.conv(inputs, self.kernel, strides=spec.stride, padding=padding)
            return activate(keras, add_bias(keras, out, self.bias), spec.activation)

    class DarknetMaxPool(keras.layers.Layer):
        """Max-pooling with Darknet's padding: ``padding // 2`` before, the rest after, -inf fill."""

        def __init__(self, spec: MaxPool, **kwargs):
            super().__init__(**kwargs)
            self.spec = spec

        def call(self, inputs):
            spec = self.spec
            before, after = spec.padding // 2, spec.padding - spec.padding // 2
            if spec.padding:
                inputs = keras.ops.pad(inputs, [[0, 0], [before, after], [before, after], [0, 0]],
                                       constant_values=float("-inf"))
            return keras.ops.max_pool(inputs, spec.size, spec.stride, padding="valid")

    class DarknetRoute(keras.layers.Layer):
        """Concatenate the sources' channels, or group ``group_id`` of ``groups`` of each."""

        def __init__(self, spec: Route, **kwargs):
            super().__init__(**kwargs)
            self.spec = spec

        def call(self, *parts):
            spec = self.spec
            if spec.groups > 1:
                parts = [p[..., spec.group_id * (p.shape[-1] // spec.groups):
                            (spec.group_id + 1) * (p.shape[-1] // spec.groups)] for p in parts]
            return parts[0] if len(parts) == 1 else keras.ops.concatenate(list(parts), axis=-1)

    class DarknetShortcut(keras.layers.Layer):
        """previous + source over the previous layer's channels, then the activation."""

        def __init__(self, spec: Shortcut, **kwargs):
            super().__init__(**kwargs)
            self.spec = spec

        def call(self, previous, source):
            channels, extra = previous.shape[-1], source.shape[-1]
            if extra > channels:
                source = source[..., :channels]
            elif extra < channels:
                source = keras.ops.pad(source, [[0, 0], [0, 0], [0, 0], [0, channels - extra]])
            return activate(keras, previous + source, self.spec.activation)

    class DarknetProduct(keras.layers.Layer):
        """source x previous (broadcast over height and width for [scale_channels]), then the activation."""

        def __init__(self, spec: ScaleChannels | Sam, **kwargs):
            super().__init__(**kwargs)
            self.spec = spec

        def call(self, previous, source):
            return activate(keras, source * previous, self.spec.activation)

    class DarknetUpsample(keras.layers.Layer):
        """Nearest-neighbour upsampling by an integer stride."""

        def __init__(self, spec: Upsample, **kwargs):
            super().__init__(**kwargs)
            self.spec = spec

        def call(self, inputs):
            stride = self.spec.stride
            return keras.ops.repeat(keras.ops.repeat(inputs, stride, axis=1), stride, axis=2)

    class DarknetAvgPool(keras.layers.Layer):
        def call(self, inputs):
            return keras.ops.mean(inputs, axis=(1, 2), keepdims=True)

    class DarknetIdentity(keras.layers.Layer):
        def call(self, inputs):
            return inputs

    return {Convolutional: DarknetConv, MaxPool: DarknetMaxPool, Route: DarknetRoute, Shortcut: DarknetShortcut,
            ScaleChannels: DarknetProduct, Sam: DarknetProduct, Upsample: DarknetUpsample,
            AvgPool: lambda spec, name: DarknetAvgPool(name=name),
            Dropout: lambda spec, name: DarknetIdentity(name=name),
            Yolo: lambda spec, name: DarknetIdentity(name=name)}


def last_readers(layers: list[Layer]) -> list[int]:
    """For each layer, the index of the last layer that reads its output (its own index if none)."""
    last = [layer.index for layer in layers]
    for layer in layers:
        for source in layer.inputs:
            if source >= 0:
                last[source] = max(last[source], layer.index)
    return last


@functools.cache
def _network_class(keras):
    class DarknetNetwork(keras.Model):
        """Runs the Darknet layers in order; outputs the raw input of every [yolo] layer."""

        def __init__(self, config: DarknetConfig, steps: list, **kwargs):
            super().__init__(**kwargs)
            self.steps = steps
            self.specs = list(config.layers)
            self.free_after = self._free_after(config.layers)

        @staticmethod
        def _free_after(layers: list[Layer]) -> list[list[int]]:
            freed: list[list[int]] = [[] for _ in layers]
            for source, reader in enumerate(last_readers(layers)):
                if reader != source and not isinstance(layers[source], Yolo):
                    freed[reader].append(source)
            return freed

        def build(self, input_shape=None):
            self.built = True  # every layer with weights was built by build_model

        def call(self, inputs, training=False):
            outputs: list = []
            heads = []
            for spec, step, freed in zip(self.specs, self.steps, self.free_after):
                args = [inputs if s < 0 else outputs[s] for s in spec.inputs]
                tensor = step(*args)
                outputs.append(tensor)
                if isinstance(spec, Yolo):
                    heads.append(tensor)
                for source in freed:
                    outputs[source] = None
            return heads

    return DarknetNetwork


def build_model(config: DarknetConfig, weights: DarknetWeights | None = None):
    """The Keras model of ``config``; with ``weights`` the convolutions get Darknet's values.

    Outputs: a list with one raw tensor per ``[yolo]`` layer, in cfg order, for an NHWC batch
    of any height and width (multiples of the network stride give Darknet's grid sizes).
    """
    import keras

    classes = _layer_classes(keras)
    steps = []
    for layer in config.layers:
        step = classes[type(layer)](layer, name=f"{layer.index:03d}_{layer.kind}")
        if isinstance(layer, Convolutional):
            step.build()
            if weights is not None:
                step.set_weights(list(keras_kernel(layer, weights.convs[layer.index])))
        steps.append(step)
    name = config.name.replace(".cfg", "").replace(".", "_").replace("-", "_")
    model = _network_class(keras)(config, steps, name=name)
    model.build((None, None, None, config.channels))
    return model
