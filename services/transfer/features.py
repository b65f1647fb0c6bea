"""Strategy C's feature cache: run a frozen backbone once over a split, keep the features on disk.

A cache entry is one ``.npz`` file (``allow_pickle=False``) plus a ``.json`` description under
``<data_root>/features/<backbone>/``: ``features`` (the whole maps), ``pooled`` (their global
average pooling, 1 x 1 maps), ``labels`` and ``paths``. The whole maps are streamed into the file
batch by batch as the backbone makes them, so a global-average-pooling head never holds them in
memory (5000 MobileNetV2 maps at 150 px are 640 MB; pooled, 26 MB); an entry written before
``pooled`` existed has its maps pooled a chunk of rows at a time when read. Its name is the digest of a :class:`FeatureKey`:
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
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from services.config import get_settings
from services.download import file_digest
from services.errors import UserFacingError
from services.provenance import IMAGENET

FORMAT_VERSION = 1
"""Part of every key. Unchanged by the ``pooled`` member: entries without it are read (and pooled)."""
MAPS, POOLED = "features", "pooled"
POOL_CHUNK_ROWS = 256
"""Rows of whole maps read at a time when pooling an entry that holds no ``pooled`` member."""
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
    return get_settings().features_dir / backbone


def _paths(key: FeatureKey) -> tuple[Path, Path]:
    folder = cache_dir(key.backbone)
    return folder / f"{key.digest}.npz", folder / f"{key.digest}.json"


def pool_maps(maps: np.ndarray) -> np.ndarray:
    """Global average pooling of feature maps (N x H x W x C), kept as N x 1 x 1 x C float32.
    Each row's result depends on that row alone: pooled batch by batch equals pooled at once."""
    return maps.mean(axis=(1, 2), keepdims=True, dtype=np.float32)


def load_cached(key: FeatureKey, frame: pd.DataFrame | None = None, *, pooled: bool = False) -> FeatureSet | None:
    """The cached features of ``key`` (``pooled``: only their global average pooling, read
    without loading the whole maps) or None; rows must match ``frame``'s paths when given."""
    data_path, _ = _paths(key)
    if not data_path.is_file():
        return None
    try:
        with np.load(data_path, allow_pickle=False) as archive:
            labels, paths = archive["labels"], [str(p) for p in archive["paths"]]
            if frame is not None and paths != [str(p) for p in frame["path"]]:
                return None
            if not pooled:
                features = archive[MAPS]
            elif POOLED in archive.files:
                features = archive[POOLED]
            else:  # an entry written before the pooled member existed
                features = _pool_stored_maps(archive.zip, f"{MAPS}.npy")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a damaged file is recomputed, never trusted
    if features.ndim != 4 or len(features) != len(paths) or len(labels) != len(paths) \
            or (pooled and features.shape[1:3] != (1, 1)):
        return None
    return FeatureSet(features, labels, paths, key, 0.0, True)


def _pool_stored_maps(archive: zipfile.ZipFile, member: str) -> np.ndarray:
    """The pooled features of a stored maps array, read :data:`POOL_CHUNK_ROWS` rows at a time
    from the zip member (never the whole maps in memory); ValueError when it is not N x H x W x C
    row-major data of its declared size."""
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"npy format {version}")
        shape, fortran_order, dtype = readers[version](stream)
        if fortran_order or len(shape) != 4 or dtype.hasobject:
            raise ValueError("not row-major feature maps")
        row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        pooled = np.empty((shape[0], 1, 1, shape[3]), np.float32)
        for start in range(0, shape[0], POOL_CHUNK_ROWS):
            rows = min(POOL_CHUNK_ROWS, shape[0] - start)
            data = stream.read(rows * row_bytes)
            if len(data) != rows * row_bytes:
                raise ValueError("truncated feature maps")
            pooled[start:start + rows] = pool_maps(np.frombuffer(data, dtype).reshape(rows, *shape[1:]))
    return pooled


