"""Temperature scaling (Guo et al. 2017) and the Wilson score interval, for the demo's numbers.

Small and self-contained on purpose: the coordinator may move both into a shared metrics /
calibration module. Temperature scaling divides a classifier's logits by one number T fitted on
validation data (minimum negative log-likelihood); the predicted class never changes, only how
confident the probabilities are. For a softmax output layer ``softmax(x W + b)``, dividing ``W``
and ``b`` by T gives the calibrated model itself (:func:`scale_output_layer`).
"""

from __future__ import annotations

import math

import numpy as np

T_RANGE = (0.05, 20.0)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def logits_of(probabilities: np.ndarray) -> np.ndarray:
    """Logits (up to a per-row constant) of softmax probabilities."""
    return np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    log_p = _log_softmax(np.asarray(logits, np.float64) / temperature)
    return float(-log_p[np.arange(len(labels)), np.asarray(labels, int)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in :data:`T_RANGE` minimising the validation NLL (golden-section search on log T;
    the NLL is convex in 1/T)."""
    low, high = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(60):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(logits, labels, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(logits, labels, math.exp(b))
    return float(math.exp((low + high) / 2))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE: the mean |accuracy - confidence| over equal-width confidence bins, weighted by count."""
    probabilities = np.asarray(probabilities)
    confidence, predicted = probabilities.max(axis=1), probabilities.argmax(axis=1)
    correct = predicted == np.asarray(labels, int)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(_log_softmax(np.asarray(logits, np.float64) / temperature))


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def scale_output_layer(layer, temperature: float) -> None:
    """Make a softmax Dense layer output ``softmax(logits / temperature)``."""
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel / temperature, bias / temperature])
