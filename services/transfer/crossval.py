"""Grouped k-fold cross-validation: for small datasets, where one train/test split is noise.

Tiles cut from one source image look alike, so every source image goes to exactly one fold
(:func:`grouped_folds`); otherwise a model is tested on near-copies of its training tiles. Each
fold is held out once; :func:`cross_validate` reports the mean and spread of the held-out
accuracy and macro F1, the mean per-class recall and the confusion matrix summed over folds.
Model-agnostic: the caller passes ``fit_predict(train_x, train_y, test_x) -> probabilities``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from services.errors import UserFacingError
from services.metrics.intervals import fold_interval
from services.transfer.metrics import evaluate


def grouped_folds(groups: Sequence, labels: Sequence[int], folds: int, seed: int = 42) -> np.ndarray:
    """The fold (0..folds-1) of every row; rows of one group share a fold.

    Groups are placed largest first (seeded order among equal sizes) into the fold that holds the
    fewest rows of the group's most common class, then the fewest rows: folds stay similar in
    size and class mix. Fewer groups than folds is refused."""
    groups, labels = np.asarray(groups).astype(str), np.asarray(labels, dtype=int)
    names, inverse = np.unique(groups, return_inverse=True)
    if folds < 2:
        raise UserFacingError("cross-validation needs at least 2 folds.")
    if len(names) < folds:
        raise UserFacingError(f"only {len(names)} source images: {folds}-fold cross-validation grouped by source "
                              "image needs at least one per fold.")
    classes = int(labels.max()) + 1 if len(labels) else 0
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    sizes = np.bincount(inverse, minlength=len(names))
    order = sorted(order, key=lambda g: -sizes[g])
    per_class = np.zeros((folds, classes), dtype=int)
    assigned = np.empty(len(names), dtype=int)
    for group in order:
        members = labels[inverse == group]
        majority = int(np.bincount(members, minlength=classes).argmax())
        totals = per_class.sum(axis=1)
        fold = min(range(folds), key=lambda f: (per_class[f, majority], totals[f], f))
        assigned[group] = fold
        per_class[fold] += np.bincount(members, minlength=classes)
    return assigned[inverse]


@dataclass
class CrossValidation:
    folds: int
    accuracies: list[float]
    macro_f1s: list[float]
    per_class_recall: dict[str, float | None]
    """Mean over the folds in which the class was held out."""
    confusion: list[list[int]]
    """Summed over folds (every tile held out once; rows true class)."""
    fold_sizes: list[int] = field(default_factory=list)

    @property
    def accuracy_mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def accuracy_std(self) -> float:
        """Standard deviation over folds (ddof 1: the folds are a sample)."""
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else 0.0

    @property
    def macro_f1_mean(self) -> float:
        return float(np.mean(self.macro_f1s))

    def summary(self, prefix: str = "cv_") -> dict:
        """Flat summary fields (JSON) for a run's record."""
        return {f"{prefix}folds": self.folds, f"{prefix}accuracy_mean": self.accuracy_mean,
                f"{prefix}accuracy_std": self.accuracy_std, f"{prefix}accuracies": self.accuracies,
                f"{prefix}accuracy_interval": fold_interval(self.accuracies),
                f"{prefix}macro_f1_mean": self.macro_f1_mean, f"{prefix}recall": self.per_class_recall,
                f"{prefix}confusion_matrix": self.confusion, f"{prefix}fold_sizes": self.fold_sizes}

    def to_dict(self) -> dict:
        return {**asdict(self), "accuracy_mean": self.accuracy_mean, "accuracy_std": self.accuracy_std}


FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def cross_validate(features: np.ndarray, labels: np.ndarray, groups: Sequence, class_names: list[str],
                   fit_predict: FitPredict, *, folds: int = 5, seed: int = 42,
                   should_stop: Callable[[], bool] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> CrossValidation:
    """Hold out each fold once, train on the others with ``fit_predict``, score the held-out part."""
    labels = np.asarray(labels, dtype=int)
    assignment = grouped_folds(groups, labels, folds, seed)
    accuracies, f1s, sizes = [], [], []
    recalls: dict[str, list[float]] = {name: [] for name in class_names}
    confusion = np.zeros((len(class_names), len(class_names)), dtype=int)
    for fold in range(folds):
        if should_stop is not None and should_stop():
            from services.jobs.context import JobStopped

            raise JobStopped()
        held = assignment == fold
        probabilities = fit_predict(features[~held], labels[~held], features[held])
        result = evaluate(labels[held], probabilities, class_names)
        accuracies.append(result.accuracy)
        f1s.append(result.macro_f1)
        sizes.append(int(held.sum()))
        for name, value in result.per_class_recall.items():
            if value is not None:
                recalls[name].append(value)
        confusion += np.asarray(result.confusion, dtype=int)
        if progress is not None:
            progress(fold + 1, folds)
    mean_recall = {name: (float(np.mean(values)) if values else None) for name, values in recalls.items()}
    return CrossValidation(folds, accuracies, f1s, mean_recall, confusion.tolist(), sizes)
