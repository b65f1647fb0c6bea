"""Job body of the NCT-CRC-HE archives (:mod:`services.datasets.nct`): download or take the zip,
verify, extract, index; the same steps and messages as the Kather 2016 job."""

from __future__ import annotations

from typing import Any

from services.datasets.nct import known
from services.datasets.tasks import download_install_index


def nct_job(params: dict[str, Any], context) -> dict:
    """Job body: download (resumable) or take the zip the user pointed to (``zip_path``), verify
    its md5, extract, index. ``params["dataset"]`` is ``nct-crc-he-100k`` or ``crc-val-he-7k``;
    ``params["source"]`` may override url/size/md5 (tests against a local server)."""
    archive = known(params.get("dataset"))
    expected = {k: v for k, v in (params.get("source") or {}).items() if k in ("url", "size", "md5")}
    return download_install_index(context, archive.name, installed=archive.is_installed(),
                                  download=archive.download, install=archive.install,
                                  zip_path=params.get("zip_path"), expected=expected)