def save(key: FeatureKey, batches: Iterable[np.ndarray], labels: np.ndarray, paths: list[str], *,
         keep_maps: bool = False, started: float | None = None) -> tuple[np.ndarray, float]:
    """Cache ``batches`` (the feature maps of ``paths``' rows, in order) under ``key``, each batch
    written to disk as it comes; returns the whole maps (``keep_maps``) or only their pooling, and
    the seconds since ``started`` (``time.perf_counter()``; now when None) until the last batch.

    Nothing is left behind when ``batches`` raises (a stop request) or does not hold one map per
    row: the entry appears only once it is complete."""
    started = time.perf_counter() if started is None else started
    data_path, meta_path = _paths(key)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = data_path.with_name(f".{data_path.stem}.{os.getpid()}.tmp.npz")
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            with archive.open(f"{MAPS}.npy", "w", force_zip64=True) as member:
                shape, maps, pooled = _stream_maps(member, batches, len(paths), keep_maps)
            seconds = time.perf_counter() - started
            for name, array in ((POOLED, pooled), ("labels", labels.astype(np.int32)),
                                ("paths", np.array(paths, dtype=str))):
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
        os.replace(temporary, data_path)
    finally:
        temporary.unlink(missing_ok=True)
    meta = {**asdict(key), "digest": key.digest, "shape": list(shape), "count": len(paths),
            "extraction_seconds": seconds, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    meta_path.write_text(json.dumps(meta, indent=1))
    return (maps if keep_maps else pooled), seconds


def _stream_maps(member, batches: Iterable[np.ndarray], count: int, keep_maps: bool):
    """Write ``count`` rows of float32 maps from ``batches`` as one .npy into ``member``; returns
    their shape, the whole maps when ``keep_maps`` (else None) and their pooling."""
    shape = maps = pooled = None
    done = 0
    for batch in batches:
        batch = np.ascontiguousarray(batch, dtype="<f4")
        if pooled is None:
            shape = (count, *batch.shape[1:])
            if len(shape) != 4:
                raise ValueError(f"feature maps must be N x H x W x C, not {batch.shape}")
            np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": shape})
            pooled = np.empty((count, 1, 1, shape[3]), np.float32)
            maps = np.empty(shape, np.float32) if keep_maps else None
        if done + len(batch) > count:
            raise ValueError(f"more feature maps than the {count} rows")
        member.write(batch.tobytes())
        pooled[done:done + len(batch)] = pool_maps(batch)
        if maps is not None:
            maps[done:done + len(batch)] = batch
        done += len(batch)
    if pooled is None:
        raise UserFacingError("the split has no images to extract features from.")
    if done != count:
        raise ValueError(f"{done} feature maps for {count} rows")
    return shape, maps, pooled


Progress = Callable[[int, int], None]


def extract_batches(backbone, preprocess: Callable, frame: pd.DataFrame, *, image_size: tuple[int, int],
                    batch_size: int = 32, progress: Progress | None = None,
                    should_stop: Callable[[], bool] | None = None) -> Iterator[np.ndarray]:
    """Run ``backbone`` over ``frame``'s images (0..255 RGB through ``preprocess``), in row order,
    yielding each batch's features.

    Reports ``progress(done, total)`` after each batch; raises :class:`StopRequested` when
    ``should_stop()`` becomes true.
    """
    from services.datasets.pipeline import make_tf_dataset

    dataset = make_tf_dataset(frame, image_size=tuple(image_size), batch_size=batch_size, shuffle=False,
                              augment=False, scale="raw", cache=False)
    dataset = dataset.map(lambda images, labels: preprocess(images)).prefetch(2)
    done = 0
    for images in dataset:
        if should_stop is not None and should_stop():
            raise StopRequested()
        batch = np.asarray(backbone.predict_on_batch(images))
        done += int(images.shape[0])
        if progress is not None:
            progress(done, len(frame))
        yield batch


def extract(backbone, preprocess: Callable, frame: pd.DataFrame, *, image_size: tuple[int, int],
            batch_size: int = 32, progress: Progress | None = None,
            should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """All of :func:`extract_batches` in one array (N x ...)."""
    outputs = list(extract_batches(backbone, preprocess, frame, image_size=image_size, batch_size=batch_size,
                                   progress=progress, should_stop=should_stop))
    if not outputs:
        raise UserFacingError("the split has no images to extract features from.")
    return np.concatenate(outputs)


class StopRequested(Exception):
    """Extraction stopped on request (partial features are discarded, nothing is cached)."""


def ensure_features(backbone, backbone_name: str, frame: pd.DataFrame, split: str, *,
                    preprocess: Callable, preprocessing: str, image_size: tuple[int, int],
                    batch_size: int = 32, progress: Progress | None = None,
                    should_stop: Callable[[], bool] | None = None,
                    weights_digest: str | None = None, pooled: bool = False) -> FeatureSet:
    """The features of ``frame`` (one split) from the cache, or extracted now and cached;
    ``pooled``: only their global average pooling (N x 1 x 1 x C; the whole maps are cached on
    disk all the same, but never held in memory)."""
    rows = frame.reset_index(drop=True)
    key = FeatureKey(backbone_name, weights_digest or weights_hash(backbone), tuple(int(s) for s in image_size),
                     preprocessing, dataset_version(rows), split)
    cached = load_cached(key, rows, pooled=pooled)
    if cached is not None:
        if progress is not None:
            progress(len(rows), len(rows))
        return cached
    start = time.perf_counter()
    batches = extract_batches(backbone, preprocess, rows, image_size=image_size, batch_size=batch_size,
                              progress=progress, should_stop=should_stop)
    labels = rows["label_index"].to_numpy(np.int32)
    paths = [str(p) for p in rows["path"]]
    features, seconds = save(key, batches, labels, paths, keep_maps=not pooled, started=start)
    return FeatureSet(features, labels, paths, key, seconds, False)


SPLITS = ("train", "val", "test")


def split_rows(dataset: str, split: str, seed: int = 42) -> tuple[pd.DataFrame, list[str]]:
    """A saved split's labelled rows and the class names, read as the training service reads them."""
    from services.training.config import RunConfig
    from services.training.data import split_frame

    return split_frame(RunConfig(model="transfer_frozen", dataset=dataset, split=split, seed=seed))


def extract_splits(base, backbone: str, frame, *, image_size: int, batch_size: int, progress, should_stop,
                   pooled: bool = False):
    """The :class:`FeatureSet` of each non-empty part of a split frame (cached, or extracted now),
    by split name (``pooled``: their global average pooling only); ``progress(fraction,
    message)`` runs from 0 to 1 over all the parts."""
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
                progress=report, should_stop=should_stop, weights_digest=digest, pooled=pooled)
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
    base = registry.load_backbone(params["backbone"], input_shape=(size, size, 3), weights=params.get("weights", IMAGENET))
    sets = extract_splits(base, params["backbone"], frame, image_size=size, batch_size=int(params.get("batch_size", 32)),
                          progress=context.progress, should_stop=context.should_stop, pooled=True)  # maps stay on disk
    return {split: {"digest": s.key.digest, "count": len(s.paths), "seconds": s.seconds, "reused": s.reused}
            for split, s in sets.items()}
