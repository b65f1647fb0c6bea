"""Model-service operations on saved Keras classifiers (names in services/model_service/ops.py).

``keras.describe``, ``keras.inspect_tile``, ``keras.feature_maps`` and ``keras.classify`` work for
every model the pages train or load: the book's Sequential CNNs (strategy A), flat transfer
models (B, C, D) and models with a nested backbone (vgg16_v4), because inner layers are reached
by running the model layer by layer (:mod:`services.transfer.graph`). They run in the model
service process; the pages call them through ``services.model_service.client.call``.

Arguments (JSON): ``model_path`` (a ``.keras`` file under the data root; loaded with
``safe_mode=True``), optionally ``class_names``. Arrays: ``tile`` (one RGB uint8 image, any
size: resized to the model's input, noted) or ``tiles`` (N x H x W x 3 uint8 at the model's
input size). Every refusal is a :class:`UserFacingError` with a clear message.
"""

from __future__ import annotations

import numpy as np

from services.errors import UserFacingError

MAX_BATCH_TILES = 4096
PREDICT_BATCH = 64
MAX_MOSAIC_CHANNELS = 64


class _Loaded:
    """A loaded model and what is known about it (kept together in the service's cache)."""

    def __init__(self, model, class_names: list[str]):
        from services.transfer import graph

        self.model = model
        self.input_shape = graph.input_shape(model)
        self.class_names = class_names
        self.spatial = graph.spatial_layers(model)


def _class_names(path, model, given) -> list[str]:
    """The class names: as given, else the run's classes file, else "class 0".. (checked)."""
    from services import run_layout, untrusted_json
    from services.transfer import graph

    count = int(graph.main_output(model.outputs).shape[-1])
    names = given
    if names is None:
        names = untrusted_json.read_or(run_layout.classes_file(path.parent), None, expect=list)
    if not (isinstance(names, list) and len(names) == count and all(isinstance(n, str) for n in names)):
        names = [f"class {index}" for index in range(count)]
    return [str(name)[:100] for name in names]


def _model_path(args: dict):
    from services.config import confine

    value = args.get("model_path")
    if not isinstance(value, str) or not value:
        raise UserFacingError("no model given (model_path).")
    path = confine(value)
    if not path.is_file():
        raise UserFacingError(f"the model file {path.name} does not exist (any more).")
    return path


def loaded_model(cache, args: dict) -> tuple[object, _Loaded]:
    """(cache key, loaded model) of ``args["model_path"]``."""
    from services.model_service.cache import file_key
    from services.models.saved import load_saved_model

    path = _model_path(args)
    key = ("keras", *file_key(path))
    given = args.get("class_names")

    def load() -> _Loaded:
        model = load_saved_model(path)
        return _Loaded(model, _class_names(path, model, None))

    loaded = cache.get(key, load)
    if isinstance(given, list) and len(given) == len(loaded.class_names) and all(isinstance(n, str) for n in given):
        loaded = _with_names(loaded, [str(n)[:100] for n in given])
    return key, loaded


def _with_names(loaded: _Loaded, names: list[str]) -> _Loaded:
    copy = object.__new__(_Loaded)
    copy.__dict__.update(loaded.__dict__, class_names=names)
    return copy


