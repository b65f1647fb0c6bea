"""One row of the comparison: what a finished run measured, whichever strategy produced it.

:class:`RunResult` is the common shape of strategy A/B/D runs (trained by the training service's
worker) and strategy C runs (heads on cached features); :func:`results_frame` turns a list of them
into the comparison table, with the book's published numbers in a clearly labelled column.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

BOOK_REFERENCE_COLUMN = "book reference: published val. acc. (Kather 2016)"
BOOK_REFERENCE = {
    "cnn_v1": (0.827, "cnn_v1, 200 epochs (book ch. 8)"),
    "cnn_v2": (0.74, "cnn_v2, 50 epochs, over-fits (book ch. 8)"),
    "vgg16_v4+aug": (0.91, "vgg16_v4 + augmentation, 50 epochs (book ch. 8)"),
}
"""The book's own validation accuracies on the real Kather 2016 tiles (not measured here)."""


@dataclass
class RunResult:
    name: str
    strategy: str
    """"A", "B", "B+aug", "C" or "D"."""
    model: str
    """Catalog model name (A/B/D) or the head's name (C)."""
    backbone: str | None = None
    weights: str = "n/a"
    """"imagenet", "random init" (a labelled baseline) or "n/a" (from-scratch CNNs)."""
    augment: bool = False
    dataset: str = ""
    split: str = ""
    synthetic: bool = False
    status: str = "finished"
    run_id: str | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    macro_f1: float | None = None
    """On the test split."""
    per_class_recall: dict[str, float | None] = field(default_factory=dict)
    """On the test split."""
    confusion: list[list[int]] = field(default_factory=list)
    """Test split, true classes as rows."""
    class_names: list[str] = field(default_factory=list)
    total_parameters: int | None = None
    trainable_parameters: int | None = None
    seconds_per_epoch: float | None = None
    wall_seconds: float | None = None
    extraction_seconds: float | None = None
    """Strategy C only: time to compute the features (0 when they came from the cache)."""
    features_reused: bool | None = None
    head_pooling: str | None = None
    """Strategy C only: ``flatten`` (the book's head) or ``avg`` (global average pooling)."""
    cv_folds: int | None = None
    """Strategy C with cross-validation: folds grouped by source image, and the held-out accuracy's
    mean and standard deviation over them."""
    cv_accuracy_mean: float | None = None
    cv_accuracy_std: float | None = None
    device: str = ""
    history: dict[str, list[float]] = field(default_factory=dict)
    """Per-epoch logs: loss, accuracy, val_loss, val_accuracy."""
    model_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunResult":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in known})


def book_reference(result: RunResult) -> tuple[float, str] | None:
    """The book's published number comparable to ``result``, if there is one."""
    if result.strategy == "A" and result.model in BOOK_REFERENCE:
        return BOOK_REFERENCE[result.model]
    is_vgg16_head = result.model == "vgg16_v4" or (result.backbone == "vgg16" and result.strategy.startswith("B"))
    if is_vgg16_head and result.augment:
        return BOOK_REFERENCE["vgg16_v4+aug"]
    return None


TABLE_COLUMNS = [
    "name", "strategy", "backbone", "weights", "augment", "val_accuracy", "test_accuracy", "macro_f1",
    "cv_accuracy_mean", "cv_accuracy_std", BOOK_REFERENCE_COLUMN, "total_parameters", "trainable_parameters", "seconds_per_epoch", "wall_seconds",
    "extraction_seconds", "device", "dataset", "split", "run_id",
]


def results_frame(results: list[RunResult]) -> pd.DataFrame:
    """The comparison table: one row per run; the book's numbers only in their own column."""
    rows = []
    for result in results:
        row = {column: getattr(result, column, None) for column in TABLE_COLUMNS}
        reference = book_reference(result)
        row[BOOK_REFERENCE_COLUMN] = reference[0] if reference else None
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def recall_frame(results: list[RunResult]) -> pd.DataFrame:
    """Long table (run, class, recall) for the per-class recall chart."""
    rows = [{"run": r.name, "class": name, "recall": value}
            for r in results for name, value in r.per_class_recall.items()]
    return pd.DataFrame(rows, columns=["run", "class", "recall"])


def curves_frame(results: list[RunResult]) -> pd.DataFrame:
    """Long table (run, epoch, metric, value) for overlaid learning curves."""
    rows = [{"run": r.name, "epoch": epoch + 1, "metric": metric, "value": value}
            for r in results for metric, values in r.history.items() for epoch, value in enumerate(values)]
    return pd.DataFrame(rows, columns=["run", "epoch", "metric", "value"])
