"""Gatys et al. neural style transfer on VGG19, as book ch. 5 describes it.

The optimised variable is the image itself (values in [0, 1], clipped after each step); it is
scaled x255 and passed through ``vgg19.preprocess_input`` before VGG19. One step is a
``tf.function`` (optionally compiled with XLA) holding the GradientTape and an Adam update.
Coarse-to-fine runs the first part of the steps at half resolution, upsamples, and continues
at full resolution; the cheap coarse steps settle the large-scale structure.

:func:`run_style_job` is the background-job function (see :mod:`services.jobs`): it writes the
inputs, a preview every N steps and the result into the job folder, and keeps the last image
when stopped.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from services import runtime
from services.errors import UserFacingError
from services.images import encode_png, resize_longest_side
from services.models import weights as weights_registry
from services.style.losses import CONTENT_LAYERS, STYLE_LAYERS, LossWeights, gram_matrix, weighted_losses

RESOLUTIONS = (256, 512, 1024)
MIN_SIDE = 32
"""Smallest side VGG19 accepts (five 2x2 poolings)."""
JOB_KIND = "style-transfer"


@dataclass(frozen=True)
class StyleSettings:
    """Everything a style-transfer run can be told; the book's values are the defaults."""

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
    weights: str = weights_registry.IMAGENET
    """"imagenet" (through the weights registry) or "random" (explicitly untrained VGG19)."""

    def validate(self) -> "StyleSettings":
        if self.max_side < MIN_SIDE or self.max_side > weights_registry.MAX_SIDE:
            raise UserFacingError(f"resolution must be between {MIN_SIDE} and {weights_registry.MAX_SIDE} pixels.")
        if self.steps < 1 or self.preview_every < 1:
            raise UserFacingError("steps and preview interval must be at least 1.")
        if not 0.0 < self.coarse_fraction < 1.0:
            raise UserFacingError("the coarse share of the steps must be between 0 and 1.")
        if self.learning_rate <= 0 or not 0 <= self.beta_1 < 1 or self.epsilon <= 0:
            raise UserFacingError("Adam needs learning rate > 0, 0 <= beta_1 < 1 and epsilon > 0.")
        weights = (self.loss.style, self.loss.content, self.loss.total_variation, *self.loss.style_layers.values())
        if any(value < 0 for value in weights):
            raise UserFacingError("loss weights cannot be negative.")
        if set(self.loss.style_layers) != set(STYLE_LAYERS):
            raise UserFacingError(f"style layer weights must name exactly {', '.join(STYLE_LAYERS)}.")
        if self.weights not in (weights_registry.IMAGENET, weights_registry.RANDOM):
            raise UserFacingError(f"weights must be 'imagenet' or 'random', not {self.weights!r}.")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "StyleSettings":
        values = dict(values)
        loss = values.pop("loss", None)
        return cls(**values, **({"loss": LossWeights(**loss)} if loss else {}))


def default_max_side() -> int:
    """512 on a GPU, 256 on a CPU (a CPU step at 512 px takes seconds)."""
    return 512 if runtime.quick_summary()[0].kind == "GPU" else 256


def use_xla(requested: bool | None) -> bool:
    """XLA where asked; by default only on GPU (on CPU it brought no gain in bench/bench_style.py)."""
    return requested if requested is not None else runtime.has_gpu()


def is_random(settings: StyleSettings) -> bool:
    return settings.weights == weights_registry.RANDOM


def weights_label(settings: StyleSettings) -> str:
    if is_random(settings):
        return "RANDOM VGG19 weights (not pretrained): not a real style transfer"
    status = weights_registry.weights_status("vgg19")
    return "VGG19 ImageNet weights" + ("" if status.official else " (user-installed file)")


# --- images ----------------------------------------------------------------------------------


def fit_longest_side(pixels: np.ndarray, longest: int) -> np.ndarray:
    """Resize an RGB uint8 image (up or down) so its longest side is ``longest``; no side
    shrinks below what VGG19 needs."""
    return resize_longest_side(pixels, longest, min_side=MIN_SIDE)


def to_uint8(image) -> np.ndarray:
    """A 1xHxWx3 float tensor in [0, 1] as an HxWx3 uint8 array."""
    array = np.asarray(image)[0]
    return np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)


def _to_tensor(pixels: np.ndarray):
    tf = runtime.tensorflow()
    return tf.constant(pixels[None].astype(np.float32) / 255.0)


# --- the feature extractor -------------------------------------------------------------------

_extractors: dict[tuple, Any] = {}
_extractor_lock = threading.Lock()


