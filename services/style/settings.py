"""What a style-transfer run can be told, for both engines, and the checks on it (no TensorFlow).

:class:`StyleSettings` is Gatys et al. on VGG19 (the book's values are the defaults);
:class:`FastSettings` is the Magenta arbitrary-style network. Both are validated before a job is
queued (on the page) and again in the job body (parameters are untrusted JSON): values that are
not finite, negative where they must be positive, absurd step counts and sizes whose memory
estimate does not fit are refused with a message instead of producing a black picture.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from services.errors import UserFacingError
from services.provenance import IMAGENET, RANDOM  # VGG19 weights a Gatys run uses
from services.runtime import available_memory_bytes
from services.style.losses import STYLE_LAYERS, LossWeights

MIN_SIDE = 32
"""Smallest side VGG19 accepts (five 2x2 poolings)."""
MAX_SIDE = 2048
MAX_STEPS = 100_000
"""More steps than anyone waits for on any machine (at 0.2 s a step: more than five hours)."""
MAX_ASPECT = 8.0
"""Longest / shortest side of a content or style picture (a 2 x 1,000,000 strip is refused)."""
MAX_FEATHER = 20.0
"""Widest feathered silhouette edge (Gaussian sigma, pixels)."""
MEMORY_SHARE = 0.8
"""Share of the machine's available memory a run may be estimated to need."""

GATYS_BYTES_PER_PIXEL = 4 * 3 * (2 * 64 + 2 * 128 / 4 + 4 * 256 / 16 + 4 * 512 / 64 + 2 * 512 / 256 + 64 / 4)
"""float32 bytes per result pixel: VGG19's activations up to block5_conv2 (channels x share of
the pixels at each block), kept for the gradient, the gradient of each and a working copy (x3)."""
VGG19_BYTES = 80 * 1024**2


class BadSettings(UserFacingError):
    """A setting that cannot be used, named with its allowed range."""


def finite_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float, or :class:`BadSettings` naming ``name`` and the range."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadSettings(f"{name} must be a number, not {str(value)[:40]!r}.") from None
    if not math.isfinite(number):
        raise BadSettings(f"{name} must be a finite number (got {number}).")
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high:
        left = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        right = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        raise BadSettings(f"{name} must be {' and '.join(part for part in (left, right) if part)} (got {number:g}).")
    return number


def _whole(name: str, value: Any, low: int, high: int) -> int:
    number = finite_number(name, value, low=low, high=high)
    if number != int(number):
        raise BadSettings(f"{name} must be a whole number (got {number:g}).")
    return int(number)


def is_random(settings: "StyleSettings") -> bool:
    return settings.weights == RANDOM


def default_max_side() -> int:
    """512 on a GPU, 256 on a CPU (a CPU step at 512 px takes seconds); TensorFlow is not imported."""
    from services import runtime

    return 512 if runtime.quick_summary()[0].kind == "GPU" else 256


def gatys_memory_bytes(height: int, width: int) -> int:
    """Estimated peak memory of one Gatys step on a ``height`` x ``width`` picture."""
    return int(height * width * GATYS_BYTES_PER_PIXEL) + VGG19_BYTES


def check_memory(needed: int, what: str, available: int | None = None) -> None:
    """Refuse a run estimated to need more than :data:`MEMORY_SHARE` of the available memory."""
    available = available_memory_bytes() if available is None else available
    if available is not None and needed > MEMORY_SHARE * available:
        raise BadSettings(
            f"{what} needs about {needed / 1024**3:.1f} GiB of memory, more than this machine can give "
            f"(about {available / 1024**3:.1f} GiB free). Choose a smaller size.")


