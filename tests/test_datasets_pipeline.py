"""The tf.data pipeline and the book's augmentation layers (real TensorFlow, tiny data)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from services.datasets import index, splits
from services.datasets.augmentation import book_augmentation, preview_variants
from services.datasets.pipeline import make_tf_dataset
from services.errors import UserFacingError
from tests.datasets_helpers import make_dataset


@pytest.fixture
def split(data_root):
    folder = make_dataset(data_root / "datasets" / "tiny", classes=("01_A", "02_B", "03_C"), sources=3)
    Image.new("RGB", (30, 20), (255, 0, 0)).save(folder / "01_A" / "odd_size.png")
    (folder / "02_B" / "broken.tif").write_bytes(b"broken")
    return splits.make_split(index.load_index(folder), method="grouped")


def test_batches_have_the_right_shapes_types_and_ranges(split):
    dataset = make_tf_dataset(split, image_size=(24, 24), batch_size=5)
    batches = list(dataset.as_numpy_iterator())
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert images.shape == (len(split), 24, 24, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.9
    assert labels.dtype == np.int32 and labels.tolist() == split["label_index"].tolist()
    raw = next(make_tf_dataset(split, image_size=(24, 24), batch_size=4, scale="raw").as_numpy_iterator())[0]
    assert raw.max() > 200


def test_one_hot_labels_shuffling_and_augmentation(split):
    train = split[split["split"] == "train"]
    dataset = make_tf_dataset(train, image_size=(24, 24), batch_size=64, shuffle=True, augment=True,
                              one_hot=True, num_classes=4, seed=3)
    images, labels = next(dataset.as_numpy_iterator())
    assert labels.shape == (len(train), 4) and labels.dtype == np.float32
    assert np.allclose(labels.sum(axis=1), 1)
    assert sorted(labels.argmax(axis=1).tolist()) == sorted(train["label_index"].tolist())
    assert labels.argmax(axis=1).tolist() != train["label_index"].tolist()  # shuffled, not in index order
    plain = next(make_tf_dataset(train, image_size=(24, 24), batch_size=64).as_numpy_iterator())[0]
    assert images.shape == plain.shape and not np.allclose(np.sort(images.ravel()), np.sort(plain.ravel()))


def test_empty_input_and_bad_scale_are_refused(split):
    with pytest.raises(UserFacingError):
        make_tf_dataset(split.iloc[:0])
    with pytest.raises(UserFacingError):
        make_tf_dataset(split, scale="imagenet")


def test_book_augmentation_has_the_books_settings():
    augmentation = book_augmentation(seed=1)
    config = augmentation.get_config()
    assert (config["rotation_degrees"], config["shift"], config["shear"], config["zoom"]) == (40, 0.2, 0.2, 0.2)
    assert config["horizontal_flip"] and config["vertical_flip"] and config["fill_mode"] == "nearest"


def test_book_augmentation_is_one_random_affine_in_training_only():
    images = np.random.default_rng(0).random((4, 24, 24, 3), dtype=np.float32)
    augmentation = book_augmentation(seed=3)
    np.testing.assert_array_equal(np.asarray(augmentation(images, training=False)), images)
    augmented = np.asarray(augmentation(images, training=True))
    assert augmented.shape == images.shape and not np.allclose(augmented, images)
    assert augmented.min() >= images.min() - 1e-5 and augmented.max() <= images.max() + 1e-5  # nearest fill
    still = book_augmentation(rotation_degrees=0, shift=0, shear=0, zoom=0, horizontal_flip=False, vertical_flip=False)
    np.testing.assert_allclose(np.asarray(still(images, training=True)), images, atol=1e-5)
    flipped = book_augmentation(rotation_degrees=0, shift=0, shear=0, zoom=0, vertical_flip=False, seed=1)
    result = np.asarray(flipped(images, training=True))
    for original, out in zip(images, result):  # each image is itself or its mirror image
        assert np.allclose(out, original, atol=1e-5) or np.allclose(out, original[:, ::-1], atol=1e-5)


def test_preview_variants_differ_and_keep_the_tile_shape():
    tile = np.asarray(Image.new("RGB", (40, 40), (200, 100, 150)))
    tile = tile.copy()
    tile[:10] = 20
    variants = preview_variants(tile, count=4, seed=5)
    assert len(variants) == 4 and all(v.shape == tile.shape and v.dtype == np.uint8 for v in variants)
    assert sum(not np.array_equal(v, tile) for v in variants) >= 3


def test_augmentation_preview_operation_of_the_model_service():
    from services.datasets.service_ops import augment_preview
    from services.model_service.cache import ModelCache

    tile = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    result, arrays = augment_preview(ModelCache(), {"count": 4, "seed": 1, "rotation_degrees": 90}, {"tile": tile})
    assert result == {"count": 4} and sorted(arrays) == [f"variant_{i}" for i in range(4)]
    assert all(a.shape == tile.shape and a.dtype == np.uint8 for a in arrays.values())
    assert not np.array_equal(arrays["variant_0"], tile)
    for args, tiles, message in (
        ({"count": 1000}, {"tile": tile}, "between 1 and 16"),
        ({"rotation_degrees": float("nan")}, {"tile": tile}, "between 0 and 180"),
        ({"fill_mode": "<script>"}, {"tile": tile}, "unknown fill mode"),
        ({}, {"tile": tile.astype(np.float32)}, "RGB uint8"),
        ({}, {"tile": np.zeros((2000, 4, 3), np.uint8)}, "larger than 1024"),
    ):
        with pytest.raises(UserFacingError, match=message):
            augment_preview(ModelCache(), args, tiles)
