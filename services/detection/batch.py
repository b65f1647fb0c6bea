"""Batch detection as a background job: several images or a zip in, a results table, CSV,
COCO JSON and a zip of annotated images out.

Zips are read member by member into a staging folder: only image files, no directories or
links, names reduced to a safe basename (no path traversal), and the member count and total
uncompressed size capped by ``DASHBOARD_MAX_ZIP_MEMBERS`` / ``DASHBOARD_MAX_ZIP_BYTES``. The
declared sizes are not trusted: reading stops as soon as the cap is passed.
"""

from __future__ import annotations

import io
import stat
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from services import archives
from services.config import get_settings
from services.detection.annotate import annotate
from services.detection.decode import select
from services.detection.detector import run_detection
from services.detection.exports import COLUMNS, detections_table, to_coco_results, to_csv
from services.errors import BadImage, UnsafeArchive, UserFacingError
from services.images import decode_image, encode_png
from services.jobs import JobContext, JobManager

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
JOB_KIND = "detection-batch"


@dataclass(frozen=True)
class BatchSettings:
    input_size: int
    score_threshold: float
    nms_threshold: float
    letterbox: bool = False
    classes: tuple[int, ...] | None = None


def safe_name(name: str, index: int) -> str:
    base = Path(name.replace("\\", "/")).name
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in base).lstrip(".")[:80] or "image"
    return f"{index:05d}_{cleaned}"


def extract_images(data: bytes, name: str, dest: Path, start_index: int = 0) -> list[Path]:
    """The image members of a zip, copied flat (names sanitised) into ``dest``; links skipped."""
    settings = get_settings()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise UnsafeArchive(f"{name}: not a readable zip ({error}).") from error
    with archive:
        members = archives.check_member_count(archive, settings.max_zip_members)
        paths, budget = [], settings.max_zip_bytes
        for info in members:
            if archives.is_junk(info) or stat.S_ISLNK(info.external_attr >> 16):
                continue
            if Path(info.filename).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            target = dest / safe_name(info.filename, start_index + len(paths))
            try:
                budget -= archives.copy_member(archive, info, target, budget, settings.max_zip_bytes)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as error:
                raise UnsafeArchive(f"{name}: member {info.filename!r} cannot be read ({error}).") from error
            paths.append(target)
    return paths


def stage_inputs(files: list[tuple[str, bytes]], root: Path | None = None) -> Path:
    """Write uploaded images (zips expanded safely) to a new staging folder and return it."""
    folder = (root or get_settings().data_root / "detection" / "batches") / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    count = 0
    for name, data in files:
        if name.lower().endswith(".zip"):
            count += len(extract_images(data, name, folder, count))
        else:
            (folder / safe_name(name, count)).write_bytes(data)
            count += 1
    if count == 0:
        raise UserFacingError("no images found in the upload (zips are searched for "
                              f"{', '.join(sorted(IMAGE_SUFFIXES))} files).")
    return folder


def run_batch(context: JobContext, backend, names: list[str], inputs: Path, settings: BatchSettings) -> dict:
    """The job: detect on every staged image, write annotated PNGs and the tables."""
    images = sorted(p for p in inputs.iterdir() if p.is_file())
    annotated_dir = context.dir / "annotated"
    annotated_dir.mkdir(parents=True, exist_ok=True)
    tables, problems = [], []
    for number, path in enumerate(images):
        context.check_stop()
        display = path.name.split("_", 1)[-1]
        try:
            image = decode_image(path).pixels
        except BadImage as error:
            problems.append({"image": display, "problem": str(error)})
            continue
        result = run_detection(backend, image, settings.input_size, name=display, letterbox=settings.letterbox)
        chosen = select(result.candidates, settings.score_threshold, settings.nms_threshold, settings.classes)
        tables.append(detections_table(display, chosen, names))
        (annotated_dir / f"{path.stem}.png").write_bytes(encode_png(annotate(image, chosen, names)))
        context.progress((number + 1) / len(images), f"{number + 1}/{len(images)} images")
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)
    (context.dir / "detections.csv").write_bytes(to_csv(table))
    (context.dir / "detections_coco.json").write_bytes(to_coco_results(table, names))
    with zipfile.ZipFile(context.dir / "annotated.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for png in sorted(annotated_dir.glob("*.png")):
            archive.write(png, png.name)
    pd.DataFrame(problems, columns=["image", "problem"]).to_csv(context.dir / "problems.csv", index=False)
    return {"images": len(images), "processed": len(tables), "problems": len(problems),
            "detections": int(len(table))}


def submit_batch(manager: JobManager, backend, names: list[str], files: list[tuple[str, bytes]],
                 settings: BatchSettings, model_title: str) -> str:
    inputs = stage_inputs(files)
    count = sum(1 for _ in inputs.iterdir())
    return manager.submit(
        JOB_KIND, f"{model_title} on {count} images ({backend.name}, {settings.input_size})",
        lambda context: run_batch(context, backend, names, inputs, settings),
        params={"inputs": str(inputs), "input_size": settings.input_size, "backend": backend.name,
                "score_threshold": settings.score_threshold, "nms_threshold": settings.nms_threshold},
    )


def batch_outputs(manager: JobManager, job_id: str) -> dict[str, Path]:
    directory = manager.job_dir(job_id)
    return {name: directory / name for name in ("detections.csv", "detections_coco.json", "annotated.zip",
                                                "problems.csv") if (directory / name).exists()}
