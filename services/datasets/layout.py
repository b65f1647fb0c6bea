"""Where a dataset's derived files lie under the data root: its name as one path component and
the folder of its saved splits (``<data_root>/splits/<slug>/<split>.csv``).

Both :mod:`services.datasets.sources` (which deletes a dataset's splits with it) and
:mod:`services.datasets.splits` (which writes and reads them) ask this module, so neither
imports the other's way of naming them.
"""

from __future__ import annotations

from pathlib import Path

from services.config import get_settings
from services.datasets.naming import safe_name


def slug(name: str) -> str:
    """A dataset name as one safe path component (registered names may contain '/')."""
    return safe_name(name.replace("/", "__"))


def split_dir(dataset: str) -> Path:
    """The folder of the saved splits of ``dataset``."""
    return get_settings().splits_dir / slug(dataset)
