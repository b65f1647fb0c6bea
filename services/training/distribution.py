"""Which ``tf.distribute`` strategy a run uses, and whether this process is the chief.

- ``TF_CONFIG`` set (one process per machine): ``MultiWorkerMirroredStrategy``; only the chief
  (task type ``chief``, or worker 0 when the cluster has no chief) logs to the run store.
- several GPUs visible: ``MirroredStrategy`` (one replica per GPU, batch split between them).
- otherwise TensorFlow's default strategy (one device).
"""

from __future__ import annotations

import json
import os

from services.errors import UserFacingError
from services.runtime import tensorflow


def cluster_task() -> tuple[str, int] | None:
    """(task type, index) from ``TF_CONFIG``, or None when it is not set."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        task = json.loads(raw)["task"]
        return str(task["type"]), int(task.get("index", 0))
    except (ValueError, KeyError, TypeError) as error:
        raise UserFacingError(f"TF_CONFIG is not valid JSON with a 'task' entry: {error}") from error


def is_chief() -> bool:
    task = cluster_task()
    if task is None:
        return True
    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    kind, index = task
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)


def select_strategy(mode: str = "auto"):
    """The strategy for ``mode`` ("auto", "none", "mirrored", "multi_worker"); create it before
    any other TensorFlow work in the process."""
    tf = tensorflow()
    if mode == "none":
        return tf.distribute.get_strategy()
    if mode == "multi_worker" or (mode == "auto" and os.environ.get("TF_CONFIG")):
        if not os.environ.get("TF_CONFIG"):
            raise UserFacingError("Multi-worker training needs TF_CONFIG on every machine (see docs/training.md).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if mode == "mirrored" or (mode == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def describe(strategy) -> str:
    return f"{type(strategy).__name__} ({strategy.num_replicas_in_sync} replica(s))"
