"""The models the dashboard can train, by name.

``build_model(name, input_shape=..., num_classes=..., **options)`` returns an uncompiled Keras
model taking [0, 1] float images. Other areas add names by registering a builder in
:data:`BUILDERS` (a small additive edit delegating to their own module).
"""

from __future__ import annotations

from collections.abc import Callable

from services.errors import UserFacingError
from services.models.saved import load_saved_model  # noqa: F401  (re-exported: the one safe loader)


def _histology(name: str) -> Callable:
    def build(input_shape, num_classes, **options):
        from services.models import histology

        return getattr(histology, name)(input_shape=input_shape, num_classes=num_classes, **options)

    build.__name__ = name
    return build


BUILDERS: dict[str, Callable] = {
    name: _histology(name) for name in ("cnn_v1", "cnn_v2", "cnn_v3", "mini_inception", "vgg16_v4")
}

DESCRIPTIONS: dict[str, str] = {
    "cnn_v1": "Book ch. 8 v1: two strided convs, 85,512 parameters.",
    "cnn_v2": "Book ch. 8 v2: wide convs + dense head, 5.4 M parameters (over-fits).",
    "cnn_v3": "Book ch. 8 v3: 12 convs pooled by 3, GlobalMaxPool, 639,240 parameters.",
    "mini_inception": "Book ch. 4: inception modules with auxiliary classifiers (loss 1/0.3/0.3).",
    "vgg16_v4": "Book ch. 8 v4: VGG16 notop, last 4 layers trainable, Dense 1024 head.",
}

MIN_INPUT_SIDE: dict[str, int] = {"cnn_v1": 48, "cnn_v2": 8, "cnn_v3": 81, "mini_inception": 16,
                                  "vgg16_v4": 32}
"""The smallest square input each model accepts (its pooling stack needs that much)."""


REQUIRED_OPTIONS: dict[str, tuple[str, ...]] = {}
"""Options without which a model cannot be built (such models are launched by other pages)."""


def model_names(*, standalone: bool = False) -> list[str]:
    """All model names; with ``standalone=True`` only those that build without options (the
    ones a person can pick in the training form)."""
    return [name for name in BUILDERS if not (standalone and REQUIRED_OPTIONS.get(name))]


def build_model(name: str, *, input_shape=(150, 150, 3), num_classes: int = 8, **options):
    """Build model ``name`` (see :func:`model_names`); unknown names raise UserFacingError."""
    if name not in BUILDERS:
        raise UserFacingError(f"Unknown model {name!r}; choose one of: {', '.join(model_names())}.")
    minimum = MIN_INPUT_SIDE.get(name)
    if minimum and min(input_shape[:2]) < minimum:
        raise UserFacingError(f"{name} needs images of at least {minimum}x{minimum} px "
                              f"(got {input_shape[0]}x{input_shape[1]}).")
    try:
        return BUILDERS[name](tuple(input_shape), int(num_classes), **options)
    except TypeError as error:
        raise UserFacingError(f"Invalid option for {name}: {error}") from error


# --- transfer learning (owner: services.transfer): strategies B and D on any registry backbone ---
def _by_path(path: str) -> Callable:
    """A builder named ``"module:function"``, imported on first use (this module imports nothing
    of the modules it lists, so none of them can form an import cycle with it)."""
    def build(input_shape, num_classes, **options):
        import importlib

        module_name, function_name = path.split(":")
        builder = getattr(importlib.import_module(module_name), function_name)
        return builder(input_shape=input_shape, num_classes=num_classes, **options)

    build.__name__ = path.rsplit(":", 1)[-1]
    return build


BUILDERS.update(transfer_frozen=_by_path("services.transfer.models:build_frozen"),
                transfer_finetune=_by_path("services.transfer.models:build_finetune"))
DESCRIPTIONS.update(
    transfer_frozen="Transfer B: registry backbone (option backbone=, weights=) frozen but its last "
                    "4 layers; Flatten, Dense 1024, Dropout 0.5 (vgg16_v4 generalised).",
    transfer_finetune="Transfer D: a converged transfer_frozen model (option init_model=) with its "
                      "top block unfrozen; train at a low learning rate.",
)
MIN_INPUT_SIDE.update(transfer_frozen=32, transfer_finetune=32)
REQUIRED_OPTIONS.update(transfer_finetune=("init_model",))
