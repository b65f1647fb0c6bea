"""Strategy C's feature cache: run a frozen backbone once over a split, keep the features on disk.

A cache entry is one ``.npz`` file (``allow_pickle=False``) plus a ``.json`` description under
``<data_root>/features/<backbone>/``. Its name is the digest of a :class:`FeatureKey`:
backbone, a hash of the backbone's actual weights, input size, preprocessing, the dataset version
of that split's rows (paths, labels and a hash of every file's bytes) and the split name. Any
change to one of them gives another key, so stale features are never used; training a different
head on the same key reuses the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from services.config import get_settings
from services.download import file_digest
from services.errors import UserFacingError

FORMAT_VERSION = 1
_file_hashes: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class FeatureKey:
    backbone: str
    weights_hash: str
    input_size: tuple[int, int]
    preprocessing: str
    dataset_version: str
    split: str

    @property
    def digest(self) -> str:
        payload = json.dumps({**asdict(self), "format": FORMAT_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:24]


@dataclass
class FeatureSet:
    features: np.ndarray
    labels: np.ndarray
    paths: list[str]
    key: FeatureKey
    seconds: float
    """Extraction time (0 when the features came from the cache)."""
    reused: bool


def file_hash(path: str) -> str:
    """blake2b of a file's bytes, remembered while its size and mtime are unchanged."""
    stat = os.stat(path)
    memo = (path, stat.st_size, stat.st_mtime_ns)
    if memo not in _file_hashes:
        _file_hashes[memo] = file_digest(path, "blake2b")
    return _file_hashes[memo]


def dataset_version(frame: pd.DataFrame) -> str:
    """Digest of the rows' paths, labels and file contents (order-independent).

    A vanished file raises :class:`UserFacingError` (the split must be re-made)."""
    digest = hashlib.sha256()
    for path, label in sorted(zip(frame["path"].astype(str), frame["label_index"].astype(int))):
        try:
            content = file_hash(path)
        except FileNotFoundError:
            raise UserFacingError(f"{path} is gone since the split was saved; re-index and save the split again.") from None
        digest.update(f"{path}\t{label}\t{content}\n".encode())
    return digest.hexdigest()[:24]


def weights_hash(model) -> str:
    """Digest of a model's weight values: identifies ImageNet, user-installed and random weights."""
    digest = hashlib.sha256()
    for variable in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(variable)).tobytes())
    return digest.hexdigest()[:24]


def cache_dir(backbone: str) -> Path:
    return get_settings().data_root / "features" / backbone


def _paths(key: FeatureKey) -> tuple[Path, Path]:
    folder = cache_dir(key.backbone)
    return folder / f"{key.digest}.npz", folder / f"{key.digest}.json"


def load_cached(key: FeatureKey, frame: pd.DataFrame | None = None) -> FeatureSet | None:
    """The cached features of ``key`` or None; rows must match ``frame``'s paths when given."""
    data_path, _ = _paths(key)
    if not data_path.is_file():
        return None
    try:
        with np.load(data_path, allow_pickle=False) as archive:
            features, labels, paths = archive["features"], archive["labels"], [str(p) for p in archive["paths"]]
    except (OSError, ValueError, KeyError):
        return None  # a damaged file is recomputed, never trusted
    if frame is not None and paths != [str(p) for p in frame["path"]]:
        return None
    return FeatureSet(features, labels, paths, key, 0.0, True)


