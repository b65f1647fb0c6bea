"""One row of the comparison: what a finished run measured, whichever strategy produced it.

:class:`RunResult` is the common shape of strategy A/B/D runs (trained by the training service's
worker) and strategy C runs (heads on cached features); :func:`results_frame` turns a list of them
into the comparison table, with the book's published numbers in a clearly labelled column.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from services.metrics.formatting import estimate_text, fold_text
from services.metrics.honesty import labelled, leakage_text
from services.metrics.intervals import Estimate, confusion_estimates

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
    cv_accuracy_interval: dict | None = None
    """Mean, sd and the t interval over the folds (:func:`services.metrics.intervals.fold_interval`)."""
    macro_f1_interval: dict | None = None
    """Test macro F1 with its bootstrap over source images (an :class:`~services.metrics.intervals.Estimate`)."""
    calibration: dict | None = None
    """Temperature scaling fitted on validation, ECE before/after (:mod:`services.metrics.calibration`)."""
    leakage_source_images: int | None = None
    """Source images with tiles on both sides of the run's split (None: not recorded)."""
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


def label(result: RunResult) -> str:
    """The run's name with its leakage badge: what chart legends and captions show."""
    return labelled(result.name, result.leakage_source_images)


def test_estimate(result: RunResult):
    """Held-out test accuracy with its Wilson interval and n (from the test confusion matrix)."""
    if not result.confusion or not result.class_names or len(result.class_names) != len(result.confusion):
        return None
    return confusion_estimates(result.confusion, result.class_names)


def book_reference(result: RunResult) -> tuple[float, str] | None:
    """The book's published number comparable to ``result``, if there is one."""
    if result.strategy == "A" and result.model in BOOK_REFERENCE:
        return BOOK_REFERENCE[result.model]
    is_vgg16_head = result.model == "vgg16_v4" or (result.backbone == "vgg16" and result.strategy.startswith("B"))
    if is_vgg16_head and result.augment:
        return BOOK_REFERENCE["vgg16_v4+aug"]
    return None


HELD_OUT_COLUMN = "held-out test accuracy (95 % CI, n)"
MACRO_F1_COLUMN = "test macro F1 (95 % CI over source images)"
CV_COLUMN = "cross-validation accuracy (mean ± sd, 95 % CI)"
LEAKAGE_COLUMN = "leakage"
TEXT_COLUMNS = (HELD_OUT_COLUMN, MACRO_F1_COLUMN, CV_COLUMN, LEAKAGE_COLUMN)
"""Columns of the table written for people (the numbers with their n and interval)."""
TABLE_COLUMNS = [
    "name", "strategy", "backbone", "weights", "augment", LEAKAGE_COLUMN, HELD_OUT_COLUMN, MACRO_F1_COLUMN,
    CV_COLUMN, "val_accuracy", "test_accuracy", "macro_f1",
    "cv_accuracy_mean", "cv_accuracy_std", BOOK_REFERENCE_COLUMN, "total_parameters", "trainable_parameters", "seconds_per_epoch", "wall_seconds",
    "extraction_seconds", "device", "dataset", "split", "run_id",
]


def results_frame(results: list[RunResult]) -> pd.DataFrame:
    """The comparison table: one row per run; the book's numbers only in their own column."""
    rows = []
    for result in results:
        row = {column: getattr(result, column, None) for column in TABLE_COLUMNS}
        row["name"] = label(result)
        estimates = test_estimate(result)
        row[HELD_OUT_COLUMN] = estimate_text(estimates["accuracy"]) if estimates else "— (no test split)"
        row[MACRO_F1_COLUMN] = estimate_text(Estimate.from_dict(result.macro_f1_interval))
        row[CV_COLUMN] = fold_text(result.cv_accuracy_interval) if result.cv_accuracy_interval else "—"
        row[LEAKAGE_COLUMN] = leakage_text(result.leakage_source_images)
        reference = book_reference(result)
        row[BOOK_REFERENCE_COLUMN] = reference[0] if reference else None
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def recall_frame(results: list[RunResult]) -> pd.DataFrame:
    """Long table (run, class, recall, n, interval) for the per-class recall chart (test split)."""
    rows = []
    for r in results:
        estimates = (test_estimate(r) or {}).get("recall", {})
        for name, value in r.per_class_recall.items():
            estimate = estimates.get(name)
            rows.append({"run": label(r), "class": name, "recall": value, "n": estimate.n if estimate else None,
                         "low": estimate.low if estimate else None, "high": estimate.high if estimate else None,
                         "text": estimate_text(estimate)})
    return pd.DataFrame(rows, columns=["run", "class", "recall", "n", "low", "high", "text"])


def curves_frame(results: list[RunResult]) -> pd.DataFrame:
    """Long table (run, epoch, metric, value) for overlaid learning curves."""
    rows = [{"run": label(r), "epoch": epoch + 1, "metric": metric, "value": value}
            for r in results for metric, values in r.history.items() for epoch, value in enumerate(values)]
    return pd.DataFrame(rows, columns=["run", "epoch", "metric", "value"])
