"""The ``tissue-map`` job body: classify a large image tile by tile, resumably.

Params (JSON)::

    {"image": {"source": "upload", "file": "<name in the job folder>"}
              | {"source": "path", "path": "<path under the data root>"} | {"source": "demo"},
     "model": ModelChoice.to_params(),
     "mpp": 0.495 or null,           # used when the file has no resolution metadata
     "threshold": 20 or null,        # tissue threshold (null: Otsu's, as the page previews)
     "min_tissue": 0.1,              # fraction of tissue a tile needs to be classified
     "overlap": 1,                   # tiles per tile side (stride = tile / overlap)
     "batch_size": 32,
     "min_confidence": 0.5}          # cells less confident (calibrated) are "uncertain" (default 0: none)

Predictions are written batch by batch into ``predictions/`` of the job folder; a resumed job
continues after the last saved batch (same plan), a new one starts afresh. The outputs
(map, overlay, label TIFF, CSV, GeoJSON, report) are written into a staging folder and renamed
to ``map/`` at the end, so a failed or stopped job never leaves half of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services import untrusted_json
from services.config import confine
from services.csv_files import csv_bytes
from services.errors import BadImage, UserFacingError
from services.metrics.calibration import apply_temperature, temperature_of
from services.tissuemap import outputs, reader, tissue
from services.tissuemap.grid import MAX_OVERLAP, Grid, MapAccumulator, cell_coverage, tiles_in_tissue
from services.tissuemap.maps import TissueMap, has_background
from services.tissuemap.models import ModelChoice, Predictor, load_predictor

OUTPUT_DIR = "map"
PREDICTIONS_DIR = "predictions"
PLAN_FILE = "plan.json"
# The files of a finished map's ``map/`` folder, besides maps.MAP_FILE and maps.META_FILE (written by
# TissueMap.save); pages and the demo ask for them by these names.
THUMBNAIL, TISSUE_PREVIEW, OVERLAY = "thumbnail.png", "tissue.png", "overlay.png"
LABELS_TIFF, TILES_CSV, REGIONS_GEOJSON = "labels.tif", "tiles.csv", "regions.geojson"
AREAS_CSV, REPORT_HTML = "areas.csv", "report.html"
DEFAULT_MIN_TISSUE = 0.1
DEFAULT_BATCH = 32
VERSION = "tissue-map 1"


def image_path(params: dict, folder: Path) -> Path:
    """The image the job maps: an uploaded file in the job folder, a file under the data root, or the demo."""
    spec = params.get("image") or {}
    source = spec.get("source")
    if source == "upload":
        return confine(spec.get("file") or "", folder)
    if source == "path":
        return confine(spec.get("path") or "")
    if source == "demo":
        from services.tissuemap.demo import ensure_demo_mosaic

        return ensure_demo_mosaic()
    raise UserFacingError("Choose an image for the map (demo mosaic, a file under the data root, or an upload).")


def image_mpp(source: reader.ImageSource, entered) -> float:
    if source.mpp:
        return source.mpp
    if entered in (None, ""):
        raise BadImage(f"{source.name} does not say its resolution (microns per pixel). Enter it (Kather 2016: "
                       "0.495 um/px; 20x scanners: about 0.5; 40x: about 0.25).")
    return reader.check_mpp(entered)


class TileReader:
    """Reads tiles of the grid from the source and resizes them to the model's input."""

    def __init__(self, source: reader.ImageSource, grid: Grid, size: tuple[int, int]):
        self.source, self.grid, self.size = source, grid, size

    def read(self, tiles: np.ndarray) -> np.ndarray:
        from PIL import Image

        side = self.grid.tile_px
        batch = np.empty((len(tiles), self.size[0], self.size[1], 3), np.uint8)
        for i, (row, col) in enumerate(tiles.tolist()):
            x, y = self.grid.tile_origin(row, col)
            pixels = self.source.read_region(x, y, side, side)
            if pixels.shape[:2] != self.size:
                method = Image.Resampling.BOX if side > self.size[0] else Image.Resampling.BILINEAR
                pixels = np.asarray(Image.fromarray(pixels).resize(self.size[::-1], method))
            batch[i] = pixels
        return batch


def _plan(path: Path, source, grid: Grid, choice: ModelChoice, threshold: float, min_tissue: float,
          tiles: np.ndarray) -> dict:
    stat = path.stat()
    return {"image": path.name, "size": stat.st_size, "mtime": stat.st_mtime, "level": getattr(source, "level", 0),
            "grid": grid.to_dict(), "model": choice.path, "threshold": threshold, "min_tissue": min_tissue,
            "tiles": int(len(tiles)), "version": VERSION}


