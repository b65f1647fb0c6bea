"""Helpers of the transfer-learning tests: the demo set with a saved split, and generated
"ImageNet" weights files that load through the registry's real loading path."""

from __future__ import annotations

from pathlib import Path

BACKBONE = "mobilenet_v2"
SIZE = 32
"""MobileNetV2's smallest input: tiny and fast, yet the real architecture."""


def demo_split(name: str = "grouped", per_class: int | None = None) -> tuple[str, str]:
    """Generate the demo set under the current data root and save a grouped split of it
    (of only ``per_class`` tiles per class when given, to keep worker runs short)."""
    from services.datasets import index, sources, splits

    frame = index.load_index(sources.dataset_folder("demo"))
    if per_class:
        frame = frame.groupby("label", group_keys=False).head(per_class)
    splits.save_split("demo", name, splits.make_split(frame, method="grouped", seed=1))
    return "demo", name


def install_generated_weights(backbone: str = BACKBONE, size: int = SIZE, seed: int = 0) -> Path:
    """Save a randomly initialised application's weights where Keras's ImageNet file would be
    (the model cache), under Keras's own file name. MobileNetV2 has no official hash, so the
    registry accepts the file as it would the real one."""
    import keras

    from services.models import weights

    keras.utils.set_random_seed(seed)
    spec = weights.spec(backbone)
    return weights.write_weights_file(spec.build((size, size, 3)), weights.model_cache_dir() / spec.file_name)
