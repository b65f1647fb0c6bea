"""Import the TensorBoard event files of a run made elsewhere into the run store.

Reads TFRecord event files directly (``tensorboard``'s generated protobuf classes only: no
TensorFlow import, so it runs in the server). Scalars become epoch metrics: the Keras callback's
``epoch_loss`` in a ``train`` folder becomes ``loss``, in a ``validation`` folder ``val_loss``;
other tags keep their name; per-batch series (``batch_*``, ``*_vs_iterations``) are skipped. Files are untrusted: sizes are capped and a damaged record ends
that file's reading with what was read so far.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from services.errors import UserFacingError
from services.training import store as run_store

MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_RECORD_BYTES = 16 * 1024 * 1024
MAX_FILES = 200


class NotEventFiles(UserFacingError):
    """Nothing importable in what was given."""


@dataclass
class Scalars:
    """metric name -> {step: (value, wall time)}"""

    values: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)

    def add(self, name: str, step: int, value: float, wall_time: float) -> None:
        self.values.setdefault(name, {})[int(step)] = (float(value), float(wall_time))


def records(data: bytes):
    """The payloads of a TFRecord stream (stops at the first damaged or cut record)."""
    offset = 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        start = offset + 12
        if length > MAX_RECORD_BYTES or start + length + 4 > len(data):
            return
        yield data[start:start + length]
        offset = start + length + 4


def _metric_name(tag: str, folder: str) -> str:
    name = tag[len("epoch_"):] if tag.startswith("epoch_") else tag
    parts = {part.lower() for part in PurePosixPath(folder).parts}
    if parts & {"validation", "val", "eval"} and not name.startswith("val_"):
        name = "val_" + name
    return name


def _scalar(value) -> float | None:
    import numpy as np

    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind == "tensor":
        tensor = value.tensor
        if tensor.float_val:
            return float(tensor.float_val[0])
        if tensor.double_val:
            return float(tensor.double_val[0])
        if tensor.tensor_content and len(tensor.tensor_content) in (4, 8):
            dtype = np.float32 if len(tensor.tensor_content) == 4 else np.float64
            return float(np.frombuffer(tensor.tensor_content, dtype=dtype)[0])
    return None


def read_events(data: bytes, folder: str, scalars: Scalars) -> int:
    """Add the scalars of one event file; returns how many were read."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto import event_pb2

    count = 0
    for payload in records(data):
        event = event_pb2.Event()
        try:
            event.ParseFromString(payload)
        except DecodeError:
            break
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            if value.tag.startswith("batch_") or "_vs_iterations" in value.tag:
                continue  # per-batch series (their step is the iteration, not the epoch)
            number = _scalar(value)
            if number is not None:
                scalars.add(_metric_name(value.tag, folder), event.step, number, event.wall_time)
                count += 1
    return count


def _files(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """(folder, bytes) of each event file in an upload: one event file or a zip of a log folder."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        found = []
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir() and "tfevents" in PurePosixPath(m.filename).name]
            for member in members[:MAX_FILES]:
                if member.file_size > MAX_FILE_BYTES:
                    continue
                found.append((str(PurePosixPath(member.filename).parent), archive.read(member)[:MAX_FILE_BYTES]))
        return found
    return [("", data[:MAX_FILE_BYTES])] if "tfevents" in name else []


def import_event_files(store: run_store.RunStore, uploads: list[tuple[str, bytes]], name: str) -> str:
    """Create a finished run (source ``import``) from uploaded event files or zips of log
    folders; returns its id."""
    scalars = Scalars()
    for upload_name, data in uploads:
        for folder, content in _files(upload_name, data):
            read_events(content, folder, scalars)
    if not scalars.values:
        raise NotEventFiles("No scalar metrics found: upload TensorBoard event files (events.out.tfevents...) "
                            "or a zip of a run's log folder.")
    steps = sorted({step for per_step in scalars.values.values() for step in per_step})
    times = [when for per_step in scalars.values.values() for _, when in per_step.values()]
    run_id = store.create_run(name[:200] or "imported run", source="import", status=run_store.RUNNING,
                              epochs=len(steps))
    for index, step in enumerate(steps):
        values = {metric: per_step[step][0] for metric, per_step in scalars.values.items() if step in per_step}
        when = max(per_step[step][1] for per_step in scalars.values.values() if step in per_step)
        store.log_metrics(run_id, values, epoch=index, when=when, heartbeat=False, epochs_done=index + 1)
    store.set_status(run_id, run_store.FINISHED, started=min(times), ended=max(times))
    store.update_summary(run_id, imported_from="TensorBoard event files", weights="unknown")
    return run_id
