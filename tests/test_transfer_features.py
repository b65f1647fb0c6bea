"""The feature cache of strategy C: keys, reuse, invalidation, stop, safe storage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from services.models import weights as registry
from services.transfer import features as cache
from tests.transfer_helpers import BACKBONE, SIZE, demo_split, install_generated_weights


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """One data root for the module: the demo set, a saved split, generated weights, the backbone."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DASHBOARD_DATA_DIR", str(tmp_path_factory.mktemp("features-data")))
        dataset, split = demo_split()
        install_generated_weights()
        from services.datasets.splits import load_split

        frame = load_split(dataset, split)
        base = registry.load_backbone(BACKBONE, input_shape=(SIZE, SIZE, 3), weights="imagenet")
        yield frame, base


def rows_of(frame, split):
    return frame[frame.split == split].reset_index(drop=True)


def features_of(base, rows, split, **kwargs):
    return cache.ensure_features(base, BACKBONE, rows, split, preprocess=registry.preprocess_function(BACKBONE),
                                 preprocessing="mobilenet_v2.preprocess_input", image_size=(SIZE, SIZE),
                                 batch_size=16, **kwargs)


def test_features_are_computed_once_then_reused(setup):
    frame, base = setup
    rows = rows_of(frame, "val")
    reported = []
    first = features_of(base, rows, "val", progress=lambda done, total: reported.append((done, total)))
    assert not first.reused and first.seconds > 0
    assert first.features.shape == (len(rows), 1, 1, 1280) and first.features.dtype == np.float32
    assert reported[-1] == (len(rows), len(rows)) and len(reported) == -(-len(rows) // 16)
    assert list(first.labels) == rows.label_index.tolist()
    # the same numbers as the backbone's plain predict on preprocessed 0..255 pixels
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), np.float32)
                       for p in rows.path[:4]])
    direct = base.predict(registry.preprocess_function(BACKBONE)(pixels), verbose=0)
    np.testing.assert_allclose(first.features[:4], direct, rtol=1e-3, atol=1e-3 * np.abs(direct).max())
    second = features_of(base, rows, "val")
    assert second.reused and second.seconds == 0 and second.key == first.key
    np.testing.assert_array_equal(second.features, first.features)
    pooled = features_of(base, rows, "val", pooled=True)  # the same entry, read pooled
    assert pooled.reused and pooled.key == first.key
    np.testing.assert_array_equal(pooled.features, cache.pool_maps(first.features))
    stored = cache.cache_dir(BACKBONE) / f"{first.key.digest}.npz"
    with np.load(stored, allow_pickle=False) as archive:  # plain arrays only: no pickled objects
        assert set(archive.files) == {"features", "pooled", "labels", "paths"}
    assert json.loads((cache.cache_dir(BACKBONE) / f"{first.key.digest}.json").read_text())["digest"] == first.key.digest


def test_key_changes_with_weights_size_preprocessing_and_split(setup):
    frame, base = setup
    key = cache.FeatureKey(BACKBONE, cache.weights_hash(base), (SIZE, SIZE), "p", cache.dataset_version(frame), "val")
    variants = {key.digest}
    for change in ({"preprocessing": "other"}, {"split": "test"}, {"input_size": (48, 48)},
                   {"dataset_version": cache.dataset_version(frame.iloc[1:])}):
        variants.add(cache.FeatureKey(**{**key.__dict__, **change}).digest)
    assert len(variants) == 5
    install_generated_weights(seed=7)  # other weights under the same file name
    other = registry.load_backbone(BACKBONE, input_shape=(SIZE, SIZE, 3), weights="imagenet")
    assert cache.weights_hash(other) != key.weights_hash
    assert cache.weights_hash(base) == key.weights_hash
    relabelled = frame.assign(label_index=(frame.label_index + 1) % 8)
    assert cache.dataset_version(relabelled) != key.dataset_version


def test_stop_request_caches_nothing(setup):
    frame, base = setup
    stops = iter([False, True])  # after the first batch was written
    with pytest.raises(cache.StopRequested):
        features_of(base, rows_of(frame, "train"), "train", should_stop=lambda: next(stops, True))
    assert [p for p in cache.cache_dir(BACKBONE).glob("*.json") if json.loads(p.read_text())["split"] == "train"] == []
    assert list(cache.cache_dir(BACKBONE).glob(".*")) == []  # no half-written file


