"""Kather names, the demo generator, sources and the cached index."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from services.datasets import demo, index, sources
from services.datasets.naming import KATHER_CLASSES, label_from_folder, parse_tile_name
from services.errors import PathOutsideRoot, UserFacingError
from tests.datasets_helpers import demo_data_root, demo_root, make_dataset, write_tile  # noqa: F401


@pytest.mark.parametrize("name, expected", [
    ("1A11_CRC-Prim-HE-07_022.tif_Row_601_Col_151.tif", ("CRC-Prim-HE-07_022.tif", 601, 151)),
    ("10009_CRC-Prim-HE-03_009.tif_Row_301_Col_151.tif", ("CRC-Prim-HE-03_009.tif", 301, 151)),
    ("14A7C_CRC-Prim-HE-10_025.tif_Row_1_Col_1351.tif", ("CRC-Prim-HE-10_025.tif", 1, 1351)),
    ("dir/0001_SYN-HE-10_001.tif_Row_151_Col_1051.tif", ("SYN-HE-10_001.tif", 151, 1051)),
])
def test_kather_names_give_source_image_row_and_column(name, expected):
    tile = parse_tile_name(name)
    assert (tile.source_image, tile.row, tile.col) == expected


@pytest.mark.parametrize("name", ["tile.tif", "abc_Row_1.tif", "x_y_Row_a_Col_2.tif", ""])
def test_other_names_are_not_kather_names(name):
    assert parse_tile_name(name) is None


def test_labels_drop_the_number_prefix():
    assert [label_from_folder(n) for n in ("01_TUMOR", "08_EMPTY", "cats", "2-dogs", "07")] == \
        ["TUMOR", "EMPTY", "cats", "dogs", "07"]


def test_demo_set_has_the_kather_classes_and_names(demo_root):
    folder = demo.demo_folder(demo_root)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == \
        [f"{i:02d}_{c}" for i, c in enumerate(KATHER_CLASSES, start=1)]
    assert "SYNTHETIC" in (folder / demo.MARKER).read_text()
    for class_dir in (p for p in folder.iterdir() if p.is_dir()):
        tiles = sorted(class_dir.iterdir())
        assert len(tiles) >= 40
        sources = {parse_tile_name(t.name).source_image for t in tiles}
        assert 3 <= len(sources) < len(tiles)
        with Image.open(tiles[0]) as image:
            assert (image.size, image.mode, image.format) == ((150, 150), "RGB", "TIFF")


def test_demo_generation_is_deterministic(tmp_path):
    for name in ("a", "b"):
        demo.write_demo_tiles(tmp_path / name, tiles_per_class=3, sources_per_class=2)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.tif"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.tif"))
    assert files_a == files_b and len(files_a) == 3 * 8
    for relative in files_a:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / relative)),
                              np.asarray(Image.open(tmp_path / "b" / relative)))


def test_demo_classes_look_different(demo_data_root):
    frame = index.load_index(sources.dataset_folder("demo"))
    brightness = frame.groupby("label")[["mean_r", "mean_g", "mean_b"]].mean().mean(axis=1)
    assert brightness["EMPTY"] > brightness["ADIPOSE"] > brightness["STROMA"] > brightness["LYMPHO"]
    assert brightness["TUMOR"] < brightness["STROMA"]


def test_demo_refuses_to_overwrite_a_foreign_folder(data_root):
    (data_root / "datasets" / "demo" / "mine").mkdir(parents=True)
    with pytest.raises(UserFacingError, match="not the generated demo set"):
        demo.ensure_demo_dataset()


def test_demo_module_is_runnable(demo_root):
    env = {**os.environ, "DASHBOARD_DATA_DIR": str(demo_root)}
    output = subprocess.run([sys.executable, "-m", "services.datasets.demo"], env=env, check=True,
                            capture_output=True, text=True)
    assert output.stdout.strip() == f"synthetic demo set ready: {demo_root / 'datasets' / 'demo'}"


def test_index_columns_and_labels(data_root):
    folder = make_dataset(data_root / "datasets" / "tiny", classes=("02_STROMA", "01_TUMOR"))
    frame = index.load_index(folder)
    for column in ("path", "label", "label_index", "source_image", "tile_row", "tile_col", "width", "height",
                   "mode", "bytes", "content_hash", "phash", "problem"):
        assert column in frame.columns
    assert index.class_names(frame) == ["TUMOR", "STROMA"]
    assert set(frame.label_index) == {0, 1}
    assert frame.problem.isna().all()
    row = frame.iloc[0]
    assert os.path.isabs(row.path) and row.width == 24 and row["mode"] == "RGB"
    assert row.source_image.startswith("SRC-") and row.tile_row == 1
    assert len(row.phash) == 16 and len(row.content_hash) == 32


def _is_cached(folder) -> bool:
    """Whether ``load_index(folder)`` would answer from the cache."""
    return index.cached_signature(folder) == index.current_signature(folder)


def test_index_is_cached_and_invalidated_when_the_folder_changes(data_root, monkeypatch):
    folder = make_dataset(data_root / "datasets" / "tiny")
    first = index.load_index(folder)
    assert _is_cached(folder)
    described = []
    original = index.describe_file
    monkeypatch.setattr(index, "describe_file", lambda path, root: described.append(path.name) or original(path, root))
    again = index.load_index(folder)
    assert described == [] and again.equals(first)
    added = write_tile(folder / "01_TUMOR" / "new.tif", seed=999)
    assert not _is_cached(folder)
    changed = index.load_index(folder)
    assert described == ["new.tif"]  # unchanged files are not read again
    assert len(changed) == len(first) + 1
    added.unlink()
    assert len(index.load_index(folder)) == len(first)


def test_index_lists_bad_files_with_reasons(data_root):
    folder = make_dataset(data_root / "datasets" / "tiny")
    (folder / "01_TUMOR" / "broken.tif").write_bytes(b"II*\0garbage")
    (folder / "01_TUMOR" / "notes.txt").write_text("hello")
    Image.new("RGB", (1, 1)).save(folder / "02_STROMA" / "dot.png")
    Image.new("P", (20, 20)).save(folder / "02_STROMA" / "palette.png")
    (folder / "02_STROMA" / "escape.tif").symlink_to("/etc/hostname")
    frame = index.load_index(folder).set_index("relpath")
    assert "not a readable image" in frame.loc["01_TUMOR/broken.tif", "problem"]
    assert "not an image file" in frame.loc["01_TUMOR/notes.txt", "problem"]
    assert "too small" in frame.loc["02_STROMA/dot.png", "problem"]
    assert "outside the data root" in frame.loc["02_STROMA/escape.tif", "problem"]
    assert pd.isna(frame.loc["02_STROMA/palette.png", "problem"])
    assert "converted to RGB" in frame.loc["02_STROMA/palette.png", "note"]
    assert len(index.usable(frame)) == 12 + 1


def test_index_refuses_folders_outside_the_data_root_and_empty_folders(data_root, tmp_path):
    make_dataset(tmp_path / "outside")
    with pytest.raises(PathOutsideRoot):
        index.load_index(tmp_path / "outside")
    (data_root / "empty" / "01_A").mkdir(parents=True)
    with pytest.raises(UserFacingError, match="no files in class sub-folders"):
        index.load_index(data_root / "empty")


def test_sources_list_demo_folders_and_registered_folders(data_root):
    make_dataset(data_root / "datasets" / "mine" / "wrapper")
    make_dataset(data_root / "elsewhere" / "set")
    info = sources.register_folder("elsewhere/set")
    assert (info.name, info.kind, info.is_synthetic) == ("elsewhere/set", "folder", False)
    listed = {d.name: d for d in sources.list_datasets()}
    assert listed["demo"].is_synthetic and listed["demo"].kind == "demo"
    assert listed["mine"].folder == data_root / "datasets" / "mine" / "wrapper"
    assert sources.dataset_folder("elsewhere/set") == data_root / "elsewhere" / "set"
    with pytest.raises(UserFacingError):
        sources.dataset_folder("nope")
    with pytest.raises(PathOutsideRoot):
        sources.register_folder("/etc")
    (data_root / "flat").mkdir()
    with pytest.raises(UserFacingError, match="no class sub-folders"):
        sources.register_folder("flat")


def test_importing_the_datasets_package_does_not_import_tensorflow():
    code = ("import sys; import services.datasets.sources, services.datasets.index, services.datasets.splits, "
            "services.datasets.quality, services.datasets.colour, services.datasets.pipeline, "
            "services.datasets.augmentation; print('tensorflow' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "False"


def test_a_cache_from_another_index_version_is_not_reused(data_root, monkeypatch):
    folder = make_dataset(data_root / "datasets" / "tiny")
    index.load_index(folder)
    monkeypatch.setattr(index, "INDEX_VERSION", "other")
    assert not _is_cached(folder)
    described = []
    original = index.describe_file
    monkeypatch.setattr(index, "describe_file", lambda path, root: described.append(path) or original(path, root))
    assert len(index.load_index(folder)) == len(described) == 12


def test_stopped_indexing_keeps_the_files_read_so_far(data_root, monkeypatch):
    folder = make_dataset(data_root / "datasets" / "tiny", sources=35, tiles_per_source=1)  # 70 files
    answers = iter([False, True])  # stop after the first chunk of 64 files
    with pytest.raises(index.IndexingStopped):
        index.load_index(folder, stop=lambda: next(answers))
    assert not _is_cached(folder)
    described = []
    original = index.describe_file
    monkeypatch.setattr(index, "describe_file", lambda path, root: described.append(path) or original(path, root))
    frame = index.load_index(folder)
    assert len(described) == 70 - 64 and len(frame) == 70
    assert frame["problem"].isna().all() and frame["content_hash"].notna().all()
    assert _is_cached(folder)
