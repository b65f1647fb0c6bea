"""Silhouette validation, the book's masking rule, and derived silhouettes."""

from __future__ import annotations

import numpy as np
import pytest

from services.style import builtin_images, masks


def _square_silhouette(size=16, low=4, high=12) -> np.ndarray:
    mask = np.full((size, size), 255, np.uint8)
    mask[low:high, low:high] = 0
    return mask


def test_masking_is_exact_on_a_known_mask():
    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    mask = _square_silhouette()
    result = masks.apply_mask(image, mask)
    assert (result[mask == 255] == 255).all()
    np.testing.assert_array_equal(result[mask == 0], image[mask == 0])


def test_feathered_edge_blends_only_near_the_border():
    image = np.zeros((32, 32, 3), np.uint8)
    mask = _square_silhouette(32, 8, 24)
    result = masks.apply_mask(image, mask, feather=1.5)
    assert result[16, 16].max() == 0 and result[0, 0].min() == 255
    assert 0 < result[8, 16, 0] < 255  # on the edge: in between


def test_grey_mask_is_thresholded_with_a_note():
    mask = _square_silhouette().astype(np.int32)
    mask[0, :3] = (100, 200, 128)
    checked = masks.validate_mask(mask.astype(np.uint8))
    assert set(np.unique(checked.mask)) == {0, 255}
    assert checked.mask[0, :3].tolist() == [0, 255, 255]
    assert "thresholded" in checked.notes[0]


def test_mask_of_another_size_is_resized_nearest_neighbour():
    checked = masks.validate_mask(np.repeat(_square_silhouette()[..., None], 3, axis=2), (32, 48))
    assert checked.mask.shape == (32, 48)
    assert set(np.unique(checked.mask)) == {0, 255} and "nearest" in checked.notes[-1]


@pytest.mark.parametrize("value, word", [(0, "all black"), (255, "all white")])
def test_empty_or_full_masks_are_refused(value, word):
    with pytest.raises(masks.BadMask, match=word):
        masks.validate_mask(np.full((8, 8), value, np.uint8))


def test_mask_of_wrong_size_is_refused_by_apply():
    with pytest.raises(masks.BadMask, match="16x16"):
        masks.apply_mask(np.zeros((8, 8, 3), np.uint8), _square_silhouette())


def test_horse_silhouette_is_a_valid_black_shape_on_white():
    horse = builtin_images.horse_silhouette()
    checked = masks.validate_mask(horse)
    assert not checked.notes and horse[0, 0] == 255 and (horse == 0).mean() > 0.2


@pytest.mark.parametrize("bright_object", [False, True])
def test_otsu_keeps_the_object_not_the_border(bright_object):
    photo = np.full((40, 40, 3), 200 if not bright_object else 30, np.uint8)
    photo[10:30, 12:28] = 40 if not bright_object else 220
    np.testing.assert_array_equal(masks.otsu_silhouette(photo), _square_like(photo.shape[:2]))


def _square_like(shape):
    expected = np.full(shape, 255, np.uint8)
    expected[10:30, 12:28] = 0
    return expected


def test_grabcut_finds_the_object_inside_the_rectangle():
    rng = np.random.default_rng(0)
    photo = rng.integers(150, 256, (48, 48, 3), dtype=np.uint8)
    photo[14:34, 14:34] = rng.integers(0, 60, (20, 20, 3), dtype=np.uint8)
    silhouette = masks.grabcut_silhouette(photo, (8, 8, 32, 32))
    assert (silhouette[16:32, 16:32] == 0).mean() > 0.95 and (silhouette[:6] == 255).all()
    with pytest.raises(masks.BadMask, match="rectangle"):
        masks.grabcut_silhouette(photo, (0, 0, 48, 48))


def test_stained_glass_is_deterministic_with_dark_leading():
    first = builtin_images.stained_glass((64, 64), tiles=12, seed=5)
    np.testing.assert_array_equal(first, builtin_images.stained_glass((64, 64), tiles=12, seed=5))
    leading = (first == (25, 22, 20)).all(axis=2).mean()
    assert 0.02 < leading < 0.4
