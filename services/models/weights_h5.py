"""The HDF5 layout Keras distributes ImageNet weights in, read and written with ``h5py`` only.

Two layouts are read: a weights file (``layer_names`` on the root: what Keras downloads) and a
full model saved as ``.h5`` (the same under a ``model_weights`` group, beside the model's
config, which is never evaluated here). Files are matched to a model either layer by layer in
order (:func:`first_mismatch`, Keras's own ``load_weights``) or by layer name
(:func:`first_mismatch_by_name` / :func:`load_by_name`), which takes a backbone out of a full
model that has more layers (its ImageNet top) and whose saved config the installed Keras may not
read (Keras 3 refuses Keras 2's DepthwiseConv2D config). Shapes come from the file's headers, so
nothing is read into memory before it is known to fit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from services.errors import UserFacingError


class WeightsMismatch(UserFacingError):
    """A weights file that does not fit the architecture (names the first mismatching layer)."""


def layer_variables(layer) -> list:
    """A layer's variables in the order Keras's HDF5 loader assigns them."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _read_attribute(group, name: str) -> list[str]:
    """A string-list attribute, joining the chunks Keras writes for long lists."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if hasattr(v, "decode") else str(v) for v in values]


def _weights_group(root, shown_name: str):
    group = root["model_weights"] if "layer_names" not in root.attrs and "model_weights" in root else root
    if "layer_names" not in group.attrs and "layer_names0" not in group.attrs:
        raise WeightsMismatch(
            f"{shown_name} is an HDF5 file but not in the layout Keras uses for ImageNet weights "
            "(no layer_names); upload the original Keras .h5 weights file or a full model saved as .h5."
        )
    return group


def _open(path: Path, shown_name: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise WeightsMismatch(f"{shown_name} is not an HDF5 weights file ({error}).") from error


def file_layers(path: Path, shown_name: str | None = None) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(layer name, weight shapes) of every layer with weights in a Keras HDF5 file, in order."""
    shown_name = shown_name or Path(path).name
    with _open(path, shown_name) as root:
        group = _weights_group(root, shown_name)
        layers = []
        for layer_name in _read_attribute(group, "layer_names"):
            if layer_name not in group:  # Keras's loader would fail on it later with a KeyError
                raise WeightsMismatch(f"{shown_name} lists a layer {layer_name[:80]!r} but holds no weights for "
                                      "it: the file is damaged or was edited; upload the original file.")
            layer_group = group[layer_name]
            shapes = [tuple(layer_group[w].shape) for w in _read_attribute(layer_group, "weight_names")]
            if shapes:
                layers.append((layer_name, shapes))
        return layers


def is_full_model(path: Path) -> bool:
    """True for a whole model saved as ``.h5`` (weights under ``model_weights``)."""
    with _open(path, Path(path).name) as root:
        return "model_weights" in root and "layer_names" not in root.attrs


def _expected(model) -> list[tuple[str, list[tuple[int, ...]]]]:
    return [(layer.name, [tuple(v.shape) for v in layer_variables(layer)])
            for layer in model.layers if layer_variables(layer)]


def first_mismatch(model, path: Path, shown_name: str | None = None) -> str | None:
    """None if ``path`` fits ``model`` layer by layer in order; else the first mismatch, in words."""
    expected = _expected(model)
    found = file_layers(path, shown_name)
    for index, (layer_name, shapes) in enumerate(expected):
        if index >= len(found):
            return (f"the file ends after {len(found)} layers with weights; layer #{index} "
                    f"'{layer_name}' (shapes {shapes}) has no weights in it")
        saved_name, saved_shapes = found[index]
        if saved_shapes != shapes:
            return (f"first mismatching layer is #{index} '{layer_name}': the model expects weight "
                    f"shapes {shapes}, the file's layer '{saved_name}' has {saved_shapes}")
    if len(found) > len(expected):
        return (f"the file has {len(found)} layers with weights, the model {len(expected)}; first extra "
                f"layer in the file is '{found[len(expected)][0]}'")
    return None


def first_mismatch_by_name(model, path: Path, shown_name: str | None = None) -> str | None:
    """None if every layer of ``model`` with weights is in the file under its name with the same
    shapes (the file may hold more layers, e.g. the ImageNet top); else the first problem."""
    found = dict(file_layers(path, shown_name))
    for layer_name, shapes in _expected(model):
        if layer_name not in found:
            return f"the model's layer '{layer_name}' (shapes {shapes}) is not in the file"
        if found[layer_name] != shapes:
            return (f"layer '{layer_name}': the model expects weight shapes {shapes}, the file has "
                    f"{found[layer_name]}")
    return None


def load_by_name(model, path: Path, shown_name: str | None = None) -> None:
    """Set every layer of ``model`` that has weights from the file's layer of the same name.

    Checks everything first (:func:`first_mismatch_by_name`), so a file that does not fit
    changes nothing and raises :class:`WeightsMismatch`."""
    shown_name = shown_name or Path(path).name
    problem = first_mismatch_by_name(model, path, shown_name)
    if problem:
        raise WeightsMismatch(f"{shown_name} does not fit {model.name}: {problem}.")
    with _open(path, shown_name) as root:
        group = _weights_group(root, shown_name)
        for layer in model.layers:
            if not layer_variables(layer):
                continue
            layer_group = group[layer.name]
            values = [np.asarray(layer_group[w]) for w in _read_attribute(layer_group, "weight_names")]
            for variable, value in zip(layer_variables(layer), values):
                variable.assign(value)


def write_weights_file(model, path: str | os.PathLike) -> Path:
    """Save ``model``'s weights in the HDF5 layout of Keras's ImageNet files (layer_names,
    weight_names, one dataset per variable), which ``model.load_weights(<name>.h5)`` reads.

    Used to generate stand-in weights for tests and offline demos (never official), and to
    store the backbone taken out of an uploaded full model."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as root:
        root.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
        root.attrs["backend"] = b"tensorflow"
        for layer in sorted(model.layers, key=lambda item: item.name):
            group = root.create_group(layer.name)
            variables = layer_variables(layer)
            names = [f"{layer.name}_{i}_{v.name}:0".encode("utf8") for i, v in enumerate(variables)]
            group.attrs["weight_names"] = names
            for weight_name, variable in zip(names, variables):
                group.create_dataset(weight_name.decode("utf8"), data=np.asarray(variable))
    return path


def write_full_model_file(model, path: str | os.PathLike) -> Path:
    """A stand-in for a full model saved as ``.h5`` by Keras 2 (weights under ``model_weights``,
    a ``model_config`` attribute that is never read here): for tests of the full-model upload."""
    import h5py

    path = Path(path)
    temporary = path.with_name(path.name + ".weights.tmp")
    write_weights_file(model, temporary)
    try:
        with h5py.File(temporary, "r") as source, h5py.File(path, "w") as root:
            root.attrs["model_config"] = b'{"class_name": "Functional", "config": {}}'
            root.attrs["keras_version"] = b"2.8.0"
            group = root.create_group("model_weights")
            for key, value in source.attrs.items():
                group.attrs[key] = value
            for name in source:
                source.copy(name, group)
    finally:
        temporary.unlink(missing_ok=True)
    return path
