"""Duplicate detection, odd files, perceptual hashing and colour deconvolution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from services.datasets import colour, index, quality
from tests.datasets_helpers import demo_data_root, demo_root, make_dataset, write_tile  # noqa: F401


def test_exact_and_near_duplicates_are_found_as_pairs(data_root):
    folder = make_dataset(data_root / "datasets" / "tiny")
    original = write_tile(folder / "01_TUMOR" / "orig.png", seed=500, size=64, fmt="PNG")
    (folder / "02_STROMA" / "copy.png").write_bytes(original.read_bytes())
    ImageEnhance.Brightness(Image.open(original)).enhance(1.05).save(folder / "01_TUMOR" / "brighter.png")
    frame = index.load_index(folder)
    exact = quality.exact_duplicates(frame)
    assert exact[["relpath_a", "relpath_b"]].values.tolist() == [["01_TUMOR/orig.png", "02_STROMA/copy.png"]]
    assert exact.loc[0, "label_a"] == "TUMOR" and exact.loc[0, "label_b"] == "STROMA"
    near = quality.near_duplicates(frame, max_distance=4)
    pairs = {frozenset(p) for p in near[["relpath_a", "relpath_b"]].values.tolist()}
    assert frozenset({"01_TUMOR/orig.png", "01_TUMOR/brighter.png"}) in pairs
    assert frozenset({"01_TUMOR/orig.png", "02_STROMA/copy.png"}) not in pairs  # exact, listed above
    assert (near["distance"] <= 4).all()
    assert len(quality.near_duplicates(frame, max_distance=64)) > len(near)  # looser distance, more pairs


def test_demo_set_duplicates_are_detected(demo_data_root):
    from services.datasets.sources import dataset_folder

    frame = index.load_index(dataset_folder("demo"))
    assert len(quality.exact_duplicates(frame)) == 1
    near = quality.near_duplicates(frame, max_distance=2)
    assert (near["label_a"] == "LYMPHO").any()


def test_hamming_pairs_counts_differing_bits():
    hashes = np.array([0b0, 0b1, 0b111, 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    assert quality.hamming_pairs(hashes, 1) == [(0, 1, 1)]
    assert sorted(quality.hamming_pairs(hashes, 3)) == [(0, 1, 1), (0, 2, 3), (1, 2, 2)]


def test_perceptual_hash_is_stable_under_small_changes_and_differs_otherwise():
    rng = np.random.default_rng(0)
    base = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(base).resize((150, 150), Image.Resampling.BICUBIC))
    noisy = np.clip(smooth.astype(int) + rng.integers(-3, 4, smooth.shape), 0, 255).astype(np.uint8)
    other = np.asarray(Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).resize((150, 150)))
    distance = lambda a, b: bin(int(index.perceptual_hash(a), 16) ^ int(index.perceptual_hash(b), 16)).count("1")
    assert distance(smooth, noisy) <= 4
    assert distance(smooth, other) > 12


def test_odd_files_and_conversions_are_listed(data_root):
    folder = make_dataset(data_root / "datasets" / "tiny")
    write_tile(folder / "01_TUMOR" / "big.tif", seed=77, size=40)
    Image.new("L", (24, 24), 128).save(folder / "02_STROMA" / "grey.tif")
    frame = index.load_index(folder)
    odd = quality.odd_files(frame)
    assert set(odd["relpath"]) == {"01_TUMOR/big.tif", "02_STROMA/grey.tif"}
    assert quality.conversions(frame)["relpath"].tolist() == ["02_STROMA/grey.tif"]
    (folder / "01_TUMOR" / "junk.tif").write_bytes(b"junk")
    assert quality.problems(index.load_index(folder))["relpath"].tolist() == ["01_TUMOR/junk.tif"]


def test_ruifrok_matrix_is_normalised_and_inverted():
    assert np.allclose(np.linalg.norm(colour.RGB_FROM_HED, axis=1), 1)
    assert np.allclose(colour.RGB_FROM_HED[0], [0.65, 0.70, 0.29] / np.linalg.norm([0.65, 0.70, 0.29]))
    assert np.allclose(colour.HED_FROM_RGB @ colour.RGB_FROM_HED, np.eye(3))


@pytest.mark.parametrize("concentration", [(0.5, 0, 0), (0, 0.8, 0), (0.3, 0.4, 0), (0.2, 0.1, 0.3)])
def test_deconvolution_recovers_known_stain_concentrations(concentration):
    # Beer-Lambert: I = 255 * 10^-(c @ stain vectors); deconvolution must give c back.
    od = np.asarray(concentration) @ colour.RGB_FROM_HED
    pixel = (255 * 10.0 ** -od)[None, None, :]
    recovered = colour.optical_density(pixel.round().clip(1, 255).astype(np.uint8)) @ colour.HED_FROM_RGB
    assert np.allclose(recovered[0, 0], concentration, atol=0.01)
    rendered = colour.hed_to_rgb(np.asarray(concentration, dtype=float)[None, None, :])
    assert np.allclose(colour.rgb_to_hed(rendered)[0, 0], concentration, atol=0.01)


def test_deconvolution_of_white_is_zero_and_hematoxylin_pixel_is_mostly_h():
    assert np.allclose(colour.rgb_to_hed(np.full((1, 1, 3), 255, np.uint8)), 0)
    purple = colour.rgb_to_hed(np.array([[[70, 40, 120]]], dtype=np.uint8))[0, 0]
    pink = colour.rgb_to_hed(np.array([[[230, 140, 190]]], dtype=np.uint8))[0, 0]
    assert purple[0] > purple[1] and pink[1] > pink[0]


def test_histograms_sum_to_one_and_hsv_of_red():
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    rgb = colour.channel_histograms([red], "rgb", bins=8)
    assert np.allclose(rgb.groupby("channel")["fraction"].sum(), 1)
    assert rgb.query("channel == 'red'").iloc[-1]["fraction"] == 1
    hsv = colour.channel_histograms([red], "hsv", bins=8)
    assert hsv.query("channel == 'saturation'").iloc[-1]["fraction"] == 1
    assert hsv.query("channel == 'hue'").iloc[0]["fraction"] == 1


def test_class_colour_profile_separates_demo_classes(demo_data_root):
    from services.datasets.sources import dataset_folder

    frame = index.load_index(dataset_folder("demo"))
    profile = colour.class_colour_profile(frame, per_class=5)
    assert set(profile.means["label"]) == set(frame["label"]) and (profile.means["tiles"] == 5).all()
    mean_h = profile.tile_stains.groupby("label")["hematoxylin"].mean()
    mean_e = profile.tile_stains.groupby("label")["eosin"].mean()
    assert mean_h["LYMPHO"] > mean_h["STROMA"] > mean_h["EMPTY"]
    assert mean_e["STROMA"] > mean_e["EMPTY"]
    assert set(profile.histograms["space"]) == {"rgb", "hsv"}
    assert isinstance(profile.stains, pd.DataFrame) and set(profile.stains["stain"]) == {"Hematoxylin", "Eosin"}
