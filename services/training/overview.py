"""What the monitor shows about runs, computed from the store (no TensorFlow, no Streamlit)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from services.training.store import RUNNING, Run, RunStore

REFRESH_SECONDS = 1.0
"""How often the monitor's live view re-reads the store while a selected run is active."""


def best_val_accuracy(table: pd.DataFrame) -> float | None:
    if "val_accuracy" not in table or table["val_accuracy"].dropna().empty:
        return None
    return float(table["val_accuracy"].max())


def runs_frame(store: RunStore, runs: list[Run]) -> pd.DataFrame:
    """One row per run for the runs table."""
    rows = []
    for run in runs:
        table = store.epoch_table(run.id)
        rows.append({
            "name": run.name, "status": run.status, "model": run.model, "dataset": run.dataset,
            "best val acc": best_val_accuracy(table),
            "epochs": f"{run.epochs_done}/{run.epochs or '?'}",
            "duration (s)": round(run.duration) if run.duration is not None else None,
            "device": run.device, "source": run.source, "synthetic data": run.synthetic,
            "started": pd.to_datetime(run.started or run.created, unit="s"), "id": run.id,
        })
    return pd.DataFrame(rows)


@dataclass
class Progress:
    fraction: float
    text: str
    eta_seconds: float | None
    images_per_second: float | None


def run_progress(store: RunStore, run: Run) -> Progress:
    """Progress within the whole run (epochs and the batch steps of the current epoch), ETA, speed."""
    table = store.epoch_table(run.id)
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
        text += f" · {speed:.0f} images/s"
    return Progress(min(1.0, fraction), text, eta, speed)


def format_seconds(seconds: float) -> str:
    seconds = int(math.ceil(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def confusion_matrices(store: RunStore, run_id: str) -> list[dict]:
    """Per-epoch validation confusion matrices (epoch, classes, matrix), oldest first."""
    found = []
    for path in store.artifacts(run_id, "confusion_matrix").path:
        try:
            found.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda item: item["epoch"])


def val_predictions(store: RunStore, run_id: str) -> pd.DataFrame | None:
    path = store.artifact_path(run_id, "val_predictions")
    return pd.read_csv(path) if path else None


def metrics_csv(store: RunStore, run_id: str) -> bytes:
    return store.metrics(run_id).to_csv(index=False).encode()