@dataclass(frozen=True)
class StyleSettings:
    """Everything a Gatys run can be told; the book's values are the defaults."""

    max_side: int = 256
    """Longest side of the result in pixels."""
    steps: int = 200
    preview_every: int = 20
    learning_rate: float = 0.02
    beta_1: float = 0.99
    epsilon: float = 0.1
    loss: LossWeights = field(default_factory=LossWeights)
    coarse_to_fine: bool = False
    coarse_fraction: float = 0.5
    """Share of the steps run at half resolution when ``coarse_to_fine`` is on."""
    jit_compile: bool | None = None
    """XLA for the step: True/False, or None to decide by device (on where it is faster)."""
    weights: str = IMAGENET
    """"imagenet" (through the weights registry) or "random" (explicitly untrained VGG19)."""

    def validate(self) -> "StyleSettings":
        _whole("The longest side", self.max_side, MIN_SIDE, MAX_SIDE)
        _whole("Steps", self.steps, 1, MAX_STEPS)
        _whole("The preview interval", self.preview_every, 1, MAX_STEPS)
        finite_number("The coarse share of the steps", self.coarse_fraction, low=0, high=1, low_open=True, high_open=True)
        finite_number("The Adam learning rate", self.learning_rate, low=0, high=10, low_open=True)
        finite_number("Adam beta_1", self.beta_1, low=0, high=1, high_open=True)
        finite_number("Adam epsilon", self.epsilon, low=0, high=1e3, low_open=True)
        finite_number("The style weight", self.loss.style, low=0)
        finite_number("The content weight", self.loss.content, low=0)
        finite_number("The total-variation weight", self.loss.total_variation, low=0)
        if set(self.loss.style_layers) != set(STYLE_LAYERS):
            raise BadSettings(f"style layer weights must name exactly {', '.join(STYLE_LAYERS)}.")
        for name, value in self.loss.style_layers.items():
            finite_number(f"The weight of {name}", value, low=0)
        if self.weights not in (IMAGENET, RANDOM):
            raise BadSettings(f"weights must be 'imagenet' or 'random', not {str(self.weights)[:40]!r}.")
        if self.jit_compile not in (None, True, False):
            raise BadSettings("XLA must be on, off or automatic.")
        return self

    def check_memory(self, shape: tuple[int, int], available: int | None = None) -> None:
        """Refuse a run whose estimate for a picture of ``shape`` (its size, fitted to the
        longest side) does not fit in memory."""
        scale = self.max_side / max(shape)
        height, width = max(MIN_SIDE, round(shape[0] * scale)), max(MIN_SIDE, round(shape[1] * scale))
        check_memory(gatys_memory_bytes(height, width), f"A {width}x{height} Gatys run", available)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> "StyleSettings":
        """Settings from (untrusted) job parameters; anything malformed is :class:`BadSettings`."""
        try:
            values = dict(values)
            loss = values.pop("loss", None)
            unknown = set(values) - {item.name for item in fields(cls)}
            if unknown:
                raise BadSettings(f"unknown style settings: {', '.join(sorted(map(str, unknown)))[:80]}.")
            return cls(**values, **({"loss": LossWeights(**dict(loss))} if loss else {}))
        except (TypeError, ValueError) as error:
            raise BadSettings("the style settings of this job are malformed.") from error


FAST_SIDES = (256, 384, 512, 768, 1024)
FAST_NATIVE_SIDE = 384
"""The Magenta transfer network works on 384x384 pictures; other sizes are resized to and from it."""


@dataclass(frozen=True)
class FastSettings:
    """Fast arbitrary style transfer (Ghiasi et al. 2017, Magenta's TF Lite models)."""

    max_side: int = FAST_NATIVE_SIDE
    """Longest side of the result (the network itself works at 384x384)."""
    strength: float = 1.0
    """1: the style image's bottleneck; 0: the content picture's own bottleneck and the content
    picture itself (see :func:`services.style.fast.stylise_fast`)."""
    variant: str = "f16"
    """Which transfer network: "f16" (float16, better) or "int8" (quantized, smaller)."""

    def validate(self) -> "FastSettings":
        from services.style.fast_models import TRANSFER_VARIANTS

        _whole("The longest side", self.max_side, MIN_SIDE, MAX_SIDE)
        finite_number("The style strength", self.strength, low=0, high=1)
        if self.variant not in TRANSFER_VARIANTS:
            raise BadSettings(f"the fast engine's network must be one of {', '.join(TRANSFER_VARIANTS)}.")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> "FastSettings":
        try:
            return cls(**dict(values))
        except (TypeError, ValueError) as error:
            raise BadSettings("the fast style settings of this job are malformed.") from error


def feather_of(params: dict[str, Any]) -> float:
    """The feathered silhouette edge of a style job's parameters, checked."""
    return finite_number("The feathered edge", params.get("feather", 0.0) or 0.0, low=0, high=MAX_FEATHER)


def check_picture_shape(shape: tuple[int, ...], what: str) -> None:
    """Refuse pictures too small or too elongated to stylise (e.g. a 2 x 1,000,000 strip)."""
    height, width = int(shape[0]), int(shape[1])
    if min(height, width) < 2:
        raise BadSettings(f"the {what} picture ({width}x{height}) is too small.")
    if max(height, width) / min(height, width) > MAX_ASPECT:
        raise BadSettings(
            f"the {what} picture is {width}x{height} pixels: too elongated to stylise (at most "
            f"{MAX_ASPECT:g}:1). Crop it first.")
