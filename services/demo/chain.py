"""The real-tissue demo's job body (kind ``real-tissue-demo``, resumable): seven steps in one job.

1. ``tiles``: Kather 2016 tiles zip downloaded (resumable, md5 checked), extracted, indexed
   (:func:`services.datasets.tasks.download_install_index`); skipped when installed.
2. ``weights``: MobileNetV2's ImageNet no-top weights through the weights registry.
3. ``image``: one larger image: already there, from the whole zip when it is there, by HTTP
   range requests (:mod:`services.remote_zip`), or from the whole zip downloaded when the server
   does not answer ranges (the progress line says its size first).
4. ``split``: grouped by source image, saved as split :data:`SPLIT` of ``kather2016``.
5. ``train``: strategy C (cached features, global-average-pooling head) as a training-monitor run.
6. ``calibrate``: the run's temperature (fitted on validation when training ended) and its
   held-out test score with the Wilson 95 % interval and n, read from the run.
7. ``map``: the tissue-map job body on that image with the run's model, which applies the run's
   temperature to the probabilities (calibrated maps), in ``map-job/``.

Each step's outcome is kept in ``demo.json`` in the job folder, so a resumed (or killed and
resumed) job continues with the first unfinished step; every step also reuses what is on disk
(downloads, extracted data, cached features, the split). A new demo job started after a finished
one (``params["reuse"]``: that job's id) takes over its run, calibration and map while they are
still there and were made with the same settings and image (:func:`reusable_steps`), so it ends
at once instead of training again. Offline, missing files are named with where to put them
before anything starts.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from services import untrusted_json
from services.config import get_settings
from services.demo import sources
from services.demo.sources import BACKBONE, LARGER, TILES, WEIGHTS
from services.errors import UserFacingError
from services.jobs.context import JobContext, JobStopped
from services.provenance import IMAGENET, RANDOM, RANDOM_INIT

DATASET = "kather2016"
SPLIT = "demo-grouped"
STATE_FILE = "demo.json"
MAP_DIR = "map-job"
IMAGE_SIZE = 150
EPOCHS = 15
STEPS = {  # name: (start, share) of the job's progress
    "tiles": (0.0, 0.3), "weights": (0.3, 0.03), "image": (0.33, 0.17), "split": (0.5, 0.02),
    "train": (0.52, 0.3), "calibrate": (0.82, 0.05), "map": (0.87, 0.13),
}


class _StepReporter:
    """Maps a step's own progress (0..1) into its share of the demo job's progress."""

    def __init__(self, parent: JobContext, label: str, start: float, share: float):
        self.parent, self.label, self.start, self.share = parent, label, start, share

    def report(self, progress: float, message: str | None, result: dict[str, Any]) -> None:
        self.parent.progress(self.start + self.share * progress, f"{self.label}: {message}" if message else None)

    def stop_requested(self) -> bool:
        return self.parent.should_stop()


def step_context(parent: JobContext, name: str, label: str, folder: Path | None = None) -> JobContext:
    """A context for one step: its progress inside the step's share, the parent's stop flag."""
    start, share = STEPS[name]
    reporter = _StepReporter(parent, label, start, share)
    return JobContext(reporter, folder or parent.dir, parent.params, resumed=parent.resumed, job_id=parent.job_id,
                      owner=parent.owner, report_interval=0.0, stop_interval=0.0)


def _load_state(folder: Path) -> dict[str, Any]:
    return untrusted_json.read_or(folder / STATE_FILE, {}, allow_nan=True)


def _save_state(folder: Path, state: dict[str, Any]) -> None:
    path = folder / STATE_FILE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(state))
    temporary.replace(path)


def _mb(done: int, total: int | None) -> str:
    return f"{done / 1e6:,.1f} of {total / 1e6:,.1f} MB" if total else f"{done / 1e6:,.1f} MB"


# --- steps ---------------------------------------------------------------------------------------

def check_offline() -> None:
    """Offline with a file missing: one sentence per missing file saying where to place it."""
    if not get_settings().offline:
        return
    text = sources.missing_text(sources.placements())
    if text:
        raise UserFacingError("Downloads are off (DASHBOARD_OFFLINE=1 or no network), and the demo needs files "
                              f"that are not here. {text} Then press Resume: the demo continues from what is there.")


def tiles_step(context: JobContext, source: sources.Source) -> dict:
    from services.datasets import kather
    from services.datasets.tasks import download_install_index

    expected = {"url": source.url, "size": source.size, "md5": source.checks.get("md5")}
    step = step_context(context, "tiles", "Kather 2016 tiles")
    return download_install_index(step, kather.DATASET_NAME, installed=kather.is_installed(),
                                  download=kather.download_kather, install=kather.install_kather, zip_path=None,
                                  expected=expected)


def weights_step(context: JobContext, source: sources.Source) -> str:
    from services.models import weights as registry

    step = step_context(context, "weights", "MobileNetV2 weights")
    path = registry.resolve_weights(
        BACKBONE, download=True, stop=context.stop_event,
        progress=lambda done, total: step.progress(done / total if total else 0.0, _mb(done, total)),
        mirror={"url": source.url, "size": source.size, **source.checks} if source.replaced else None)
    if context.should_stop():
        raise JobStopped()
    return path.name


def _image_members(members) -> list:
    from services.tissuemap.kather_large import IMAGE_SUFFIXES

    def usable(member) -> bool:
        parts = member.name.split("/")
        return (member.name.lower().endswith(IMAGE_SUFFIXES) and not member.name.endswith("/")
                and not any(p.startswith(("__MACOSX", "._")) for p in parts))

    return sorted((m for m in members if usable(m)), key=lambda m: m.name)


def _first_image(members, where: str):
    images = _image_members(members)
    if not images:
        raise UserFacingError(f"{where} holds no image (.tif, .png or .jpg).")
    return images[0]


def image_step(context: JobContext, source: sources.Source) -> dict:
    """One larger image under ``datasets/kather2016_larger/``: how it got there and the bytes moved."""
    from services import remote_zip
    from services.download import download, verify_file
    from services.tissuemap import kather_large

    step = step_context(context, "image", "one larger image")
    present = kather_large.installed_images()
    if present:
        return {"image": present[0].name, "method": "already there", "bytes": 0}
    folder, whole = kather_large.install_folder(), kather_large.download_path()
    if not whole.is_file():
        transfer = remote_zip.Transfer(source.size)
        try:
            step.progress(0.0, "reading the zip's directory with range requests")
            member = _first_image(remote_zip.list_members(source.url, source.size, transfer), kather_large.FILE_NAME)
            path = remote_zip.fetch_member(
                source.url, source.size, member, folder, transfer=transfer, stop=context.stop_event,
                progress=lambda done, total: step.progress(done / total, f"{member.file_name}: {_mb(done, total)}"))
            return {"image": path.name, "method": "range requests", "bytes": transfer.received}
        except remote_zip.RangesUnsupported:
            step.progress(0.0, f"the server does not answer range requests: downloading the whole zip "
                               f"({source.size_text})")
        finally:
            if context.should_stop():
                raise JobStopped()
        download(source.url, whole, size=source.size, **source.checks, stop=context.stop_event,
                 progress=lambda done, total: step.progress(0.9 * done / total if total else 0.0,
                                                            f"whole zip: {_mb(done, total)}"))
        if context.should_stop():
            raise JobStopped()
        received = source.size
    else:
        verify_file(whole, size=source.size, **source.checks)  # a zip placed by hand is checked too
        received = 0
    member = _first_image(remote_zip.local_members(whole), whole.name)
    path = remote_zip.extract_member(whole, member.name, folder)
    return {"image": path.name, "method": "whole zip", "bytes": received}


def split_step(context: JobContext) -> dict:
    from services.datasets import index, splits
    from services.datasets.sources import dataset_folder

    step = step_context(context, "split", "split grouped by source image")
    if SPLIT in splits.list_splits(DATASET):
        try:
            frame = splits.load_split(DATASET, SPLIT)
            return {"split": SPLIT, "counts": frame["split"].value_counts().to_dict(), "reused": True}
        except UserFacingError:
            pass  # files changed since: make it again
    frame = index.load_index(dataset_folder(DATASET), stop=context.should_stop)
    made = splits.make_split(frame, method="grouped", seed=42)
    splits.save_split(DATASET, SPLIT, made)
    step.progress(1.0, "saved")
    return {"split": SPLIT, "counts": made["split"].value_counts().to_dict(), "reused": False}


def experiment_spec(params: dict[str, Any]):
    from services.transfer.spec import ExperimentSpec

    return ExperimentSpec(dataset=DATASET, split=SPLIT, strategies=["C"], backbones=[BACKBONE], weights=IMAGENET,
                          image_size=int(params.get("image_size", IMAGE_SIZE)),
                          epochs=int(params.get("epochs", EPOCHS)), head_pooling="avg", seed=42)


def train_step(context: JobContext, state: dict[str, Any], labels: dict[str, str]) -> str:
    """The strategy-C run (an earlier attempt's unfinished run is continued by a fresh one)."""
    from services.training import lifecycle
    from services.training import store as run_store
    from services.transfer import strategy_c

    spec = experiment_spec(context.params)
    store = run_store.RunStore()
    step = step_context(context, "train", "strategy C")
    earlier = store.find_run(state["run_id"]) if isinstance(state.get("run_id"), str) else None
    if earlier is not None and earlier.status in run_store.ACTIVE:  # its worker was killed mid-fit
        store.set_status(earlier.id, run_store.INTERRUPTED, error="the demo was interrupted; it resumed with a new run")
    run_id = strategy_c.create_run(store, spec, BACKBONE, "Real-tissue demo · C · mobilenet_v2 (avg pooling)",
                                   context.job_id, owner=context.owner)
    state["run_id"] = run_id
    _save_state(context.dir, state)
    if labels["generated"]:
        store.update_run(run_id, synthetic=True)
    status = strategy_c.run_strategy_c(store, run_id, spec, BACKBONE, should_stop=context.should_stop,
                                       progress=lambda fraction, message: step.progress(fraction, message),
                                       job_id=context.job_id)
    lifecycle.raise_unless_finished(store, run_id, status, "strategy C")
    if labels["random_weights"]:
        run = store.get_run(run_id)
        store.update_run(run_id, hyperparameters={**run.hyperparameters, "weights": RANDOM})
        store.update_summary(run_id, weights=RANDOM_INIT)
    return run_id


def calibrate_step(context: JobContext, run_id: str) -> dict:
    """The run's own calibration and held-out score, as training recorded them
    (:func:`services.training.lifecycle.score`: temperature fitted on validation, ECE before and
    after on the test split; :func:`services.metrics.honesty.headline`: test accuracy, Wilson 95 %
    interval, n). Nothing is fitted twice: the tissue map applies the run's temperature itself."""
    from services.metrics.honesty import headline
    from services.training.store import RunStore

    step = step_context(context, "calibrate", "calibration")
    run = RunStore().get_run(run_id)
    summary = run.summary or {}
    calibration, line = summary.get("calibration"), headline(summary)
    if not isinstance(calibration, dict) or calibration.get("measured_on") != "test" or not line.held_out:
        raise UserFacingError("the strategy-C run has no held-out test score or no calibration; the demo needs "
                              "a split with validation and test tiles.")
    estimate = line.estimate
    step.progress(1.0, f"T = {calibration['temperature']:.2f}")
    return {
        "temperature": calibration["temperature"], "classes": summary.get("classes"),
        "test_n": estimate.n, "test_correct": estimate.successes, "test_accuracy": estimate.value,
        "test_ci95": [estimate.low, estimate.high],
        "test_ece_before": calibration.get("ece_before"), "test_ece_after": calibration.get("ece_after"),
        "train_n": summary.get("train_images"),
    }


def map_step(context: JobContext, run_id: str, image: str, labels: dict[str, str]) -> dict:
    from services.tissuemap import kather_large
    from services.tissuemap.job import tissue_map_job
    from services.tissuemap.models import run_choice
    from services.training.store import RunStore

    store = RunStore()
    choice = run_choice(store, store.get_run(run_id))
    if choice is None:
        raise UserFacingError("the strategy-C run saved no model to map with; start the demo again.")
    if labels["random_weights"]:
        note = " · RANDOM INIT weights, not ImageNet"
        choice.label += note
        choice.card = {**choice.card, "name": f"{choice.card.get('name') or choice.label}{note}"}
    choice.synthetic = choice.synthetic or bool(labels["generated"])
    folder = context.dir / MAP_DIR
    folder.mkdir(exist_ok=True)
    params = {"image": {"source": "path", "path": str(kather_large.install_folder() / image)},
              "model": choice.to_params(), "mpp": kather_large.MPP, "batch_size": 32}
    result = tissue_map_job(params, step_context(context, "map", "tissue map", folder))
    return {"tiles": result["tiles"], "areas": result["areas"], "tumour_stroma": result["tumour_stroma"],
            "mpp": result["mpp"], "folder": f"{MAP_DIR}/{result['output']}",
            "params": {"image": params["image"], "model": params["model"], "mpp": params["mpp"]}}


def settings_of(params: dict[str, Any]) -> dict[str, int]:
    """What a reused result must have been made with."""
    spec = experiment_spec(params)
    return {"image_size": spec.image_size, "epochs": spec.epochs}


def reusable_steps(context: JobContext, earlier_id: Any, image: dict) -> dict[str, Any]:
    """The ``train``, ``calibrate`` and ``map`` outcomes of the earlier demo job ``earlier_id``
    that still hold: its run is there and finished, it used this job's settings, and its map is of
    the same image (the map's files are linked or copied into this job's folder). Anything else
    (an unknown id, a damaged ``demo.json``, a deleted run): nothing is reused."""
    from services.training.store import FINISHED as RUN_FINISHED, RunStore

    if not isinstance(earlier_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", earlier_id):
        return {}
    earlier_dir = context.dir.parent / earlier_id
    earlier = _load_state(earlier_dir)
    done = earlier.get("done") if isinstance(earlier.get("done"), dict) else {}
    if earlier_dir == context.dir or earlier.get("settings") != settings_of(context.params):
        return {}
    run_id = done.get("train")
    run = RunStore().find_run(run_id) if isinstance(run_id, str) else None
    if run is None or run.status != RUN_FINISHED or not isinstance(done.get("calibrate"), dict):
        return {}
    reused = {"train": run_id, "calibrate": done["calibrate"]}
    mapped, was = done.get("map"), done.get("image")
    if isinstance(mapped, dict) and isinstance(was, dict) and was.get("image") == image.get("image") \
            and (earlier_dir / MAP_DIR).is_dir():
        shutil.copytree(earlier_dir / MAP_DIR, context.dir / MAP_DIR, copy_function=_link_or_copy, dirs_exist_ok=True)
        reused["map"] = mapped
    return reused


def _link_or_copy(source: str, target: str) -> None:
    try:
        Path(target).unlink(missing_ok=True)
        Path(target).hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)


# --- the job -------------------------------------------------------------------------------------

def provenance(found: dict[str, sources.Source]) -> dict[str, Any]:
    """What the results must say about where the data and the weights came from."""
    generated = found[TILES].generated or found[LARGER].generated
    random_weights = found[WEIGHTS].random_weights
    return {
        "generated": generated, "random_weights": random_weights,
        "data": "GENERATED test data, not tissue" if generated else "Kather 2016 (CC BY 4.0, Zenodo 53169)",
        "weights": "random init (a randomly initialised file served as the ImageNet weights)" if random_weights
        else "imagenet (MobileNetV2, Keras applications, Apache 2.0)",
    }


def demo_job(params: dict[str, Any], context: JobContext) -> dict[str, Any]:
    """Job body: every step not yet done, in order (see the module docstring)."""
    found = sources.demo_sources()
    labels = provenance(found)
    state = _load_state(context.dir) if context.resumed else {}
    state.setdefault("done", {})
    state["settings"] = settings_of(params)
    done: dict[str, Any] = state["done"]
    context.update_result(labels=labels, steps=list(done))
    check_offline()

    def run(name: str, body) -> Any:
        if name not in done:
            context.check_stop()
            done[name] = body()
            _save_state(context.dir, state)
            context.update_result(steps=list(done), **{name: done[name]})
        return done[name]

    run("tiles", lambda: tiles_step(context, found[TILES]))
    run("weights", lambda: weights_step(context, found[WEIGHTS]))
    image = run("image", lambda: image_step(context, found[LARGER]))
    run("split", lambda: split_step(context))
    if "reuse" in params and "train" not in done:
        for name, value in reusable_steps(context, params["reuse"], image).items():
            done.setdefault(name, value)
        if "train" in done:
            state["reused_from"] = params["reuse"]
            _save_state(context.dir, state)
    run_id = run("train", lambda: train_step(context, state, labels))
    calibrated = run("calibrate", lambda: calibrate_step(context, run_id))
    mapped = run("map", lambda: map_step(context, run_id, image["image"], labels))
    context.progress(1.0, "done: the map and its report are ready")
    return {"labels": labels, "steps": list(done), "run_id": run_id, **{k: done[k] for k in done},
            "map": mapped, "reused_from": state.get("reused_from")}
