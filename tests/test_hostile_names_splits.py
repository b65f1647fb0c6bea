"""Hostile names and hand-edited split files (issue 12): full-match names, reserved dataset
names, split CSVs with bad label indices, empty paths or labels that disagree."""

from __future__ import annotations

import pytest

from services.datasets import index, sources, splits
from services.datasets.naming import SAFE_NAME, is_safe_name
from services.errors import UserFacingError
from tests.datasets_helpers import make_dataset, zip_bytes


@pytest.mark.parametrize("name", ["evil\n", "evil\n.zip", "ok\n.csv", ".", "..", "", "a/b", "x" * 65, None, 3])
def test_names_must_match_as_a_whole(name):
    assert not is_safe_name(name)
    if isinstance(name, str):
        assert SAFE_NAME.match(name) is None  # the pattern itself cannot stop before a final newline


@pytest.mark.parametrize("name", ["evil\n.zip", ".", "datasets", "Datasets", "demo", "kather2016", "jobs",
                                  "registered.json"])
def test_reserved_and_newline_names_cannot_become_datasets(data_root, name):
    with pytest.raises(UserFacingError, match="not a usable dataset name"):
        sources.check_new_name(name)
    with pytest.raises(UserFacingError, match="not a usable dataset name"):
        sources.import_zip(zip_bytes({"01_A/a.tif": b"x"}), name)
    assert sorted(p.name for p in data_root.iterdir()) == []


@pytest.mark.parametrize("path", [".", "datasets", "jobs", "cache/index"])
def test_the_data_root_and_managed_folders_cannot_be_registered(data_root, path):
    make_dataset(data_root / "datasets" / "real")
    (data_root / path).mkdir(parents=True, exist_ok=True)
    with pytest.raises(UserFacingError, match="manages itself"):
        sources.register_folder(path)
    assert not (data_root / "datasets" / sources.REGISTRY).exists()


def test_split_names_with_a_newline_are_refused(data_root):
    frame = index.load_index(make_dataset(data_root / "datasets" / "tiny"))
    with pytest.raises(UserFacingError, match="not a usable split name"):
        splits.save_split("tiny", "ok\n", splits.make_split(frame, method="random"))
    assert not (data_root / "splits" / "tiny").exists() or not list((data_root / "splits" / "tiny").iterdir())


@pytest.fixture
def saved(data_root):
    frame = index.load_index(make_dataset(data_root / "datasets" / "tiny"))
    path = splits.save_split("tiny", "hand", splits.make_split(frame, method="random"))
    lines = path.read_text().splitlines()
    return path, lines


def _edit(saved, row: int, column: str, value: str) -> None:
    path, lines = saved
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    path.write_text("\n".join([*lines[:row], ",".join(cells), *lines[row + 1:]]) + "\n")


@pytest.mark.parametrize("column, value, message", [
    ("label_index", "abc", "line 3: label_index 'abc' is not a whole number"),
    ("label_index", "", "line 3: label_index '' is not a whole number"),
    ("label_index", "1.5", "line 3: label_index '1.5' is not a whole number"),
    ("label_index", "7", "line 3: label_index 7 is out of range: the split has 2 classes"),
    ("label_index", "-1", "line 3: label_index -1 is out of range"),
    ("path", "", "line 3: the path is empty"),
    ("path", "../../../etc/hostname", "line 3: the path '../../../etc/hostname' points outside the dataset"),
    ("label", "", "line 3: the label is empty"),
])
def test_hand_edited_split_rows_are_refused_with_their_line(saved, data_root, column, value, message):
    _edit(saved, 2, column, value)
    with pytest.raises(UserFacingError, match=message.replace("(", r"\(").replace(".", r"\.")) as error:
        splits.load_split("tiny", "hand")
    assert str(data_root) not in str(error.value)


def test_labels_and_indices_must_match_one_to_one(saved):
    path, lines = saved
    other = next(i for i, line in enumerate(lines[1:], 1) if line.split(",")[2] != lines[1].split(",")[2])
    _edit(saved, other, "label_index", lines[1].split(",")[2])
    with pytest.raises(UserFacingError, match="do not match one to one"):
        splits.load_split("tiny", "hand")


def test_binary_garbage_split_file_is_refused(saved):
    saved[0].write_bytes(b"\xff\xfe\x00garbage\x00" * 50)
    with pytest.raises(UserFacingError, match="not a readable split file|not a split file"):
        splits.load_split("tiny", "hand")
