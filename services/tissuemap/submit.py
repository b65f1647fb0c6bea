"""Starting a tissue map: the ``tissue-map`` job's parameters are built here, and only here
(their meaning: :mod:`services.tissuemap.job`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.jobs import kinds

BATCH_SIZE = 32
TITLE_LENGTH = 120


@dataclass(frozen=True)
class MapSettings:
    """What the person chose for one map."""
    mpp: float | None
    """Microns per pixel entered by the person (None: the file says)."""
    threshold: int
    """Tissue threshold (colour saturation)."""
    min_tissue: float
    """Fraction of a tile that must be tissue."""
    overlap: int
    """Tiles per tile side."""
    min_confidence: float
    """Calibrated confidence a cell needs (below: 'uncertain')."""


def map_params(path: Path, settings: MapSettings, choice) -> dict:
    """The job parameters of a map of the file ``path`` (under the data root) with the model
    ``choice`` (:class:`services.tissuemap.models.ModelChoice`)."""
    return {"image": {"source": "path", "path": str(path)}, "mpp": settings.mpp, "threshold": settings.threshold,
            "min_tissue": settings.min_tissue, "overlap": settings.overlap,
            "min_confidence": settings.min_confidence, "model": choice.to_params(), "batch_size": BATCH_SIZE}


def submit_map(manager, path: Path, settings: MapSettings, choice) -> str:
    """Queue a map of ``path`` with ``choice``; its job id."""
    title = f"Map of {Path(path).name} with {choice.label}"[:TITLE_LENGTH]
    return manager.submit(kinds.TISSUE_MAP, title, map_params(path, settings, choice))
