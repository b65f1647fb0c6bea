"""Run any Keras classifier and read what its inner layers produce, nested models included.

Grad-CAM and the feature-map view need the output of an inner layer. Building a second
``keras.Model(model.input, layer.output)`` fails for a ``Sequential`` loaded from a file ("has
never been called and thus has no defined input") and for layers inside a nested backbone (the
book's vgg16_v4 holds VGG16 as one layer). Instead :func:`run` executes the model eagerly layer
by layer, descending into nested models, and hands back the tensors of the layers asked for
(optionally watched by a ``tf.GradientTape``).

Layers are named by *path*: a top-level layer by its name, a layer inside a nested model as
``"<model>/<layer>"`` (``"vgg16/block5_conv3"``).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

from services.errors import UserFacingError
from services.models.saved import is_model


def _is_sequential(model) -> bool:
    return type(model).__name__ == "Sequential"


def layer_paths(model, prefix: str = "") -> list[str]:
    """Every leaf layer's path, in execution order (InputLayers left out)."""
    paths = []
    for layer in model.layers:
        if is_model(layer):
            paths += layer_paths(layer, f"{prefix}{layer.name}/")
        elif type(layer).__name__ != "InputLayer":
            paths.append(prefix + layer.name)
    return paths


def input_shape(model) -> tuple:
    """(height, width, channels) of the model's image input (works for loaded Sequentials)."""
    try:
        shape = tuple(model.inputs[0].shape)
    except (AttributeError, IndexError, TypeError, ValueError):
        shape = tuple((model.get_build_config() or {}).get("input_shape") or ())
    if len(shape) != 4:
        raise UserFacingError(f"model {model.name} does not take images (input shape {shape}).")
    return tuple(shape[1:])


def main_output(output):
    """The class probabilities of a model output (``main`` of a model with auxiliary heads)."""
    if isinstance(output, dict):
        return output["main"] if "main" in output else next(iter(output.values()))
    if isinstance(output, (list, tuple)):
        return output[0]
    return output


class _Runner:
    def __init__(self, taps: set[str], tape=None):
        self.taps, self.tape, self.found = taps, tape, {}

    def call(self, layer, args, kwargs, prefix: str):
        path = prefix + layer.name
        if is_model(layer):
            output = self.model(layer, args[0] if len(args) == 1 else list(args), path + "/")
        else:
            output = layer(*args, **kwargs)
        if path in self.taps:
            if self.tape is not None:
                self.tape.watch(output)
            self.found[path] = output
        return output

    def model(self, model, inputs, prefix: str):
        if _is_sequential(model):
            x = inputs
            for layer in model.layers:
                x = self.call(layer, (x,), {}, prefix)
            return x

        def operation_fn(operation):
            return lambda *args, **kwargs: self.call(operation, args, kwargs, prefix)

        return model._run_through_graph(inputs, operation_fn=operation_fn)


def run(model, batch, taps: Iterable[str] = (), tape=None):
    """(class probabilities, {path: output}) of ``model`` on ``batch`` (inference mode).

    ``taps`` are layer paths (:func:`layer_paths`); an unknown one raises
    :class:`UserFacingError` naming a few that exist. With ``tape`` (a ``tf.GradientTape``) the
    tapped outputs are watched, so gradients with respect to them can be taken."""
    wanted = set(taps)
    unknown = wanted - set(layer_paths(model))
    if unknown:
        spatial = spatial_layers(model)
        raise UserFacingError(f"model {model.name} has no layer named {sorted(unknown)[0]!r}; choose one of "
                              f"{', '.join(spatial[-5:]) or 'its layers'}.")
    runner = _Runner(wanted, tape)
    output = runner.model(model, batch, "")
    return main_output(output), runner.found


_shapes: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def output_shapes(model) -> dict[str, tuple]:
    """Every leaf layer's output shape (without the batch), measured by one pass over a blank
    image (remembered while the model object lives)."""
    if model not in _shapes:
        import numpy as np

        blank = np.zeros((1, *input_shape(model)), np.float32)
        _, found = run(model, blank, layer_paths(model))
        _shapes[model] = {path: tuple(tensor.shape[1:]) for path, tensor in found.items()
                          if hasattr(tensor, "shape")}
    return _shapes[model]


PREPROCESSING_CLASSES = ("Rescaling", "Normalization", "CaffePreprocess", "RandomFlip", "RandomRotation",
                         "RandomZoom", "RandomTranslation", "RandomContrast", "Resizing")
"""Layers with image-shaped output that only rescale or augment: no feature maps to show."""


def _leaf(model, path: str):
    layer = model
    for name in path.split("/"):
        layer = layer.get_layer(name)
    return layer


def spatial_layers(model) -> list[str]:
    """Paths of the layers with a 3-D output per image (height, width, channels), in order,
    preprocessing and augmentation layers left out: the layers Grad-CAM and the feature-map
    view can use."""
    found = []
    for path, shape in output_shapes(model).items():
        if len(shape) == 3 and type(_leaf(model, path)).__name__ not in PREPROCESSING_CLASSES:
            found.append(path)
    return found


def first_convolution(model) -> str:
    """The first convolution's path (the default feature-map layer), else the first spatial layer."""
    spatial = spatial_layers(model)
    if not spatial:
        raise UserFacingError(f"model {model.name} has no convolutional layer to show.")
    return next((p for p in spatial if "Conv" in type(_leaf(model, p)).__name__), spatial[0])


def last_spatial_layer(model) -> str:
    """The last layer with a spatial output: the usual Grad-CAM layer."""
    spatial = spatial_layers(model)
    if not spatial:
        raise UserFacingError(f"model {model.name} has no convolutional layer to explain.")
    return spatial[-1]
