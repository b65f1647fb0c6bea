"""Job bodies of the dataset explorer (kinds in :mod:`services.jobs.kinds`), run in worker processes.

Each body is ``(params, context)``: it reports progress, honours Stop and returns a small JSON
result. Kinds:

- ``dataset-index`` ``{"dataset": name}``: generate the demo set if needed, then index.
- ``kather-download`` ``{"zip_path"?: path under the data root}``: download (resumable) or take
  the zip the user pointed to, verify its md5, extract, index.
- ``nct-download`` ``{"dataset": "nct-crc-he-100k" | "crc-val-he-7k", "zip_path"?}``: the same
  for the NCT-CRC-HE archives (:mod:`services.datasets.nct_tasks`).
- ``dataset-import`` ``{"dataset": name, "zip_name": shown name, "zip_path"?: path under the
  data root, "owner"?: who imports it}``: extract the zip submitted as the job file :data:`UPLOAD_FILE` (deleted after
  the import, whatever its outcome) or the zip at ``zip_path`` (the user's own file, kept),
  then index.

Messages name zips by their file names only, never by server paths.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from services.archives import ExtractionStopped
from services.config import check_upload, confine
from services.datasets import index, kather, sources
from services.errors import UserFacingError
from services.jobs.context import JobContext, JobStopped
from services.jobs import kinds

DATASET_KINDS = (kinds.KATHER_DOWNLOAD, kinds.NCT_DOWNLOAD, kinds.DATASET_IMPORT, kinds.DATASET_INDEX)
DOWNLOAD_KINDS = (kinds.KATHER_DOWNLOAD, kinds.NCT_DOWNLOAD)
UPLOAD_FILE = "upload.zip"
"""Name of the uploaded zip in an import job's folder (``manager.submit(..., files={UPLOAD_FILE: data})``)."""


@contextlib.contextmanager
def _stops_as_job_stopped() -> Iterator[None]:
    """Stop pressed while extracting or indexing ends the job as ``stopped``, not ``failed``."""
    try:
        yield
    except (ExtractionStopped, index.IndexingStopped) as error:
        raise JobStopped() from error


def _index(context: JobContext, name: str, start: float = 0.0, share: float = 1.0) -> dict:
    folder = sources.dataset_folder(name)
    context.progress(start, f"indexing {name}")

    def progress(done: int, total: int) -> None:
        context.progress(start + share * done / max(total, 1), f"indexing {name}: {done:,} of {total:,} files")

    with _stops_as_job_stopped():
        frame = index.load_index(folder, progress=progress, stop=context.should_stop)
    usable = int(frame["problem"].isna().sum())
    return {"dataset": name, "files": len(frame), "usable": usable}


def _dataset_param(params: dict[str, Any]) -> str:
    name = params.get("dataset")
    if not isinstance(name, str) or not name:
        raise UserFacingError("the job names no dataset.")
    return name


def index_job(params: dict[str, Any], context: JobContext) -> dict:
    name = _dataset_param(params)
    if name == "demo":
        context.progress(0.0, "generating the synthetic demo set")
    return _index(context, name)


def kather_job(params: dict[str, Any], context: JobContext) -> dict:
    """Download (resumable) or take the zip the user pointed to, verify, extract, index."""
    expected = {k: v for k, v in (params.get("source") or {}).items() if k in ("url", "size", "md5")}
    return download_install_index(context, kather.DATASET_NAME, installed=kather.is_installed(),
                                  download=kather.download_kather, install=kather.install_kather,
                                  zip_path=params.get("zip_path"), expected=expected)


def download_install_index(context: JobContext, name: str, *, installed: bool, download: Callable[..., Any],
                           install: Callable[..., Any], zip_path: str | None, expected: dict[str, Any]) -> dict:
    """The steps of a published dataset's job: unless ``installed``, ``download(progress=,
    stop=, **expected)`` (skipped when the user points to ``zip_path``), then
    ``install(zip_path, stop=, progress=, size=, md5=)``; then index dataset ``name``.
    ``expected`` may hold ``url``/``size``/``md5`` (tests against a local server)."""
    if not installed:
        if not zip_path:
            def downloaded(done: int, total: int | None) -> None:
                fraction = done / total if total else 0.0
                context.progress(0.7 * fraction, f"downloading: {done / 1e6:,.1f} of "
                                                 f"{(total or 0) / 1e6:,.1f} MB")

            download(progress=downloaded, stop=context.stop_event, **expected)
            if context.should_stop():
                raise JobStopped()
        context.progress(0.7, "verifying and extracting")
        with _stops_as_job_stopped():
            install(zip_path, stop=context.should_stop,
                    progress=lambda done, total: context.progress(0.7 + 0.15 * done / max(total, 1)),
                    **{k: v for k, v in expected.items() if k in ("size", "md5")})
    return _index(context, name, start=0.85, share=0.15)


def import_job(params: dict[str, Any], context: JobContext) -> dict:
    """Extract the uploaded (or pointed-to) zip as a new dataset owned by ``params["owner"]``, then index it."""
    name = _dataset_param(params)
    upload = context.dir / UPLOAD_FILE
    source = upload if upload.is_file() else _zip_param(params)
    label = str(params.get("zip_name") or Path(source).name)[:120]
    context.progress(0.0, f"extracting {label}")
    try:
        with _stops_as_job_stopped():
            sources.import_zip(source, name, stop=context.should_stop, label=label, owner=params.get("owner"),
                               progress=lambda done, total: context.progress(0.5 * done / max(total, 1)))
    finally:
        upload.unlink(missing_ok=True)  # the upload was copied in; never keep a second copy
    return _index(context, name, start=0.5, share=0.5)


def _zip_param(params: dict[str, Any]) -> Path:
    relative = params.get("zip_path")
    if not isinstance(relative, str) or not relative:
        raise UserFacingError("the import job got no zip; upload one or give a path under the data root.")
    return confine(relative)


def active_job(manager, kind: str, dataset: str | None = None):
    """The running or queued job of ``kind`` (for ``dataset``), so a page never starts two."""
    for state in manager.list(kind=kind):
        if state.status in ("queued", "running") and dataset in (None, state.params.get("dataset")):
            return state
    return None


def submit_once(manager, kind: str, title: str, params: dict, files: dict[str, bytes] | None = None) -> str:
    """Submit a dataset job unless one of the same kind for the same dataset is active; a bad
    new dataset name is refused now, not in the job."""
    running = active_job(manager, kind, params.get("dataset"))
    if running is not None:
        return running.id
    if kind == kinds.DATASET_IMPORT:
        sources.check_new_name(params.get("dataset"))
    if files:
        check_upload(len(data) for data in files.values())
    return manager.submit(kind, title, params, files=files)
