"""Which number a person is shown first, and what travels with it.

- :func:`split_leakage`: source images with tiles on more than one side of a split, counted by
  the one leakage checker the dataset explorer uses
  (:func:`services.datasets.splits.leakage_report`). Every run records it in its summary
  (``leakage_source_images``) and every table, legend, report and model card shows
  :func:`leakage_badge` for a leaky result.
- :func:`headline`: the held-out test accuracy with its Wilson interval and n, and the sentence
  that validation chose the checkpoint; without a test split it says so instead of headlining
  the validation accuracy.
- :func:`weak_model`: the guard behind the "not reliable for ..." banner of the tissue-map page
  and its reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.metrics.formatting import estimate_text, percent
from services.metrics.intervals import Estimate, confusion_estimates

LEAKAGE_FIELD = "leakage_source_images"
MIN_ACCURACY_LOWER_BOUND = 0.70
MIN_CLASS_RECALL = 0.50
MIN_CLASS_TILES = 20
CHECKPOINT_NOTE = "validation was used to choose the checkpoint; the held-out test split scores the model"
NO_TEST_NOTE = ("no held-out test split: the validation accuracy chose the checkpoint, so it overstates how "
                "well the model does on new tissue; no held-out score exists")


def split_leakage(frame) -> int:
    """Source images with tiles in more than one of train / val / test (0: a clean split)."""
    from services.datasets.splits import leakage_report

    if frame is None or "source_image" not in getattr(frame, "columns", ()) or "split" not in frame.columns:
        return 0
    report = leakage_report(frame[["source_image", "split"]])
    return int((report["kind"] == "source image").sum())


def leakage_of(summary: dict | None) -> int | None:
    """The recorded leakage count of a run's summary (None: not recorded, e.g. an older run)."""
    value = (summary or {}).get(LEAKAGE_FIELD)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def leakage_badge(count: int | None) -> str:
    """The badge of a leaky result ("" for a clean split or an unknown one)."""
    if not count:
        return ""
    return f"⚠ LEAKY SPLIT: {count} source image{'s' if count != 1 else ''} on both sides"


def leakage_text(count: int | None) -> str:
    """What a table's leakage column says."""
    if count is None:
        return "not recorded"
    return leakage_badge(count) or "none (grouped by source image)"


def labelled(name: str, count: int | None) -> str:
    """A run's name with its leakage badge, for chart legends and captions."""
    badge = leakage_badge(count)
    return f"{name} [{badge}]" if badge else name


def _class_names(summary: dict) -> list[str]:
    names = summary.get("classes")
    return [str(n) for n in names] if isinstance(names, list) else []


def held_out(summary: dict | None, part: str = "test") -> dict | None:
    """``{"accuracy": Estimate, "recall": {class: Estimate}}`` of ``part`` from its stored confusion
    matrix, or None when it is missing or malformed (store rows are untrusted)."""
    summary = summary or {}
    names, matrix = _class_names(summary), summary.get(f"{part}_confusion_matrix")
    if not names or not isinstance(matrix, list) or len(matrix) != len(names):
        return None
    try:
        if not all(isinstance(row, list) and len(row) == len(names) for row in matrix):
            return None
        counts = [[int(v) for v in row] for row in matrix]
    except (TypeError, ValueError, OverflowError):  # text, NaN, infinity
        return None
    if any(v < 0 for row in counts for v in row):
        return None
    return confusion_estimates(counts, names)


@dataclass
class Headline:
    label: str
    estimate: Estimate | None
    note: str
    held_out: bool

    def text(self) -> str:
        return f"{self.label}: {estimate_text(self.estimate)}"


def headline(summary: dict | None) -> Headline:
    """The number to show first: held-out test accuracy, or a plain statement that there is none."""
    test = held_out(summary, "test")
    if test is not None and test["accuracy"].n:
        return Headline("held-out test accuracy", test["accuracy"], CHECKPOINT_NOTE, True)
    val = held_out(summary, "val")
    return Headline("validation accuracy (not held out)", val["accuracy"] if val else None, NO_TEST_NOTE, False)


@dataclass
class Guard:
    """The weak-model guard: the classes a map cannot be trusted for, and why."""
    classes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def weak(self) -> bool:
        return bool(self.reasons)

    def banner(self) -> str:
        if not self.reasons:
            return ""
        who = ", ".join(self.classes) if self.classes else "any class"
        return f"Not reliable for {who}: " + "; ".join(self.reasons) + "."


def weak_model(summary: dict | None) -> Guard:
    """Weak when the held-out accuracy's 95 % lower bound is under 70 %, a class's held-out recall
    is under 50 %, or a class has fewer than 20 held-out tiles (or there is no held-out split)."""
    guard = Guard()
    names = _class_names(summary or {})
    test = held_out(summary, "test")
    if test is None or not test["accuracy"].n:
        guard.classes = list(names)
        guard.reasons.append("the model has no held-out test score")
        return guard
    accuracy = test["accuracy"]
    if accuracy.low is not None and accuracy.low < MIN_ACCURACY_LOWER_BOUND:
        guard.reasons.append(f"held-out accuracy {estimate_text(accuracy)} has its lower bound under "
                             f"{percent(MIN_ACCURACY_LOWER_BOUND, 0)}")
    low_recall = [n for n, e in test["recall"].items() if e.n and e.value is not None and e.value < MIN_CLASS_RECALL]
    few = [n for n, e in test["recall"].items() if e.n < MIN_CLASS_TILES]
    if low_recall:
        guard.reasons.append("held-out recall under 50 % for " + ", ".join(
            f"{n} {estimate_text(test['recall'][n])}" for n in low_recall))
    if few:
        guard.reasons.append(f"fewer than {MIN_CLASS_TILES} held-out tiles for " + ", ".join(
            f"{n} (n = {test['recall'][n].n})" for n in few))
    guard.classes = [n for n in names if n in low_recall or n in few]
    if guard.reasons and not guard.classes:
        guard.classes = list(names)
    return guard
