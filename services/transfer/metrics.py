"""What every run records, computed with numpy: accuracy, macro F1, per-class recall, the
confusion matrix, and the parameter counts of a Keras model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, int), np.asarray(predicted, int)), 1)
    return matrix


def per_class_recall(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class (NaN for a class absent from the true labels)."""
    support = matrix.sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def macro_f1(matrix: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 over the classes present in labels or predictions."""
    true_positive = np.diag(matrix).astype(float)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return float("nan")
    f1 = 2 * true_positive[present] / (support[present] + predicted[present])
    return float(f1.mean())


@dataclass
class Evaluation:
    accuracy: float
    macro_f1: float
    per_class_recall: dict[str, float]
    confusion: list[list[int]]
    class_names: list[str] = field(default_factory=list)
    count: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(true: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> Evaluation:
    """Metrics of class ``probabilities`` (N x classes) against integer labels ``true``."""
    true = np.asarray(true, dtype=int)
    predicted = np.asarray(probabilities).argmax(axis=1)
    matrix = confusion_matrix(true, predicted, len(class_names))
    recall = per_class_recall(matrix)
    return Evaluation(
        accuracy=float((predicted == true).mean()) if len(true) else float("nan"),
        macro_f1=macro_f1(matrix),
        per_class_recall={name: (None if np.isnan(value) else float(value)) for name, value in zip(class_names, recall)},
        confusion=matrix.tolist(),
        class_names=list(class_names),
        count=int(len(true)),
    )


def parameter_counts(model) -> dict[str, int]:
    """Total, trainable and non-trainable parameters (the book's model summaries)."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"params_total": trainable + non_trainable, "params_trainable": trainable,
            "params_non_trainable": non_trainable}
