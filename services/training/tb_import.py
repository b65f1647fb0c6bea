"""Import the TensorBoard event files of a run made elsewhere into the run store.

Runs as a ``tensorboard-import`` job in a worker process (:func:`import_job`; the page submits it
with :func:`submit_import`), never in the web server. Reads TFRecord event files directly
(``tensorboard``'s generated protobuf classes only: no TensorFlow import). Scalars become epoch
metrics: the Keras callback's ``epoch_loss`` in a ``train`` folder becomes ``loss``, in a
``validation`` folder ``val_loss``; other tags keep their name; per-batch series (``batch_*``,
``*_vs_iterations``) are skipped.

Uploads are untrusted: zips are read through :func:`services.archives.read_zip_members` (names,
member count and a total size cap checked before and while reading; a damaged zip is refused in a
sentence); a damaged record ends that file's reading with what was read so far; a wall time that
is not a finite, plausible time is ignored (the import time stands in, and the run says so).
Everything is read before the run is created, and a run whose writing fails is deleted: an
import leaves a finished run or none.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import struct
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from services import archives
from services.config import check_upload, get_settings
from services.errors import UserFacingError
from services.jobs import kinds
from services.training import store as run_store

MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_IMPORT_BYTES = 512 * 1024 * 1024
"""Event-file bytes read from one uploaded zip at most (less when ``DASHBOARD_MAX_ZIP_BYTES`` is lower)."""
MAX_RECORD_BYTES = 16 * 1024 * 1024
MAX_FILES = 200
UPLOAD_FILE = "upload-{:03d}"
"""Name of the n-th uploaded file in an import job's folder."""
_UPLOAD_FILE = re.compile(r"upload-\d{3,}")
LATEST_WALL_TIME = 4_102_444_800.0
"""2100-01-01 UTC: a later wall time (or one before 1970) is not a real time."""


class NotEventFiles(UserFacingError):
    """Nothing importable in what was given."""


@dataclass
class Scalars:
    """metric name -> {step: (value, wall time)}"""

    values: dict[str, dict[int, tuple[float, float | None]]] = field(default_factory=dict)
    bad_times: int = 0
    """Events whose wall time was NaN, infinite or implausible (ignored)."""

    def add(self, name: str, step: int, value: float, wall_time: float) -> None:
        when = float(wall_time)
        if not (math.isfinite(when) and 0.0 < when < LATEST_WALL_TIME):
            when, self.bad_times = None, self.bad_times + 1
        self.values.setdefault(name, {})[int(step)] = (float(value), when)


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


def _is_event_file(member_name: str) -> bool:
    return "tfevents" in PurePosixPath(member_name).name


