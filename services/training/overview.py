"""What the monitor shows about runs, computed from the store (no TensorFlow, no Streamlit)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services import provenance, untrusted_json
from services.csv_files import csv_bytes, read_csv
from services.metrics.formatting import MISSING, estimate_text
from services.metrics.honesty import headline, held_out, leakage_of, leakage_text
from services.training.curves import epoch_table, to_datetimes, without_non_finite
from services.training.store import RUNNING, Run, RunStore
from services.training.wire import confusion_payload

REFRESH_SECONDS = 1.0
"""How often the monitor's live view re-reads the store while a selected run is active."""


DASH = MISSING
"""What the monitor shows for a value that is missing or not finite."""


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None (store rows are untrusted:
    a remote run can hold NaN, infinity or 1e300 seconds)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def iso_time(seconds: Any) -> str:
    """ISO 8601 UTC text of a time in seconds, or "" when it is not a representable time."""
    moment = to_datetimes(pd.Series([seconds])).iloc[0]
    return "" if pd.isna(moment) else moment.tz_localize("UTC").isoformat()


def best_val_accuracy(table: pd.DataFrame) -> float | None:
    if "val_accuracy" not in table or table["val_accuracy"].dropna().empty:
        return None
    return float(table["val_accuracy"].max())


def best_val_loss(table: pd.DataFrame) -> float | None:
    if "val_loss" not in table or table["val_loss"].dropna().empty:
        return None
    return float(table["val_loss"].min())


def weights_of(run: Run) -> str:
    """How the run's weights started: the summary's ``weights`` (recorded by the worker and the
    strategies), else the ``weights`` hyper-parameter, else ``unknown``."""
    if "weights" not in run.summary and "weights" not in run.hyperparameters:
        return "unknown"
    return provenance.weights_label(run.summary.get("weights", run.hyperparameters.get("weights")))


def held_out_text(summary: dict | None) -> str:
    """The test accuracy with its Wilson interval and n, or why there is none."""
    line = headline(summary)
    if line.held_out:
        return estimate_text(line.estimate)
    return "— (no test split)" if (summary or {}).get("val_confusion_matrix") else "—"


def recall_table(summary: dict | None) -> pd.DataFrame:
    """Per-class recall of the held-out test split (validation when there is none, said in the
    ``split`` column) with n and the Wilson interval, formatted for people."""
    for part in ("test", "val"):
        estimates = held_out(summary, part)
        if estimates is not None and estimates["accuracy"].n:
            return pd.DataFrame([{"class": name, "recall (95 % CI, n)": estimate_text(estimate),
                                  "split": "held-out test" if part == "test" else "validation (not held out)"}
                                 for name, estimate in estimates["recall"].items()])
    return pd.DataFrame(columns=["class", "recall (95 % CI, n)", "split"])


def runs_frame(store: RunStore, runs: list[Run]) -> pd.DataFrame:
    """One row per run for the runs table (read live: epochs done, duration, best value)."""
    rows = []
    for run in runs:
        table = epoch_table(store, run.id)
        done = max(run.epochs_done, len(table))
        rows.append({
            "name": run.name, "status": run.status if not run.damaged else f"{run.status} (damaged)",
            "weights": weights_of(run), "model": run.model, "dataset": run.dataset,
            "held-out test accuracy (95 % CI, n)": held_out_text(run.summary),
            "leakage": leakage_text(leakage_of(run.summary)),
            "best val acc": best_val_accuracy(table), "best val loss": best_val_loss(table),
            "epochs": f"{done}/{run.epochs or '?'}",
            "duration (s)": _rounded(run.duration),
            "disk (MB)": round(store.disk_bytes(run.id) / 1e6, 1),
            "tags": ", ".join(run.tags), "device": run.device, "source": run.source,
            "synthetic data": run.synthetic,
            "started": run.started or run.created, "id": run.id,
        })
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["started"] = to_datetimes(frame["started"])
    return frame


def _rounded(seconds: float | None) -> int | None:
    number = finite(seconds)
    return None if number is None or abs(number) > 1e15 else round(number)


def disk_usage(store: RunStore, runs: list[Run]) -> tuple[dict[str, int], int]:
    """Bytes per run folder and the total of the whole runs folder (store file included)."""
    from services.run_layout import folder_bytes

    per_run = {run.id: store.disk_bytes(run.id) for run in runs}
    return per_run, folder_bytes(store.runs_dir)


