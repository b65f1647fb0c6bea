"""The data of a run: its dataset and split as tf.data pipelines (through ``services.datasets``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from services.errors import UserFacingError
from services.training.config import RunConfig


class DataUnavailable(UserFacingError):
    """The run's dataset or split is missing, empty or has vanished."""


@dataclass
class RunData:
    train: object
    val: object
    test: object | None
    class_names: list[str]
    frame: pd.DataFrame
    """path, label, label_index, split of every usable image of the run."""
    synthetic: bool

    def part(self, split: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == split].reset_index(drop=True)


def is_synthetic(dataset: str) -> bool:
    from services.datasets import sources

    return any(info.name == dataset and info.is_synthetic for info in sources.list_datasets())


def split_frame(config: RunConfig) -> tuple[pd.DataFrame, list[str]]:
    """The labelled rows with their split, and the class names in label order."""
    from services.datasets import index, sources, splits

    try:
        folder = sources.dataset_folder(config.dataset)
        full = index.load_index(folder)
    except (FileNotFoundError, NotADirectoryError) as error:
        raise DataUnavailable(f"Dataset {config.dataset!r} is not available: {error}") from error
    class_names = index.class_names(full)
    if config.split:
        frame = splits.load_split(config.dataset, config.split)
    else:
        frame = splits.make_split(full, method="grouped", seed=config.seed)
    for part in ("train", "val"):
        if not (frame["split"] == part).any():
            raise DataUnavailable(f"The {part} part of {config.dataset!r} "
                                  f"({config.split or 'grouped split'}) is empty.")
    return frame.reset_index(drop=True), class_names


def with_aux_labels(dataset):
    """The label once per output of a model with auxiliary heads (``main``, ``aux1``, ``aux2``)."""
    return dataset.map(lambda x, y: (x, {"main": y, "aux1": y, "aux2": y}))


def load_run_data(config: RunConfig) -> RunData:
    """tf.data pipelines for train (shuffled, optionally augmented), val and test."""
    from services.datasets.pipeline import make_tf_dataset

    frame, class_names = split_frame(config)
    size = (config.image_size, config.image_size)

    def pipeline(part: str, training: bool):
        rows = frame[frame["split"] == part]
        if rows.empty:
            return None
        return make_tf_dataset(rows, image_size=size, batch_size=config.batch_size, shuffle=training,
                               augment=config.augment and training, seed=config.seed, scale="unit",
                               num_classes=len(class_names))

    return RunData(train=pipeline("train", True), val=pipeline("val", False), test=pipeline("test", False),
                   class_names=class_names, frame=frame, synthetic=is_synthetic(config.dataset))
