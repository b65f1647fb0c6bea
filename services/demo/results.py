"""Starting the demo job and reading its finished result, for the Home page and the command line.

Nothing here imports TensorFlow: the page reads the files the job left in its folder (the map
overlay, the areas table, the HTML report) and the job's JSON result, which is untrusted (it
comes from the job store): every value is checked for its type before it is shown.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.demo.chain import MAP_DIR
from services.jobs import kinds
from services.jobs.store import FINISHED, JobState
from services.tissuemap import job as map_job

MAP_OUTPUT = f"{MAP_DIR}/{map_job.OUTPUT_DIR}"
"""Where a demo job's map lies in its folder (what a tissue-map job keeps in ``OUTPUT_DIR``)."""

TITLE = "Real-tissue demo: Kather 2016, MobileNetV2 strategy C, one mapped larger image"


def latest(manager) -> JobState | None:
    """The newest demo job (any status), or None."""
    jobs = manager.list(kind=kinds.REAL_TISSUE_DEMO)
    return jobs[0] if jobs else None


def latest_finished(manager) -> JobState | None:
    return next((job for job in manager.list(kind=kinds.REAL_TISSUE_DEMO) if job.status == FINISHED), None)


def start_or_resume(manager) -> str:
    """The demo job to follow: the active one, the newest unfinished one resumed, or a new one
    (which takes over the last finished demo's run and map while they are still there)."""
    newest = latest(manager)
    if newest is not None and newest.active:
        return newest.id
    if newest is not None and newest.status in ("failed", "stopped", "interrupted"):
        manager.resume(newest.id)
        return newest.id
    finished = latest_finished(manager)
    return manager.submit(kinds.REAL_TISSUE_DEMO, TITLE, {"reuse": finished.id} if finished is not None else {})


def map_jobs(manager) -> list[JobState]:
    """The finished demo jobs whose map is still there, as the Tissue map page lists maps: titled
    by their image, with the map's own result (areas, tumour-stroma ratio) and parameters (image,
    model: the tile inspector's Grad-CAM) in place of the demo's."""
    shown = []
    for job in manager.list(kind=kinds.REAL_TISSUE_DEMO):
        result = job.result if isinstance(job.result, dict) else {}
        mapped = result.get("map") if isinstance(result.get("map"), dict) else {}
        image = result.get("image") if isinstance(result.get("image"), dict) else {}
        if job.status != FINISHED or mapped.get("folder") != MAP_OUTPUT:
            continue
        params = mapped.get("params") if isinstance(mapped.get("params"), dict) else {}
        shown.append(dataclasses.replace(job, title=f"Real-tissue demo · map of {str(image.get('image'))[:80]}",
                                         params=params, result=mapped))
    return shown


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class DemoResult:
    """What a finished demo shows: its files and its numbers (checked types, never raw values)."""
    folder: Path
    test_correct: int | None
    test_n: int | None
    test_accuracy: float | None
    ci95: tuple[float, float] | None
    temperature: float | None
    ece_before: float | None
    ece_after: float | None
    data_label: str
    weights_label: str
    generated: bool
    random_weights: bool
    image: str
    image_method: str
    stroma_percent: float | None
    tsr_category: str
    run_id: str | None

    @property
    def map_folder(self) -> Path:
        return self.folder / MAP_DIR / "map"

    def file(self, name: str) -> Path | None:
        path = self.map_folder / name
        return path if path.is_file() else None

    def lines(self) -> list[str]:
        """The result in plain sentences (the command line prints them; the page shows them)."""
        lines = [f"Data: {self.data_label}.", f"Weights: {self.weights_label}."]
        if self.test_accuracy is not None and self.ci95 and self.test_n:
            lines.append(f"Held-out test accuracy {self.test_accuracy:.1%} ({self.test_correct} of {self.test_n} "
                         f"tiles; Wilson 95 % interval {self.ci95[0]:.1%} to {self.ci95[1]:.1%}), on a split "
                         "grouped by source image.")
        if self.temperature is not None:
            ece = (f"; test calibration error (ECE) {self.ece_before:.3f} before, {self.ece_after:.3f} after"
                   if self.ece_before is not None and self.ece_after is not None else "")
            lines.append(f"Temperature scaling on validation: T = {self.temperature:.2f}{ece}.")
        lines.append(f"Mapped image: {self.image} ({self.image_method}).")
        if self.stroma_percent is not None:
            lines.append(f"Tumour-stroma ratio: {self.stroma_percent:.1f} % stroma ({self.tsr_category}).")
        return lines


def demo_result(state: JobState, folder: Path) -> DemoResult | None:
    """The shown result of a finished demo job whose folder is ``folder``; None when it has none."""
    result = state.result if isinstance(state.result, dict) else {}
    calibrated = result.get("calibrate") if isinstance(result.get("calibrate"), dict) else {}
    labels = result.get("labels") if isinstance(result.get("labels"), dict) else {}
    image = result.get("image") if isinstance(result.get("image"), dict) else {}
    mapped = result.get("map") if isinstance(result.get("map"), dict) else {}
    ratio = mapped.get("tumour_stroma") if isinstance(mapped.get("tumour_stroma"), dict) else {}
    interval = calibrated.get("test_ci95")
    ci95 = (tuple(float(v) for v in interval) if isinstance(interval, list) and len(interval) == 2
            and all(_number(v) is not None for v in interval) else None)
    count = _number(calibrated.get("test_n"))
    correct = _number(calibrated.get("test_correct"))
    shown = DemoResult(
        folder=folder, test_correct=int(correct) if correct is not None else None,
        test_n=int(count) if count is not None else None, test_accuracy=_number(calibrated.get("test_accuracy")),
        ci95=ci95, temperature=_number(calibrated.get("temperature")),
        ece_before=_number(calibrated.get("test_ece_before")), ece_after=_number(calibrated.get("test_ece_after")),
        data_label=str(labels.get("data") or "unknown"), weights_label=str(labels.get("weights") or "unknown"),
        generated=bool(labels.get("generated")), random_weights=bool(labels.get("random_weights")),
        image=str(image.get("image") or "?")[:120], image_method=str(image.get("method") or "?")[:40],
        stroma_percent=_number(ratio.get("stroma_percent")), tsr_category=str(ratio.get("category") or "")[:60],
        run_id=result.get("run_id") if isinstance(result.get("run_id"), str) else None)
    return shown if shown.file(map_job.OVERLAY) is not None else None
