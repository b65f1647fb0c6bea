"""The classifiers a tissue map can use, and running them on batches of tiles.

A :class:`ModelChoice` (JSON-able, no TensorFlow) names a finished run of the run store (its
exported or best ``.keras`` model, its classes, its model card) or an ONNX classifier file.
:func:`load_predictor` loads it in the job worker: Keras with ``safe_mode=True``, ONNX with
onnxruntime. Models take RGB tiles scaled to [0, 1] (as every model of the training and
transfer pages does) and output one probability per class.

Resolution: the tile datasets of the dashboard are Kather-like (150 px tiles at 0.495 um/px,
a 74.25 um field of view); a model resized them to its input size, so its field of view stays
74.25 um whatever its input size, and a map reads 74.25 um squares of the image.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from services.config import confine
from services.errors import UserFacingError
from services.run_layout import MODEL_ARTIFACTS

KATHER_MPP = 0.495
KATHER_TILE_PX = 150
KATHER_FIELD_UM = KATHER_MPP * KATHER_TILE_PX
MODEL_PREFERENCE = ("final_model", "best_model", "last_model")
TUMOUR_NAMES = ("TUMOR", "TUMOUR", "TUM")
STROMA_NAMES = ("STROMA", "STR")


class ModelMismatch(UserFacingError):
    """A model whose input or outputs do not fit a tissue map (or its declared classes)."""


@dataclass
class ModelChoice:
    kind: str
    """``run`` (a run of the run store) or ``onnx`` (an ONNX file under the data root)."""
    path: str
    label: str
    classes: list[str]
    synthetic: bool = False
    run_id: str | None = None
    field_um: float = KATHER_FIELD_UM
    """Physical side of one input tile in microns."""
    card: dict = field(default_factory=dict)
    """The model card: training data and split, metrics, per-class recall, dates."""

    def to_params(self) -> dict:
        return asdict(self)

    @classmethod
    def from_params(cls, values: dict) -> "ModelChoice":
        if not isinstance(values, dict) or values.get("kind") not in ("run", "onnx"):
            raise UserFacingError("Choose a model for the map (a finished training run or an ONNX file).")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})


def _date(seconds) -> str | None:
    """The UTC date of a stored time, or None when it is missing or no representable time (store
    rows are untrusted: a remote script can record 1e300 or infinity)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds)) if seconds else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def model_card(run) -> dict:
    """What the report says about a run's model (from its store row; values are untrusted text):
    the held-out test scores and confusion matrix (the headline, the weak-model guard and the
    tumour-stroma correction read them), the split's leakage, the validation scores that chose
    the checkpoint."""
    from services.metrics.honesty import LEAKAGE_FIELD

    summary = run.summary or {}
    return {
        "classes": summary.get("classes"), "test_confusion_matrix": summary.get("test_confusion_matrix"),
        "val_confusion_matrix": summary.get("val_confusion_matrix"), LEAKAGE_FIELD: summary.get(LEAKAGE_FIELD),
        "test_macro_f1": summary.get("test_macro_f1"), "test_macro_f1_interval": summary.get("test_macro_f1_interval"),
        "calibration": summary.get("calibration") if isinstance(summary.get("calibration"), dict) else None,
        "strategy": summary.get("strategy"), "head_pooling": summary.get("head_pooling"),
        "backbone": (run.hyperparameters or {}).get("backbone") if isinstance(run.hyperparameters, dict) else None,
        "name": run.name, "architecture": run.model, "dataset": run.dataset,
        "split": run.split or "grouped by source image", "synthetic": bool(run.synthetic),
        "trained": _date(run.ended or run.started), "train_images": summary.get("train_images"),
        "val_images": summary.get("val_images"), "test_images": summary.get("test_images"),
        "val_accuracy": summary.get("val_accuracy"), "test_accuracy": summary.get("test_accuracy"),
        "val_macro_f1": summary.get("val_macro_f1"), "val_recall": summary.get("val_recall") or {},
        "test_recall": summary.get("test_recall") or {}, "device": run.device, "run_id": run.id,
    }


def _run_model_path(store, run) -> Path | None:
    for kind in MODEL_PREFERENCE:
        path = store.artifact_path(run.id, kind)
        if path is None:
            candidate = store.run_dir(run.id) / MODEL_ARTIFACTS[kind]
            path = candidate if candidate.is_file() else None
        if path is not None:
            try:
                return confine(path, store.runs_dir)
            except UserFacingError:
                continue
    return None


