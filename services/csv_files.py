"""Every CSV file the product writes, with cells a spreadsheet cannot run as formulas.

Class names, file names and metric names come from users; a cell such as ``=HYPERLINK(...)`` or
``+cmd|' /C calc'!A0`` is run by Excel or LibreOffice when the file is opened. Following OWASP's
advice on CSV injection, a text cell (or column name) that starts with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return is written with a single quote in front (``'=HYPERLINK(...)``), which
spreadsheets show as text. Numbers stay numbers: numeric columns are not touched, and neither is
text that is a plain finite number (``-0.5``). Text that already starts with a quote before such a
character gets one more quote, so :func:`read_csv` gives back exactly what was written.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _needs_quote(text: str) -> bool:
    if text.startswith(FORMULA_STARTS):
        return not _is_number(text)
    return text.startswith(QUOTE) and _needs_quote(text[1:])


def neutralise(value):
    """``value`` as a spreadsheet shows it as text: quoted when it is text a spreadsheet would run."""
    return QUOTE + value if isinstance(value, str) and _needs_quote(value) else value


def restore(value):
    """The value :func:`neutralise` was given (its inverse)."""
    if isinstance(value, str) and value.startswith(QUOTE) and _needs_quote(value[1:]):
        return value[1:]
    return value


def _map_text(frame: pd.DataFrame, function) -> pd.DataFrame:
    frame = frame.copy()
    for column in frame.columns:
        if not (pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column])
                or pd.api.types.is_datetime64_any_dtype(frame[column])):
            frame[column] = frame[column].map(function)
    frame.columns = [function(column) for column in frame.columns]
    return frame


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names are neutralised."""
    return _map_text(frame, neutralise)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV of ``frame`` (no index), safe to open in a spreadsheet. Rows end in CRLF (RFC 4180),
    so a cell holding a lone carriage return or newline is quoted and cannot start a new row."""
    return safe_frame(frame).to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write :func:`csv_bytes` of ``frame`` to ``path``."""
    path = Path(path)
    path.write_bytes(csv_bytes(frame))
    return path


def read_csv(path: str | os.PathLike, **options) -> pd.DataFrame:
    """A CSV written by :func:`write_csv` (or edited since), with its text cells restored."""
    return _map_text(pd.read_csv(path, **options), restore)