def cleanup_candidates(store: RunStore, runs: list[Run], older_than_days: float,
                       statuses: tuple[str, ...] = ("failed", "stopped", "interrupted", "diverged"),
                       now: float | None = None) -> list[Run]:
    """Ended runs with one of ``statuses`` that ended more than ``older_than_days`` ago."""
    import time

    limit = (now or time.time()) - older_than_days * 86400
    return [run for run in runs if run.status in statuses and not run.active and (run.ended or run.created) < limit]


def delete_runs(store: RunStore, runs: list[Run], actor) -> tuple[int, int]:
    """Delete those of ``runs`` that ``actor`` may delete (theirs, or any for an administrator);
    (deleted, kept because they belong to others)."""
    mine = [run for run in runs if actor.can_delete(run.owner)]
    for run in mine:
        store.delete_run(run.id)
    return len(mine), len(runs) - len(mine)


@dataclass(frozen=True)
class RunFilter:
    """The runs table's filters (an empty one lets everything through)."""
    statuses: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def shown(self, runs: list[Run]) -> list[Run]:
        return [r for r in runs if (not self.statuses or r.status in self.statuses)
                and (not self.models or (r.model or "") in self.models)
                and (not self.datasets or (r.dataset or "") in self.datasets)
                and (not self.tags or set(self.tags) & set(r.tags))]


def prediction_caption(label: str, predicted: str, confidence: float) -> str:
    """How a validation tile's prediction reads under its picture."""
    verdict = "correct" if label == predicted else "WRONG"
    return f"{verdict}: true {label} · predicted {predicted} ({confidence:.2f})"


def metric_stats(table: pd.DataFrame) -> pd.DataFrame:
    """Last, minimum and maximum of each curve of a run, with the epochs where they occurred."""
    rows = []
    for name in ("loss", "val_loss", "accuracy", "val_accuracy"):
        if name not in table or table[name].dropna().empty:
            continue
        values = table[["epoch", name]].dropna()
        low, high = values.loc[values[name].idxmin()], values.loc[values[name].idxmax()]
        rows.append({"metric": name, "last": float(values[name].iloc[-1]), "min": float(low[name]),
                     "min at epoch": int(low.epoch) + 1, "max": float(high[name]), "max at epoch": int(high.epoch) + 1})
    return pd.DataFrame(rows)


def comparison_frame(runs: list[Run], tables: dict[str, pd.DataFrame], labels: dict[str, str],
                     only_differences: bool = False) -> pd.DataFrame:
    """Selected runs side by side: one column per run, rows of hyper-parameters and final/best
    metrics. ``only_differences`` keeps the rows where the runs differ."""
    rows: dict[str, dict[str, Any]] = {}

    def put(field: str, run: Run, value: Any) -> None:
        rows.setdefault(field, {})[labels[run.id]] = value

    for run in runs:
        table = tables.get(run.id, pd.DataFrame())
        put("model", run, run.model)
        put("dataset", run, run.dataset)
        put("weights", run, weights_of(run))
        put("status", run, run.status)
        for key, value in sorted(run.hyperparameters.items()):
            put(f"hp · {key}", run, value if not isinstance(value, (dict, list)) else json.dumps(value))
        put("epochs done", run, max(run.epochs_done, len(table)))
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if name in table and not table[name].dropna().empty:
                put(f"final {name}", run, round(float(table[name].dropna().iloc[-1]), 4))
        for name, value in (("best val_accuracy", best_val_accuracy(table)), ("best val_loss", best_val_loss(table))):
            put(name, run, None if value is None else round(value, 4))
        for key in ("test_accuracy", "test_macro_f1", "total_parameters", "seconds_per_epoch"):
            if key in run.summary:
                value = run.summary[key]
                number = finite(value)
                put(key, run, round(number, 4) if isinstance(value, float) and number is not None
                    else value if not isinstance(value, float) else None)
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame = frame.reindex(columns=[labels[run.id] for run in runs])
    if only_differences and len(runs) > 1:
        keep = [index for index, row in frame.iterrows()
                if len({json.dumps(v, default=str) for v in row.tolist()}) > 1]
        frame = frame.loc[keep]
    return frame.astype(object).where(frame.notna(), None).map(lambda v: DASH if v is None else str(v)[:200])


