"""A run shared as a link: the address of its read-only page and the facts it shows about where
the run came from (provenance), as W&B shares one run's page. Nothing here changes a run."""

from __future__ import annotations

import datetime as dt
import json

from services.training.overview import format_seconds, weights_of
from services.training.store import Run, check_run_id

QUERY_KEY = "run"
"""The training monitor's query parameter that opens one run read-only (``?run=<id>``)."""


def share_query(run_id: str) -> str:
    """The query string of a run's read-only page, relative to the training monitor's address."""
    return f"?{QUERY_KEY}={check_run_id(run_id)}"


def _when(stamp: float | None) -> str:
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if stamp else "—"


def provenance(run: Run) -> list[dict[str, str]]:
    """(fact, value) rows: what was trained on what, how, by whom, when, and where it stands."""
    rows = {
        "run id": run.id, "status": run.status, "model": run.model or "—", "weights": weights_of(run),
        "dataset": (run.dataset or "—") + (" (synthetic demo data)" if run.synthetic else ""),
        "split": run.split or "—", "epochs": f"{run.epochs_done}/{run.epochs or '?'}",
        "hyper-parameters": json.dumps(run.hyperparameters, sort_keys=True) if run.hyperparameters else "—",
        "source": run.source, "device": run.device or "—", "started by": run.owner or "nobody signed in",
        "created": _when(run.created), "ended": _when(run.ended),
        "duration": format_seconds(run.duration) if run.duration is not None else "—",
        "tags": ", ".join(run.tags) or "—",
    }
    return [{"fact": fact, "value": str(value)} for fact, value in rows.items()]
