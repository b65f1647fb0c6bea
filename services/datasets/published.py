"""The published tile sets the explorer offers to download: Kather 2016 and the NCT-CRC-HE pair.

One description per set (what it is, where it comes from, its size and md5, which job installs
it), so the page draws one panel for all of them and recognises their zips by file name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.datasets import kather, nct
from services.jobs import kinds


@dataclass(frozen=True)
class Published:
    name: str
    """The dataset's name in the dashboard."""
    label: str
    file_name: str
    url: str
    record: str
    size: int
    md5: str
    citation: str
    kind: str
    """The job kind that downloads or takes the zip, verifies, extracts and indexes it."""
    is_installed: Callable[[], bool]
    manual_instructions: Callable[[], str]

    @property
    def size_text(self) -> str:
        return f"{self.size / 1e9:.1f} GB" if self.size >= 1e9 else f"{self.size / 1e6:.0f} MB"

    def job_params(self, zip_path: str | None = None) -> dict:
        """The job's parameters: download, or take ``zip_path`` (relative to the data root)."""
        return {"dataset": self.name, **({"zip_path": zip_path} if zip_path else {})}


def _nct(archive: nct.KnownArchive) -> Published:
    return Published(archive.name, archive.file_name.removesuffix(".zip"), archive.file_name, archive.url,
                     f"Zenodo record {nct.ZENODO_RECORD}", archive.size, archive.md5, nct.CITATION, kinds.NCT_DOWNLOAD,
                     archive.is_installed, archive.manual_instructions)


PUBLISHED: tuple[Published, ...] = (
    Published(kather.DATASET_NAME, "Kather 2016", kather.FILE_NAME, kather.URL, "Zenodo record 53169", kather.SIZE,
              kather.MD5, kather.CITATION, kinds.KATHER_DOWNLOAD, kather.is_installed, kather.manual_instructions),
    *map(_nct, nct.KNOWN.values()),
)


def by_file_name(file_name: str) -> Published | None:
    """The published set whose zip is called ``file_name`` (exactly, as published)."""
    return next((item for item in PUBLISHED if item.file_name == file_name), None)
