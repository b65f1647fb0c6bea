"""Loading saved ``.keras`` models safely, and walking their layers (nested models included).

Every saved model the dashboard opens (training runs, transfer comparisons, uploads) goes through
:func:`load_saved_model`: ``safe_mode=True`` (no Python code from a file is ever run, no
unpickling), the dashboard's own layers registered first, and every refusal turned into one clear
sentence instead of Keras's raw ``TypeError`` / ``ValueError`` text.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from services.errors import UserFacingError

MAX_CONFIG_BYTES = 64 * 1024 * 1024
"""A ``.keras`` file whose config.json is larger than this is refused before parsing."""


class ModelRefused(UserFacingError):
    """A model file that is not loaded (unknown class, code inside, damaged)."""


def _refusal(error: BaseException, shown_name: str) -> str:
    text = str(error)
    unknown = re.search(r"Could not (?:locate|deserialize) (?:class|function) '([A-Za-z0-9_.>]+)'", text)
    if unknown:
        return (f"{shown_name} uses {unknown.group(1)!r}, which this dashboard does not know: only models made "
                "of Keras's built-in layers and the dashboard's own layers are loaded.")
    if "safe_mode" in text or "Lambda" in text:
        return (f"{shown_name} contains Python code (a Lambda layer or a function), which is never run: "
                "refused. Save the model without Lambda layers.")
    if isinstance(error, (zipfile.BadZipFile, EOFError)) or "zip" in text.lower():
        return f"{shown_name} is not a complete .keras file (damaged or truncated)."
    return f"{shown_name} is not a Keras model this version can read."


def _check_archive(path: Path, shown_name: str) -> None:
    """A ``.keras`` file must be a zip holding a config of sane size (checked from the header)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
    except (zipfile.BadZipFile, KeyError, OSError) as error:
        raise ModelRefused(_refusal(zipfile.BadZipFile(str(error)), shown_name)) from None
    if info.file_size > MAX_CONFIG_BYTES:
        raise ModelRefused(f"{shown_name} has a model description of {info.file_size:,} bytes: refused.")


def load_saved_model(path: str | Path, compile: bool = False, *, shown_name: str | None = None):
    """Load a ``.keras`` file with ``safe_mode=True`` (custom layers registered first).

    Raises :class:`ModelRefused` with a clear message for anything Keras refuses or cannot read.
    """
    from services.runtime import tensorflow

    tensorflow()
    import keras

    import services.models.layers  # noqa: F401  (registers the custom layers)

    path = Path(path)
    shown_name = shown_name or path.name
    if not path.is_file():
        raise ModelRefused(f"{shown_name} does not exist (any more).")
    _check_archive(path, shown_name)
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as error:  # Keras raises TypeError/ValueError/KeyError... for foreign files
        raise ModelRefused(_refusal(error, shown_name)) from error


def is_model(layer) -> bool:
    """True for a nested Functional or Sequential model (a layer with layers of its own)."""
    return hasattr(layer, "layers") and hasattr(layer, "inputs")


def leaf_layers(model) -> list:
    """Every layer that is not itself a model, nested models walked depth first, in order."""
    found = []
    for layer in model.layers:
        found.extend(leaf_layers(layer) if is_model(layer) else [layer])
    return found