def _files(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """(folder, bytes) of each event file in an upload: one event file or a zip of a log folder
    (read with the size-checked zip reader; an unsafe or damaged zip raises ``UnsafeArchive``)."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        limit = min(get_settings().max_zip_bytes, MAX_IMPORT_BYTES)
        members = archives.read_zip_members(data, select=_is_event_file, max_bytes=limit,
                                            label=archives.shown(name))
        return [(str(PurePosixPath(member).parent), content[:MAX_FILE_BYTES])
                for member, content in members[:MAX_FILES]]
    return [("", data[:MAX_FILE_BYTES])] if _is_event_file(name) else []


def read_uploads(uploads: list[tuple[str, bytes | Path]], progress=None) -> Scalars:
    """The scalars of every event file in ``uploads`` ((name, bytes or the file holding them)
    pairs; files are read one at a time); ``progress(i, n)`` after each upload."""
    scalars = Scalars()
    for number, (upload_name, data) in enumerate(uploads, start=1):
        data = data.read_bytes() if isinstance(data, Path) else data
        for folder, content in _files(upload_name, data):
            read_events(content, folder, scalars)
        if progress:
            progress(number, len(uploads))
    if not scalars.values:
        raise NotEventFiles("No scalar metrics found: upload TensorBoard event files (events.out.tfevents...) "
                            "or a zip of a run's log folder.")
    return scalars


def import_event_files(store: run_store.RunStore, uploads: list[tuple[str, bytes]], name: str, *,
                       owner: str | None = None) -> str:
    """Create a finished run (source ``import``) from uploaded event files or zips of log
    folders; returns its id. Nothing is created when reading fails; a run whose writing fails
    is deleted again."""
    return write_run(store, read_uploads(uploads), name, owner=owner)


def write_run(store: run_store.RunStore, scalars: Scalars, name: str, *, owner: str | None = None) -> str:
    """The finished run holding ``scalars`` (one epoch per step); deleted again if writing fails."""
    steps = sorted({step for per_step in scalars.values.values() for step in per_step})
    times = [when for per_step in scalars.values.values() for _, when in per_step.values() if when is not None]
    imported = time.time()
    run_id = store.create_run(name[:200] or "imported run", source="import", status=run_store.RUNNING,
                              epochs=len(steps), owner=owner)
    try:
        for index, step in enumerate(steps):
            rows = [per_step[step] for per_step in scalars.values.values() if step in per_step]
            values = {metric: per_step[step][0] for metric, per_step in scalars.values.items() if step in per_step}
            when = max((w for _, w in rows if w is not None), default=imported)
            store.log_metrics(run_id, values, epoch=index, when=when, heartbeat=False, epochs_done=index + 1)
        note = ({"wall_times": f"{scalars.bad_times:,} event(s) had no valid wall time; the import time stands in"}
                if scalars.bad_times else {})
        store.update_summary(run_id, imported_from="TensorBoard event files", weights="unknown", **note)
        store.set_status(run_id, run_store.FINISHED, started=min(times, default=imported),
                         ended=max(times, default=imported))
    except BaseException:
        with contextlib.suppress(Exception):  # the original error is the one to report
            store.set_status(run_id, run_store.FAILED, "The import failed while writing; the run is removed.")
            store.delete_run(run_id)
        raise
    return run_id


# --- the job ------------------------------------------------------------------------------------

def submit_import(manager, uploads: list[tuple[str, bytes]], name: str, owner: str | None = None) -> str:
    """Queue a ``tensorboard-import`` job for ``uploads`` ((file name, bytes) pairs); returns its id."""
    check_upload(len(data) for _, data in uploads)
    files = {UPLOAD_FILE.format(number): data for number, (_, data) in enumerate(uploads)}
    params = {"name": str(name)[:200], "owner": owner,
              "uploads": [[key, str(upload_name)[:200]] for key, (upload_name, _) in zip(files, uploads)]}
    return manager.submit(kinds.TENSORBOARD_IMPORT, f"Import {str(name)[:100]}", params, files=files, owner=owner)


def _upload_pairs(params: dict[str, Any]) -> list[tuple[str, Any]]:
    """(job file, shown name) of each upload; job rows are untrusted, so only names that
    :func:`submit_import` gives (``upload-000``...) are used: nothing outside the job folder."""
    return [(pair[0], pair[1]) for pair in params.get("uploads") or []
            if isinstance(pair, list) and len(pair) == 2 and _UPLOAD_FILE.fullmatch(str(pair[0]))]


def import_job(params: dict[str, Any], context) -> dict:
    """Body of the ``tensorboard-import`` job: read the uploaded files, write the run, delete the uploads."""
    pairs = [(key, str(shown)) for key, shown in _upload_pairs(params)]
    stored = [context.dir / key for key, _ in pairs]
    try:
        uploads = [(shown, path) for path, (_, shown) in zip(stored, pairs) if path.is_file()]
        context.progress(0.0, f"reading {len(uploads)} file(s)")
        scalars = read_uploads(uploads, lambda done, total: context.progress(0.8 * done / total,
                                                                             f"read {done} of {total} file(s)"))
        context.check_stop()
        run_id = write_run(run_store.RunStore(), scalars, str(params.get("name") or "imported run"),
                           owner=params.get("owner"))
    finally:
        for path in stored:
            path.unlink(missing_ok=True)  # the uploads were parsed; never keep a second copy
    return {"run_id": run_id, "epochs": len({s for per_step in scalars.values.values() for s in per_step})}
