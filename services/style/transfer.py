"""Gatys et al. neural style transfer on VGG19, as book ch. 5 describes it.

The optimised variable is the image itself (values in [0, 1], clipped after each step); it is
scaled x255 and passed through ``vgg19.preprocess_input`` before VGG19. One step is a
``tf.function`` (optionally compiled with XLA) holding the GradientTape and an Adam update.
Coarse-to-fine runs the first part of the steps at half resolution, upsamples, and continues
at full resolution; the cheap coarse steps settle the large-scale structure.

:func:`style_job` is the body of the ``style-transfer`` job (it runs in a worker process, see
docs/architecture.md): it reads its pictures from the job folder, writes a preview after the
first step and every N steps, keeps the last image when stopped, and a resumed job continues
from its last preview for the remaining steps. TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from services import run_layout, runtime, untrusted_json
from services.errors import UserFacingError
from services.images import resize_longest_side
from services.models import weights as weights_registry
from services.style import job_files
from services.style.losses import CONTENT_LAYERS, STYLE_LAYERS, LossWeights, gram_matrix, weighted_losses
from services.style.settings import IMAGENET, MIN_SIDE, StyleSettings, is_random

HISTORY_POINTS = 1000
"""At most this many loss rows travel in a job's result (the full history stays in its folder)."""


def use_xla(requested: bool | None) -> bool:
    """XLA where asked; by default only on GPU (on CPU it brought no gain in bench/bench_style.py)."""
    return requested if requested is not None else runtime.has_gpu()


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


def feature_extractor(weights: str = IMAGENET):
    """VGG19 (any input size) returning the style layers' then the content layer's outputs.

    ImageNet weights come from the registry (raises WeightsMissing with the fix when absent);
    the model is cached per weights file, so the second run starts at once.
    """
    import keras

    path = weights_registry.resolve_weights("vgg19") if weights == IMAGENET else None
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


class Diverged(UserFacingError):
    """The loss stopped being a finite number (the picture would come out black)."""


def _resume_image(resume: tuple[np.ndarray, int] | None, shape: tuple[int, int]):
    """The resumed picture as a [0, 1] tensor of the stage's size."""
    tf = runtime.tensorflow()
    pixels = _to_tensor(resume[0])
    return tf.clip_by_value(tf.image.resize(pixels, shape, method="bicubic"), 0.0, 1.0)