def test_extraction_job_caches_every_part_of_the_split_once(setup, tmp_path):
    from services.jobs.context import run_inline

    params = {"dataset": "demo", "split": "grouped", "backbone": BACKBONE, "weights": "imagenet",
              "image_size": SIZE, "batch_size": 32}
    first = run_inline("feature-extraction", params, tmp_path / "first")
    assert first.status == "finished", first.error
    assert set(first.result) == {"train", "val", "test"}
    assert sum(part["count"] for part in first.result.values()) == len(setup[0])
    assert first.reports and first.reports[-1][1].startswith("features of test")
    again = run_inline("feature-extraction", params, tmp_path / "again")
    assert all(part["reused"] and part["seconds"] == 0 for part in again.result.values())
    assert {k: v["digest"] for k, v in again.result.items()} == {k: v["digest"] for k, v in first.result.items()}


def test_a_changed_dataset_never_reuses_stale_features(setup):
    frame, base = setup
    rows = rows_of(frame, "test")
    before = features_of(base, rows, "test")
    Image.fromarray(np.full((150, 150, 3), (255, 0, 255), np.uint8)).save(rows.path[0])
    after = features_of(base, rows, "test")
    assert not after.reused and after.key.dataset_version != before.key.dataset_version
    scale = np.abs(before.features).max()
    assert np.abs(after.features[0] - before.features[0]).max() > 1e-3 * scale  # recomputed, not stale
    np.testing.assert_allclose(after.features[1:], before.features[1:], atol=1e-4 * scale)
    assert cache.load_cached(before.key, rows) is not None  # the old entry still exists, but its
    assert before.key.digest != after.key.digest             # key no longer matches the data


# --- the pooled path, on generated maps (no backbone) ---------------------------------------------

ROWS, MAP_SHAPE = 4000, (5, 5, 64)
MAPS_BYTES = ROWS * int(np.prod(MAP_SHAPE)) * 4  # 25.6 MB


def generated_key(split="train"):
    return cache.FeatureKey("generated", "w", (150, 150), "p", "v", split)


def generated_batches(rows=ROWS, batch=32):
    for start in range(0, rows, batch):
        count = min(batch, rows - start)
        yield np.random.default_rng(start).normal(2.0, 3.0, (count, *MAP_SHAPE)).astype(np.float32)


def generated_entry(key, rows=ROWS):
    paths = [f"tile_{i}.tif" for i in range(rows)]
    return cache.save(key, generated_batches(rows), np.arange(rows) % 8, paths)


def traced_peak(function):
    import tracemalloc

    tracemalloc.start()
    try:
        result = function()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_pooling_path_never_holds_the_whole_maps(data_root):
    key = generated_key()
    (pooled, _), written_peak = traced_peak(lambda: generated_entry(key))
    assert pooled.shape == (ROWS, 1, 1, MAP_SHAPE[-1])
    read, read_peak = traced_peak(lambda: cache.load_cached(key, pooled=True))
    maps = np.concatenate(list(generated_batches()))
    np.testing.assert_array_equal(read.features, cache.pool_maps(maps))  # as pooled at once
    np.testing.assert_array_equal(cache.load_cached(key).features, maps)  # whole maps on disk all the same
    # the maps are 25.6 MB; their pooling 1 MB, a batch 0.2 MB (generous margin for the zip's buffers)
    assert written_peak < MAPS_BYTES / 4 and read_peak < MAPS_BYTES / 4, (written_peak, read_peak)


def test_an_entry_without_pooled_features_is_pooled_in_chunks_and_a_damaged_one_is_never_trusted(data_root):
    key = generated_key("val")
    maps = np.concatenate(list(generated_batches()))
    path = cache.cache_dir(key.backbone) / f"{key.digest}.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, features=maps, labels=np.arange(ROWS, dtype=np.int32) % 8,  # as written before "pooled"
             paths=np.array([f"tile_{i}.tif" for i in range(ROWS)], dtype=str))
    read, peak = traced_peak(lambda: cache.load_cached(key, pooled=True))
    np.testing.assert_array_equal(read.features, cache.pool_maps(maps))
    assert peak < MAPS_BYTES / 4, peak
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated: recomputed, not misread
    assert cache.load_cached(key, pooled=True) is None and cache.load_cached(key) is None
    generated_entry(key, rows=40)
    np.savez(path, features=maps[:39], pooled=cache.pool_maps(maps[:40]),  # one map short of its rows
             labels=np.zeros(40, np.int32), paths=np.array([f"tile_{i}.tif" for i in range(40)], dtype=str))
    assert cache.load_cached(key) is None