@dataclass
class Progress:
    fraction: float
    text: str
    eta_seconds: float | None
    images_per_second: float | None


def run_progress(store: RunStore, run: Run) -> Progress:
    """Progress within the whole run (epochs and the batch steps of the current epoch), ETA, speed."""
    table = epoch_table(store, run.id)
    epochs = run.epochs or 1
    done = run.epochs_done
    batches = store.metrics(run.id, names=["batch_loss"])
    fraction = done / epochs
    if run.status == RUNNING and run.steps_per_epoch and not batches.empty:
        latest_step = batches["step"].iloc[-1] - done * run.steps_per_epoch + 1
        fraction += max(0.0, min(1.0, latest_step / run.steps_per_epoch)) / epochs
    speed = None
    if "images_per_second" in table and not table["images_per_second"].dropna().empty:
        speed = float(table["images_per_second"].dropna().iloc[-1])
    eta = None
    if run.status == RUNNING and "epoch_seconds" in table and not table["epoch_seconds"].dropna().empty:
        per_epoch = float(table["epoch_seconds"].dropna().tail(3).mean())
        eta = max(0.0, (1 - fraction) * epochs * per_epoch)
    text = f"{run.status} · epoch {done}/{epochs}"
    if eta is not None:
        text += f" · ETA {format_seconds(eta)}"
    if speed is not None:
        text += f" · {speed:.4g} images/s"
    return Progress(min(1.0, fraction), text, eta, speed)


def format_seconds(seconds: float | None) -> str:
    """``12 s``, ``3 min 05 s``; a dash for a duration that is missing, not finite or absurd."""
    number = finite(seconds)
    if number is None or not 0 <= number < 1e9:
        return DASH
    seconds = int(math.ceil(number))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def confusion_matrices(store: RunStore, run_id: str) -> list[dict]:
    """Per-epoch validation confusion matrices (epoch, classes, matrix), oldest first; files
    outside the run's folder or not in the expected shape are skipped."""
    found = []
    for path in store.artifact_paths(run_id, "confusion_matrix"):
        try:
            item = untrusted_json.read(path, what="a confusion matrix")
        except untrusted_json.BadJSON:
            continue
        if isinstance(item, dict) and isinstance(item.get("epoch"), int) and not isinstance(item["epoch"], bool):
            try:
                found.append({"epoch": item["epoch"], **confusion_payload(item)})
            except ValueError:
                continue
    return sorted(found, key=lambda item: item["epoch"])


def val_predictions(store: RunStore, run_id: str) -> pd.DataFrame | None:
    """The per-tile validation predictions; tile paths outside the data root are dropped."""
    from services.config import get_settings

    path = store.artifact_path(run_id, "val_predictions")
    if path is None:
        return None
    try:
        frame = read_csv(path)
    except (OSError, ValueError):
        return None
    needed = {"path", "label", "predicted", "confidence"}
    if not needed <= set(frame.columns):
        return None
    root = get_settings().data_root.resolve()
    inside = frame.path.astype(str).map(lambda p: _inside(p, root))
    return frame[inside].reset_index(drop=True)


def _inside(path: str, root: Path) -> bool:
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return root in resolved.parents


def metrics_csv(store: RunStore, run_id: str) -> bytes:
    """Metrics in wide format: one row per epoch (and per logged batch), one column per metric,
    with the ISO 8601 UTC time the row was written. Infinite values and times pandas cannot
    represent are empty cells; metric names are escaped against spreadsheet formulas."""
    frame = store.metrics(run_id)
    if frame.empty:
        return b"epoch,step,time\n"
    epoch_rows = -(10**9)  # stands for "no step" (an epoch row) while pivoting
    frame = frame.assign(step=frame.step.fillna(epoch_rows).astype(int))
    wide = frame.pivot_table(index=["epoch", "step"], columns="name", values="value", aggfunc="last").reset_index()
    times = frame.groupby(["epoch", "step"])["time"].max()
    wide.insert(2, "time", [iso_time(times.loc[(e, s)]) for e, s in zip(wide.epoch, wide.step)])
    wide["step"] = wide["step"].astype("Int64").where(wide["step"] != epoch_rows)
    wide["epoch"] = wide["epoch"] + 1
    wide.columns.name = None
    return csv_bytes(without_non_finite(wide).sort_values(["epoch", "step"], na_position="last"))