def _saved_batches(folder: Path, plan: dict, resumed: bool) -> dict[int, np.ndarray]:
    """Probabilities of the batches already saved (start index -> array) when resuming the same plan."""
    predictions, plan_file = folder / PREDICTIONS_DIR, folder / PLAN_FILE
    if resumed and untrusted_json.read_or(plan_file, None, allow_nan=True) == plan:
        saved = {}
        for chunk in sorted(predictions.glob("*.npy")):
            saved[int(chunk.stem)] = np.load(chunk, allow_pickle=False)
        return saved
    shutil.rmtree(predictions, ignore_errors=True)
    predictions.mkdir(parents=True)
    plan_file.write_text(json.dumps(plan))
    return {}


def _save_batch(folder: Path, start: int, probabilities: np.ndarray) -> None:
    target = folder / PREDICTIONS_DIR / f"{start:09d}.npy"
    staging = target.with_name(f".{uuid.uuid4().hex[:8]}.npy")
    np.save(staging, probabilities.astype(np.float32))
    os.replace(staging, target)


def predict_tiles(context, predictor: Predictor, tile_reader: TileReader, tiles: np.ndarray, batch_size: int,
                  saved: dict[int, np.ndarray]) -> tuple[np.ndarray, dict]:
    """Probabilities of every tile, batch by batch (saved as they come), with progress and ETA."""
    results = np.zeros((len(tiles), predictor.outputs), np.float32)
    todo = []
    for start in range(0, len(tiles), batch_size):
        chunk = saved.get(start)
        if chunk is not None and chunk.shape == (len(tiles[start:start + batch_size]), predictor.outputs):
            results[start:start + batch_size] = chunk
        else:
            todo.append(start)
    done_before = len(tiles) - sum(len(tiles[s:s + batch_size]) for s in todo)
    began, done = time.monotonic(), 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tile-reader") as pool:
        pending = pool.submit(tile_reader.read, tiles[todo[0]:todo[0] + batch_size]) if todo else None
        for position, start in enumerate(todo):
            batch = pending.result()
            if position + 1 < len(todo):
                following = todo[position + 1]
                pending = pool.submit(tile_reader.read, tiles[following:following + batch_size])
            context.check_stop()
            probabilities = predictor.predict(batch)
            results[start:start + len(batch)] = probabilities
            _save_batch(context.dir, start, probabilities)
            done += len(batch)
            elapsed = time.monotonic() - began
            speed = done / elapsed if elapsed > 0 else 0.0
            remaining = len(tiles) - done_before - done
            eta = remaining / speed if speed else None
            context.progress(0.05 + 0.9 * (done_before + done) / len(tiles),
                             f"{done_before + done:,}/{len(tiles):,} tiles · {speed:.1f} tiles/s"
                             + (f" · ETA {_seconds(eta)}" if eta is not None else ""))
    elapsed = time.monotonic() - began
    return results, {"tiles_predicted_now": done, "tiles_resumed": done_before,
                     "tiles_per_second": done / elapsed if elapsed > 0 and done else None}


def _seconds(value: float) -> str:
    value = int(round(value))
    return f"{value // 60} min {value % 60:02d} s" if value >= 60 else f"{value} s"


def _software() -> dict:
    import platform
    import sys

    import tifffile

    versions = {"dashboard": VERSION, "python": platform.python_version(), "numpy": np.__version__,
                "tifffile": tifffile.__version__}
    for module in ("keras", "tensorflow", "onnxruntime"):
        loaded = sys.modules.get(module)
        if loaded is not None:
            versions[module] = getattr(loaded, "__version__", "?")
    return versions


def tissue_files(thumbnail: np.ndarray, mask: np.ndarray) -> dict[str, Callable[[], bytes]]:
    """The outputs known once the tissue is found (the job makes them while the tiles are classified)."""
    from services.images import FAST_PNG, encode_png

    return {THUMBNAIL: lambda: encode_png(thumbnail, FAST_PNG),
            TISSUE_PREVIEW: lambda: encode_png(tissue.mask_preview(thumbnail, mask), FAST_PNG)}


