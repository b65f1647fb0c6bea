"""Model-service operations of the training monitor (run inside the model service process).

``training.first_layer``: args ``{"model_path", "tile_path"}`` (both confined to the data root),
result ``{"conv_name", "pool_name"}``, arrays ``kernels``, ``before_pooling`` and, when the model
pools after its first convolution, ``after_pooling`` (see :mod:`services.training.inspection`).
"""

from __future__ import annotations

import numpy as np

from services.config import confine


def first_layer(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    from services.images import decode_image
    from services.training.inspection import first_layer_view_of
    from services.transfer.service_ops import loaded_model

    pixels = decode_image(confine(str(args.get("tile_path", "")))).pixels
    key, loaded = loaded_model(cache, args)  # the same cache entry as the transfer page's inspection
    with cache.lock(key):
        view = first_layer_view_of(loaded.model, pixels, int(args.get("count", 12)))
    out = {"kernels": view.kernels.astype(np.float32), "before_pooling": view.before_pooling.astype(np.float32)}
    if view.after_pooling is not None:
        out["after_pooling"] = view.after_pooling.astype(np.float32)
    return {"conv_name": view.conv_name, "pool_name": view.pool_name}, out
