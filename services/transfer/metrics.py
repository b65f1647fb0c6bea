"""Accuracy, macro F1, per-class recall and the confusion matrix of class probabilities, computed
exactly as the training service scores its runs (:func:`services.training.evaluation.scores`),
so cross-validation folds and cross-dataset evaluations compare fairly with the runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Evaluation:
    accuracy: float
    macro_f1: float
    per_class_recall: dict[str, float | None]
    confusion: list[list[int]]
    class_names: list[str] = field(default_factory=list)
    count: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(true: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> Evaluation:
    """Metrics of class ``probabilities`` (N x classes) against integer labels ``true``."""
    from services.training.evaluation import scores

    true = np.asarray(true, dtype=int)
    result = scores(true, np.asarray(probabilities).argmax(axis=1), list(class_names))
    return Evaluation(accuracy=result["accuracy"], macro_f1=result["macro_f1"],
                      per_class_recall=result["recall"], confusion=result["confusion_matrix"],
                      class_names=list(class_names), count=int(len(true)))
