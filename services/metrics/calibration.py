"""Calibration of a classifier's probabilities: temperature scaling, ECE, reliability diagram.

Temperature scaling (Guo et al. 2017) divides the logits by one number T fitted on the
**validation** split (minimum negative log-likelihood); T > 1 softens an overconfident model. The
argmax, so accuracy, never changes. Our models output probabilities, so the logits are
``log p`` (equal to the logits up to a per-row constant, which softmax ignores).

The expected calibration error (ECE) is the tile-weighted mean gap between confidence (the max
probability) and accuracy over equal-width confidence bins; it is measured on the held-out test
split (on validation only when there is none, and then said so: T was fitted there).
"""

from __future__ import annotations

import numpy as np

BINS = 10
T_RANGE = (0.05, 20.0)


def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (N x classes) after dividing their logits by ``temperature``."""
    scaled = _log_probabilities(probabilities) / float(temperature)
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64)[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.log(p).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of ``labels`` (1.0 for no data)."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        return 1.0
    result = minimize_scalar(lambda log_t: negative_log_likelihood(apply_temperature(probabilities, np.exp(log_t)),
                                                                   labels),
                             bounds=tuple(np.log(T_RANGE)), method="bounded")
    return float(np.exp(result.x))


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per confidence bin: ``low``, ``high``, ``count``, mean ``confidence`` and ``accuracy``."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels, dtype=int)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                     "confidence": float(confidence[inside].mean()) if count else None,
                     "accuracy": float(correct[inside].mean()) if count else None})
    return rows


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    rows = reliability(probabilities, labels, bins)
    total = sum(r["count"] for r in rows)
    if not total:
        return 0.0
    return float(sum(r["count"] * abs(r["confidence"] - r["accuracy"]) for r in rows if r["count"]) / total)


def calibrate(val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray] | None) -> dict:
    """Fit T on ``val`` (probabilities, labels); ECE and reliability before/after on ``test``
    (on ``val`` when there is no test split: ``measured_on`` says which)."""
    temperature = fit_temperature(*val)
    held_out = test is not None and len(test[1]) > 0
    probabilities, labels = test if held_out else val
    after = apply_temperature(probabilities, temperature)
    return {"temperature": temperature, "fitted_on": "val", "measured_on": "test" if held_out else "val",
            "tiles": int(len(labels)),
            "ece_before": expected_calibration_error(probabilities, labels),
            "ece_after": expected_calibration_error(after, labels),
            "reliability_before": reliability(probabilities, labels),
            "reliability_after": reliability(after, labels)}


def temperature_of(card: dict | None) -> float:
    """The stored temperature of a run (1.0 when none, or when the stored value is unusable)."""
    calibration = (card or {}).get("calibration")
    value = calibration.get("temperature") if isinstance(calibration, dict) else None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and T_RANGE[0] <= value <= T_RANGE[1]
    return float(value) if ok else 1.0


def reliability_svg(calibration: dict, width: int = 280, height: int = 280) -> str:
    """The reliability diagram (accuracy against confidence per bin, before and after) as inline
    SVG with the diagonal of perfect calibration; text is numbers only (nothing to escape)."""
    left, top, side = 36, 12, min(width, height) - 48

    def point(x: float, y: float) -> str:
        return f"{left + side * x:.1f},{top + side * (1 - y):.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<rect x="{left}" y="{top}" width="{side}" height="{side}" fill="none" stroke="#888"/>',
             f'<polyline points="{point(0, 0)} {point(1, 1)}" stroke="#aaa" stroke-dasharray="4"/>',
             f'<text x="{left}" y="{top + side + 16}" font-size="11">confidence 0..1</text>',
             f'<text x="2" y="{top + 10}" font-size="11">acc.</text>']
    for key, colour in (("reliability_before", "#d62728"), ("reliability_after", "#1f77b4")):
        rows = [r for r in calibration.get(key) or [] if isinstance(r, dict) and r.get("count")
                and all(isinstance(r.get(k), (int, float)) and 0 <= r[k] <= 1 for k in ("confidence", "accuracy"))]
        points = " ".join(point(r["confidence"], r["accuracy"]) for r in rows)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
    parts.append(f'<text x="{left + 6}" y="{top + 14}" font-size="11" fill="#d62728">before</text>'
                 f'<text x="{left + 6}" y="{top + 28}" font-size="11" fill="#1f77b4">after</text></svg>')
    return "".join(parts)


def calibration_text(calibration: dict) -> str:
    """One line on a run's temperature scaling: T, and the ECE before/after and where it was measured."""
    from services.metrics.formatting import decimal, percent

    where = ("held-out test split" if calibration.get("measured_on") == "test"
             else "validation split (the one T was fitted on: optimistic)")
    return (f"Temperature scaling fitted on the validation split: T = {decimal(calibration.get('temperature'), 2)}; "
            f"expected calibration error on the {where} (n = {decimal(calibration.get('tiles'))}): "
            f"{percent(calibration.get('ece_before'))} before, {percent(calibration.get('ece_after'))} after. "
            "Tissue maps use the calibrated probabilities.")
