"""Queue style jobs from the page: check everything that can be checked here, then submit.

Nothing here imports TensorFlow (the page runs in the Streamlit server). Settings, pictures,
the silhouette, the memory estimate and the presence of the model files are checked before a
job is queued, so mistakes show on the page at once; the job body checks them again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from services.jobs import kinds
from services.models import weights as weights_registry
from services.style import fast_models, job_files
from services.style.settings import FastSettings, StyleSettings, feather_of, is_random

GATYS, FAST = "gatys", "fast"
KIND_OF_ENGINE = {GATYS: kinds.STYLE_TRANSFER, FAST: kinds.FAST_STYLE_TRANSFER}
VGG19 = "vgg19"


def _params(engine: str, settings: StyleSettings | FastSettings, mask: np.ndarray | None, feather: float,
            random_weights: bool) -> dict[str, Any]:
    params = {"engine": engine, "settings": settings.to_dict(), "silhouette": mask is not None,
              "feather": float(feather), "random_weights": random_weights}
    feather_of(params)
    return params


def submit_gatys(manager, content: np.ndarray, style: np.ndarray, settings: StyleSettings, *, title: str,
                 mask: np.ndarray | None = None, feather: float = 0.0, owner: str | None = None) -> str:
    """Queue a Gatys run (VGG19 weights must be present unless the run is explicitly random)."""
    settings.validate()
    if not is_random(settings):
        weights_registry.resolve_weights(VGG19)  # WeightsMissing naming the fix
    settings.check_memory(content.shape[:2])
    params = _params(GATYS, settings, mask, feather, is_random(settings))
    files = job_files.input_files(content, style, mask)
    return manager.submit(kinds.STYLE_TRANSFER, title, params, files=files, owner=owner)


def submit_fast(manager, content: np.ndarray, style: np.ndarray, settings: FastSettings, *, title: str,
                mask: np.ndarray | None = None, feather: float = 0.0, owner: str | None = None) -> str:
    """Queue a fast (Magenta) run; the TF Lite files must be in the model cache."""
    settings.validate()
    fast_models.resolve(settings.variant)  # FastModelMissing naming the fix
    params = _params(FAST, settings, mask, feather, False)
    files = job_files.input_files(content, style, mask)
    return manager.submit(kinds.FAST_STYLE_TRANSFER, title, params, files=files, owner=owner)


def submit_vgg19_download(manager, owner: str | None = None) -> str:
    return weights_registry.submit_download(manager, VGG19, owner=owner)


def submit_fast_download(manager, variant: str = fast_models.DEFAULT_VARIANT, owner: str | None = None) -> str:
    fast_models.files_for(variant)
    return manager.submit(kinds.STYLE_MODEL_DOWNLOAD, "Download the Magenta style networks", {"variant": variant},
                          owner=owner)


def is_vgg19_download(state) -> bool:
    """A weights download of VGG19 (the transfer page's downloads of other backbones are not ours)."""
    return state.kind == kinds.WEIGHTS_DOWNLOAD and isinstance(state.params, dict) \
        and state.params.get("backbone") == VGG19
