"""The Kather 2016 larger images (Zenodo record 53169): ten 5000x5000 px RGB images at 0.495 um/px.

``Kather_texture_2016_larger_images_10.zip`` (742,020,106 bytes, sha256 below) is downloaded
like the tile set (resumable, verified) into ``<data root>/downloads/`` and extracted safely into
``<data root>/datasets/kather2016_larger/``. Offline, put the zip there by hand. The images carry
no resolution metadata: the page fills in 0.495 um/px for them.
"""

from __future__ import annotations

from pathlib import Path

from services.archives import safe_extract
from services.config import get_settings
from services.download import download, offline_message, verify_file
from services.jobs import kinds
from services.errors import UserFacingError

URL = "https://zenodo.org/records/53169/files/Kather_texture_2016_larger_images_10.zip?download=1"
FILE_NAME = "Kather_texture_2016_larger_images_10.zip"
SIZE = 742_020_106
SHA256 = "77336ba5a71d2d5140a10376bd432cd0cbbcc71cf81936ca9826ad1189ae438b"
MPP = 0.495
FOLDER_NAME = "kather2016_larger"
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


def download_path() -> Path:
    return get_settings().downloads_dir / FILE_NAME


def install_folder() -> Path:
    return get_settings().datasets_dir / FOLDER_NAME


def installed_images() -> list[Path]:
    folder = install_folder()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def manual_instructions() -> str:
    return offline_message(URL, download_path())


def install(*, progress=None, stop=None, size: int | None = SIZE, sha256: str | None = SHA256,
            url: str = URL) -> Path:
    """Download (or resume), verify and extract; ``url``/``size``/``sha256`` exist for tests."""
    zip_path = download(url, download_path(), size=size, sha256=sha256, progress=progress, stop=stop)
    verify_file(zip_path, size=size, sha256=sha256)
    return safe_extract(zip_path, install_folder())


def submit_download(manager) -> str:
    """Queue the download of the larger images (:func:`download_job`); the job id."""
    return manager.submit(kinds.KATHER_LARGE_DOWNLOAD, "Download Kather 2016 larger images", {})


def download_job(params: dict, context) -> dict:
    """Job body (kind ``kather-large-download``): download, verify, extract."""
    if installed_images():
        return {"images": len(installed_images())}

    def downloaded(done: int, total: int | None) -> None:
        context.progress(0.9 * done / total if total else 0.0, f"downloading: {done / 1e6:,.0f} of "
                                                               f"{(total or 0) / 1e6:,.0f} MB")

    install(progress=downloaded, stop=context.stop_event, **params.get("source", {}))
    images = installed_images()
    if not images:
        raise UserFacingError(f"{FILE_NAME} held no images.")
    return {"images": len(images)}