def stylise(
    content: np.ndarray,
    style: np.ndarray,
    settings: StyleSettings,
    *,
    extractor=None,
    on_step: StepCallback | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    compiled: bool = True,
    resume: tuple[np.ndarray, int] | None = None,
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Run the optimisation; returns (result uint8 HxWx3, per-step losses of this call).

    ``content`` and ``style`` are RGB uint8 arrays of any size; the result's longest side is
    ``settings.max_side``. Stops early (returning the current image) when ``should_stop()``.
    ``resume=(picture, steps done)`` continues a run from its last picture for the remaining
    steps (a fresh Adam; the stage is the one the run had reached). A loss that is not finite
    raises :class:`Diverged` instead of returning a black picture.
    """
    tf = runtime.tensorflow()
    settings.validate()
    extractor = extractor or feature_extractor(settings.weights)
    history: list[dict[str, float]] = []
    image = None
    step_number = resume[1] if resume else 0
    stage_start = 0
    for side, steps in stage_plan(settings):
        stage_end, stage_begin = stage_start + steps, stage_start
        stage_start = stage_end
        if step_number >= stage_end:
            continue  # done before the resume
        stage_content = fit_longest_side(content, side)
        objective = StyleObjective(extractor, stage_content, fit_longest_side(style, side), settings.loss)
        if image is not None:  # continue from the coarse result, upsampled
            initial = tf.clip_by_value(tf.image.resize(image, stage_content.shape[:2], method="bicubic"), 0.0, 1.0)
        elif resume is not None:
            initial = _resume_image(resume, stage_content.shape[:2])
        else:  # start from the content picture, as the tutorial does
            initial = stage_content
        stage = Stage(objective, initial, settings, compiled)
        for _ in range(stage_end - max(step_number, stage_begin)):
            if should_stop():
                return to_uint8(stage.image), history
            total, style_term, content_term, tv = stage.step()
            step_number += 1
            losses = {"step": step_number, "side": side, "total": float(total), "style": float(style_term),
                      "content": float(content_term), "total_variation": float(tv)}
            if not all(math.isfinite(losses[key]) for key in ("total", "style", "content", "total_variation")):
                raise Diverged(f"the loss stopped being a finite number at step {step_number}; lower the "
                               "learning rate or the loss weights and start again.")
            history.append(losses)
            if on_step is not None:
                on_step(step_number, stage.image, losses)
        image = stage.image
    if image is None:  # everything was done before the resume
        return resume[0], history
    return to_uint8(image), history


# --- the job body ----------------------------------------------------------------------------


def thinned(history: list[dict[str, float]], points: int = HISTORY_POINTS) -> list[dict[str, float]]:
    """Every k-th row (and the last) so at most about ``points`` rows remain."""
    if len(history) <= points:
        return list(history)
    every = math.ceil(len(history) / points)
    rows = history[::every]
    return rows if rows[-1] is history[-1] else rows + [history[-1]]


def _save_progress(folder: Path, image: np.ndarray, history: list[dict[str, float]]) -> None:
    """The picture and the losses so far, written together (what a resumed job continues from)."""
    job_files.save_png(image, folder / run_layout.PREVIEW)
    state = folder / run_layout.STYLE_PROGRESS
    temporary = state.with_name(state.name + ".tmp")
    temporary.write_text(json.dumps({"steps_done": len(history) and history[-1]["step"], "history": history}))
    temporary.replace(state)


def _load_progress(folder: Path) -> tuple[np.ndarray, list[dict[str, float]]] | None:
    """(last preview, loss history) of an earlier attempt, or None to start over."""
    try:
        state = untrusted_json.read(folder / run_layout.STYLE_PROGRESS, allow_nan=True)
        history = [dict(row) for row in state["history"]]
        steps_done = int(state["steps_done"])
        if steps_done < 1 or not history or history[-1]["step"] != steps_done:
            return None
        return np.asarray(Image.open(folder / run_layout.PREVIEW).convert("RGB")), history
    except (OSError, ValueError, KeyError, TypeError):
        return None


def style_job(params: dict[str, Any], context) -> dict[str, Any]:
    """Body of the ``style-transfer`` job: ``params`` = {"settings": StyleSettings.to_dict(),
    "silhouette": bool, "feather": px}; content.png, style.png (and mask.png) in the folder."""
    folder: Path = context.dir
    settings, feather, inputs = job_files.job_request(params, folder, StyleSettings)
    settings.check_memory(inputs.content.shape[:2])
    started = time.monotonic()
    earlier = _load_progress(folder) if context.resumed else None
    history: list[dict[str, float]] = earlier[1] if earlier else []
    resume = (earlier[0], history[-1]["step"]) if earlier else None
    context.progress(len(history) / settings.steps, "loading VGG19")
    extractor = feature_extractor(settings.weights)
    context.update_result(weights_label=weights_label(settings), random_weights=is_random(settings),
                          resumed_at_step=resume[1] if resume else None)
    first_preview: list[float] = []

    def on_step(step: int, image, losses: dict[str, float]) -> None:
        history.append(losses)
        if not first_preview or step % settings.preview_every == 0 or step == settings.steps:
            _save_progress(folder, to_uint8(image), history)
            first_preview[:] = first_preview or [time.monotonic() - started]
            context.update_result(preview=run_layout.PREVIEW, preview_step=step, history=thinned(history),
                                  seconds_to_first_preview=round(first_preview[0], 2))
        context.progress(step / settings.steps, f"step {step}/{settings.steps} · loss {losses['total']:.4g}")

    result, _ = stylise(inputs.content, inputs.style, settings, extractor=extractor, on_step=on_step,
                        should_stop=context.should_stop, resume=resume)
    if history:
        _save_progress(folder, result, history)  # a stopped run resumes from exactly here
    summary = job_files.write_result(folder, result, inputs, feather)
    steps_done = history[-1]["step"] if history else 0
    summary.update(history=thinned(history), steps_done=steps_done, preview_step=steps_done,
                   seconds=round(time.monotonic() - started, 2), stopped_early=steps_done < settings.steps)
    context.progress(steps_done / settings.steps, f"{steps_done}/{settings.steps} steps in {summary['seconds']:.0f} s")
    context.flush()
    return summary
