"""Batch detection as a job body (kind ``detection-batch``): photos and zips in, a results
table, CSV, COCO JSON, a zip of annotated images and a problem report out.

The page passes the uploaded bytes as job files (:func:`job_files`, names ``input-NNNNN-<name>``);
the body (:func:`batch_job`, in a worker process) extracts zips inside the job folder with
:func:`services.archives.extract_zip` (declared and actual sizes capped, only image members,
flat safe names), builds its own backend from the parameters, and deletes the staged inputs
when it ends, however it ends. Unreadable images and refused zips become rows of the problem
report, not failures of the job.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from services import archives, provenance
from services.detection.annotate import annotate
from services.detection.decode import check_input_size, check_threshold, select
from services.csv_files import write_csv
from services.detection.detector import run_detection
from services.detection.exports import COLUMNS, detections_table, to_coco_results, to_csv
from services.errors import BadImage, UserFacingError
from services.images import decode_image, encode_png
from services.jobs import kinds

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
INPUT_PREFIX = "input-"
STAGED = "inputs"
DETECTIONS_CSV, DETECTIONS_COCO = "detections.csv", "detections_coco.json"
ANNOTATED_ZIP, PROBLEMS_CSV = "annotated.zip", "problems.csv"
OUTPUTS = (DETECTIONS_CSV, DETECTIONS_COCO, ANNOTATED_ZIP, PROBLEMS_CSV)
"""The files a finished batch job leaves in its folder (the page offers each for download)."""
MAX_PROBLEMS_IN_RESULT = 100


@dataclass(frozen=True)
class BatchSettings:
    input_size: int
    score_threshold: float
    nms_threshold: float
    letterbox: bool = False
    classes: tuple[int, ...] | None = None

    @classmethod
    def from_params(cls, params: dict) -> "BatchSettings":
        """Checked settings from job parameters (untrusted JSON)."""
        size = check_input_size(params.get("input_size"))
        classes = params.get("classes")
        if classes is not None and not (isinstance(classes, list) and all(isinstance(c, int) for c in classes)):
            raise UserFacingError("the class filter must be a list of class numbers.")
        return cls(size, check_threshold(params.get("score_threshold"), "score threshold"),
                   check_threshold(params.get("nms_threshold"), "NMS threshold"),
                   bool(params.get("letterbox", False)), tuple(classes) if classes else None)


def safe_name(name: str, index: int) -> str:
    return archives.flat_name(name.replace("\\", "/"), index)


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def job_files(files: list[tuple[str, bytes]]) -> dict[str, bytes]:
    """Uploaded (name, bytes) pairs as job files; refuses an upload with nothing to detect on."""
    staged = {f"{INPUT_PREFIX}{safe_name(name, number)}": data for number, (name, data) in enumerate(files)
              if is_image_name(name) or name.lower().endswith(".zip")}
    if not staged:
        raise UserFacingError(f"no photos or zips in the upload (photos: {', '.join(sorted(IMAGE_SUFFIXES))}).")
    return staged


def display_name(path: Path) -> str:
    """``input-00003_dog.jpg`` or ``00012_dog.jpg`` -> ``dog.jpg``."""
    return path.name.removeprefix(INPUT_PREFIX).split("_", 1)[-1]


def expand_inputs(folder: Path, problems: list[dict], stop=None) -> list[Path]:
    """Every staged photo, zips extracted flat into ``<folder>/inputs/<zip>``; refused zips are
    reported in ``problems``."""
    images = []
    for path in sorted(folder.glob(f"{INPUT_PREFIX}*")):
        if not path.name.lower().endswith(".zip"):
            images.append(path)
            continue
        try:
            extracted = archives.extract_zip(path, folder / STAGED / path.stem, select=is_image_name, flat=True,
                                             label=display_name(path), stop=stop)
        except UserFacingError as error:
            problems.append({"image": display_name(path), "problem": str(error)})
            continue
        images.extend(extracted.folder / name for name in extracted.files)
    return images


def remove_inputs(folder: Path) -> None:
    for path in folder.glob(f"{INPUT_PREFIX}*"):
        path.unlink(missing_ok=True)
    shutil.rmtree(folder / STAGED, ignore_errors=True)


def batch_job(params: dict, context) -> dict:
    """Job body: detect on every staged image with the model and backend named in ``params``
    (``model``: a model key, ``backend``: a backend name, plus :class:`BatchSettings` fields)."""
    from services.detection.registry import open_backend

    try:
        settings = BatchSettings.from_params(params)
        context.progress(0.0, "loading the model")
        opened = open_backend(str(params.get("model")), str(params.get("backend")))
        return run_batch(context, opened.backend, opened.names, settings, opened.random_weights)
    finally:
        remove_inputs(context.dir)


def run_batch(context, backend, names: list[str], settings: BatchSettings, random_weights: bool = False) -> dict:
    """Detect on every staged image, write annotated PNGs, the tables and the problem report."""
    problems: list[dict] = []
    images = expand_inputs(context.dir, problems, context.should_stop)
    input_size = getattr(backend, "input_size", None) or settings.input_size
    annotated_dir = context.dir / "annotated"
    annotated_dir.mkdir(parents=True, exist_ok=True)
    tables = []
    for number, path in enumerate(images):
        context.check_stop()
        display = display_name(path)
        try:
            image = decode_image(path).pixels
        except BadImage as error:
            problems.append({"image": display, "problem": str(error)})
            continue
        result = run_detection(backend, image, input_size, name=display, letterbox=settings.letterbox)
        chosen = select(result.candidates, settings.score_threshold, settings.nms_threshold, settings.classes)
        tables.append(detections_table(display, chosen, names))
        picture = annotate(image, chosen, names)
        if random_weights:
            picture = provenance.mark_random_weights(picture, provenance.DETECTION_MARK)
        (annotated_dir / f"{number:05d}_{Path(display).stem}.png").write_bytes(encode_png(picture))
        context.progress((number + 1) / len(images), f"{number + 1}/{len(images)} images")
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)
    (context.dir / DETECTIONS_CSV).write_bytes(to_csv(table))
    (context.dir / DETECTIONS_COCO).write_bytes(to_coco_results(table, names))
    with zipfile.ZipFile(context.dir / ANNOTATED_ZIP, "w", zipfile.ZIP_DEFLATED) as archive:
        for png in sorted(annotated_dir.glob("*.png")):
            archive.write(png, png.name)
    shutil.rmtree(annotated_dir, ignore_errors=True)
    write_csv(pd.DataFrame(problems, columns=["image", "problem"]), context.dir / PROBLEMS_CSV)
    return {"images": len(images), "processed": len(tables), "detections": int(len(table)), "random_weights": random_weights,
            "problems": problems[:MAX_PROBLEMS_IN_RESULT], "problem_count": len(problems)}


def batch_params(model_key: str, backend_name: str, settings: BatchSettings) -> dict:
    return {"model": model_key, "backend": backend_name, **asdict(settings),
            "classes": list(settings.classes) if settings.classes else None}


def submit_batch(manager, model_key: str, backend_name: str, files: list[tuple[str, bytes]],
                 settings: BatchSettings, model_title: str) -> str:
    staged = job_files(files)
    return manager.submit(kinds.DETECTION_BATCH, f"{model_title} on {len(staged)} upload(s) ({backend_name}, {settings.input_size})",
                          batch_params(model_key, backend_name, settings), files=staged)


def batch_outputs(manager, job_id: str) -> dict[str, Path]:
    directory = manager.job_dir(job_id)
    return {name: directory / name for name in OUTPUTS if (directory / name).exists()}
