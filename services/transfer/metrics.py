"""What every run records: accuracy, macro F1, per-class recall, the confusion matrix and the
parameter counts, computed exactly as the training service scores its runs
(:func:`services.training.evaluation.scores`), so strategy C rows compare fairly with A/B/D."""

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


def parameter_counts(model) -> dict[str, int]:
    """``params_total`` and ``params_trainable`` (the book's model summaries)."""
    from services.models.histology import parameter_counts as counts

    values = counts(model)
    return {"params_total": int(values["total"]), "params_trainable": int(values["trainable"])}