def _tile(arrays: dict, size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """The ``tile`` array as RGB uint8 at ``size`` (height, width), and what was changed."""
    from PIL import Image

    from services.config import get_settings

    tile = arrays.get("tile")
    if not isinstance(tile, np.ndarray) or tile.dtype != np.uint8 or tile.ndim not in (2, 3):
        raise UserFacingError("the tile must be an RGB image (height x width x 3, 8 bits per channel).")
    if tile.shape[0] * tile.shape[1] > get_settings().max_image_pixels or min(tile.shape[:2]) < 1:
        raise UserFacingError(f"the tile is {tile.shape[1]}x{tile.shape[0]} px: too large or empty.")
    notes = []
    if tile.ndim == 2:
        tile, notes = np.repeat(tile[..., None], 3, axis=2), ["greyscale tile repeated into 3 channels."]
    elif tile.shape[2] == 4:
        tile, notes = tile[..., :3], ["alpha channel dropped."]
    elif tile.shape[2] != 3:
        raise UserFacingError(f"the tile has {tile.shape[2]} channels; RGB (3) is needed.")
    height, width = tile.shape[:2]
    if (height, width) != tuple(size):
        tile = np.asarray(Image.fromarray(tile).resize((size[1], size[0]), Image.Resampling.BILINEAR))
        notes.append(f"resized from {width}x{height} to {size[1]}x{size[0]} px (the model's input size).")
    return np.ascontiguousarray(tile), notes


def _as_input(pixels: np.ndarray) -> np.ndarray:
    """The dashboard's classifiers take [0, 1] floats (they preprocess inside)."""
    return pixels.astype(np.float32) / 255.0


def _layer(loaded: _Loaded, args: dict, default: str) -> str:
    layer = args.get("layer") or default
    if layer not in loaded.spatial:
        raise UserFacingError(f"layer {layer!r} has no feature maps to show; choose one of "
                              f"{', '.join(loaded.spatial[:3])} ... {', '.join(loaded.spatial[-3:])}.")
    return layer


def describe(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    """Input size, class names, parameter counts and the layers usable for feature maps and
    Grad-CAM (``spatial_layers``; defaults ``feature_layer`` = the first convolution,
    ``gradcam_layer`` = the last spatial layer)."""
    from services.models.histology import parameter_counts
    from services.transfer import graph

    key, loaded = loaded_model(cache, args)
    with cache.lock(key):
        counts = parameter_counts(loaded.model)
        return {"name": loaded.model.name, "input_shape": list(loaded.input_shape),
                "class_names": loaded.class_names, "spatial_layers": loaded.spatial,
                "feature_layer": graph.first_convolution(loaded.model),
                "gradcam_layer": graph.last_spatial_layer(loaded.model),
                "total_parameters": counts["total"], "trainable_parameters": counts["trainable"]}, {}


def inspect_tile(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    """Class probabilities of one tile and its Grad-CAM overlay (predicted class unless
    ``class_index``; last spatial layer unless ``layer``). Arrays back: ``overlay`` and
    ``tile`` (the tile as the model saw it), RGB uint8."""
    from services.transfer import gradcam, graph

    key, loaded = loaded_model(cache, args)
    tile, notes = _tile(arrays, loaded.input_shape[:2])
    class_index = args.get("class_index")
    if class_index is not None and not (isinstance(class_index, int) and 0 <= class_index < len(loaded.class_names)):
        raise UserFacingError(f"class index {class_index!r} is out of range: the model has "
                              f"{len(loaded.class_names)} classes.")
    with cache.lock(key):
        layer = _layer(loaded, args, graph.last_spatial_layer(loaded.model))
        probabilities, heatmap = gradcam.explain(loaded.model, _as_input(tile), layer, class_index)  # one pass
    predicted = int(np.argmax(probabilities))
    return ({"class_names": loaded.class_names, "probabilities": [float(p) for p in probabilities],
             "predicted": predicted, "explained_class": predicted if class_index is None else class_index,
             "layer": layer, "notes": notes},
            {"overlay": gradcam.overlay(tile, heatmap), "tile": tile})


def feature_maps(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    """The first ``count`` (default 12) feature maps of ``layer`` (default: the first
    convolution) for one tile, as one greyscale mosaic (array ``mosaic``)."""
    from services.transfer import gradcam, graph

    key, loaded = loaded_model(cache, args)
    tile, notes = _tile(arrays, loaded.input_shape[:2])
    count = args.get("count", 12)
    if not isinstance(count, int) or not 1 <= count <= MAX_MOSAIC_CHANNELS:
        raise UserFacingError(f"count must be a whole number from 1 to {MAX_MOSAIC_CHANNELS}.")
    with cache.lock(key):
        layer = _layer(loaded, args, graph.first_convolution(loaded.model))
        maps = gradcam.feature_maps(loaded.model, _as_input(tile), layer)
    return ({"layer": layer, "channels": int(maps.shape[-1]), "shown": min(count, int(maps.shape[-1])),
             "map_size": list(maps.shape[:2]), "notes": notes},
            {"mosaic": gradcam.feature_map_grid(maps, count=count)})


def classify(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    """Class probabilities (array ``probabilities``, N x classes float32) of ``tiles``
    (N x H x W x 3 uint8 at the model's input size)."""
    from services.transfer import graph

    key, loaded = loaded_model(cache, args)
    tiles = arrays.get("tiles")
    height, width = loaded.input_shape[:2]
    if not isinstance(tiles, np.ndarray) or tiles.dtype != np.uint8 or tiles.ndim != 4 or tiles.shape[3] != 3:
        raise UserFacingError("tiles must be N x height x width x 3 RGB images, 8 bits per channel.")
    if tiles.shape[1:3] != (height, width):
        raise UserFacingError(f"the tiles are {tiles.shape[2]}x{tiles.shape[1]} px; this model takes "
                              f"{width}x{height} px.")
    if not 1 <= len(tiles) <= MAX_BATCH_TILES:
        raise UserFacingError(f"send 1 to {MAX_BATCH_TILES} tiles per request (got {len(tiles)}).")
    outputs = []
    with cache.lock(key):
        for start in range(0, len(tiles), PREDICT_BATCH):
            output = loaded.model.predict_on_batch(_as_input(tiles[start:start + PREDICT_BATCH]))
            outputs.append(np.asarray(graph.main_output(output), np.float32))
    return {"class_names": loaded.class_names, "count": int(len(tiles))}, {"probabilities": np.concatenate(outputs)}
