"""The real Kather 2016 tile set (Zenodo record 53169): download, verify, extract.

The zip (258,098,431 bytes, md5 0ddbebfc56344752028fda72602aaade) goes to
``<data_root>/downloads/``, resumable; it is verified and extracted safely into
``<data_root>/datasets/kather2016/``. Offline, put the zip there by hand (or anywhere under the
data root and point the explorer to it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from services.config import confine, get_settings
from services.archives import safe_extract
from services.download import download, offline_message, verify_file
from services.errors import UserFacingError

URL = "https://zenodo.org/records/53169/files/Kather_texture_2016_image_tiles_5000.zip?download=1"
FILE_NAME = "Kather_texture_2016_image_tiles_5000.zip"
SIZE = 258_098_431
MD5 = "0ddbebfc56344752028fda72602aaade"
DATASET_NAME = "kather2016"
CITATION = ("Kather JN et al. Multi-class texture analysis in colorectal cancer histology. "
            "Sci Rep 6, 27988 (2016). doi:10.1038/srep27988. Zenodo record 53169 (CC BY 4.0).")

Progress = Callable[[int, int | None], None]


def download_path() -> Path:
    return get_settings().downloads_dir / FILE_NAME


def install_folder() -> Path:
    return get_settings().datasets_dir / DATASET_NAME


def is_installed() -> bool:
    return install_folder().is_dir()


def manual_instructions() -> str:
    return offline_message(URL, download_path())


def download_kather(*, progress: Progress | None = None, stop: threading.Event | None = None,
                    url: str = URL, size: int | None = SIZE, md5: str | None = MD5) -> Path:
    """Download (or resume) the zip and verify its size and md5. ``url``/``size``/``md5`` exist
    for tests against a local server."""
    return download(url, download_path(), size=size, md5=md5, progress=progress, stop=stop)


def install_kather(zip_path: str | Path | None = None, *, progress: Callable[[int, int], None] | None = None,
                   stop: Callable[[], bool] | None = None, size: int | None = SIZE, md5: str | None = MD5) -> Path:
    """Verify the zip (the downloaded one, or one under the data root) and extract it."""
    zip_path = confine(zip_path) if zip_path else download_path()
    if not zip_path.is_file():
        raise UserFacingError(f"{zip_path.name} not found. {manual_instructions()}")
    verify_file(zip_path, size=size, md5=md5)
    return safe_extract(zip_path, install_folder(), progress=progress, stop=stop)
