"""Pretrained-weights registry: where each backbone's ImageNet weights come from.

Every backbone the dashboard uses is listed in :data:`services.models.backbones.BACKBONES` with
the weights file Keras itself downloads: the same file name, official URL and md5 hash that
``keras.applications`` uses. Weights are looked for in this order:

1. the project's model cache (``Settings.model_cache_dir``, default ``<data_root>/models``);
2. Keras's standard cache (``$KERAS_HOME/models``, else ``~/.keras/models`` or ``/tmp/.keras/models``);
3. a download into the model cache, only when asked (progress, md5 check, resumable);
4. a file the user uploads or points to (:func:`install_weights_file`): Keras's weights file, or
   a full model (``.h5`` or ``.keras``) whose backbone layers are taken by name; validated
   against the architecture, a mismatch names the first mismatching layer and caches nothing.

A file found in a cache must carry Keras's official md5, or have been installed through
:func:`install_weights_file` (recorded in a ``<file>.json`` manifest next to it); anything else
is refused. Random weights are never a fallback: ``load_backbone(..., weights="random")`` must be
asked for explicitly and callers label such models as untrained.

Models are always built with ``weights=None`` and then loaded from the resolved file, which is
exactly the path real ImageNet files take, so tests can use generated files
(:func:`write_weights_file`) and exercise the same code.

The package, by concern:

- :mod:`~services.models.weights.manifest`: hashes and the manifest beside each cached file;
- :mod:`~services.models.weights.cache`: where the weights are, their status, resolution, download;
- :mod:`~services.models.weights.build`: input sizes, preprocessing, :func:`load_backbone`;
- :mod:`~services.models.weights.upload`: installing a user's file, its owner, its deletion;
- :mod:`~services.models.weights.job`: the ``weights-download`` job body;
- ``python -m services.models.weights``: the command line (``__main__``).

This module re-exports their public names, which about thirty callers import as
``from services.models import weights as registry``.
"""

from services.models.backbones import BACKBONES, BackboneSpec, spec
from services.models.weights.build import MAX_SIDE, BadInputSize, check_input_size, load_backbone, preprocess_function
from services.models.weights.cache import (
    DOWNLOADABLE, MISSING, PRESENT, UPLOAD_PLACE, WeightsMissing, WeightsStatus, all_statuses, keras_cache_dirs,
    model_cache_dir, resolve_weights, weights_status,
)
from services.models.weights.job import UPLOAD_FILE, download_weights_job, submit_download, submit_install
from services.models.weights.manifest import file_digests, read_manifest
from services.models.weights.upload import delete_installed_weights, install_weights_file, installed_weights_owner
from services.models.weights_h5 import WeightsMismatch, write_full_model_file, write_weights_file
from services.provenance import IMAGENET, RANDOM

__all__ = [
    "BACKBONES", "DOWNLOADABLE", "IMAGENET", "MAX_SIDE", "MISSING", "PRESENT", "RANDOM", "UPLOAD_FILE",
    "UPLOAD_PLACE", "BackboneSpec", "BadInputSize", "WeightsMismatch", "WeightsMissing", "WeightsStatus",
    "all_statuses", "check_input_size", "delete_installed_weights", "download_weights_job", "file_digests",
    "install_weights_file", "installed_weights_owner", "keras_cache_dirs", "load_backbone", "model_cache_dir",
    "preprocess_function", "read_manifest", "resolve_weights", "spec", "submit_download", "submit_install",
    "weights_status", "write_full_model_file", "write_weights_file",
]
