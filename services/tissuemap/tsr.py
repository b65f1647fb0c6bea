"""The tumour-stroma ratio (TSR) of a map, with an interval that carries the model's own errors.

Definition: the stroma share of the tumour + stroma area, ``stroma / (tumour + stroma)``, over
the mapped cells. It is **defined only when the map has both tumour and stroma cells**; otherwise
it is "not defined" (a map with no tumour has no tumour-stroma ratio, not 100 %).

The map counts what the model *predicted*. With a misclassification matrix ``M`` measured on the
model's held-out test split (``M[i, j]``: the chance that a tile of true class ``i`` is predicted
as ``j``), the expected share of predicted classes is ``q = M^T pi`` for the true class shares
``pi``. We estimate ``pi`` by non-negative least squares with ``sum(pi) = 1`` (adjusted
classify-and-count, Forman 2008) and report ``pi_stroma / (pi_tumour + pi_stroma)``.

Uncertainty (a parametric bootstrap, :data:`SAMPLES` draws, seeded):
- every row of ``M`` is drawn from its Dirichlet posterior (held-out counts + 1/2, Jeffreys), so
  a class with few held-out tiles carries a wide error;
- the predicted counts are drawn multinomially over the mapped cells.
The 2.5 and 97.5 percentiles of the ratio form the 95 % interval. The verdict is "stroma-high"
or "stroma-low" only when the whole interval lies on one side of 50 %, else "uncertain". Without
a held-out confusion matrix the model's errors are unknown: the ratio as mapped is shown, and
the verdict is "uncertain".
"""

from __future__ import annotations

import numpy as np

from services.tissuemap.models import has_tumour_stroma

SAMPLES = 1000
PRIOR = 0.5
CUTOFF = 0.5
HIGH, LOW, UNCERTAIN, NOT_DEFINED = "stroma-high", "stroma-low", "uncertain", "not defined"


def _misclassification(confusion, classes: int) -> np.ndarray | None:
    """Held-out counts (rows true, columns predicted) as an integer matrix, or None when unusable."""
    try:
        matrix = np.asarray(confusion, dtype=float)
    except (TypeError, ValueError):
        return None
    if matrix.shape != (classes, classes) or not np.isfinite(matrix).all() or (matrix < 0).any() or not matrix.sum():
        return None
    return matrix


def true_shares(rates: np.ndarray, predicted_shares: np.ndarray) -> np.ndarray:
    """The class shares ``pi`` (>= 0, summing to 1) whose predictions ``rates^T pi`` best match
    ``predicted_shares`` (least squares)."""
    from scipy.optimize import nnls

    weight = 10.0
    system = np.vstack([rates.T, weight * np.ones(len(rates))])
    target = np.concatenate([predicted_shares, [weight]])
    shares, _ = nnls(system, target)
    total = shares.sum()
    return shares / total if total > 0 else shares


def _ratio(shares: np.ndarray, tumour: int, stroma: int) -> float:
    both = shares[tumour] + shares[stroma]
    return float(shares[stroma] / both) if both > 0 else float("nan")


def verdict(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return UNCERTAIN
    if low > CUTOFF:
        return HIGH
    if high < CUTOFF:
        return LOW
    return UNCERTAIN


def estimate(cell_labels: np.ndarray, classes: list[str], confusion=None, *, samples: int = SAMPLES,
             seed: int = 0) -> dict | None:
    """The tumour-stroma ratio of mapped cells (class index per cell). None when the model has no
    tumour and stroma classes. Keys: ``defined``, ``reason``, ``tumour_class``, ``stroma_class``,
    ``tumour_cells``, ``stroma_cells``, ``as_mapped`` (the share of predicted cells), ``corrected``
    (for the model's held-out errors), ``low``, ``high`` (95 %), ``category`` (verdict), ``method``."""
    pair = has_tumour_stroma(classes)
    if pair is None:
        return None
    tumour, stroma = pair
    counts = np.bincount(np.asarray(cell_labels, dtype=int).ravel(), minlength=len(classes)).astype(float)
    result = {"tumour_class": classes[tumour], "stroma_class": classes[stroma], "tumour_cells": int(counts[tumour]),
              "stroma_cells": int(counts[stroma]), "as_mapped": None, "corrected": None, "low": None, "high": None,
              "defined": False, "category": NOT_DEFINED, "reason": "", "method": ""}
    missing = [name for name, index in ((classes[tumour], tumour), (classes[stroma], stroma)) if not counts[index]]
    if missing:
        result["reason"] = f"the map has no {' and no '.join(missing)} cells"
        return result
    result |= {"defined": True, "as_mapped": float(counts[stroma] / (counts[tumour] + counts[stroma]))}
    matrix = _misclassification(confusion, len(classes))
    if matrix is None:
        result |= {"category": UNCERTAIN, "method": "as mapped",
                   "reason": "the model's held-out errors are unknown (no test confusion matrix), so no interval "
                             "can be given"}
        return result
    rng = np.random.default_rng(seed)
    rates = (matrix + PRIOR) / (matrix + PRIOR).sum(axis=1, keepdims=True)
    total = int(counts.sum())
    corrected = _ratio(true_shares(rates, counts / total), tumour, stroma)
    result["corrected"] = corrected if np.isfinite(corrected) else None
    gammas = rng.standard_gamma(np.broadcast_to(matrix + PRIOR, (samples, *matrix.shape)))
    drawn = gammas / gammas.sum(axis=2, keepdims=True)  # Dirichlet rows of the misclassification matrix
    cells = rng.multinomial(total, counts / total, size=samples) / total
    ratios = np.array([_ratio(true_shares(drawn[b], cells[b]), tumour, stroma) for b in range(samples)])
    finite = ratios[np.isfinite(ratios)]
    if len(finite) < 0.9 * samples:  # the correction often finds no tumour or stroma at all
        result |= {"category": UNCERTAIN, "method": "corrected for held-out errors",
                   "reason": "corrected for the model's errors, the map may hold no tumour or no stroma"}
        return result
    low, high = (float(v) for v in np.percentile(finite, [2.5, 97.5]))
    category = verdict(low, high)
    result |= {"low": low, "high": high, "category": category, "method": "corrected for held-out errors",
               "reason": "" if category != UNCERTAIN else "the 95 % interval includes 50 %"}
    return result


def text(ratio: dict | None) -> str:
    """One line for people: "33.1 % stroma (95 % CI 20.4-47.9, corrected for the model's held-out
    errors; 12 tumour, 6 stroma cells): stroma-low"."""
    from services.metrics.formatting import interval_text, percent

    if ratio is None:
        return "not defined: the model has no tumour and stroma classes"
    if not ratio["defined"]:
        return f"not defined: {ratio['reason']}"
    cells = (f"{ratio['tumour_cells']:,} {ratio['tumour_class']}, {ratio['stroma_cells']:,} "
             f"{ratio['stroma_class']} cells")
    if ratio["corrected"] is None:
        return (f"{percent(ratio['as_mapped'])} stroma as mapped ({cells}): {ratio['category']}: {ratio['reason']}")
    interval = interval_text(ratio["low"], ratio["high"])
    detail = f"{interval}, " if interval else ""
    line = (f"{percent(ratio['corrected'])} stroma ({detail}corrected for the model's held-out errors; as mapped "
            f"{percent(ratio['as_mapped'])}; {cells}): {ratio['category']}")
    return line + (f" ({ratio['reason']})" if ratio["reason"] else "")
