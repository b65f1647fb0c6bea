"""Job body of the NCT-CRC-HE archives (:mod:`services.datasets.nct`): download or take the zip,
verify, extract, index; the same steps and messages as the Kather 2016 job."""

from __future__ import annotations

from typing import Any

from services.datasets.nct import known
from services.datasets.tasks import _index, _stops_as_job_stopped
from services.jobs.context import JobStopped


def nct_job(params: dict[str, Any], context) -> dict:
    """Job body: download (resumable) or take the zip the user pointed to (``zip_path``), verify
    its md5, extract, index. ``params["dataset"]`` is ``nct-crc-he-100k`` or ``crc-val-he-7k``;
    ``params["source"]`` may override url/size/md5 (tests against a local server)."""
    archive = known(params.get("dataset"))
    zip_path = params.get("zip_path")
    expected = {k: v for k, v in (params.get("source") or {}).items() if k in ("url", "size", "md5")}
    if not archive.is_installed():
        if not zip_path:
            def downloaded(done: int, total: int | None) -> None:
                fraction = done / total if total else 0.0
                context.progress(0.7 * fraction, f"downloading: {done / 1e6:,.1f} of {(total or 0) / 1e6:,.1f} MB")

            archive.download(progress=downloaded, stop=context.stop_event, **expected)
            if context.should_stop():
                raise JobStopped()
        context.progress(0.7, "verifying and extracting")
        with _stops_as_job_stopped():
            archive.install(zip_path, stop=context.should_stop,
                            progress=lambda done, total: context.progress(0.7 + 0.15 * done / max(total, 1)),
                            **{k: v for k, v in expected.items() if k in ("size", "md5")})
    return _index(context, archive.name, start=0.85, share=0.15)
