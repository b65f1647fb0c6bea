"""Scores of a trained classifier: accuracy, macro F1, per-class recall, confusion matrix (numpy)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels, predicted, num_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(matrix, (np.asarray(labels, dtype=int), np.asarray(predicted, dtype=int)), 1)
    return matrix


def scores(labels, predicted, class_names: list[str]) -> dict:
    """accuracy, macro_f1 and recall per class (None for a class absent from ``labels``)."""
    matrix = confusion_matrix(labels, predicted, len(class_names))
    true_positive = np.diag(matrix).astype(float)
    actual, guessed = matrix.sum(axis=1), matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(actual > 0, true_positive / actual, np.nan)
        precision = np.where(guessed > 0, true_positive / guessed, 0.0)
        f1 = np.where(precision + np.nan_to_num(recall) > 0,
                      2 * precision * np.nan_to_num(recall) / (precision + np.nan_to_num(recall)), 0.0)
    present = actual > 0
    return {
        "accuracy": float(true_positive.sum() / max(matrix.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "recall": {name: (None if np.isnan(r) else float(r)) for name, r in zip(class_names, recall)},
        "confusion_matrix": matrix.tolist(),
    }
