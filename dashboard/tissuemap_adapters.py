"""Cached helpers of the Tissue map page (no TensorFlow here: models run in jobs and the model service)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from services.config import get_settings
from services.demo import results as demo_results
from services.datasets.naming import safe_name
from services.errors import BadImage, UserFacingError
from services.jobs import kinds
from services.tissuemap import detail, reader, tissue
from services.tissuemap import job as map_job
from services.tissuemap.grid import Grid, cell_coverage, tiles_in_tissue
from services.tissuemap.maps import TissueMap, load_map
from services.tissuemap.models import ModelChoice, list_run_models

UPLOAD_TYPES = ["tif", "tiff", "btf", "svs", "ndpi", "png", "jpg", "jpeg"]


@dataclass
class Preview:
    name: str
    width: int
    height: int
    mpp: float | None
    synthetic: bool
    format: str
    thumbnail: np.ndarray
    factor: int
    suggested_threshold: int
    notes: tuple[str, ...] = ()


def map_jobs(manager, kind: str) -> list:
    """The tissue-map jobs (``kind``) and the real-tissue demo's finished maps, newest first."""
    return sorted([*manager.list(kind=kind), *demo_results.map_jobs(manager)], key=lambda job: job.created,
                  reverse=True)


def map_output(manager, state) -> Path:
    """The folder holding a listed map's files (a demo job keeps its map one level down)."""
    inside = demo_results.MAP_OUTPUT if state.kind == kinds.REAL_TISSUE_DEMO else map_job.OUTPUT_DIR
    return manager.job_dir(state.id) / inside


@st.cache_data(show_spinner="Reading the image…", max_entries=6)
def preview(path: str, mtime: float, target_mpp: float | None) -> Preview | str:
    """Thumbnail and metadata (the job reads the same thumbnail, so the preview matches the map),
    read within :data:`~services.tissuemap.reader.PREVIEW_SECONDS`; or the refusal in a sentence
    (cached too, so a refused image does not cost the time again on every rerun)."""
    try:
        with reader.open_image(path, target_mpp=target_mpp) as source:
            thumbnail, factor = source.thumbnail(deadline=time.monotonic() + reader.PREVIEW_SECONDS)
            return Preview(source.name, source.width, source.height, source.mpp,
                           bool(getattr(source, "synthetic", False)), source.format, thumbnail, factor,
                           tissue.suggested_threshold(thumbnail), tuple(source.notes))
    except BadImage as error:
        return str(error)


def image_preview(path: Path, target_mpp: float | None) -> Preview:
    """The cached preview of ``path``; raises :class:`BadImage` for an image that was refused."""
    found = preview(str(path), path.stat().st_mtime, target_mpp)
    if isinstance(found, str):
        raise BadImage(found)
    return found


def tissue_tiles(view: Preview, mpp: float, field_um: float, threshold: float, min_tissue: float,
                 overlap: int, ring: bool = False) -> tuple[np.ndarray, int]:
    """(mask preview, number of tiles the job will classify) for these settings (``ring``: with
    the tiles next to the tissue, as the job does for a model with a background class)."""
    mask = tissue.tissue_mask(view.thumbnail, threshold)
    grid = Grid(view.width, view.height, field_um / mpp, overlap)
    count = len(tiles_in_tissue(grid, cell_coverage(grid, mask, view.factor), min_tissue, ring=ring))
    return tissue.mask_preview(view.thumbnail, mask), count


@st.cache_data(show_spinner=False, ttl=10)
def _run_models(runs_dir: str) -> list[ModelChoice]:
    from services.training.store import RunStore

    return list_run_models(RunStore(Path(runs_dir) / "runs.sqlite"))


def run_models() -> list[ModelChoice]:
    """Finished runs with a saved model and classes of this data root's store (re-read every 10 s)."""
    return _run_models(str(get_settings().runs_dir))


@st.cache_resource(show_spinner="Preparing the demo mosaic…")
def demo_mosaic(data_root: str) -> Path:
    from services.tissuemap.demo import ensure_demo_mosaic

    return ensure_demo_mosaic(Path(data_root))


def save_upload(name: str, data: bytes) -> Path:
    """An uploaded image, kept under ``<data root>/tissuemap/uploads/<content hash>/`` (once) with its
    original file name (made safe), which the map's report and downloads then carry."""
    suffix = Path(name).suffix.lower()
    if suffix.lstrip(".") not in UPLOAD_TYPES:
        raise UserFacingError(f"{Path(name).name}: not an image type the map reads ({', '.join(UPLOAD_TYPES)}).")
    folder = get_settings().tissuemap_dir / "uploads" / hashlib.sha256(data).hexdigest()[:20]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_name(Path(Path(name).name).stem)[:60]}{suffix}"
    if not path.exists():
        staging = path.with_name(f".{path.name}.part")
        staging.write_bytes(data)
        staging.replace(path)
    return path


@st.cache_data(show_spinner="Loading the map…", max_entries=4)
def job_map(folder: str, mtime: float) -> tuple[TissueMap, np.ndarray]:
    from PIL import Image

    tissue_map = load_map(Path(folder))
    thumbnail = np.asarray(Image.open(Path(folder) / map_job.THUMBNAIL).convert("RGB"))
    return tissue_map, thumbnail


@st.cache_resource(show_spinner=False, max_entries=2)
def _open_source(path: str, mtime: float, target_mpp: float | None) -> reader.ImageSource:
    """The image kept open between reruns, so panning decodes only the chunks it has not seen
    (each open TIFF keeps at most ``reader.CHUNK_CACHE_BYTES`` of decoded chunks)."""
    return reader.open_image(path, target_mpp=target_mpp)


@st.cache_data(show_spinner=False, max_entries=16)
def _detail_pixels(path: str, mtime: float, target_mpp: float | None, box: detail.DetailBox) -> np.ndarray:
    return detail.read_detail(_open_source(path, mtime, target_mpp), box)


def detail_pixels(path: str, target_mpp: float | None, box: detail.DetailBox) -> np.ndarray:
    """The detail view's pixels of ``box`` at the map's level (only the box is read; cached per box)."""
    return _detail_pixels(path, Path(path).stat().st_mtime, target_mpp, box)


def read_tile(path: str, x: int, y: int, side: int, target_mpp: float | None) -> np.ndarray:
    """One tile at the map's level, from the image the detail view keeps open (not reopened per rerun)."""
    return _open_source(path, Path(path).stat().st_mtime, target_mpp).read_region(x, y, side, side)


def inspect_tile(model_path: str, tile: np.ndarray) -> tuple[dict, np.ndarray | None]:
    """The model service's view of one tile: (result JSON, Grad-CAM overlay or None).

    The one place the page asks the model service about a tile (``keras.inspect_tile``)."""
    from services.model_service import client

    reply = client.call("keras.inspect_tile", {"model_path": model_path}, arrays={"tile": tile})
    images = [a for key, a in sorted(reply.arrays.items()) if getattr(a, "ndim", 0) == 3]
    preferred = reply.arrays.get("overlay", reply.arrays.get("gradcam"))
    overlay = preferred if preferred is not None and preferred.ndim == 3 else (images[0] if images else None)
    return reply.result, overlay
