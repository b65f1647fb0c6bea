"""A comparison experiment: the chosen strategies x backbones on one dataset split, run one after
the other (so their timings are comparable) as one job.

The job body is :func:`experiment_job` (kind ``transfer``, resumable): it runs in a job worker
process under the job queue's TensorFlow limit, and every compared model trains *inside* it.
Strategies A, B, B+aug and D are training runs (catalog names ``cnn_*``, ``transfer_frozen``,
``transfer_finetune``) executed by the training service's worker code in this process; strategy
C (:mod:`services.transfer.strategy_c`) is recorded the same way. All of them appear in the
training monitor. A resumed job skips what finished and continues an interrupted run from its
last backup (the job folder remembers which run was in flight).

The job's result lists one entry per compared model (``strategy``, ``backbone``, ``run_ids``);
:func:`collect_results` turns the entries into :class:`~services.transfer.results.RunResult` rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from services import run_layout, untrusted_json
from services.errors import UserFacingError
from services.jobs import kinds
from services.metrics.honesty import leakage_of
from services.transfer.results import RunResult
from services.transfer.spec import (  # noqa: F401  (re-exported: the page's one import)
    MAX_FOLDS, SCRATCH_MODELS, ExperimentSpec, PlannedRun, backbone_problem, plan, weights_label,
)



# --- the job folder's memory of what ran ---------------------------------------------------------


def _load_state(folder) -> dict[str, Any]:
    return untrusted_json.read_or(run_layout.experiment_state(folder), {}, allow_nan=True)


def _save_state(folder, state: dict[str, Any]) -> None:
    path = run_layout.experiment_state(folder)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(state))
    temporary.replace(path)


# --- running -------------------------------------------------------------------------------------


def _run_config(spec: ExperimentSpec, model: str, name: str, **overrides):
    from services.training.config import RunConfig

    values = dict(model=model, dataset=spec.dataset, split=spec.split, epochs=spec.epochs,
                  batch_size=spec.batch_size, learning_rate=spec.learning_rate, seed=spec.seed,
                  image_size=spec.image_size, name=name)
    return RunConfig(**{**values, **overrides})


class _Runner:
    """Runs the steps of one comparison inside the job, remembering each run id in the job folder
    before it starts, so that a resumed job continues the same run instead of starting anew."""

    def __init__(self, spec: ExperimentSpec, store, context, state: dict[str, Any]):
        self.spec, self.store, self.context, self.state = spec, store, context, state
        self.current: list[str] = list(state.get("current_runs") or [])

    def _remember(self, run_ids: list[str]) -> None:
        self.state["current_runs"] = run_ids
        _save_state(self.context.dir, self.state)

    def _reuse(self, step: int) -> str | None:
        """The run of this step recorded by an earlier attempt of the job, if any."""
        if step < len(self.current) and self.store.find_run(self.current[step]) is not None:
            return self.current[step]
        return None

    def training(self, step: int, config, report: Callable[[float, str], None]) -> str:
        """Step ``step`` of the item as a training run (created, or the earlier attempt's resumed)."""
        from services.training import launcher, lifecycle, worker
        from services.training import store as run_store

        run_id = self._reuse(step)
        if run_id is not None and self.store.get_run(run_id).status == run_store.FINISHED:
            return run_id
        if run_id is None:
            run_id = launcher.create_run_for(config, self.store, source="transfer", status=run_store.RUNNING,
                                             owner=self.context.owner)
            self.current = self.current[:step] + [run_id]
            self._remember(self.current)
        status = worker.execute(run_id, store=self.store, job_id=self.context.job_id,
                                should_stop=lifecycle.watcher(self.store, run_id, report, self.context.should_stop))
        lifecycle.raise_unless_finished(self.store, run_id, status, config.name)
        return run_id

    def strategy_c(self, item: PlannedRun, report: Callable[[float, str], None]) -> str:
        from services.training import lifecycle
        from services.training import store as run_store
        from services.transfer import strategy_c

        run_id = self._reuse(0)
        if run_id is not None and self.store.get_run(run_id).status == run_store.FINISHED:
            return run_id
        if run_id is None:
            run_id = strategy_c.create_run(self.store, self.spec, item.backbone, item.label, self.context.job_id,
                                           owner=self.context.owner)
            self._remember([run_id])
        status = strategy_c.run_strategy_c(self.store, run_id, self.spec, item.backbone, job_id=self.context.job_id,
                                           should_stop=self.context.should_stop, progress=report)
        lifecycle.raise_unless_finished(self.store, run_id, status, item.label)
        return run_id

    def item(self, item: PlannedRun, report: Callable[[float, str], None]) -> list[str]:
        """Run one planned item to its end; returns its run ids (two for strategy D)."""
        spec = self.spec
        options = {"backbone": item.backbone, "weights": spec.weights}
        if item.strategy == "A":
            return [self.training(0, _run_config(spec, item.model, item.label), report)]
        if item.strategy in ("B", "B+aug"):
            config = _run_config(spec, "transfer_frozen", item.label, options=options, augment=item.strategy == "B+aug")
            return [self.training(0, config, report)]
        if item.strategy == "D":
            share = spec.epochs / max(1, spec.epochs + spec.fine_tune_epochs)
            head_run = self.training(0, _run_config(spec, "transfer_frozen", f"{item.label} (phase 1: head)",
                                                    options={**options, "trainable_top_layers": 0}),
                                     lambda f, m: report(share * f, f"phase 1 (head), {m}"))
            best = self.store.artifact_path(head_run, "best_model")
            if best is None:
                raise UserFacingError(f"phase 1 of {item.label} saved no model; see the training monitor.")
            tuned = self.training(1, _run_config(spec, "transfer_finetune", f"{item.label} (phase 2: fine-tune)",
                                                 options={"init_model": str(best), "backbone": item.backbone},
                                                 epochs=spec.fine_tune_epochs,
                                                 learning_rate=spec.fine_tune_learning_rate),
                                  lambda f, m: report(share + (1 - share) * f, f"phase 2 (fine-tuning), {m}"))
            return [head_run, tuned]
        if item.strategy == "C":
            return [self.strategy_c(item, report)]
        raise UserFacingError(f"unknown strategy {item.strategy!r}")


def experiment_job(params: dict[str, Any], context) -> dict[str, Any]:
    """Job body (kind ``transfer``): every enabled planned item of ``params["spec"]`` in turn.

    ``params["store"]`` optionally names the run store (default: the data root's). Resumable:
    finished items are kept, the item in flight continues."""
    from services.training.store import RunStore

    spec = ExperimentSpec.from_dict(params["spec"])
    store = RunStore(params.get("store"))
    planned = plan(spec)
    items = [item for item in planned if item.enabled]
    skipped = [asdict(item) for item in planned if not item.enabled]
    state = _load_state(context.dir) if context.resumed else {}
    entries: list[dict] = list(state.get("entries") or [])
    done = {entry["label"] for entry in entries}
    state["entries"] = entries
    context.update_result(entries=entries, skipped=skipped, spec=spec.to_dict())
    runner = _Runner(spec, store, context, state)
    for index, item in enumerate(items):
        if item.label in done:
            continue

        def report(fraction: float, message: str, index=index, item=item) -> None:
            overall = (index + min(1.0, max(0.0, fraction))) / len(items)
            context.progress(overall, f"{item.label} ({index + 1}/{len(items)}): {message}")

        report(0.0, "starting")
        run_ids = runner.item(item, report)
        entries.append({**asdict(item), "run_ids": run_ids})
        runner.current = []
        state["current_runs"] = []
        _save_state(context.dir, state)
        context.update_result(entries=entries)
    context.progress(1.0, f"{len(entries)} compared")
    return {"entries": entries, "skipped": skipped, "spec": spec.to_dict()}


def why_not_runnable(spec: ExperimentSpec, planned: list) -> str | None:
    """Why the comparison cannot start yet (a sentence for beside the disabled button), or None."""
    if not spec.dataset:
        return "Choose a dataset."
    if not spec.split:
        return "Choose a saved split (or save one: the button above, or the Dataset explorer's Splits)."
    if not spec.strategies:
        return "Choose at least one strategy."
    if not planned:
        return "Fix the settings named in the message above."
    if not any(item.enabled for item in planned):
        return "None of the planned runs can run: the table above says why for each."
    return None


def start_experiment(manager, spec: ExperimentSpec, store_path: str | None = None) -> str:
    """Validate ``spec`` and queue it as a ``transfer`` job; returns the job id."""
    from services.datasets.splits import load_split

    load_split(spec.dataset, spec.split)  # refuses a missing split or vanished files now
    items = plan(spec)
    if not any(item.enabled for item in items):
        raise UserFacingError("nothing to run: " + " ".join(f"{i.label}: {i.reason}" for i in items))
    title = f"{', '.join(spec.strategies)} on {spec.dataset}/{spec.split}"
    params: dict[str, Any] = {"spec": spec.to_dict()}
    if store_path:
        params["store"] = str(store_path)
    return manager.submit(kinds.TRANSFER, title, params)


# --- results -------------------------------------------------------------------------------------


def _history(store, run_ids: list[str]) -> dict[str, list[float]]:
    history: dict[str, list[float]] = {}
    for run_id in run_ids:
        table = store.epoch_table(run_id)
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"):
            if metric in table:
                history.setdefault(metric, []).extend(float(v) for v in table[metric].tolist())
    return history


def _number(value) -> float | None:
    """A finite number from an untrusted summary field, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if np.isfinite(value) else None


def _count(value) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _matrix(value) -> list[list[int]]:
    """A square matrix of counts, or [] when the stored one is anything else."""
    rows = _of(list, value, [])
    if not all(isinstance(row, list) and len(row) == len(rows) for row in rows):
        return []
    counts = [[_count(cell) for cell in row] for row in rows]
    return counts if all(cell is not None for row in counts for cell in row) else []


def _of(kind, value, default):
    return value if isinstance(value, kind) else default


def result_for(entry: dict, store, spec: ExperimentSpec) -> RunResult | None:
    """One comparison row from an experiment entry (None when its runs were deleted). Store rows
    are untrusted: a field of the wrong type is left empty rather than breaking the table."""
    run_ids = _of(list, entry.get("run_ids"), [])
    runs = [store.find_run(run_id) for run_id in run_ids if isinstance(run_id, str)]
    if not runs or any(run is None for run in runs):
        return None
    last, history = runs[-1], _history(store, run_ids)
    summary = _of(dict, last.summary, {})
    seconds = [s for s in history.pop("epoch_seconds", []) if s == s]
    walls = [_number(_of(dict, run.summary, {}).get("wall_seconds")) for run in runs]
    model_path = store.artifact_path(last.id, "final_model")
    classes = _of(list, summary.get("classes"), [])
    return RunResult(
        name=str(entry.get("label", "")), strategy=str(entry.get("strategy", "")), model=str(entry.get("model", "")),
        backbone=entry.get("backbone") if isinstance(entry.get("backbone"), str) else None,
        weights=weights_label(spec.weights) if entry.get("backbone") else "n/a",
        augment=entry.get("strategy") == "B+aug", dataset=spec.dataset, split=spec.split,
        synthetic=bool(last.synthetic), status=last.status, run_id=last.id,
        val_accuracy=_number(summary.get("val_accuracy")), test_accuracy=_number(summary.get("test_accuracy")),
        macro_f1=_number(summary.get("test_macro_f1")),
        per_class_recall={str(k): _number(v) for k, v in _of(dict, summary.get("test_recall"), {}).items()},
        confusion=_matrix(summary.get("test_confusion_matrix")),
        class_names=[str(name) for name in classes],
        total_parameters=_count(summary.get("total_parameters")),
        trainable_parameters=_count(summary.get("trainable_parameters")),
        seconds_per_epoch=float(np.mean(seconds)) if seconds else None,
        wall_seconds=float(sum(w for w in walls if w)) if any(walls) else None,
        extraction_seconds=_number(summary.get("extraction_seconds")),
        features_reused=summary.get("features_reused") if isinstance(summary.get("features_reused"), bool) else None,
        cv_folds=_count(summary.get("cv_folds")), cv_accuracy_mean=_number(summary.get("cv_accuracy_mean")),
        cv_accuracy_std=_number(summary.get("cv_accuracy_std")),
        cv_accuracy_interval=_of(dict, summary.get("cv_accuracy_interval"), None),
        macro_f1_interval=_of(dict, summary.get("test_macro_f1_interval"), None),
        leakage_source_images=leakage_of(summary),
        calibration=_of(dict, summary.get("calibration"), None),
        head_pooling=summary.get("head_pooling") if summary.get("head_pooling") in ("flatten", "avg") else None,
        device=str(last.device or ""), history=history, model_path=str(model_path) if model_path else None,
    )


def collect_results(job_result: dict | None, store) -> list[RunResult]:
    """The comparison rows of a (finished or running) experiment job's result."""
    if not job_result or not isinstance(job_result.get("spec"), dict):
        return []
    spec = ExperimentSpec.from_dict(job_result["spec"])
    rows = [result_for(entry, store, spec) for entry in _of(list, job_result.get("entries"), [])
            if isinstance(entry, dict)]
    return [row for row in rows if row is not None]
