"""Train/validation/test splits of a dataset index, their leakage report, and their CSV files.

Two methods, both seeded:

- ``random``: stratified by class; the book's 60/20/20 reproduction.
- ``grouped``: whole source images go to one split (Kather tiles of one source image are
  correlated, so a random split leaks between train and test). Groups are assigned greedily,
  largest first, to the split that is furthest below its per-class target.

Saved splits live in ``<data_root>/splits/<dataset>/<name>.csv`` with paths relative to the
dataset folder; other pages load them with :func:`load_split`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from services.config import confine
from services.csv_files import read_csv, write_csv
from services.datasets.index import usable
from services.datasets.layout import split_dir
from services.datasets.naming import is_safe_name
from services.datasets.sources import dataset_folder
from services.errors import PathOutsideRoot, UserFacingError

SPLITS = ("train", "val", "test")
METHODS = ("grouped", "random")
SPLIT_COLUMNS = ["path", "label", "label_index", "source_image", "split"]


def _check(frame: pd.DataFrame, method: str, fractions: tuple[float, float, float]) -> pd.DataFrame:
    if method not in METHODS:
        raise UserFacingError(f"unknown split method {method!r}; use one of {', '.join(METHODS)}.")
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0) or fractions[0] <= 0:
        raise UserFacingError(f"split fractions {fractions} must be three non-negative numbers adding up to 1, "
                              "with a positive training share.")
    rows = usable(frame) if "problem" in frame.columns else frame
    if rows.empty:
        raise UserFacingError("the dataset has no usable images, so it cannot be split.")
    if rows["label"].nunique() < 2:
        raise UserFacingError(
            f"the dataset has a single class ({rows['label'].iloc[0]}); a classifier needs at least two "
            "classes, so no split is made."
        )
    return rows


def _counts(total: int, fractions: tuple[float, float, float]) -> np.ndarray:
    """Largest-remainder rounding of ``total * fractions``."""
    exact = np.asarray(fractions) * total
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return counts


def _random_split(rows: pd.DataFrame, fractions, rng: np.random.Generator) -> np.ndarray:
    assignment = np.empty(len(rows), dtype=object)
    for _, positions in rows.groupby("label_index").indices.items():
        shuffled = rng.permutation(positions)
        bounds = np.cumsum(_counts(len(shuffled), fractions))[:-1]
        for split, part in zip(SPLITS, np.split(shuffled, bounds)):
            assignment[part] = split
    return assignment


def _grouped_split(rows: pd.DataFrame, fractions, rng: np.random.Generator) -> np.ndarray:
    groups = rows.groupby("source_image").indices
    if len(groups) < sum(1 for f in fractions if f > 0):
        raise UserFacingError(
            f"only {len(groups)} source image(s): a split grouped by source image needs at least one per "
            "split. Use the random split, or more source images."
        )
    classes = rows["label_index"].to_numpy()
    class_ids = np.unique(classes)
    class_pos = {c: i for i, c in enumerate(class_ids)}
    target = np.outer(fractions, np.bincount([class_pos[c] for c in classes], minlength=len(class_ids)))
    current = np.zeros_like(target)
    names = list(groups)
    order = rng.permutation(len(names))
    order = sorted(order, key=lambda i: -len(groups[names[i]]))  # stable: seeded ties
    chosen: dict[int, int] = {}
    for i in order:
        vector = np.bincount([class_pos[c] for c in classes[groups[names[i]]]], minlength=len(class_ids))
        need = np.clip(target - current, 0, None)
        score = np.minimum(need, vector).sum(axis=1) + 1e-3 * (target.sum(axis=1) - current.sum(axis=1))
        score[np.asarray(fractions) == 0] = -np.inf
        chosen[i] = int(np.argmax(score))
        current[chosen[i]] += vector
    _fill_empty_splits(chosen, fractions, lambda i: len(groups[names[i]]))
    assignment = np.empty(len(rows), dtype=object)
    for i, split in chosen.items():
        assignment[groups[names[i]]] = SPLITS[split]
    return assignment


def _fill_empty_splits(chosen: dict[int, int], fractions, size) -> None:
    """Give every split with a positive share at least one group: move the smallest group of
    the split holding the most groups."""
    for split, fraction in enumerate(fractions):
        if fraction > 0 and split not in chosen.values():
            donor = max(set(chosen.values()), key=lambda s: sum(1 for v in chosen.values() if v == s))
            smallest = min((i for i, s in chosen.items() if s == donor), key=size)
            chosen[smallest] = split


def make_split(frame: pd.DataFrame, *, method: str = "grouped", fractions=(0.6, 0.2, 0.2), seed: int = 42) -> pd.DataFrame:
    """The usable rows of ``frame`` with a ``split`` column ("train"/"val"/"test")."""
    fractions = tuple(float(f) for f in fractions)
    rows = _check(frame, method, fractions).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    splitter = _grouped_split if method == "grouped" else _random_split
    result = rows.copy()
    result["split"] = splitter(rows, fractions, rng)
    return result


def leakage_report(frame: pd.DataFrame) -> pd.DataFrame:
    """What appears in more than one split: source images, and identical files (same content
    hash). Columns: kind, key, splits, tiles. Empty when the split is clean."""
    found = []
    checks = [("source image", "source_image")]
    if "content_hash" in frame.columns:
        checks.append(("identical file", "content_hash"))
    for kind, column in checks:
        grouped = frame.dropna(subset=[column]).groupby(column)
        spread = grouped["split"].agg(lambda s: ", ".join(sorted(set(s), key=SPLITS.index)))
        tiles = grouped.size()
        shared = spread[spread.str.contains(",")]
        for key, splits in shared.items():
            found.append({"kind": kind, "key": key, "splits": splits, "tiles": int(tiles[key])})
    return pd.DataFrame(found, columns=["kind", "key", "splits", "tiles"])


def empty_classes(frame: pd.DataFrame, fractions=(0.6, 0.2, 0.2)) -> list[tuple[str, str]]:
    """(class, split) for each class with no tile in a split part that should have some (its
    fraction is above 0): a grouped split of few source images easily leaves a class out of test."""
    wanted = [part for part, share in zip(SPLITS, fractions) if share > 0]
    counts = frame.groupby(["label", "split"]).size()
    labels = frame.drop_duplicates("label").sort_values("label_index")["label"].tolist()
    return [(label, part) for label in labels for part in wanted if counts.get((label, part), 0) == 0]


def split_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Tiles per class (rows) and split (columns), with totals."""
    table = pd.crosstab(frame["label"], frame["split"], margins=True, margins_name="total")
    labels = frame.drop_duplicates("label").sort_values("label_index")["label"].tolist()
    return table.loc[[*labels, "total"], [s for s in (*SPLITS, "total") if s in table.columns]]