def write_outputs(folder: Path, tissue_map: TissueMap, thumbnail: np.ndarray, factor: int,
                  mask: np.ndarray, choice: ModelChoice, made: dict[str, Future] | None = None) -> Path:
    """Every output of the map, written to a staging folder and renamed to ``map/`` in one step.

    The files are made two at a time (PNG and TIFF encoding release the GIL) and the PNGs use
    a fast zlib level: the outputs cost about as much as the inference of a small model.
    ``made``: files already being made (:func:`tissue_files`, started during the inference)."""
    from services.images import FAST_PNG, encode_png
    from services.tissuemap import report

    target = folder / OUTPUT_DIR
    staging = folder / f".{OUTPUT_DIR}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    made = made or {}
    try:
        overlay = outputs.overlay(thumbnail, factor, tissue_map)
        files = {
            **{name: make for name, make in tissue_files(thumbnail, mask).items() if name not in made},
            OVERLAY: lambda: encode_png(overlay, FAST_PNG),
            LABELS_TIFF: lambda: outputs.label_tiff(tissue_map),
            TILES_CSV: lambda: outputs.tiles_csv(tissue_map),
            REGIONS_GEOJSON: lambda: outputs.geojson_bytes(tissue_map),
            AREAS_CSV: lambda: csv_bytes(outputs.areas_frame(tissue_map)),
            REPORT_HTML: lambda: report.render(tissue_map, thumbnail, overlay, choice.card).encode("utf-8"),
        }
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="map-outputs") as pool:
            made = made | {name: pool.submit(make) for name, make in files.items()}
            tissue_map.save(staging)
            for name, future in made.items():
                (staging / name).write_bytes(future.result())
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def setting(params: dict, key: str, default, low: float, high: float, kind=float):
    """A numeric job parameter within [low, high] (params are untrusted JSON)."""
    value = params.get(key)
    if value is None:
        return default
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        raise UserFacingError(f"{key.replace('_', ' ')} must be a number from {low:g} to {high:g} (got {value!s:.20}).")
    return number


@dataclass
class Detection:
    """Where the tissue is: the thumbnail, its mask, each cell's tissue coverage, the tiles to classify."""
    thumbnail: np.ndarray
    factor: int
    threshold: float
    min_tissue: float
    mask: np.ndarray
    coverage: np.ndarray
    tiles: np.ndarray


def detect_tissue(source: reader.ImageSource, grid: Grid, params: dict,
                  thumbnail: tuple[np.ndarray, int] | None = None, ring: bool = False) -> Detection:
    """``thumbnail``: ``source.thumbnail()`` when it was already made (see :func:`early_thumbnail`);
    ``ring``: classify the tiles next to the tissue too (see :func:`tiles_in_tissue`)."""
    thumbnail, factor = thumbnail or source.thumbnail()
    threshold = setting(params, "threshold", None, 0, 255)
    threshold = float(tissue.suggested_threshold(thumbnail) if threshold is None else threshold)
    min_tissue = setting(params, "min_tissue", DEFAULT_MIN_TISSUE, 0.0, 1.0)
    mask = tissue.tissue_mask(thumbnail, threshold)
    coverage = cell_coverage(grid, mask, factor)
    tiles = tiles_in_tissue(grid, coverage, min_tissue, ring=ring)
    if not len(tiles):
        raise BadImage(f"No tissue found in {source.name} at threshold {threshold:g} (every tile is background "
                       "or empty glass). Lower the tissue threshold, or check the image.")
    return Detection(thumbnail, factor, threshold, min_tissue, mask, coverage, tiles)


@dataclass
class EarlyThumbnail:
    """The thumbnail of a TIFF's full-resolution level, made while the model loads (the level the
    job reads is only known once the model's input size is). Its source stays open: the pixels it
    decoded are handed to the job's source when that reads the same level (:meth:`hand_over`), so
    a map of an image that fits the chunk cache decodes each chunk once."""
    size: tuple[int, int]
    level: int
    thumbnail: tuple[np.ndarray, int]
    source: reader.ImageSource

    @classmethod
    def make(cls, path: Path) -> "EarlyThumbnail | None":
        """None for files that are not TIFFs (they are decoded whole: not twice) or that fail to
        read: the job then makes the thumbnail itself, and reports any problem with the file."""
        if not reader.is_tiff(path):
            return None
        try:
            source = reader.open_image(path)
        except Exception:  # noqa: BLE001 - only a head start; the job's own read reports the problem
            return None
        try:
            return cls((source.width, source.height), getattr(source, "level", 0), source.thumbnail(), source)
        except Exception:  # noqa: BLE001 - as above
            source.close()
            return None

    def for_source(self, source: reader.ImageSource) -> tuple[np.ndarray, int] | None:
        same = (self.size, self.level) == ((source.width, source.height), getattr(source, "level", 0))
        return self.thumbnail if same else None

    def hand_over(self, source: reader.ImageSource) -> None:
        """Give ``source`` the decoded pixels (when it reads the same level), then close."""
        try:
            source.adopt_chunks(self.source)
        finally:
            self.close()

    def close(self) -> None:
        self.source.close()


