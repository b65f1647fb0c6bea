"""The models the detector offers: their titles in the picker, the default choice, the backends
each runs on, and who may delete an uploaded one (keys: :mod:`services.detection.model_key`)."""

from __future__ import annotations

from collections.abc import Iterable

from services.access import Actor
from services.detection import onnx_store, registry
from services.detection.model_key import ModelKey

DARKNET_BACKENDS = ("OpenCV", "TensorFlow")


def model_options() -> dict[str, str]:
    """Key -> title of every model: the lab's registry, the demo, then uploads (Darknet, ONNX)."""
    options = {key: spec.title for key, spec in registry.REGISTRY.items()}
    options[registry.DEMO_KEY] = registry.DEMO_TITLE
    options.update({str(ModelKey.uploaded(stem)): f"{stem} (uploaded Darknet)" for stem in registry.uploaded_models()})
    options.update({str(ModelKey.onnx(stem)): f"{stem} (uploaded ONNX)" for stem in onnx_store.onnx_models()})
    return options


def default_model(options: dict[str, str], remembered: Iterable[str | None]) -> str:
    """The first ``remembered`` key still offered, else an installed or uploaded model, else the demo."""
    for key in remembered:
        if key in options:
            return key
    installed = registry.installed_keys() + [k for k in options if ModelKey.parse(k).is_upload]
    return installed[0] if installed else registry.DEMO_KEY


def backends_for(key: str) -> tuple[str, ...]:
    """The backends model ``key`` runs on (an ONNX model's depend on its file)."""
    parsed = ModelKey.parse(key)
    return onnx_store.onnx_info(parsed.name).runtimes if parsed.is_onnx else DARKNET_BACKENDS


def upload_owner(key: str) -> str | None:
    """Who uploaded model ``key`` (None: not an upload, or nobody recorded)."""
    parsed = ModelKey.parse(key)
    if not parsed.is_upload:
        return None
    return (onnx_store.onnx_owner if parsed.is_onnx else registry.upload_owner)(parsed.name)


def delete_upload(key: str, actor: Actor) -> None:
    """Delete the uploaded model ``key`` when ``actor`` may (its uploader or an administrator)."""
    parsed = ModelKey.parse(key)
    (onnx_store.delete_onnx if parsed.is_onnx else registry.delete_upload)(parsed.name, actor)
