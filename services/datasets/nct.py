"""The NCT-CRC-HE tile sets (Kather et al. 2018, Zenodo record 1214456): download, verify, extract.

Two known archives, handled exactly like Kather 2016 (:mod:`services.datasets.kather`): the zip
goes to ``<data_root>/downloads/`` (resumable, size and md5 verified) or is pointed to anywhere
under the data root, then extracted safely into ``<data_root>/datasets/<name>/``.

- ``nct-crc-he-100k``: NCT-CRC-HE-100K, 100,000 training tiles (11,690,284,003 bytes).
- ``crc-val-he-7k``: CRC-VAL-HE-7K, 7,180 validation tiles from other patients (800,276,929 bytes).

Both: 224x224 px RGB TIFF at 0.5 um/px, Macenko colour-normalised, nine classes (ADI adipose,
BACK background, DEB debris, LYM lymphocytes, MUC mucus, MUS smooth muscle, NORM normal colon
mucosa, STR cancer-associated stroma, TUM tumour epithelium). Kather 2016 has eight, differently
cut: see :mod:`services.transfer.crossdataset` for the explicit mapping between them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.archives import safe_extract
from services.config import confine, get_settings
from services.download import download, offline_message, verify_file
from services.errors import UserFacingError

ZENODO_RECORD = "1214456"
CLASSES = ("ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM")
CITATION = ("Kather JN, Halama N, Marx A. 100,000 histological images of human colorectal cancer and healthy "
            "tissue. Zenodo record 1214456 (2018), CC BY 4.0; Kather JN et al., PLoS Med 16(1): e1002730 (2019).")

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class KnownArchive:
    """One published zip of class folders: where it is, how big, its md5, where it goes."""

    name: str
    """The dataset's name in the dashboard (also its folder under ``<data_root>/datasets``)."""
    title: str
    file_name: str
    size: int
    md5: str
    tiles: int
    max_extracted_bytes: int
    """Cap on the uncompressed size when extracting (the tiles are TIFFs, barely compressed)."""

    @property
    def url(self) -> str:
        return f"https://zenodo.org/records/{ZENODO_RECORD}/files/{self.file_name}?download=1"

    def download_path(self) -> Path:
        return get_settings().downloads_dir / self.file_name

    def install_folder(self) -> Path:
        return get_settings().datasets_dir / self.name

    def is_installed(self) -> bool:
        return self.install_folder().is_dir()

    def manual_instructions(self) -> str:
        return offline_message(self.url, self.download_path())

    def download(self, *, progress: Progress | None = None, stop: threading.Event | None = None,
                 url: str | None = None, size: int | None = None, md5: str | None = None) -> Path:
        """Download (or resume) the zip and verify size and md5 (``url``/``size``/``md5``: tests)."""
        return download(url or self.url, self.download_path(), size=size or self.size, md5=md5 or self.md5,
                        progress=progress, stop=stop)

    def install(self, zip_path: str | Path | None = None, *, progress: Callable[[int, int], None] | None = None,
                stop: Callable[[], bool] | None = None, size: int | None = None, md5: str | None = None) -> Path:
        """Verify the zip (the downloaded one, or one under the data root) and extract it."""
        path = confine(zip_path) if zip_path else self.download_path()
        if not path.is_file():
            raise UserFacingError(f"{path.name} not found. {self.manual_instructions()}")
        verify_file(path, size=size or self.size, md5=md5 or self.md5)
        return safe_extract(path, self.install_folder(), max_bytes=self.max_extracted_bytes,
                            max_members=self.tiles + 1000, progress=progress, stop=stop)


NCT_100K = KnownArchive("nct-crc-he-100k", "NCT-CRC-HE-100K (100,000 colorectal tiles, 9 classes)",
                        "NCT-CRC-HE-100K.zip", 11_690_284_003, "6fd702d11df6292bc054397ae038a464", 100_000,
                        16 * 1024**3)
CRC_VAL_7K = KnownArchive("crc-val-he-7k", "CRC-VAL-HE-7K (7,180 colorectal validation tiles, 9 classes)",
                          "CRC-VAL-HE-7K.zip", 800_276_929, "2fd1651b4f94ebd818ebf90ad2b6ce06", 7_180,
                          2 * 1024**3)
KNOWN: dict[str, KnownArchive] = {archive.name: archive for archive in (NCT_100K, CRC_VAL_7K)}


def known(name: str) -> KnownArchive:
    try:
        return KNOWN[name]
    except (KeyError, TypeError):
        raise UserFacingError(f"unknown NCT-CRC-HE archive {name!r}; known: {', '.join(KNOWN)}.") from None
