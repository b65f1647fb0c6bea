"""The Magenta arbitrary-style TF Lite files: where they come from and whether they are usable.

Fast arbitrary style transfer (Ghiasi et al. 2017, Magenta's arbitrary-image-stylization-v1-256)
ships as two TF Lite networks, the files of TensorFlow's TF Lite style-transfer example: a style
*prediction* network (256x256 style image -> 100-number bottleneck) and a style *transfer*
network (384x384 content picture + bottleneck -> stylised picture), the latter as float16 or
int8. They live in ``<model cache>/magenta/``, are downloaded on request with their exact size and
sha256 checked (:func:`download_job`), or put there by the user. A file of the wrong size or
checksum (a truncated download, a foreign file) is refused with the reason. No TensorFlow here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.config import MAGENTA, get_settings
from services.download import download, file_digest, verify_file
from services.errors import DownloadFailed, UserFacingError

_BASE_URL = "https://storage.googleapis.com/download.tensorflow.org/models/tflite/arbitrary_style_transfer/"
FOLDER = MAGENTA
"""The folder's name in the model cache, as messages show it."""
TFLITE_IDENTIFIER = b"TFL3"
"""The FlatBuffer file identifier of every TF Lite model (bytes 4..8)."""


class FastModelMissing(UserFacingError):
    """A Magenta file that is not there or not usable; the message names the fix."""


@dataclass(frozen=True)
class TFLiteFile:
    key: str
    file_name: str
    """The file name exactly as TensorFlow's example downloads it."""
    title: str
    size: int
    sha256: str

    @property
    def url(self) -> str:
        return _BASE_URL + self.file_name


PREDICT = TFLiteFile("predict", "style_predict_quantized_256.tflite", "style prediction network (int8)",
                     2_828_838, "af6ad4b2e7aeba0675f32636082ab915ced5375229a3f8aff7e714c6213f5ed2")
TRANSFER_VARIANTS: dict[str, TFLiteFile] = {
    "f16": TFLiteFile("transfer_f16", "style_transfer_f16_384.tflite", "style transfer network (float16)",
                      422_086, "53b5243ed5aa33e408db7976c8a8e51a90a0f7708fd122a31428cd00fbdf6aa6"),
    "int8": TFLiteFile("transfer_int8", "style_transfer_quantized_384.tflite", "style transfer network (int8)",
                       284_398, "7a1550643cf034a4d813c0aa276976cd15da4141b4f1ec3631db1d0d9c8e2cd1"),
}
DEFAULT_VARIANT = "f16"


def folder() -> Path:
    return get_settings().fast_style_dir


def files_for(variant: str = DEFAULT_VARIANT) -> list[TFLiteFile]:
    try:
        return [PREDICT, TRANSFER_VARIANTS[variant]]
    except KeyError:
        raise UserFacingError(f"unknown fast-style network {variant!r}; known: {', '.join(TRANSFER_VARIANTS)}.") from None


def problem(item: TFLiteFile, path: Path) -> str | None:
    """None when ``path`` is the genuine file; else what is wrong with it, in words."""
    if not path.is_file():
        return f"{item.file_name} is not in the model cache"
    size = path.stat().st_size
    if size != item.size:
        state = "truncated" if size < item.size else "too long"
        return f"{item.file_name} is {state}: {size:,} bytes instead of {item.size:,}"
    with open(path, "rb") as handle:
        if handle.read(8)[4:8] != TFLITE_IDENTIFIER:
            return f"{item.file_name} is not a TF Lite model (no TFL3 identifier)"
    if _sha256(str(path), size, path.stat().st_mtime_ns) != item.sha256:
        return f"{item.file_name} has the right size but not the published sha256 (altered or foreign file)"
    return None


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, remembered while its size and mtime stay the same (the page asks often)."""
    return file_digest(path, "sha256")


@dataclass(frozen=True)
class FastModelStatus:
    variant: str
    usable: bool
    problems: list[str]
    paths: dict[str, Path]
    """file key -> where the file is (or goes)."""

    @property
    def reason(self) -> str:
        if self.usable:
            return f"Magenta arbitrary-style networks ({self.variant}) in the model cache."
        return "Fast style transfer needs the Magenta TF Lite files: " + "; ".join(self.problems) + "."

    @property
    def fix(self) -> str:
        items = files_for(self.variant)
        total = sum(item.size for item in items) / 1e6
        return (f"Press download ({total:.1f} MB), or download {' and '.join(item.url for item in items)} "
                f"on a machine with internet and copy them into <model cache>/{FOLDER}/.")


def status(variant: str = DEFAULT_VARIANT) -> FastModelStatus:
    """Whether the files of ``variant`` are present and genuine (reads each once per call)."""
    paths = {item.key: folder() / item.file_name for item in files_for(variant)}
    problems = [text for item in files_for(variant) if (text := problem(item, paths[item.key]))]
    return FastModelStatus(variant, not problems, problems, paths)


def resolve(variant: str = DEFAULT_VARIANT) -> tuple[Path, Path]:
    """(prediction file, transfer file), or :class:`FastModelMissing` naming the fix."""
    current = status(variant)
    if not current.usable:
        raise FastModelMissing(f"{current.reason} {current.fix}")
    return current.paths[PREDICT.key], current.paths[TRANSFER_VARIANTS[variant].key]


def download_files(variant: str = DEFAULT_VARIANT, *, progress=None, stop=None) -> list[Path]:
    """Download the files of ``variant`` that are missing (size and sha256 checked, resumable).

    A file already present that does not verify is never overwritten silently: the message says
    to delete it.
    """
    items = files_for(variant)
    total = sum(item.size for item in items)
    done_before = 0
    paths = []
    for item in items:
        target = folder() / item.file_name
        if target.exists():
            try:
                verify_file(target, size=item.size, sha256=item.sha256)
            except DownloadFailed as error:
                raise FastModelMissing(f"{error} Delete {item.file_name} from <model cache>/{FOLDER}/ "
                                       "and download it again.") from None
        offset = done_before
        report = (lambda done, _total, offset=offset: progress(offset + done, total)) if progress else None
        paths.append(download(item.url, target, size=item.size, sha256=item.sha256, progress=report, stop=stop))
        done_before += item.size
    return paths


def download_job(params: dict[str, Any], context) -> dict[str, Any]:
    """Body of the ``style-model-download`` job: ``params`` = {"variant": "f16" | "int8"}."""
    variant = str((params or {}).get("variant") or DEFAULT_VARIANT)

    def report(done: int, total: int) -> None:
        context.progress(done / total, f"{done / 1e6:.1f} of {total / 1e6:.1f} MB")

    paths = download_files(variant, progress=report, stop=context.stop_event)
    return {"files": [path.name for path in paths], "variant": variant}