def save(key: FeatureKey, features: np.ndarray, labels: np.ndarray, paths: list[str], seconds: float) -> Path:
    data_path, meta_path = _paths(key)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = data_path.with_name(f".{data_path.stem}.{os.getpid()}.tmp.npz")
    np.savez(temporary, features=features.astype(np.float32), labels=labels.astype(np.int32),
             paths=np.array(paths, dtype=str))
    os.replace(temporary, data_path)
    meta = {**asdict(key), "digest": key.digest, "shape": list(features.shape), "count": len(paths),
            "extraction_seconds": seconds, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    meta_path.write_text(json.dumps(meta, indent=1))
    return data_path


def list_cached(backbone: str | None = None) -> list[dict]:
    """Descriptions of the cached feature files (newest first)."""
    root = get_settings().data_root / "features"
    found = []
    for meta_path in root.glob(f"{backbone or '*'}/*.json"):
        try:
            found.append(json.loads(meta_path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda m: m.get("created", ""), reverse=True)


Progress = Callable[[int, int], None]


def extract(backbone, preprocess: Callable, frame: pd.DataFrame, *, image_size: tuple[int, int],
            batch_size: int = 32, progress: Progress | None = None,
            should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Run ``backbone`` over ``frame``'s images (0..255 RGB through ``preprocess``), in row order.

    Reports ``progress(done, total)`` after each batch; returns the features (N x ...) or raises
    :class:`StopRequested` when ``should_stop()`` becomes true.
    """
    from services.datasets.pipeline import make_tf_dataset

    dataset = make_tf_dataset(frame, image_size=tuple(image_size), batch_size=batch_size, shuffle=False,
                              augment=False, scale="raw", cache=False)
    dataset = dataset.map(lambda images, labels: preprocess(images)).prefetch(2)
    outputs, done = [], 0
    for images in dataset:
        if should_stop is not None and should_stop():
            raise StopRequested()
        outputs.append(np.asarray(backbone.predict_on_batch(images)))
        done += int(images.shape[0])
        if progress is not None:
            progress(done, len(frame))
    if not outputs:
        raise UserFacingError("the split has no images to extract features from.")
    return np.concatenate(outputs)


class StopRequested(Exception):
    """Extraction stopped on request (partial features are discarded, nothing is cached)."""


def ensure_features(backbone, backbone_name: str, frame: pd.DataFrame, split: str, *,
                    preprocess: Callable, preprocessing: str, image_size: tuple[int, int],
                    batch_size: int = 32, progress: Progress | None = None,
                    should_stop: Callable[[], bool] | None = None,
                    weights_digest: str | None = None) -> FeatureSet:
    """The features of ``frame`` (one split) from the cache, or extracted now and cached."""
    rows = frame.reset_index(drop=True)
    key = FeatureKey(backbone_name, weights_digest or weights_hash(backbone), tuple(int(s) for s in image_size),
                     preprocessing, dataset_version(rows), split)
    cached = load_cached(key, rows)
    if cached is not None:
        if progress is not None:
            progress(len(rows), len(rows))
        return cached
    start = time.perf_counter()
    features = extract(backbone, preprocess, rows, image_size=image_size, batch_size=batch_size,
                       progress=progress, should_stop=should_stop)
    seconds = time.perf_counter() - start
    labels = rows["label_index"].to_numpy(np.int32)
    paths = [str(p) for p in rows["path"]]
    save(key, features, labels, paths, seconds)
    return FeatureSet(features, labels, paths, key, seconds, False)


SPLITS = ("train", "val", "test")


def split_rows(dataset: str, split: str, seed: int = 42) -> tuple[pd.DataFrame, list[str]]:
    """A saved split's labelled rows and the class names, read as the training service reads them."""
    from services.training.config import RunConfig
    from services.training.data import split_frame

    return split_frame(RunConfig(model="transfer_frozen", dataset=dataset, split=split, seed=seed))


def extract_splits(base, backbone: str, frame, *, image_size: int, batch_size: int, progress, should_stop):
    """The :class:`FeatureSet` of each non-empty part of a split frame (cached, or extracted now),
    by split name; ``progress(fraction, message)`` runs from 0 to 1 over all the parts."""
    from services.models import weights as registry

    digest = weights_hash(base)
    preprocessing = f"keras.applications.{registry.spec(backbone).module}.preprocess_input"
    sets, total = {}, max(1, len(frame))
    done_before = 0
    for split in SPLITS:
        rows = frame[frame["split"] == split].reset_index(drop=True)
        if rows.empty:
            continue

        def report(done: int, _count: int, offset=done_before, split=split) -> None:
            progress((offset + done) / total, f"features of {split}: {done}/{len(rows)}")

        try:
            sets[split] = ensure_features(
                base, backbone, rows, split, preprocess=registry.preprocess_function(backbone),
                preprocessing=preprocessing, image_size=(image_size, image_size), batch_size=batch_size,
                progress=report, should_stop=should_stop, weights_digest=digest)
        except StopRequested:
            from services.jobs.context import JobStopped

            raise JobStopped() from None
        done_before += len(rows)
    return sets


def feature_extraction_job(params: dict, context) -> dict:
    """Job body (kind ``feature-extraction``): cache the features of every part of a saved split.

    ``params``: dataset, split, backbone, weights ("imagenet" | "random"), image_size,
    batch_size. Progress per batch; a stop request ends it with nothing half-written."""
    from services.models import weights as registry

    size = int(params.get("image_size", 150))
    frame, _ = split_rows(params["dataset"], params["split"])
    base = registry.load_backbone(params["backbone"], input_shape=(size, size, 3), weights=params.get("weights", "imagenet"))
    sets = extract_splits(base, params["backbone"], frame, image_size=size, batch_size=int(params.get("batch_size", 32)),
                          progress=context.progress, should_stop=context.should_stop)
    return {split: {"digest": s.key.digest, "count": len(s.paths), "seconds": s.seconds, "reused": s.reused}
            for split, s in sets.items()}
