"""A comparison experiment: the chosen strategies x backbones on one dataset split, run one after
the other (so their timings are comparable) as one background job.

Strategies A, B, B+aug and D are runs of the training service's worker (catalog names
``cnn_*``, ``transfer_frozen``, ``transfer_finetune``), so they appear in the training monitor.
Strategy C runs in a process of its own (:mod:`services.transfer.strategy_c`): features are
extracted (or found in the cache) first, then the head is fitted with
:class:`~services.training.callback.DashboardCallback`, so it is a monitor run too; its summary
records the feature-extraction time separately.

The job's result lists one entry per compared model (``strategy``, ``backbone``, ``run_ids``);
:func:`collect_results` turns the entries into :class:`~services.transfer.results.RunResult` rows.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from services.errors import UserFacingError
from services.transfer.models import FINE_TUNE_LEARNING_RATE, HEAD_C_LEARNING_RATE, STRATEGIES
from services.transfer.results import RunResult

JOB_KIND = "transfer"
SCRATCH_MODELS = ("cnn_v1", "cnn_v2", "cnn_v3", "mini_inception")
POLL_S = 0.5


@dataclass
class ExperimentSpec:
    dataset: str
    split: str
    strategies: list[str]
    backbones: list[str] = field(default_factory=lambda: ["mobilenet_v2"])
    weights: str = "imagenet"
    """"imagenet", or "random" for the labelled untrained-backbone baseline."""
    scratch_models: list[str] = field(default_factory=lambda: ["cnn_v1"])
    image_size: int = 150
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    head_learning_rate: float = HEAD_C_LEARNING_RATE
    fine_tune_epochs: int = 3
    fine_tune_learning_rate: float = FINE_TUNE_LEARNING_RATE
    head_units: int = 512
    seed: int = 42

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ExperimentSpec":
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


@dataclass
class PlannedRun:
    strategy: str
    backbone: str | None
    model: str
    label: str
    enabled: bool = True
    reason: str = ""


def weights_label(weights: str) -> str:
    return "imagenet" if weights == "imagenet" else "random init"


def backbone_problem(backbone: str, weights: str, image_size: int) -> str:
    """Why ``backbone`` cannot be used as asked ("" when it can): input size, then weights."""
    from services.models import weights as registry

    try:
        registry.check_input_size(backbone, image_size)
    except UserFacingError as error:
        return str(error)
    if weights == "imagenet":
        status = registry.weights_status(backbone)
        if not status.usable:
            return f"no ImageNet weights: {status.reason} Fix: {status.fix}"
    return ""


def plan(spec: ExperimentSpec) -> list[PlannedRun]:
    """What the experiment will run; items that cannot run are kept, disabled, with the reason."""
    unknown = [s for s in spec.strategies if s not in STRATEGIES]
    if unknown or not spec.strategies:
        raise UserFacingError(f"choose strategies among {', '.join(STRATEGIES)} (got {spec.strategies}).")
    if spec.weights not in ("imagenet", "random"):
        raise UserFacingError("weights must be 'imagenet' or 'random'.")
    planned = []
    for strategy in spec.strategies:
        if strategy == "A":
            planned += [PlannedRun("A", None, m, f"A · {m}") for m in spec.scratch_models]
            continue
        if not spec.backbones:
            raise UserFacingError(f"strategy {strategy} needs at least one backbone.")
        for backbone in spec.backbones:
            problem = backbone_problem(backbone, spec.weights, spec.image_size)
            suffix = "" if spec.weights == "imagenet" else " (random init)"
            model = {"C": "feature_head", "D": "transfer_finetune"}.get(strategy, "transfer_frozen")
            planned.append(PlannedRun(strategy, backbone, model, f"{strategy} · {backbone}{suffix}",
                                      enabled=not problem, reason=problem))
    return planned


# --- running -------------------------------------------------------------------------------------


def _run_config(spec: ExperimentSpec, model: str, name: str, **overrides):
    from services.training.config import RunConfig

    values = dict(model=model, dataset=spec.dataset, split=spec.split, epochs=spec.epochs,
                  batch_size=spec.batch_size, learning_rate=spec.learning_rate, seed=spec.seed,
                  image_size=spec.image_size, name=name)
    return RunConfig(**{**values, **overrides})


def wait_for_run(run_id: str, label: str, store, should_stop, progress=None) -> None:
    """Block until the run's process ends; a stop request is passed on to the run (and ends the
    job); a run that ends other than finished raises :class:`UserFacingError` naming ``label``.

    ``progress(fraction, message)`` relays what the run reports in its summary (strategy C)."""
    from services.training import launcher
    from services.jobs import JobStopped

    asked = False
    while True:
        store.refresh_liveness()  # a run whose process died is marked interrupted, not waited for forever
        run = store.get_run(run_id)
        if not run.active:
            if asked:
                raise JobStopped()
            if run.status != "finished":
                raise UserFacingError(f"run {label} ended {run.status}: {run.error or 'see the training monitor'}")
            return
        if progress is not None and "progress" in run.summary:
            progress(float(run.summary["progress"]), str(run.summary.get("stage", "")))
        if should_stop() and not asked:
            launcher.stop_run(run_id, store)
            asked = True
        time.sleep(POLL_S)


def _worker_run(spec: ExperimentSpec, store, should_stop, model: str, name: str, **overrides) -> str:
    from services.training import launcher

    run_id = launcher.start_run(_run_config(spec, model, name, **overrides), store)
    wait_for_run(run_id, name, store, should_stop)
    return run_id


def run_planned(item: PlannedRun, spec: ExperimentSpec, store, should_stop, progress) -> list[str]:
    """Run one planned item to its end; returns its run ids (two for strategy D).

    ``progress(fraction, message)`` reports the item's own progress (strategy C only)."""
    options = {"backbone": item.backbone, "weights": spec.weights}
    if item.strategy == "A":
        return [_worker_run(spec, store, should_stop, item.model, item.label)]
    if item.strategy in ("B", "B+aug"):
        return [_worker_run(spec, store, should_stop, "transfer_frozen", item.label, options=options,
                            augment=item.strategy == "B+aug")]
    if item.strategy == "D":
        head_run = _worker_run(spec, store, should_stop, "transfer_frozen", f"{item.label} (phase 1: head)",
                               options={**options, "trainable_top_layers": 0})
        best = store.artifact_path(head_run, "best_model")
        if best is None:
            raise UserFacingError(f"phase 1 of {item.label} saved no model; see the training monitor.")
        tuned = _worker_run(spec, store, should_stop, "transfer_finetune", f"{item.label} (phase 2: fine-tune)",
                            options={"init_model": str(best), "backbone": item.backbone},
                            epochs=spec.fine_tune_epochs, learning_rate=spec.fine_tune_learning_rate)
        return [head_run, tuned]
    if item.strategy == "C":
        from services.transfer.strategy_c import start_strategy_c

        run_id = start_strategy_c(spec, item.backbone, item.label, store=store)
        wait_for_run(run_id, item.label, store, should_stop, progress)
        return [run_id]
    raise UserFacingError(f"unknown strategy {item.strategy!r}")