def run_choice(store, run) -> ModelChoice | None:
    """The map model of one finished run, or None when it has no saved model or no class list."""
    classes = (run.summary or {}).get("classes")
    path = _run_model_path(store, run) if run.status == "finished" else None
    if path is None or not isinstance(classes, list) or not classes:
        return None
    card = model_card(run)
    return ModelChoice("run", str(path), run_label(card), [str(c) for c in classes],
                       synthetic=bool(run.synthetic), run_id=run.id, card=card)


HEADS = {"flatten": "Flatten head", "avg": "GAP head"}


def run_label(card: dict) -> str:
    """A name that tells runs apart: strategy, backbone or architecture, head, dataset/split, date,
    held-out accuracy (with n) and a leakage badge."""
    from services.metrics.formatting import percent
    from services.metrics.honesty import headline, leakage_badge, leakage_of

    line = headline(card)
    score = (f"held-out {percent(line.estimate.value)} (n = {line.estimate.n})" if line.held_out
             else "no held-out score")
    parts = [str(card.get("strategy") or "") and f"strategy {card.get('strategy')}",
             str(card.get("backbone") or card.get("architecture") or "model"),
             HEADS.get(card.get("head_pooling"), ""), f"{card.get('dataset')}/{card.get('split')}",
             str(card.get("trained") or "")[:16], score, leakage_badge(leakage_of(card))]
    return f"{card.get('name') or 'run'}: " + " · ".join(p for p in parts if p)


def best_held_out(choices: list[ModelChoice]) -> int:
    """Index of the choice with the best held-out accuracy (its Wilson lower bound, so a lucky
    score on a few tiles does not win); 0 when none has a held-out score."""
    from services.metrics.honesty import headline

    def key(position: int) -> float:
        line = headline(choices[position].card)
        return line.estimate.low if line.held_out and line.estimate.low is not None else -1.0

    return max(range(len(choices)), key=key) if choices else 0


def list_run_models(store=None) -> list[ModelChoice]:
    """Every finished run with a saved model and classes, newest first (read-only use of the store)."""
    from services.training.store import FINISHED, RunStore

    store = store or RunStore()
    return [choice for run in store.list_runs(status=FINISHED) if (choice := run_choice(store, run))]


def onnx_choice(path: str | Path, classes: list[str], *, field_um: float = KATHER_FIELD_UM,
                synthetic: bool = False) -> ModelChoice:
    resolved = confine(path)
    if resolved.suffix.lower() != ".onnx" or not resolved.is_file():
        raise UserFacingError(f"{Path(path).name}: not an .onnx file under the data root.")
    names = [str(c).strip() for c in classes if str(c).strip()]
    if len(names) < 2:
        raise ModelMismatch("Give the ONNX classifier's class names, in output order (at least two).")
    return ModelChoice("onnx", str(resolved), resolved.name, names, synthetic=synthetic, field_um=field_um,
                       card={"name": resolved.name, "architecture": "ONNX classifier", "synthetic": synthetic})


def has_tumour_stroma(classes: list[str]) -> tuple[int, int] | None:
    """(tumour index, stroma index) when the class list has both, matched by name."""
    def find(names):
        upper = [c.upper().split("_")[-1] for c in classes]
        return next((i for i, c in enumerate(upper) if c in names), None)

    tumour, stroma = find(TUMOUR_NAMES), find(STROMA_NAMES)
    return (tumour, stroma) if tumour is not None and stroma is not None else None


# --- running (job worker only) ---------------------------------------------------------------------

def _softmax_if_needed(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float32)
    if values.min() >= 0 and np.allclose(values.sum(axis=1), 1.0, atol=1e-3):
        return values
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class Predictor:
    """Runs one classifier on uint8 RGB tiles (N x H x W x 3) -> probabilities (N x classes)."""

    input_size: tuple[int, int]
    outputs: int
    warmed: tuple[int, ...] = ()
    """Batch sizes already run (their one-off set-up is done)."""

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def warm_up(self, batch_sizes: tuple[int, ...] = (1,)) -> None:
        """Run the model once on blank tiles of each batch size not run yet, so that its one-off
        set-up (tracing a graph, allocating, choosing kernels for a batch shape) can happen on
        another thread while the job does something else, and only once per loaded model."""
        for size in batch_sizes:
            if size not in self.warmed:
                self.predict(np.zeros((size, *self.input_size, 3), np.uint8))
                self.warmed = (*self.warmed, size)