def _split_file(dataset: str, name: str) -> Path:
    if not is_safe_name(name):
        raise UserFacingError(f"{name!r} is not a usable split name: use 1-64 letters, digits, '_', '-' or '.'.")
    return confine(split_dir(dataset) / f"{name}.csv")


def save_split(dataset: str, name: str, frame: pd.DataFrame) -> Path:
    """Write the split as CSV (paths relative to the dataset folder) and return the file."""
    folder = dataset_folder(dataset)
    missing = [c for c in SPLIT_COLUMNS if c not in frame.columns]
    if missing:
        raise UserFacingError(f"the split lacks the columns {', '.join(missing)}.")
    table = frame[SPLIT_COLUMNS].copy()
    table["path"] = [Path(p).resolve().relative_to(folder).as_posix() for p in table["path"]]
    path = _split_file(dataset, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".csv.tmp")
    write_csv(table, temporary)
    temporary.replace(path)
    return path


def list_splits(dataset: str) -> list[str]:
    directory = split_dir(dataset)
    return sorted(p.stem for p in directory.glob("*.csv")) if directory.is_dir() else []


def load_split(dataset: str, name: str) -> pd.DataFrame:
    """A saved split with absolute paths. The file may have been edited by hand: rows with an
    empty path or label, a label index that is not a whole number or out of range, paths that
    leave the dataset folder or files that vanished are refused with the row they are on."""
    path = _split_file(dataset, name)
    if not path.is_file():
        raise UserFacingError(f"no saved split {name!r} for dataset {dataset!r}; build and save one in the "
                              "Dataset explorer.")
    try:
        table = read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as error:
        raise UserFacingError(f"{path.name} is not a readable split file ({type(error).__name__}).") from error
    missing = [c for c in SPLIT_COLUMNS if c not in table.columns]
    if missing or not set(table["split"]).issubset(SPLITS):
        raise UserFacingError(f"{path.name} is not a split file of this dashboard (columns or split names differ).")
    if table.empty:
        raise UserFacingError(f"{path.name} has no rows; rebuild the split in the Dataset explorer.")
    table["label_index"] = _label_indices(table, path.name)
    folder = dataset_folder(dataset)
    table["path"] = _confined_paths(table["path"], folder, path.name)
    gone = [p for p in table["path"] if not Path(p).is_file()]
    if gone:
        raise UserFacingError(
            f"split {name!r}: {len(gone)} of {len(table)} files no longer exist (first: {Path(gone[0]).name}); "
            "rebuild the split in the Dataset explorer."
        )
    return table[SPLIT_COLUMNS]


def _row_error(file_name: str, position: int, problem: str) -> UserFacingError:
    return UserFacingError(f"{file_name}, line {position + 2}: {problem}. Fix the file or rebuild the split in the "
                           "Dataset explorer.")


def _label_indices(table: pd.DataFrame, file_name: str) -> pd.Series:
    """``label_index`` as int64, checked: whole numbers, 0..classes-1, one index per label."""
    for position, label in enumerate(table["label"]):
        if not label.strip():
            raise _row_error(file_name, position, "the label is empty")
    numbers = pd.to_numeric(table["label_index"].str.strip(), errors="coerce")
    for position, (raw, number) in enumerate(zip(table["label_index"], numbers)):
        if pd.isna(number) or number != int(number):
            raise _row_error(file_name, position, f"label_index {raw[:20]!r} is not a whole number")
    numbers = numbers.astype("int64")
    classes = table["label"].nunique()
    for position, number in enumerate(numbers):
        if not 0 <= number < classes:
            raise _row_error(file_name, position, f"label_index {number} is out of range: the split has "
                                                  f"{classes} classes (0..{classes - 1})")
    pairs = pd.DataFrame({"label": table["label"], "index": numbers}).drop_duplicates()
    if pairs["label"].duplicated().any() or pairs["index"].duplicated().any():
        raise UserFacingError(f"{file_name}: labels and label_index values do not match one to one; rebuild the "
                              "split in the Dataset explorer.")
    return numbers


def _confined_paths(paths: pd.Series, folder: Path, file_name: str) -> list[str]:
    confined = []
    for position, relative in enumerate(paths):
        if not relative.strip():
            raise _row_error(file_name, position, "the path is empty")
        try:
            confined.append(str(confine(folder / relative, folder)))
        except PathOutsideRoot:
            raise _row_error(file_name, position, f"the path {relative[:60]!r} points outside the dataset "
                                                  "folder") from None
    return confined