def run_experiment(context, store) -> dict:
    """The background job (:class:`services.jobs.JobManager`): every enabled planned item in turn."""
    spec = ExperimentSpec.from_dict(context.params["spec"])
    planned = plan(spec)
    items = [item for item in planned if item.enabled]
    skipped = [asdict(item) for item in planned if not item.enabled]
    entries: list[dict] = []
    context.update_result(entries=entries, skipped=skipped, spec=spec.to_dict())
    for index, item in enumerate(items):
        def progress(fraction: float, message: str, index=index, item=item) -> None:
            context.progress((index + min(1.0, max(0.0, fraction))) / len(items), f"{item.label}: {message}")

        progress(0.0, f"started ({index + 1}/{len(items)})")
        run_ids = run_planned(item, spec, store, context.should_stop, progress)
        entries.append({**asdict(item), "run_ids": run_ids})
        context.update_result(entries=entries)
    return {"entries": entries, "skipped": skipped, "spec": spec.to_dict()}


def start_experiment(manager, spec: ExperimentSpec, store) -> str:
    """Validate ``spec`` and queue it as a job; returns the job id.

    ``store`` is the process's one :class:`~services.training.store.RunStore` for this path (the
    page's cached one): creating a second store object in a process that already has one open
    reopens the database file, which drops SQLite's file locks of the first (POSIX locks are per
    process) and lets another process delete the WAL under it."""
    from services.datasets.splits import load_split

    load_split(spec.dataset, spec.split)  # refuses a missing split or vanished files now
    items = plan(spec)
    if not any(item.enabled for item in items):
        raise UserFacingError("nothing to run: " + " ".join(f"{i.label}: {i.reason}" for i in items))
    title = f"{', '.join(spec.strategies)} on {spec.dataset}/{spec.split}"
    return manager.submit(JOB_KIND, title, lambda context: run_experiment(context, store), {"spec": spec.to_dict()})


# --- results -------------------------------------------------------------------------------------


def _history(store, run_ids: list[str]) -> dict[str, list[float]]:
    history: dict[str, list[float]] = {}
    for run_id in run_ids:
        table = store.epoch_table(run_id)
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"):
            if metric in table:
                history.setdefault(metric, []).extend(float(v) for v in table[metric].tolist())
    return history


def result_for(entry: dict, store, spec: ExperimentSpec) -> RunResult | None:
    """One comparison row from an experiment entry (None when its runs were deleted)."""
    runs = [store.find_run(run_id) for run_id in entry["run_ids"]]
    if not runs or any(run is None for run in runs):
        return None
    last, history = runs[-1], _history(store, entry["run_ids"])
    summary = last.summary
    seconds = [s for s in history.pop("epoch_seconds", []) if s == s]
    walls = [run.summary.get("wall_seconds") for run in runs]
    model_path = store.artifact_path(last.id, "final_model")
    return RunResult(
        name=entry["label"], strategy=entry["strategy"], model=entry["model"], backbone=entry.get("backbone"),
        weights=weights_label(spec.weights) if entry.get("backbone") else "n/a",
        augment=entry["strategy"] == "B+aug", dataset=spec.dataset, split=spec.split,
        synthetic=bool(last.synthetic), status=last.status, run_id=last.id,
        val_accuracy=summary.get("val_accuracy"), test_accuracy=summary.get("test_accuracy"),
        macro_f1=summary.get("test_macro_f1"), per_class_recall=summary.get("test_recall") or {},
        confusion=summary.get("test_confusion_matrix") or [], class_names=summary.get("classes") or [],
        params_total=summary.get("total_parameters"), params_trainable=summary.get("trainable_parameters"),
        seconds_per_epoch=float(np.mean(seconds)) if seconds else None,
        wall_seconds=float(sum(w for w in walls if w)) if any(walls) else None,
        extraction_seconds=summary.get("extraction_seconds"), features_reused=summary.get("features_reused"),
        device=last.device or "", history=history, model_path=str(model_path) if model_path else None,
    )


def collect_results(job_result: dict | None, store) -> list[RunResult]:
    """The comparison rows of a (finished or running) experiment job's result."""
    if not job_result:
        return []
    spec = ExperimentSpec.from_dict(job_result["spec"])
    rows = [result_for(entry, store, spec) for entry in job_result.get("entries", [])]
    return [row for row in rows if row is not None]
