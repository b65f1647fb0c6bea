"""The ``weights-download`` job body: download a backbone's ImageNet weights, or install an
uploaded file, in a worker process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.jobs import kinds
from services.models.backbones import spec
from services.models.weights.cache import resolve_weights
from services.models.weights.upload import install_weights_file

UPLOAD_FILE = "weights-upload.bin"
"""Name of an uploaded weights file in a ``weights-download`` job's folder (``files=``)."""


def submit_download(manager, backbone: str, owner: str | None = None) -> str:
    """Queue the download of ``backbone``'s ImageNet weights (:func:`download_weights_job`); the job id."""
    return manager.submit(kinds.WEIGHTS_DOWNLOAD, f"Download {spec(backbone).title} weights", {"backbone": backbone},
                          owner=owner)


def submit_install(manager, backbone: str, original_name: str, data: bytes) -> str:
    """Queue the check and installation of an uploaded weights file ``data`` (named
    ``original_name`` by the person) for ``backbone``; the job id."""
    return manager.submit(kinds.WEIGHTS_DOWNLOAD, f"Install {original_name} for {spec(backbone).title}",
                          {"backbone": backbone, "original_name": original_name}, files={UPLOAD_FILE: data})


def download_weights_job(params: dict[str, Any], context) -> dict[str, str]:
    """Job body (kind ``weights-download``): get the ImageNet weights of ``params["backbone"]``
    into the model cache. Downloads them (progress in MB, stop honoured; a stopped download
    resumes next time), or, when the job was submitted with the file :data:`UPLOAD_FILE`
    (``params["original_name"]``: its name as uploaded), checks and installs that file
    (:func:`install_weights_file`; the upload is deleted afterwards). The result names the
    backbone and the cached file, never a server path."""
    name = str(params.get("backbone", ""))
    backbone = spec(name)
    upload = Path(context.dir) / UPLOAD_FILE
    if upload.is_file():
        shown = str(params.get("original_name") or "the uploaded file")[:200]
        context.progress(0.1, f"checking {shown} against {backbone.title}")
        try:
            path = install_weights_file(name, upload, original_name=shown, confined=False)
        finally:
            upload.unlink(missing_ok=True)
        return {"backbone": name, "file": path.name, "installed_from": shown}

    def report(done: int, total: int | None) -> None:
        total = total or int(backbone.approx_mb * 1e6)
        context.progress(done / total, f"{done / 1e6:.1f} of {total / 1e6:.1f} MB")

    path = resolve_weights(name, download=True, progress=report, stop=context.stop_event)
    if context.should_stop():
        return {"backbone": name}
    return {"backbone": name, "file": path.name}
