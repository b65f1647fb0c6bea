"""What a transfer-learning comparison is asked to run: :class:`ExperimentSpec` (the form's
values, JSON-serialisable job parameters) and :func:`plan` (the runs it makes, with the reason
for every one that cannot run). Pure data and checks: nothing here imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from services import provenance
from services.errors import UserFacingError
from services.provenance import IMAGENET, RANDOM
from services.transfer.models import FINE_TUNE_LEARNING_RATE, HEAD_C_LEARNING_RATE, POOLINGS, STRATEGIES

SCRATCH_MODELS = ("cnn_v1", "cnn_v2", "cnn_v3", "mini_inception")
MAX_FOLDS = 20


@dataclass
class ExperimentSpec:
    dataset: str
    split: str
    strategies: list[str]
    backbones: list[str] = field(default_factory=lambda: ["mobilenet_v2"])
    weights: str = IMAGENET
    """"imagenet", or "random" for the labelled untrained-backbone baseline."""
    scratch_models: list[str] = field(default_factory=lambda: ["cnn_v1"])
    image_size: int = 150
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    head_learning_rate: float = HEAD_C_LEARNING_RATE
    fine_tune_epochs: int = 3
    fine_tune_learning_rate: float = FINE_TUNE_LEARNING_RATE
    head_units: int = 512
    head_pooling: str = "flatten"
    """Strategy C's first head layer: ``flatten`` (the book) or ``avg`` (global average pooling)."""
    folds: int = 0
    """Strategy C only: with 2 or more, also a k-fold cross-validation grouped by source image over
    every tile of the split (mean and spread; for small datasets, where one split is noise)."""
    seed: int = 42

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ExperimentSpec":
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


@dataclass
class PlannedRun:
    strategy: str
    backbone: str | None
    model: str
    label: str
    enabled: bool = True
    reason: str = ""


def weights_label(weights: str) -> str:
    return provenance.weights_label(weights if weights == IMAGENET else RANDOM)


def backbone_problem(backbone: str, weights: str, image_size: int) -> str:
    """Why ``backbone`` cannot be used as asked ("" when it can): input size, then weights."""
    from services.models import weights as registry

    try:
        registry.check_input_size(backbone, image_size)
    except UserFacingError as error:
        return str(error)
    if weights == IMAGENET:
        status = registry.weights_status(backbone)
        if not status.usable:
            return f"no ImageNet weights: {status.reason} Fix: {status.fix}"
    return ""


def scratch_problem(model: str, image_size: int) -> str:
    """Why the book's ``model`` cannot be trained from scratch at ``image_size`` ("" when it can)."""
    from services.models.catalog import MIN_INPUT_SIDE

    minimum = MIN_INPUT_SIDE.get(model, 1)
    return f"{model} needs at least {minimum} px; the comparison runs at {image_size} px." \
        if image_size < minimum else ""


def plan(spec: ExperimentSpec) -> list[PlannedRun]:
    """What the experiment will run; items that cannot run are kept, disabled, with the reason."""
    unknown = [s for s in spec.strategies if s not in STRATEGIES]
    if unknown or not spec.strategies:
        raise UserFacingError(f"choose strategies among {', '.join(STRATEGIES)} (got {spec.strategies}).")
    if spec.weights not in (IMAGENET, RANDOM):
        raise UserFacingError("weights must be 'imagenet' or 'random'.")
    if spec.head_pooling not in POOLINGS:
        raise UserFacingError(f"strategy C's head pooling must be one of {', '.join(POOLINGS)}.")
    if spec.folds == 1 or spec.folds < 0 or spec.folds > MAX_FOLDS:
        raise UserFacingError(f"cross-validation needs 2 to {MAX_FOLDS} folds (0: none).")
    planned = []
    for strategy in spec.strategies:
        if strategy == "A":
            for model in spec.scratch_models:
                problem = scratch_problem(model, spec.image_size)
                planned.append(PlannedRun("A", None, model, f"A · {model}", enabled=not problem, reason=problem))
            continue
        if not spec.backbones:
            raise UserFacingError(f"strategy {strategy} needs at least one backbone.")
        for backbone in spec.backbones:
            problem = backbone_problem(backbone, spec.weights, spec.image_size)
            suffix = "" if spec.weights == IMAGENET else f" ({provenance.RANDOM_INIT})"
            model = {"C": "feature_head", "D": "transfer_finetune"}.get(strategy, "transfer_frozen")
            planned.append(PlannedRun(strategy, backbone, model, f"{strategy} · {backbone}{suffix}",
                                      enabled=not problem, reason=problem))
    return planned
