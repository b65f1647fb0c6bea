"""Split builder: stratified random and grouped splits, leakage report, CSV round trip."""

from __future__ import annotations

import pandas as pd
import pytest

from services.datasets import index, splits
from services.errors import UserFacingError
from tests.datasets_helpers import make_dataset


def _frame(data_root, **kwargs):
    return index.load_index(make_dataset(data_root / "datasets" / "tiny", **kwargs))


def test_grouped_split_keeps_every_source_image_in_one_split(data_root):
    frame = _frame(data_root, classes=("01_A", "02_B", "03_C"), sources=6, tiles_per_source=3)
    split = splits.make_split(frame, method="grouped", seed=7)
    assert split.groupby("source_image")["split"].nunique().max() == 1
    assert set(split["split"]) == set(splits.SPLITS)
    assert splits.leakage_report(split).empty
    counts = split["split"].value_counts()
    assert counts["train"] > counts["val"] and counts["train"] > counts["test"]


def test_random_split_is_stratified_seeded_and_leaks_source_images(data_root):
    frame = _frame(data_root, classes=("01_A", "02_B"), sources=2, tiles_per_source=5)
    split = splits.make_split(frame, method="random", seed=1)
    table = splits.split_summary(split)
    assert table.loc["A", "train"] == 6 and table.loc["A", "val"] == 2 and table.loc["A", "test"] == 2
    again = splits.make_split(frame, method="random", seed=1)
    assert split["split"].tolist() == again["split"].tolist()
    other = splits.make_split(frame, method="random", seed=2)
    assert split["split"].tolist() != other["split"].tolist()
    report = splits.leakage_report(split)
    assert (report["kind"] == "source image").any()


def test_leakage_report_finds_identical_files_across_splits():
    frame = pd.DataFrame({"source_image": ["s1", "s2", "s3"], "content_hash": ["x", "x", "y"],
                          "split": ["train", "test", "val"]})
    report = splits.leakage_report(frame)
    assert report.to_dict("records") == [{"kind": "identical file", "key": "x", "splits": "train, test", "tiles": 2}]


def test_problem_rows_are_left_out_of_splits(data_root):
    folder = make_dataset(data_root / "datasets" / "tiny")
    (folder / "01_TUMOR" / "bad.tif").write_bytes(b"nope")
    frame = index.load_index(folder)
    split = splits.make_split(frame, method="random")
    assert len(split) == len(frame) - 1 and "bad.tif" not in " ".join(split["path"])


def test_empty_single_class_and_too_few_groups_are_refused(data_root):
    single = _frame(data_root, classes=("01_ONLY",))
    with pytest.raises(UserFacingError, match="single class"):
        splits.make_split(single, method="random")
    with pytest.raises(UserFacingError, match="no usable images"):
        splits.make_split(single.assign(problem="broken"), method="random")
    few = pd.DataFrame({"label": ["A", "B"] * 2, "label_index": [0, 1] * 2, "source_image": ["s1", "s2"] * 2,
                        "problem": [None] * 4})
    with pytest.raises(UserFacingError, match="source image"):
        splits.make_split(few, method="grouped")
    with pytest.raises(UserFacingError, match="fractions"):
        splits.make_split(single, method="random", fractions=(0.5, 0.5, 0.5))


def test_saved_split_round_trips_and_refuses_vanished_files(data_root):
    folder = make_dataset(data_root / "datasets" / "tiny", sources=3)
    split = splits.make_split(index.load_index(folder), method="grouped")
    path = splits.save_split("tiny", "first", split)
    assert path.parent == data_root / "splits" / "tiny" and "datasets" not in path.read_text()
    assert splits.list_splits("tiny") == ["first"]
    loaded = splits.load_split("tiny", "first")
    assert list(loaded.columns) == splits.SPLIT_COLUMNS
    assert loaded["path"].tolist() == split["path"].tolist()
    assert loaded["split"].tolist() == split["split"].tolist()
    for bad in ("../x", "a/b", ""):
        with pytest.raises(UserFacingError):
            splits.save_split("tiny", bad, split)
    with pytest.raises(UserFacingError, match="no saved split"):
        splits.load_split("tiny", "missing")
    next(folder.rglob("*.tif")).unlink()
    with pytest.raises(UserFacingError, match="no longer exist"):
        splits.load_split("tiny", "first")


def test_split_files_cannot_point_outside_the_dataset(data_root):
    make_dataset(data_root / "datasets" / "tiny")
    target = data_root / "splits" / "tiny" / "evil.csv"
    target.parent.mkdir(parents=True)
    target.write_text("path,label,label_index,source_image,split\n../../../etc/hostname,A,0,s,train\n")
    with pytest.raises(UserFacingError, match="outside"):
        splits.load_split("tiny", "evil")


def test_split_summary_lists_classes_in_label_order_with_totals(data_root):
    frame = _frame(data_root, classes=("01_ZEBRA", "02_ANT"), sources=3, tiles_per_source=2)
    table = splits.split_summary(splits.make_split(frame, method="grouped"))
    assert table.index.tolist() == ["ZEBRA", "ANT", "total"]
    assert table.columns.tolist() == ["train", "val", "test", "total"]
    assert table.loc["total", "total"] == 12


def test_a_class_with_no_tiles_in_a_split_part_is_named(data_root):
    frame = _frame(data_root, classes=("01_TUMOR", "08_EMPTY"), sources=3, tiles_per_source=2)
    split = frame.assign(split=[splits.SPLITS[i % 3] for i in range(len(frame))])
    assert splits.empty_classes(split) == []
    split.loc[split["label"] == "EMPTY", "split"] = "train"  # as a grouped split of few source images may do
    assert splits.empty_classes(split) == [("EMPTY", "val"), ("EMPTY", "test")]
    assert splits.empty_classes(split, fractions=(0.8, 0.0, 0.2)) == [("EMPTY", "test")]  # no val asked for