def feature_extractor(weights: str = weights_registry.IMAGENET):
    """VGG19 (any input size) returning the style layers' then the content layer's outputs.

    ImageNet weights come from the registry (raises WeightsMissing with the fix when absent);
    the model is cached per weights file, so the second run starts at once.
    """
    import keras

    path = weights_registry.resolve_weights("vgg19") if weights == weights_registry.IMAGENET else None
    key = (weights, str(path), path.stat().st_mtime_ns if path else None)
    with _extractor_lock:
        if key not in _extractors:
            vgg = weights_registry.load_backbone("vgg19", input_shape=(None, None, 3), weights=weights)
            vgg.trainable = False
            outputs = [vgg.get_layer(name).output for name in STYLE_LAYERS + CONTENT_LAYERS]
            _extractors[key] = keras.Model(vgg.input, outputs, name=f"vgg19_style_{weights}")
        return _extractors[key]


class StyleObjective:
    """The loss of an image given the style and content targets at one resolution."""

    def __init__(self, extractor, content: np.ndarray, style: np.ndarray, loss: LossWeights):
        self.extractor = extractor
        self.loss = loss
        self.layer_weights = [float(loss.style_layers[name]) for name in STYLE_LAYERS]
        style_grams, _ = self.features(_to_tensor(style))
        _, content_features = self.features(_to_tensor(content))
        self.targets = (style_grams, content_features)

    def features(self, image):
        """(Gram matrices of the style layers, content-layer features) of a [0, 1] image batch."""
        import keras

        outputs = self.extractor(keras.applications.vgg19.preprocess_input(image * 255.0))
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        style_outputs = outputs[: len(STYLE_LAYERS)]
        return [gram_matrix(output) for output in style_outputs], list(outputs[len(STYLE_LAYERS):])

    def __call__(self, image):
        style_grams, content_features = self.features(image)
        return weighted_losses(style_grams, content_features, image, self.targets, self.loss, self.layer_weights)


class Stage:
    """The optimisation at one resolution: the image variable, Adam, and the compiled step."""

    def __init__(self, objective: StyleObjective, initial: np.ndarray | Any, settings: StyleSettings,
                 compiled: bool = True):
        import keras

        tf = runtime.tensorflow()
        self.objective = objective
        initial = _to_tensor(initial) if isinstance(initial, np.ndarray) else initial
        self.image = tf.Variable(initial, dtype=tf.float32)
        self.optimizer = keras.optimizers.Adam(settings.learning_rate, beta_1=settings.beta_1, epsilon=settings.epsilon)
        self.optimizer.build([self.image])
        self.step = tf.function(self._step, jit_compile=use_xla(settings.jit_compile)) if compiled else self._step

    def _step(self):
        tf = runtime.tensorflow()
        with tf.GradientTape() as tape:
            losses = self.objective(self.image)
        gradient = tape.gradient(losses[0], self.image)
        self.optimizer.apply_gradients([(gradient, self.image)])
        self.image.assign(tf.clip_by_value(self.image, 0.0, 1.0))
        return losses


StepCallback = Callable[[int, Any, dict[str, float]], None]
"""Called after each step with (step number from 1, image variable, losses)."""


