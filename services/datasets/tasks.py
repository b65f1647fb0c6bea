"""Background-job functions of the dataset explorer (run by :class:`services.jobs.JobManager`).

Each takes a :class:`~services.jobs.JobContext`, reports progress, honours the stop button and
returns a small JSON result. Kinds: ``dataset-index`` (generate the demo set if needed, then
index), ``kather-download`` (download, verify, extract, index) and ``dataset-import``
(extract an uploaded or pointed-to zip, then index).
"""

from __future__ import annotations

from services.datasets import index, kather, sources
from services.jobs import JobContext, JobManager

INDEX_KIND, KATHER_KIND, IMPORT_KIND = "dataset-index", "kather-download", "dataset-import"


def _index(context: JobContext, name: str, start: float = 0.0, share: float = 1.0) -> dict:
    folder = sources.dataset_folder(name)
    context.progress(start, f"indexing {name}")

    def progress(done: int, total: int) -> None:
        context.progress(start + share * done / max(total, 1), f"indexing {name}: {done:,} of {total:,} files")

    frame = index.load_index(folder, progress=progress, stop=context.should_stop)
    usable = int(frame["problem"].isna().sum())
    return {"dataset": name, "files": len(frame), "usable": usable}


def index_job(context: JobContext) -> dict:
    name = context.params["dataset"]
    if name == "demo":
        context.progress(0.0, "generating the synthetic demo set")
    return _index(context, name)


def kather_job(context: JobContext) -> dict:
    """Download (resumable) or take the zip the user pointed to, verify, extract, index."""
    zip_path = context.params.get("zip_path")
    if not kather.is_installed():
        if not zip_path:
            def downloaded(done: int, total: int | None) -> None:
                fraction = done / total if total else 0.0
                context.progress(0.7 * fraction, f"downloading: {done / 1e6:,.1f} of "
                                                 f"{(total or 0) / 1e6:,.1f} MB")

            kather.download_kather(progress=downloaded, stop=context.stop_event,
                                   **context.params.get("source", {}))
        context.progress(0.7, "verifying and extracting")
        expected = context.params.get("source", {})
        kather.install_kather(zip_path, stop=context.should_stop,
                              **{k: v for k, v in expected.items() if k in ("size", "md5")},
                              progress=lambda done, total: context.progress(0.7 + 0.15 * done / max(total, 1)))
    return _index(context, kather.DATASET_NAME, start=0.85, share=0.15)


def import_job(context: JobContext) -> dict:
    name, zip_path = context.params["dataset"], context.params["zip_path"]
    context.progress(0.0, f"extracting {zip_path}")
    sources.import_zip(zip_path, name, stop=context.should_stop,
                       progress=lambda done, total: context.progress(0.5 * done / max(total, 1)))
    return _index(context, name, start=0.5, share=0.5)


def active_job(manager: JobManager, kind: str, dataset: str | None = None):
    """The running or queued job of ``kind`` (for ``dataset``), so a page never starts two."""
    for state in manager.list(kind=kind):
        if state.active and dataset in (None, state.params.get("dataset")):
            return state
    return None


def submit_once(manager: JobManager, kind: str, title: str, function, params: dict) -> str:
    running = active_job(manager, kind, params.get("dataset"))
    if running is not None:
        return running.id
    if kind == IMPORT_KIND:
        sources.check_new_name(params["dataset"])  # refuse a bad name now, not in the job
    return manager.submit(kind, title, function, params)
