"""Which ``tf.distribute`` strategy a run uses, and whether this process is the chief.

- ``TF_CONFIG`` set (one process per machine): ``MultiWorkerMirroredStrategy``; only the chief
  (task type ``chief``, or worker 0 when the cluster has no chief) logs to the run store.
- several GPUs visible: ``MirroredStrategy`` (one replica per GPU, batch split between them).
- otherwise TensorFlow's default strategy (one device).
"""

from __future__ import annotations


from services import untrusted_json
from services.config import get_settings
from services.errors import UserFacingError
from services.runtime import tensorflow


def cluster_task() -> tuple[str, int] | None:
    """(task type, index) from ``TF_CONFIG``, or None when it is not set."""
    raw = get_settings().tf_config
    if not raw:
        return None
    try:
        task = untrusted_json.loads(raw, what="TF_CONFIG")["task"]
        return str(task["type"]), int(task.get("index", 0))
    except (ValueError, KeyError, TypeError) as error:
        raise UserFacingError(f"TF_CONFIG is not valid JSON with a 'task' entry: {error}") from error


def is_chief() -> bool:
    task = cluster_task()
    if task is None:
        return True
    cluster = untrusted_json.loads(get_settings().tf_config, what="TF_CONFIG").get("cluster", {})
    kind, index = task
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)


def select_strategy(mode: str = "auto"):
    """The strategy for ``mode`` ("auto", "none", "mirrored", "multi_worker"); create it before
    any other TensorFlow work in the process."""
    tf = tensorflow()
    if mode == "none":
        return tf.distribute.get_strategy()
    tf_config = get_settings().tf_config
    if mode == "multi_worker" or (mode == "auto" and tf_config):
        if not tf_config:
            raise UserFacingError("Multi-worker training needs TF_CONFIG on every machine (see docs/training.md).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if mode == "mirrored" or (mode == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_multi_worker(strategy) -> bool:
    return isinstance(strategy, tensorflow().distribute.MultiWorkerMirroredStrategy)


def describe(strategy) -> str:
    name = "MultiWorkerMirroredStrategy" if is_multi_worker(strategy) else type(strategy).__name__
    return f"{name} ({strategy.num_replicas_in_sync} replica(s))"


def prepare_multi_worker_fit(model, dataset) -> None:
    """Make Keras 3 ``model.fit`` work under MultiWorkerMirroredStrategy (call before ``fit``).

    Keras 3.15 fails there in two places (tensorflow/tensorflow#72388): it averages the logged
    scalar metrics across workers with ``axis=0`` ("Invalid reduction dimension 0 for input with
    0 dimensions"), and its symbolic build averages a *distributed* input batch eagerly ("Attempt
    to convert a value (PerReplica...)"). The first is patched where Keras reduces (multi-worker
    "mean" only: scalars are averaged across workers, as Keras does for one worker); the second
    builds the model from the dataset's element spec (only shapes and dtypes are used). Both touch Keras
    internals and nothing else: single-process training is unchanged.
    """
    from keras.src.backend.tensorflow import trainer
    from keras import tree

    if not getattr(trainer.reduce_per_replica, "_dashboard_patch", False):
        original = trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("mean", "auto"):
                return tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
            return original(values, strategy, reduction)

        reduce_per_replica._dashboard_patch = True
        trainer.reduce_per_replica = reduce_per_replica
    spec = dataset.element_spec  # shapes and dtypes only: iterating would advance the shuffle's seed

    def symbolic_build(iterator=None, data_batch=None):
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=spec)

    model._maybe_symbolic_build = symbolic_build


def local_cluster(workers: int) -> list[dict]:
    """``TF_CONFIG`` values for ``workers`` processes on this machine (free 127.0.0.1 ports):
    what the tests and the benchmark start, and the shape of a real cluster's configuration."""
    import socket

    sockets = [socket.socket() for _ in range(workers)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        addresses = [f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    return [{"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
            for index in range(workers)]
