"""Weights a user installs: an uploaded or pointed-to file checked against the architecture and
put into the model cache (:func:`install_weights_file`), who installed it, and its deletion by
that user or an administrator."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

from services.access import Actor, normalize_owner
from services.config import confine
from services.errors import UserFacingError
from services.models.backbones import BackboneSpec, spec
from services.models.weights.cache import model_cache_dir
from services.models.weights.manifest import lock, manifest_path, read_manifest, write_manifest
from services.models.weights_h5 import (
    WeightsMismatch, first_mismatch, first_mismatch_by_name, is_full_model, load_by_name, write_weights_file,
)

def install_weights_file(name: str, source: str | os.PathLike | bytes | io.IOBase, *, original_name: str | None = None,
                         confined: bool = True, owner: str | None = None) -> Path:
    """Validate an uploaded (bytes / file object) or pointed-to (path under the data root) file and
    put the backbone's weights into the model cache under Keras's file name.

    Accepted: Keras's no-top weights file (checked layer by layer, cached as is), or a full model
    holding the backbone (a Keras ``.h5`` full model or weights file with the ImageNet top, or a
    ``.keras`` file): the backbone's layers are taken from it by name, checked like any other file
    and cached as a no-top weights file. A file that does not fit raises :class:`WeightsMismatch`
    naming the first mismatching layer; nothing is cached then. A path must lie under the data
    root (``confined=False``: a file the job system wrote into a job folder). The manifest
    records ``owner``, who installed it (see :mod:`services.access`).
    """
    backbone = spec(name)
    cache = model_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(prefix=f".upload-{name}-", suffix=".part", dir=cache)
    temporary = Path(temporary_name)
    target = cache / backbone.file_name
    try:
        with os.fdopen(handle, "wb") as out:
            copied_name = _copy_source(source, out, confined)
        original_name = original_name or copied_name or "the uploaded file"
        model = backbone.build()
        try:
            extracted = _fit_upload(model, temporary, backbone, original_name)
        except UserFacingError:
            raise
        except Exception as error:  # h5py/keras raise many types for foreign files
            raise WeightsMismatch(f"{original_name} could not be read as Keras weights for {backbone.title}.") from error
        with lock:
            if extracted:
                write_weights_file(model, temporary)
            os.replace(temporary, target)
            write_manifest(target, backbone, "upload", original_name=original_name, owner=normalize_owner(owner),
                            **({"extracted_from": extracted} if extracted else {}))
        return target
    finally:
        temporary.unlink(missing_ok=True)


def _installed_upload(name: str) -> Path:
    """The user-installed weights file of backbone ``name`` in the model cache (refused when the
    file there is a download, or there is none)."""
    backbone = spec(name)
    path = model_cache_dir() / backbone.file_name
    if not path.is_file() or read_manifest(path).get("source") != "upload":
        raise UserFacingError(f"there are no user-installed {backbone.title} weights in the model cache.")
    return path


def installed_weights_owner(name: str) -> str | None:
    """Who installed the user-installed weights of ``name`` (None: sign-in was off)."""
    return normalize_owner(read_manifest(_installed_upload(name)).get("owner"))


def delete_installed_weights(name: str, actor: Actor) -> None:
    """Remove the user-installed weights of ``name`` from the model cache when ``actor`` may (who
    installed them or an administrator); official downloads are not removed here."""
    path = _installed_upload(name)
    actor.check_can_delete(installed_weights_owner(name), what=f"the installed {spec(name).title} weights")
    with lock:
        path.unlink(missing_ok=True)
        manifest_path(path).unlink(missing_ok=True)


_HDF5_MAGIC, _ZIP_MAGIC = b"\x89HDF\r\n\x1a\n", b"PK\x03\x04"


def _fit_upload(model, path: Path, backbone: BackboneSpec, shown_name: str) -> str | None:
    """Check ``path`` against ``model``; returns None for a no-top weights file that fits as is,
    or what the weights were taken from (they are then in ``model``)."""
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic.startswith(_ZIP_MAGIC):
        _copy_from_keras_file(model, path, backbone, shown_name)
        return "a .keras model (layers taken by name)"
    if magic != _HDF5_MAGIC:
        raise WeightsMismatch(f"{shown_name} is not an HDF5 weights file nor a .keras model.")
    in_order = first_mismatch(model, path, shown_name)
    if in_order is None and not is_full_model(path):
        return None
    by_name = first_mismatch_by_name(model, path, shown_name)
    if by_name is not None:
        problem = by_name if is_full_model(path) else in_order
        raise WeightsMismatch(f"{shown_name} does not fit {backbone.title}: {problem}.")
    load_by_name(model, path, shown_name)
    return "a full model .h5 (layers taken by name)" if is_full_model(path) else "a weights file (layers taken by name)"


def _copy_from_keras_file(model, path: Path, backbone: BackboneSpec, shown_name: str) -> None:
    """The backbone's layers, by name, from a ``.keras`` model (loaded with ``safe_mode=True``;
    nested models are searched too)."""
    from services.models.saved import ModelRefused, leaf_layers, load_saved_model

    named = path.with_name(path.name + ".keras")  # Keras reads only files named *.keras
    os.link(path, named)
    try:
        loaded = load_saved_model(named, shown_name=shown_name)
    except ModelRefused as error:
        raise WeightsMismatch(str(error)) from None
    finally:
        named.unlink(missing_ok=True)
    source = {layer.name: layer for layer in leaf_layers(loaded)}
    pairs = []
    for layer in model.layers:
        if not layer.weights:
            continue
        found = source.get(layer.name)
        expected = [tuple(v.shape) for v in layer.weights]
        if found is None or [tuple(v.shape) for v in found.weights] != expected:
            what = "is not in it" if found is None else f"has shapes {[tuple(v.shape) for v in found.weights]}"
            raise WeightsMismatch(f"{shown_name} does not fit {backbone.title}: the layer '{layer.name}' "
                                  f"(shapes {expected}) {what}.")
        pairs.append((layer, found))
    for layer, found in pairs:
        layer.set_weights(found.get_weights())


def _copy_source(source, out, confined: bool = True) -> str | None:
    """Copy bytes, a file object (e.g. a Streamlit upload) or a confined path into ``out``."""
    if isinstance(source, (bytes, bytearray)):
        out.write(source)
        return None
    if hasattr(source, "read"):
        out.write(source.getvalue() if hasattr(source, "getvalue") else source.read())
        return getattr(source, "name", None)
    path = confine(source) if confined else Path(source)
    if not path.is_file():
        raise UserFacingError(f"{path.name} is not a file.")
    with open(path, "rb") as handle:
        shutil.copyfileobj(handle, out)
    return path.name
