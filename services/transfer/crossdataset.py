"""Cross-dataset evaluation: a model trained on one tile set, scored on another with other classes.

Kather 2016 has eight classes, NCT-CRC-HE nine, and they are cut differently. A model's
prediction on a tile of the other set is judged through an explicit :class:`ClassMapping`: for
every class of the evaluated set, the model classes that count as correct. Nothing is merged
silently: every many-to-one entry carries its reason, tiles of a class with no counterpart are
left out of the accuracy and reported (with what the model called them), and predictions of a
model class with no counterpart are errors, reported as such.

Tiles reach the model at its input size with their physical scale kept where possible: both
sets are at about 0.5 um/px (Kather 150 px, NCT 224 px), so a larger tile is centre-cropped and a
smaller one resized (the result says which). Scoring is pure NumPy; the probabilities come from
any ``classify(tiles) -> probabilities`` (the model service's ``keras.classify``, or a model).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from services.errors import UserFacingError


@dataclass(frozen=True)
class ClassMapping:
    name: str
    accepts: dict[str, tuple[str, ...]]
    """Class of the evaluated tiles -> model classes that count as correct (empty: unmappable)."""
    notes: dict[str, str] = field(default_factory=dict)
    """Why an entry is what it is (every many-to-one and every unmappable entry has one)."""

    def unmappable(self) -> list[str]:
        return [name for name, accepted in self.accepts.items() if not accepted]

    def check(self, data_classes: list[str], model_classes: list[str]) -> None:
        """Refuse a mapping that does not fit the two class lists (names it all)."""
        missing = [c for c in data_classes if c not in self.accepts]
        unknown = sorted({m for accepted in self.accepts.values() for m in accepted} - set(model_classes))
        if missing or unknown:
            raise UserFacingError(
                f"the class mapping {self.name!r} does not fit: "
                + (f"no entry for the tiles' classes {', '.join(missing)}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"it names model classes {', '.join(unknown)} the model does not have" if unknown else "") + ".")


NCT_TILES_ON_KATHER_MODEL = ClassMapping(
    "NCT-CRC-HE tiles, Kather 2016 model",
    {"ADI": ("ADIPOSE",), "BACK": ("EMPTY",), "DEB": ("DEBRIS",), "LYM": ("LYMPHO",), "MUC": ("DEBRIS",),
     "MUS": ("STROMA",), "NORM": ("MUCOSA",), "STR": ("STROMA",), "TUM": ("TUMOR",)},
    {"MUC": "Kather 2016's DEBRIS class includes necrosis, haemorrhage and mucus; NCT has mucus apart.",
     "MUS": "Kather 2016's STROMA ('simple stroma') includes smooth muscle; NCT has muscle apart.",
     "COMPLEX": "Kather 2016's COMPLEX (complex stroma) has no NCT counterpart: a prediction of it is an error."})
KATHER_TILES_ON_NCT_MODEL = ClassMapping(
    "Kather 2016 tiles, NCT-CRC-HE model",
    {"TUMOR": ("TUM",), "STROMA": ("STR", "MUS"), "COMPLEX": (), "LYMPHO": ("LYM",), "DEBRIS": ("DEB", "MUC"),
     "MUCOSA": ("NORM",), "ADIPOSE": ("ADI",), "EMPTY": ("BACK",)},
    {"STROMA": "Kather 2016's simple stroma includes smooth muscle: NCT's STR or MUS count as correct.",
     "DEBRIS": "Kather 2016's debris includes mucus: NCT's DEB or MUC count as correct.",
     "COMPLEX": "complex stroma (stroma with single tumour or immune cells) has no NCT class: left out "
                "of the accuracy, reported apart."})
MAPPINGS = {"kather-model-on-nct": NCT_TILES_ON_KATHER_MODEL, "nct-model-on-kather": KATHER_TILES_ON_NCT_MODEL}
SAME_CLASSES = "same-classes"
MAPPING_NAMES = {**{key: mapping.name for key, mapping in MAPPINGS.items()},
                 SAME_CLASSES: "Same class set (identity: e.g. a Kather 2016 model on other Kather 2016 tiles)"}


def identity_mapping(classes: list[str]) -> ClassMapping:
    """Every class counts as itself: a model scored on other tiles of the same class set."""
    return ClassMapping(MAPPING_NAMES[SAME_CLASSES], {str(c): (str(c),) for c in classes})


def mapping_for(key: str, model_classes: list[str]) -> ClassMapping:
    """The mapping chosen on the page (``SAME_CLASSES`` builds the identity of the model's classes)."""
    return identity_mapping(model_classes) if key == SAME_CLASSES else MAPPINGS[key]


def mapping_rows(mapping: ClassMapping) -> list[dict]:
    """The mapping as table rows, before a run: every tile class, then every note on a model class
    that no tile class names (e.g. Kather's COMPLEX, whose predictions count as errors)."""
    rows = [{"class of the tiles": cls, "counts as correct": ", ".join(accepted) or "— (left out)",
             "why": mapping.notes.get(cls, "")} for cls, accepted in mapping.accepts.items()]
    rows += [{"class of the tiles": f"(model class {cls})", "counts as correct": "— (a prediction of it is an error)",
              "why": note} for cls, note in mapping.notes.items() if cls not in mapping.accepts]
    return rows


@dataclass
class MappedEvaluation:
    mapping: str
    tiles: int
    scored: int
    """Tiles whose class has a counterpart (the accuracy's denominator)."""
    accuracy: float | None
    per_class_accuracy: dict[str, float | None]
    """By class of the evaluated tiles (None for unmappable classes)."""
    predictions: dict[str, dict[str, int]]
    """Class of the tiles -> model class predicted -> count (every tile, mapped or not)."""
    unmappable_tiles: dict[str, int]
    """Tiles left out: their class has no counterpart among the model's classes."""
    unmatched_predictions: dict[str, int]
    """Model classes with no counterpart that were predicted (always errors), with counts."""
    notes: dict[str, str]
    fit: str = ""
    """How tiles were brought to the model's input size (centre crop or resize)."""
    correct: dict[str, int] = field(default_factory=dict)
    """By class of the evaluated tiles: tiles predicted as a counterpart (the recall's numerator)."""
    scored_by_class: dict[str, int] = field(default_factory=dict)
    """By class of the evaluated tiles: tiles scored (the recall's denominator)."""

    def to_dict(self) -> dict:
        return asdict(self)

    def estimate(self):
        """Accuracy on the mapped tiles with its Wilson 95 % interval and n."""
        from services.metrics.intervals import proportion

        return proportion(sum(self.correct.values()), self.scored)

    def class_estimates(self) -> dict:
        """Class of the tiles -> its recall with the Wilson 95 % interval and n (mappable classes)."""
        from services.metrics.intervals import proportion

        return {c: proportion(self.correct.get(c, 0), n) for c, n in self.scored_by_class.items() if n}


def score_mapped(true_classes: list[str], predicted_classes: list[str], mapping: ClassMapping,
                 model_classes: list[str], fit: str = "") -> MappedEvaluation:
    """Score predictions (model class names) against the tiles' own classes through ``mapping``."""
    present = set(true_classes)
    data_classes = [c for c in mapping.accepts if c in present] + sorted(present - set(mapping.accepts))
    mapping.check(data_classes, model_classes)
    counterparts = {m for accepted in mapping.accepts.values() for m in accepted}
    predictions: dict[str, Counter] = {c: Counter() for c in data_classes}
    correct: Counter = Counter()
    scored: Counter = Counter()
    for truth, predicted in zip(true_classes, predicted_classes):
        predictions[truth][predicted] += 1
        if mapping.accepts[truth]:
            scored[truth] += 1
            correct[truth] += predicted in mapping.accepts[truth]
    total_scored = sum(scored.values())
    unmatched = Counter(p for t, p in zip(true_classes, predicted_classes)
                        if mapping.accepts[t] and p not in counterparts)
    return MappedEvaluation(
        mapping=mapping.name, tiles=len(true_classes), scored=total_scored,
        accuracy=sum(correct.values()) / total_scored if total_scored else None,
        per_class_accuracy={c: (correct[c] / scored[c] if scored[c] else None) for c in data_classes},
        predictions={c: dict(counts) for c, counts in predictions.items()},
        unmappable_tiles={c: sum(predictions[c].values()) for c in data_classes if not mapping.accepts[c]},
        unmatched_predictions=dict(unmatched), notes=dict(mapping.notes), fit=fit,
        correct={c: int(correct[c]) for c in data_classes if scored[c]},
        scored_by_class={c: int(scored[c]) for c in data_classes if scored[c]})


def fit_tile(pixels: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """An RGB tile at ``size`` (height, width): centre-cropped when larger on both sides (the
    physical scale kept), else resized. Returns the tile and ``"crop"`` / ``"resize"`` / ``""``."""
    from PIL import Image

    height, width = pixels.shape[:2]
    if (height, width) == tuple(size):
        return pixels, ""
    if height >= size[0] and width >= size[1]:
        top, left = (height - size[0]) // 2, (width - size[1]) // 2
        return pixels[top:top + size[0], left:left + size[1]], "crop"
    resized = Image.fromarray(pixels).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized), "resize"


def evaluate_paths(paths: list[str], true_classes: list[str], classify: Callable[[np.ndarray], np.ndarray],
                   model_classes: list[str], input_size: tuple[int, int], mapping: ClassMapping,
                   batch: int = 64, should_stop: Callable[[], bool] | None = None) -> MappedEvaluation:
    """Decode the tiles safely, fit them to the model, classify them in batches, score."""
    from services.images import decode_image

    predicted: list[str] = []
    fits: set[str] = set()
    for start in range(0, len(paths), batch):
        if should_stop is not None and should_stop():
            from services.jobs.context import JobStopped

            raise JobStopped()
        tiles = []
        for path in paths[start:start + batch]:
            tile, how = fit_tile(decode_image(path).pixels, input_size)
            tiles.append(tile)
            fits.add(how)
        probabilities = np.asarray(classify(np.stack(tiles)))
        predicted += [model_classes[i] for i in probabilities.argmax(axis=1)]
    fit = {"crop": "centre-cropped to the model's input (scale kept)", "resize": "resized to the model's input"}
    return score_mapped(true_classes, predicted, mapping, model_classes,
                        fit="; ".join(fit[f] for f in sorted(fits) if f))


def evaluate_dataset(dataset: str, classify: Callable[[np.ndarray], np.ndarray], model_classes: list[str],
                     input_size: tuple[int, int], mapping: ClassMapping) -> MappedEvaluation:
    """Every usable tile of ``dataset`` (from its index), classified and scored through ``mapping``."""
    from services.datasets import index, sources

    rows = index.usable(index.load_index(sources.dataset_folder(dataset)))
    return evaluate_paths(list(rows.path), list(rows.label), classify, model_classes, input_size, mapping)


def class_rows(evaluation: MappedEvaluation) -> list[dict]:
    """One row per class of the evaluated tiles: accuracy, tiles, recall with its interval and n,
    and what the model called them (most often first)."""
    from services.metrics.formatting import estimate_text

    recall = evaluation.class_estimates()
    return [{"class": cls, "accuracy": accuracy, "tiles": sum(evaluation.predictions[cls].values()),
             "accuracy (95 % CI, n)": estimate_text(recall.get(cls)),
             "predicted as": ", ".join(f"{k} {v}" for k, v in sorted(evaluation.predictions[cls].items(),
                                                                      key=lambda kv: -kv[1]))}
            for cls, accuracy in evaluation.per_class_accuracy.items()]