def stage_plan(settings: StyleSettings) -> list[tuple[int, int]]:
    """[(longest side, steps)] for each resolution the run goes through."""
    if not settings.coarse_to_fine or settings.steps < 2 or settings.max_side // 2 < MIN_SIDE:
        return [(settings.max_side, settings.steps)]
    coarse_steps = max(1, min(settings.steps - 1, round(settings.steps * settings.coarse_fraction)))
    return [(settings.max_side // 2, coarse_steps), (settings.max_side, settings.steps - coarse_steps)]


def stylise(
    content: np.ndarray,
    style: np.ndarray,
    settings: StyleSettings,
    *,
    extractor=None,
    on_step: StepCallback | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    compiled: bool = True,
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Run the optimisation; returns (result uint8 HxWx3, per-step losses).

    ``content`` and ``style`` are RGB uint8 arrays of any size; the result's longest side is
    ``settings.max_side``. Stops early (returning the current image) when ``should_stop()``.
    """
    tf = runtime.tensorflow()
    settings.validate()
    extractor = extractor or feature_extractor(settings.weights)
    history: list[dict[str, float]] = []
    image = None
    step_number = 0
    for side, steps in stage_plan(settings):
        stage_content = fit_longest_side(content, side)
        objective = StyleObjective(extractor, stage_content, fit_longest_side(style, side), settings.loss)
        if image is None:  # start from the content picture, as the tutorial does
            initial = stage_content
        else:  # continue from the coarse result, upsampled
            initial = tf.clip_by_value(tf.image.resize(image, stage_content.shape[:2], method="bicubic"), 0.0, 1.0)
        stage = Stage(objective, initial, settings, compiled)
        for _ in range(steps):
            if should_stop():
                return to_uint8(stage.image), history
            total, style_term, content_term, tv = stage.step()
            step_number += 1
            history.append({"step": step_number, "side": side, "total": float(total), "style": float(style_term),
                            "content": float(content_term), "total_variation": float(tv)})
            if on_step is not None:
                on_step(step_number, stage.image, history[-1])
        image = stage.image
    return to_uint8(image), history


# --- the background job ----------------------------------------------------------------------


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Write a PNG atomically (readers never see a half-written preview)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(encode_png(pixels))
    os.replace(temporary, path)


@dataclass
class StyleJobInputs:
    content: np.ndarray
    style: np.ndarray
    settings: StyleSettings
    mask: np.ndarray | None = None
    """A validated silhouette (0/255, result size or any size: resized with nearest neighbour)."""
    feather: float = 0.0


def run_style_job(context, inputs: StyleJobInputs) -> dict[str, Any]:
    """Job function: a preview after the first step and every N steps, the result, and in
    silhouette mode both maskings."""
    from services.style import masks

    settings = inputs.settings.validate()
    folder: Path = context.dir
    folder.mkdir(parents=True, exist_ok=True)
    save_png(inputs.content, folder / "content.png")
    save_png(inputs.style, folder / "style.png")
    started = time.monotonic()
    context.progress(0.0, "loading VGG19")
    extractor = feature_extractor(settings.weights)
    context.update_result(weights_label=weights_label(settings), random_weights=is_random(settings))
    first_preview: list[float] = []
    history: list[dict[str, float]] = []

    def on_step(step: int, image, losses: dict[str, float]) -> None:
        history.append(losses)
        if step == 1 or step % settings.preview_every == 0 or step == settings.steps:
            save_png(to_uint8(image), folder / "preview.png")
            first_preview[:] = first_preview or [time.monotonic() - started]
            context.update_result(preview="preview.png", preview_step=step,
                                  seconds_to_first_preview=round(first_preview[0], 2))
        context.progress(step / settings.steps, f"step {step}/{settings.steps} · loss {losses['total']:.4g}")
        context.update_result(history=history)

    result, history = stylise(inputs.content, inputs.style, settings, extractor=extractor,
                              on_step=on_step, should_stop=context.should_stop)
    save_png(result, folder / "result.png")
    save_png(result, folder / "preview.png")
    summary: dict[str, Any] = {
        "result": "result.png", "preview": "preview.png", "history": history, "steps_done": len(history),
        "size": list(result.shape[:2]), "seconds": round(time.monotonic() - started, 2),
        "stopped_early": len(history) < settings.steps,
    }
    if inputs.mask is not None:
        mask = masks.validate_mask(inputs.mask, result.shape[:2]).mask
        style_same_size = fit_to(inputs.style, result.shape[:2])
        save_png(masks.apply_mask(result, mask, feather=inputs.feather), folder / "result_masked.png")
        save_png(masks.apply_mask(style_same_size, mask, feather=inputs.feather), folder / "style_masked.png")
        save_png(mask, folder / "mask.png")
        summary.update(result_masked="result_masked.png", style_masked="style_masked.png", mask="mask.png")
    return summary


def fit_to(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize and centre-crop an RGB image to exactly (height, width) (cover, no distortion)."""
    height, width = shape
    scale = max(height / pixels.shape[0], width / pixels.shape[1])
    size = (max(width, round(pixels.shape[1] * scale)), max(height, round(pixels.shape[0] * scale)))
    resized = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return resized[top:top + height, left:left + width]


def start_style_job(manager, inputs: StyleJobInputs, *, title: str, params: dict[str, Any] | None = None) -> str:
    """Check the inputs and the weights now (clear errors on the page), then queue the job."""
    inputs.settings.validate()
    if inputs.settings.weights == weights_registry.IMAGENET:
        weights_registry.resolve_weights("vgg19")  # raises WeightsMissing with the fix
    if inputs.mask is not None:
        from services.style import masks

        masks.validate_mask(inputs.mask, inputs.content.shape[:2])
    job_params = {"settings": inputs.settings.to_dict(), "silhouette": inputs.mask is not None,
                  "random_weights": is_random(inputs.settings), **(params or {})}
    return manager.submit(JOB_KIND, title, lambda context: run_style_job(context, inputs), job_params)

