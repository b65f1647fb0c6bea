"""What a training run is asked to do: :class:`RunConfig`, validated before anything launches."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from services.errors import UserFacingError
from services.runtime import available_memory_bytes

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
DISTRIBUTIONS = ("auto", "none", "mirrored", "multi_worker")
KEEP = ("best", "all")
"""What a run keeps when it ends well: its best checkpoint only, or the last one and backups too."""


class InvalidConfig(UserFacingError):
    """A hyper-parameter that cannot work; the message says which and why."""


FLOATS_PER_INPUT_PIXEL = 64
"""Rough memory a training step holds per input pixel and image, in float32 values: the book's
CNNs start with 32 filters at full resolution, kept for the forward pass and their gradients
(about 2 x 32), and the later, smaller layers add less than that again. An estimate to refuse
the impossible early (batch 4096 at 1024 px would need about 1 TB), not a budget."""


def check_batch_memory(batch_size: int, image_size: int, available: int | None = None) -> None:
    """Refuse a batch whose estimated training memory exceeds 80 % of the memory available now."""
    available = available_memory_bytes() if available is None else available
    needed = batch_size * image_size * image_size * FLOATS_PER_INPUT_PIXEL * 4
    if available and needed > 0.8 * available:
        raise InvalidConfig(
            f"A batch of {batch_size} images of {image_size}x{image_size} px needs about {needed / 1e9:,.1f} GB "
            f"to train; {available / 1e9:,.1f} GB are available. Use a smaller batch or image size.")


@dataclass
class RunConfig:
    model: str = "cnn_v1"
    dataset: str = "demo"
    split: str | None = None
    """A saved split of the dataset; None makes a split grouped by source image (seed below)."""
    epochs: int = 5
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    augment: bool = False
    seed: int = 42
    image_size: int = 150
    mixed_precision: bool = False
    distribution: str = "auto"
    name: str | None = None
    keep: str = "best"
    options: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for ``catalog.build_model`` (e.g. ``{"weights": None}``)."""

    def validate(self) -> "RunConfig":
        """Raise :class:`InvalidConfig` naming the first bad value; return self when all is fine."""
        from services.models.catalog import MIN_INPUT_SIDE, model_names

        if self.model not in model_names():
            raise InvalidConfig(f"Unknown model {self.model!r}; choose one of {', '.join(model_names())}.")
        if not self.dataset or not isinstance(self.dataset, str):
            raise InvalidConfig("Choose a dataset.")
        _check_int("epochs", self.epochs, 1, 10_000)
        _check_int("batch size", self.batch_size, 1, 4096)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        _check_int("image size", self.image_size, MIN_INPUT_SIDE.get(self.model, 8), 1024,
                   hint=f" ({self.model} needs at least {MIN_INPUT_SIDE.get(self.model, 8)} px)")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidConfig(f"Unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
                or not 0 < rate <= 10:
            raise InvalidConfig(f"Learning rate must be a number in (0, 10]; got {rate!r}.")
        if self.distribution not in DISTRIBUTIONS:
            raise InvalidConfig(f"Unknown distribution {self.distribution!r}; choose one of "
                                f"{', '.join(DISTRIBUTIONS)}.")
        if self.keep not in KEEP:
            raise InvalidConfig(f"keep must be one of {', '.join(KEEP)}; got {self.keep!r}.")
        if not isinstance(self.options, dict):
            raise InvalidConfig("options must be a dictionary of model options.")
        check_batch_memory(self.batch_size, self.image_size)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def hyperparameters(self) -> dict[str, Any]:
        """What the monitor shows as hyper-parameters."""
        keys = ("epochs", "batch_size", "optimizer", "learning_rate", "augment", "seed", "image_size",
                "mixed_precision")
        return {key: getattr(self, key) for key in keys} | dict(self.options)


def _check_int(label: str, value: Any, low: int, high: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidConfig(f"The {label} must be a whole number from {low} to {high}{hint}; got {value!r}.")