def _check_shape(name: str, height, width, channels, outputs, classes: list[str]) -> tuple[int, int]:
    if channels not in (3, None) or not isinstance(height, int) or not isinstance(width, int):
        raise ModelMismatch(f"{name} takes inputs of shape {height}x{width}x{channels}; a tissue map needs a "
                            "fixed-size RGB input (height x width x 3).")
    if height != width or height < 16:
        raise ModelMismatch(f"{name} takes {height}x{width} inputs; a tissue map needs square tiles of at least "
                            "16 px.")
    if outputs != len(classes):
        raise ModelMismatch(f"{name} has {outputs} outputs but {len(classes)} classes were given "
                            f"({', '.join(classes[:8])}); they must match.")
    return height, width


class KerasPredictor(Predictor):
    def __init__(self, choice: ModelChoice):
        from services.models.saved import load_saved_model

        self.model = load_saved_model(choice.path)
        shape = self.model.input_shape
        if isinstance(shape, list) or len(shape) != 4:
            raise ModelMismatch(f"{Path(choice.path).name} does not take one batch of images.")
        output = self.model.output_shape
        if isinstance(output, list) or len(output) != 2:
            raise ModelMismatch(f"{Path(choice.path).name} has several outputs; export its inference model.")
        self.input_size = _check_shape(Path(choice.path).name, shape[1], shape[2], shape[3], output[-1],
                                       choice.classes)
        self.outputs = int(output[-1])
        self.forward = uint8_forward(self.model, self.input_size)

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        return _softmax_if_needed(np.asarray(self.forward(np.ascontiguousarray(tiles, np.uint8))))


def uint8_forward(model, size: tuple[int, int]):
    """``model`` as one traced graph taking uint8 tiles of any batch size, scaled to [0, 1] inside it.

    Against ``predict_on_batch(tiles.astype(float32) / 255)``, measured in bench/bench_tissuemap.py:
    the scaling runs in TensorFlow's threads instead of two numpy passes on the job's thread (about
    1 ms per 150 px tile on this CPU, 4x the bytes handed over), and the batch dimension is
    ``None``, so the short last batch of a map does not retrace the model (about 5 s for MobileNet
    v2 here). Other Keras backends keep ``predict_on_batch``."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return lambda tiles: model.predict_on_batch(tiles.astype(np.float32) / 255.0)
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, size[0], size[1], 3], tf.uint8)])
    def forward(tiles):
        return model(tf.cast(tiles, tf.float32) * (1.0 / 255.0), training=False)

    return forward


class OnnxPredictor(Predictor):
    def __init__(self, choice: ModelChoice):
        import onnxruntime

        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in onnxruntime.get_available_providers()]
        try:
            self.session = onnxruntime.InferenceSession(choice.path, providers=providers)
        except Exception as error:
            raise ModelMismatch(f"{Path(choice.path).name}: not a loadable ONNX model ({type(error).__name__}).") \
                from error
        model_input = self.session.get_inputs()[0]
        shape = list(model_input.shape)
        if len(shape) != 4:
            raise ModelMismatch(f"{Path(choice.path).name} does not take one batch of images.")
        self.channels_first = shape[1] == 3 and shape[3] != 3
        height, width, channels = (shape[2], shape[3], shape[1]) if self.channels_first else shape[1:4]
        outputs = self.session.get_outputs()[0].shape[-1]
        self.input_name = model_input.name
        self.input_size = _check_shape(Path(choice.path).name, height, width, channels, outputs, choice.classes)
        self.outputs = int(outputs)

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        batch = tiles.astype(np.float32) / 255.0
        if self.channels_first:
            batch = batch.transpose(0, 3, 1, 2)
        return _softmax_if_needed(self.session.run(None, {self.input_name: batch})[0])


_KEPT = None


def _kept_predictors():
    """This process's loaded predictors (least recently used dropped first), for the next map of
    the same model in a reused warm worker (see services/jobs/worker.py); bounded by the
    ``map_models_kept`` setting (0: none kept)."""
    global _KEPT
    from services.config import get_settings
    from services.model_service.cache import ModelCache

    kept = get_settings().map_models_kept
    if _KEPT is None or _KEPT.max_entries != kept:
        _KEPT = ModelCache(max_entries=kept)
    return _KEPT


def load_predictor(choice: ModelChoice) -> Predictor:
    """The predictor of ``choice``: loaded, or kept from an earlier map of the same file (same path,
    size and modification time; the classes are checked against it again)."""
    from services.model_service.cache import file_key

    if not Path(choice.path).is_file():
        raise UserFacingError(f"The model file of {choice.label} is gone (deleted run?). Choose another model.")
    key = (choice.kind, tuple(choice.classes), *file_key(choice.path))
    return _kept_predictors().get(key, lambda: KerasPredictor(choice) if choice.kind == "run"
                                  else OnnxPredictor(choice))
