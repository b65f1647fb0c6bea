"""Uncertainty of the numbers we report.

- :func:`wilson`: the Wilson score interval of a proportion k / n (accuracy over tiles, the
  recall of one class). Unlike the normal approximation it stays inside [0, 1] and is sensible
  for small n and for 0 / n or n / n.
- :func:`fold_interval`: the mean ± sd of a score over cross-validation folds with a Student-t
  confidence interval of the mean (k - 1 degrees of freedom). Folds share training data, so
  the interval is somewhat optimistic; it is still far more honest than a bare mean.
- :func:`bootstrap_macro_f1`: macro F1 with a percentile bootstrap that resamples whole source
  images (tiles of one source image are correlated; resampling tiles would understate the
  spread). Seeded: the same inputs give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

Z95 = 1.959963984540054
"""The standard normal quantile of 97.5 %: a two-sided 95 % interval."""
BOOTSTRAP_SAMPLES = 1000


@dataclass(frozen=True)
class Estimate:
    """A number with its 95 % interval and the count it rests on."""
    value: float | None
    low: float | None
    high: float | None
    n: int
    successes: int | None = None
    """For a proportion: the k of k / n."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values) -> "Estimate | None":
        """An estimate from an (untrusted) stored dict, or None when it is not one."""
        if not isinstance(values, dict):
            return None
        def number(key):
            value = values.get(key)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            return float(value) if ok else None
        n = number("n")
        if n is None or n < 0:
            return None
        successes = number("successes")
        return cls(number("value"), number("low"), number("high"), int(n),
                   int(successes) if successes is not None else None)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / n``; (0, 1) when n is 0 (nothing is known)."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} must lie in 0..{n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def proportion(successes: int, n: int) -> Estimate:
    """k / n with its Wilson interval (value None when n is 0)."""
    low, high = wilson(int(successes), int(n))
    return Estimate(successes / n if n else None, low if n else None, high if n else None, int(n), int(successes))


def confusion_estimates(confusion: Sequence[Sequence[int]], class_names: Sequence[str]) -> dict:
    """Accuracy and per-class recall of a confusion matrix (rows true class), each a proportion
    with its Wilson interval and n: ``{"accuracy": Estimate, "recall": {class: Estimate}}``."""
    matrix = np.asarray(confusion, dtype=int).reshape(len(class_names), len(class_names))
    correct = np.diag(matrix)
    recall = {str(name): proportion(int(correct[i]), int(matrix[i].sum())) for i, name in enumerate(class_names)}
    return {"accuracy": proportion(int(correct.sum()), int(matrix.sum())), "recall": recall}


def fold_interval(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean, sample sd (ddof 1) and the t interval of the mean over folds:
    ``{"mean", "sd", "low", "high", "folds"}`` (sd and interval None with fewer than 2 folds)."""
    from scipy import stats

    array = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    k = len(array)
    if k == 0:
        return {"mean": None, "sd": None, "low": None, "high": None, "folds": 0}
    mean = float(array.mean())
    if k < 2:
        return {"mean": mean, "sd": None, "low": None, "high": None, "folds": 1}
    sd = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, k - 1)) * sd / math.sqrt(k)
    return {"mean": mean, "sd": sd, "low": max(0.0, mean - half), "high": min(1.0, mean + half), "folds": k}


def macro_f1(true: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """Mean F1 over the classes present in ``true`` (as :func:`services.training.evaluation.scores`)."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    tp = np.diag(matrix).astype(float)
    actual, guessed = matrix.sum(axis=1), matrix.sum(axis=0)
    present = actual > 0
    if not present.any():
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(actual + guessed > 0, 2 * tp / (actual + guessed), 0.0)
    return float(f1[present].mean())


def bootstrap_macro_f1(true: Sequence[int], predicted: Sequence[int], groups: Sequence, classes: int, *,
                       samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> Estimate:
    """Macro F1 with a 95 % percentile bootstrap over source images (``groups``; one per tile)."""
    true, predicted = np.asarray(true, dtype=int), np.asarray(predicted, dtype=int)
    groups = np.asarray([str(g) for g in groups])
    n = len(true)
    if n == 0:
        return Estimate(None, None, None, 0)
    point = macro_f1(true, predicted, classes)
    names, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(names))]
    if len(names) < 2:
        return Estimate(point, None, None, n)
    rng = np.random.default_rng(seed)
    values = np.empty(samples)
    for b in range(samples):
        chosen = np.concatenate([members[g] for g in rng.integers(0, len(names), len(names))])
        values[b] = macro_f1(true[chosen], predicted[chosen], classes)
    low, high = np.percentile(values, [2.5, 97.5])
    return Estimate(point, float(low), float(high), n)
