"""Data quality of an index: unusable files, odd files, exact and near-duplicate pairs.

Exact duplicates share a content hash (byte-identical files). Near duplicates have perceptual
hashes (64-bit pHash, see :func:`services.datasets.index.perceptual_hash`) within a Hamming
distance the user chooses: 0-4 finds re-encoded or slightly brightened copies, larger
distances find ever looser look-alikes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.datasets.index import usable

PAIR_COLUMNS = ["distance", "relpath_a", "label_a", "relpath_b", "label_b", "path_a", "path_b"]


def problems(frame: pd.DataFrame) -> pd.DataFrame:
    """Files excluded from the dataset, with the reason."""
    return frame.loc[frame["problem"].notna(), ["relpath", "label", "problem"]].reset_index(drop=True)


def conversions(frame: pd.DataFrame) -> pd.DataFrame:
    """Usable files that were converted when decoded (16-bit, palette, alpha, greyscale, EXIF)."""
    rows = usable(frame)
    return rows.loc[rows["note"].notna(), ["relpath", "label", "mode", "note"]].reset_index(drop=True)


def odd_files(frame: pd.DataFrame) -> pd.DataFrame:
    """Usable files whose size or mode differs from the most common one in the dataset."""
    rows = usable(frame)
    if rows.empty:
        return rows[["relpath", "label", "width", "height", "mode"]]
    size = rows[["width", "height"]].value_counts().idxmax()
    mode = rows["mode"].value_counts().idxmax()
    odd = (rows["width"] != size[0]) | (rows["height"] != size[1]) | (rows["mode"] != mode)
    return rows.loc[odd, ["relpath", "label", "width", "height", "mode"]].reset_index(drop=True)


def hash_array(hex_hashes: pd.Series) -> np.ndarray:
    return np.array([int(h, 16) for h in hex_hashes], dtype=np.uint64)


def hamming_pairs(hashes: np.ndarray, max_distance: int, chunk: int = 512) -> list[tuple[int, int, int]]:
    """Index pairs (i < j) whose 64-bit hashes differ in at most ``max_distance`` bits."""
    found = []
    for start in range(0, len(hashes), chunk):
        block = hashes[start:start + chunk]
        distances = np.bitwise_count(block[:, None] ^ hashes[None, :])
        rows, cols = np.nonzero(distances <= max_distance)
        keep = cols > rows + start
        found.extend(zip((rows[keep] + start).tolist(), cols[keep].tolist(), distances[rows[keep], cols[keep]].tolist()))
    return found


def _pairs(rows: pd.DataFrame, pairs: list[tuple[int, int, int]], limit: int) -> pd.DataFrame:
    pairs = sorted(pairs, key=lambda p: p[2])[:limit]
    a = rows.iloc[[p[0] for p in pairs]].reset_index(drop=True)
    b = rows.iloc[[p[1] for p in pairs]].reset_index(drop=True)
    return pd.DataFrame({
        "distance": [p[2] for p in pairs], "relpath_a": a["relpath"], "label_a": a["label"],
        "relpath_b": b["relpath"], "label_b": b["label"], "path_a": a["path"], "path_b": b["path"],
    }, columns=PAIR_COLUMNS)


def exact_duplicates(frame: pd.DataFrame, limit: int = 1000) -> pd.DataFrame:
    """Pairs of byte-identical usable files."""
    rows = usable(frame).reset_index(drop=True)
    pairs = []
    for positions in rows.groupby("content_hash").indices.values():
        pairs.extend((int(i), int(j), 0) for k, i in enumerate(positions) for j in positions[k + 1:])
    return _pairs(rows, pairs, limit)


def near_duplicates(frame: pd.DataFrame, max_distance: int = 4, limit: int = 1000) -> pd.DataFrame:
    """Pairs of usable, not byte-identical files whose perceptual hashes are within
    ``max_distance`` bits, closest first (at most ``limit`` pairs)."""
    rows = usable(frame).reset_index(drop=True)
    if rows.empty:
        return _pairs(rows, [], limit)
    content = rows["content_hash"].to_numpy()
    pairs = [p for p in hamming_pairs(hash_array(rows["phash"]), max_distance) if content[p[0]] != content[p[1]]]
    return _pairs(rows, pairs, limit)
