"""Helpers for the tissue-map tests: tiles by class, a tiny Keras classifier, a finished run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from services.training.store import FINISHED, RUNNING, RunStore

INPUT = 32
"""Input side of the tiny test classifiers (tiles are box-downscaled to it, as the map does)."""


def class_tiles(dataset: Path) -> tuple[list[str], dict[int, list[tuple[str, np.ndarray]]]]:
    """(class names, class index -> [(source image, RGB tile)]) of a Kather-style folder."""
    folders = sorted(p for p in Path(dataset).iterdir() if p.is_dir())
    names = [p.name.split("_", 1)[-1] for p in folders]
    tiles = {}
    for index, folder in enumerate(folders):
        tiles[index] = [(path.name.split("_")[1], np.asarray(Image.open(path).convert("RGB")))
                        for path in sorted(folder.iterdir()) if path.suffix.lower() in (".tif", ".tiff", ".png")]
    return names, tiles


def shrink(tiles: list[np.ndarray], size: int = INPUT) -> np.ndarray:
    """Tiles box-downscaled to ``size`` (what the map's tile reader does), uint8 N x size x size x 3."""
    return np.stack([np.asarray(Image.fromarray(t).resize((size, size), Image.Resampling.BOX)) for t in tiles])


def train_tiny(images: np.ndarray, labels: np.ndarray, classes: int, *, epochs: int = 30, seed: int = 0):
    """A small CNN fitted for a few seconds on uint8 tiles (inputs scaled to [0, 1] like the dashboard's)."""
    from services.runtime import tensorflow

    tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((images.shape[1], images.shape[2], 3)),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(classes, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(images.astype("float32") / 255.0, labels, epochs=epochs, batch_size=32, verbose=0)
    return model


def accuracy_on_tiles(model, tiles: list[np.ndarray], labels: np.ndarray) -> float:
    """The model's own accuracy on the tiles, one by one (shrunk as the map shrinks them)."""
    predicted = model.predict(shrink(tiles).astype("float32") / 255.0, verbose=0).argmax(axis=1)
    return float((predicted == np.asarray(labels)).mean())


def finished_run(store: RunStore, model, classes: list[str], *, synthetic: bool, dataset: str = "demo",
                 summary: dict | None = None) -> str:
    """A finished run of the store whose exported model is ``model`` (as the training worker leaves it)."""
    run_id = store.create_run("tiny map model", model="tiny_cnn", dataset=dataset, source="dashboard",
                              status=RUNNING, synthetic=synthetic)
    path = store.run_dir(run_id) / "final.keras"
    model.save(path)
    store.add_artifact(run_id, "final_model", path)
    store.update_summary(run_id, classes=list(classes), val_accuracy=0.9, train_images=100, val_images=20,
                         test_images=20, val_recall={c: 0.9 for c in classes}, **(summary or {}))
    store.set_status(run_id, FINISHED)
    return run_id


def train_run_in_subprocess(data_root: Path, epochs: int = 5) -> None:
    """A finished run with a tiny demo-trained model in ``data_root``'s store, made in another process
    (so the calling test process, or a server under test, never imports TensorFlow)."""
    script = textwrap.dedent(f"""
        import numpy as np
        from services.datasets.demo import ensure_demo_dataset
        from services.training.store import RunStore
        from tests import tissuemap_helpers as helpers
        names, tiles = helpers.class_tiles(ensure_demo_dataset())
        pairs = [(k, t) for k, pool in tiles.items() for _, t in pool]
        model = helpers.train_tiny(helpers.shrink([t for _, t in pairs]), np.array([k for k, _ in pairs]),
                                   len(names), epochs={epochs})
        helpers.finished_run(RunStore(), model, names, synthetic=True)
    """)
    env = {**os.environ, "DASHBOARD_DATA_DIR": str(data_root)}
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
