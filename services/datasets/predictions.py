"""Gallery filtering by a model's predictions (as FiftyOne filters a dataset by a model's labels).

A finished training run writes the class it predicted for each validation tile and its confidence
(``val_predictions``). :func:`with_predictions` joins those to a dataset's index by file; only
tiles the run predicted (its validation split) get a prediction, and the caller says so.
:func:`filter_tiles` narrows the tiles by true class, predicted class and confidence range.
"""

from __future__ import annotations

import os
from collections.abc import Collection

import pandas as pd

CONFIDENCE_RANGE = (0.0, 1.0)


def _file_key(path: object) -> str:
    return os.path.normcase(os.path.realpath(str(path)))


def with_predictions(tiles: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``tiles`` (a dataset index: ``path``, ``label``, ...) that ``predictions``
    (``path``, ``predicted``, ``confidence``) cover, with ``predicted`` and ``confidence`` added;
    matched by the file each path resolves to. A file predicted twice keeps its first row."""
    if tiles.empty or predictions.empty:
        return tiles.iloc[0:0].assign(predicted=pd.Series(dtype=str), confidence=pd.Series(dtype=float))
    keyed = pd.DataFrame({"_file": predictions["path"].map(_file_key),
                          "predicted": predictions["predicted"].astype(str),
                          "confidence": pd.to_numeric(predictions["confidence"], errors="coerce")})
    keyed = keyed.dropna(subset=["confidence"]).drop_duplicates("_file")
    joined = tiles.assign(_file=tiles["path"].map(_file_key)).merge(keyed, on="_file", how="inner")
    return joined.drop(columns="_file")


def filter_tiles(tiles: pd.DataFrame, *, labels: Collection[str] | None = None,
                 predicted: Collection[str] | None = None,
                 confidence: tuple[float, float] = CONFIDENCE_RANGE) -> pd.DataFrame:
    """The tiles whose true class is in ``labels`` and, where the tiles carry predictions, whose
    predicted class is in ``predicted`` and confidence lies in ``confidence`` (both ends included).
    ``None`` (or empty) for ``labels`` / ``predicted``: every class."""
    keep = pd.Series(True, index=tiles.index)
    if labels:
        keep &= tiles["label"].isin(list(labels))
    if "predicted" in tiles.columns:
        if predicted:
            keep &= tiles["predicted"].isin(list(predicted))
        low, high = confidence
        keep &= tiles["confidence"].between(low, high)
    return tiles[keep]


def mistakes(tiles: pd.DataFrame) -> pd.DataFrame:
    """The predicted tiles whose predicted class is not their true class."""
    return tiles[tiles["predicted"] != tiles["label"]]


def runs_with_predictions(store, dataset: str) -> list:
    """The finished runs of ``store`` (a training ``RunStore``) trained on ``dataset`` that
    recorded validation predictions, newest first."""
    return [run for run in store.list_runs("finished")
            if run.dataset == dataset and store.artifact_path(run.id, "val_predictions") is not None]
