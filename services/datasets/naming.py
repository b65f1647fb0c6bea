"""Kather 2016 tile names and class-folder names.

A Kather tile is named ``<id>_<source image>_Row_<row>_Col_<col>.tif``, e.g.
``1A11_CRC-Prim-HE-07_022.tif_Row_601_Col_151.tif``: the source image is the text after the
first ``_`` up to ``_Row`` (``CRC-Prim-HE-07_022.tif``), row and column locate the tile in it.
Class folders are ``NN_NAME`` (``01_TUMOR``); the label is the name without the number prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

KATHER_CLASSES = ("TUMOR", "STROMA", "COMPLEX", "LYMPHO", "DEBRIS", "MUCOSA", "ADIPOSE", "EMPTY")
"""The eight classes in the order of their folder numbers (01_TUMOR ... 08_EMPTY)."""

_TILE = re.compile(r"^[^_]+_(?P<source>.+?)_Row_(?P<row>\d+)_Col_(?P<col>\d+)(?:\.[A-Za-z0-9]+)?$")
_CLASS_PREFIX = re.compile(r"^\d+[_\- ]+")
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
"""Names the dashboard turns into file or folder names (datasets, splits): one safe component.
Anchored with ``\\Z`` (not ``$``, which also matches before a final newline), so
``SAFE_NAME.match`` and :func:`is_safe_name` both require the whole text to match."""


def is_safe_name(text: object) -> bool:
    """Whether ``text`` is a string that :data:`SAFE_NAME` accepts as a whole."""
    return isinstance(text, str) and SAFE_NAME.fullmatch(text) is not None


def safe_name(text: str) -> str:
    """``text`` made into a name :data:`SAFE_NAME` accepts (other characters become '_')."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", text).lstrip("._-")[:64]
    return cleaned or "dataset"


@dataclass(frozen=True)
class TileName:
    source_image: str
    row: int
    col: int


def parse_tile_name(file_name: str) -> TileName | None:
    """Source image, row and column of a Kather-style tile name; None for other names."""
    match = _TILE.match(PurePath(file_name).name)
    if match is None:
        return None
    return TileName(match["source"], int(match["row"]), int(match["col"]))


def label_from_folder(folder_name: str) -> str:
    """``01_TUMOR`` -> ``TUMOR``; names without a number prefix are kept as they are."""
    stripped = _CLASS_PREFIX.sub("", folder_name)
    return stripped or folder_name


def kather_tile_name(tile_id: str, source_image: str, row: int, col: int, suffix: str = ".tif") -> str:
    """The file name Kather would give tile (row, col) of ``source_image``."""
    return f"{tile_id}_{source_image}_Row_{row}_Col_{col}{suffix}"