def _close_early(early: Future) -> None:
    """Close the early thumbnail's file (again: closing twice is harmless), also when the job
    failed before taking it over."""
    made = early.result()
    if made is not None:
        made.close()


def tissue_map_job(params: dict, context) -> dict:
    choice = ModelChoice.from_params(params.get("model"))
    path = image_path(params, context.dir)
    overlap = setting(params, "overlap", 1, 1, MAX_OVERLAP, int)
    batch_size = setting(params, "batch_size", DEFAULT_BATCH, 1, 512, int)
    min_confidence = setting(params, "min_confidence", 0.0, 0.0, 1.0)
    context.progress(0.0, "loading the model")
    # Overlapped: the thumbnail with loading the model, the model's first runs (tracing its graph
    # and setting up the batch shape: seconds for MobileNet v2) with finding the tissue. A worker
    # that ran a map of the same model file before keeps it loaded and run (load_predictor).
    with contextlib.ExitStack() as closing:
        helper = closing.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="map-prepare"))
        early = helper.submit(EarlyThumbnail.make, path)
        closing.callback(_close_early, early)  # (runs first: after the job took it over, or failed)
        predictor = load_predictor(choice)
        model_kept = bool(predictor.warmed)
        warming = helper.submit(predictor.warm_up, (1, batch_size))
        with reader.open_image(path, target_mpp=choice.field_um / predictor.input_size[0]) as source:
            mpp = image_mpp(source, params.get("mpp"))
            grid = Grid(source.width, source.height, choice.field_um / mpp, overlap)
            context.progress(0.01, "finding tissue")
            made = early.result()
            found = detect_tissue(source, grid, params, made.for_source(source) if made else None,
                                  ring=has_background(choice.classes))
            if made is not None:
                made.hand_over(source)
            warming.result()
            early_files = {name: helper.submit(make) for name, make in tissue_files(found.thumbnail, found.mask).items()}
            plan = _plan(path, source, grid, choice, found.threshold, found.min_tissue, found.tiles)
            saved = _saved_batches(context.dir, plan, context.resumed)
            context.update_result(tiles=int(len(found.tiles)), classes=choice.classes,
                                  synthetic_model=choice.synthetic)
            probabilities, speed = predict_tiles(context, predictor,
                                                 TileReader(source, grid, predictor.input_size), found.tiles,
                                                 batch_size, saved)
            temperature = temperature_of(choice.card)  # calibrated on the model's validation split
            probabilities = apply_temperature(probabilities, temperature) if temperature != 1.0 else probabilities
            meta = {"image": source.name, "image_size": (source.width, source.height),
                    "downsample": float(getattr(source, "downsample", 1.0)),
                    "synthetic_image": bool(getattr(source, "synthetic", False)),
                    "mpp_source": "file metadata" if source.mpp else "entered"}
    context.progress(0.96, "writing the map and its report")
    accumulator = MapAccumulator(grid, predictor.outputs)
    accumulator.add(found.tiles, probabilities)
    meta |= {"threshold": found.threshold, "min_tissue": found.min_tissue, "overlap": grid.overlap,
             "thumbnail_factor": found.factor, "model": choice.label, "synthetic": choice.synthetic,
             "field_um": choice.field_um, "model_card": choice.card, "temperature": temperature,
             "min_confidence": min_confidence, "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
             "software": _software(), "model_kept": model_kept, **speed}
    tissue_map = TissueMap(accumulator.probabilities(), found.coverage, grid, choice.classes, mpp, meta,
                           found.tiles, probabilities)
    write_outputs(context.dir, tissue_map, found.thumbnail, found.factor, found.mask, choice, early_files)
    context.progress(1.0, f"{len(found.tiles):,} tiles mapped")
    return {"output": OUTPUT_DIR, "tiles": int(len(found.tiles)), "areas": tissue_map.areas(),
            "tumour_stroma": tissue_map.tumour_stroma(), "synthetic_model": choice.synthetic,
            "synthetic_image": meta["synthetic_image"], "mpp": mpp, "model_kept": model_kept, **speed}
