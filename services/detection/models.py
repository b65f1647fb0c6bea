"""A loaded Darknet model: parsed cfg, validated weights and class names, with the files on disk.

Everything is checked before a model is handed out: the cfg parses, the weights have exactly
the size the cfg implies, and the names file has as many lines as the cfg has classes. Files
are measured before they are read: a cfg or names file far larger than any real one is refused
without reading it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from services.detection.cfg import MAX_CFG_CHARS, MAX_CLASSES, DarknetConfig, parse_cfg
from services.detection.weights import DarknetWeights, load_weights
from services.errors import UserFacingError


class NamesError(UserFacingError):
    """A class-names file that does not fit the cfg."""


@dataclass
class DarknetModel:
    key: str
    title: str
    config: DarknetConfig
    weights: DarknetWeights
    names: list[str]
    cfg_path: Path
    weights_path: Path
    random_weights: bool = False
    """True for the generated demo model: its detections are meaningless."""


MAX_NAMES = MAX_CLASSES
MAX_NAME_CHARS = 200
MAX_NAMES_CHARS = MAX_NAMES * (MAX_NAME_CHARS + 2)


CFG_DIR = Path(__file__).resolve().parent / "cfgs"
"""The Darknet cfg files and class names shipped with the app."""
COCO_NAMES = CFG_DIR / "coco.names"


def coco_names() -> list[str]:
    return parse_names(COCO_NAMES.read_text(), COCO_NAMES.name)


def safe_stem(file_name: str, default: str) -> str:
    """The stem of an uploaded model file's name, reduced to characters safe in a file name; never
    hidden, never ``..`` (a file called ``...cfg`` has the stem ``..``)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(file_name).stem)
    return cleaned.lstrip(".")[:60] or default


def parse_names(text: str, name: str = "names") -> list[str]:
    """One class name per line (trailing blank lines ignored); at most :data:`MAX_NAMES` names of
    at most :data:`MAX_NAME_CHARS` characters, counted before the text is split."""
    if len(text) > MAX_NAMES_CHARS or text.count("\n") > MAX_NAMES + 100:
        raise NamesError(f"{name}: {text.count(chr(10)) + 1:,} lines / {len(text):,} characters is too large for "
                         f"a names file (at most {MAX_NAMES:,} names of {MAX_NAME_CHARS} characters).")
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names or any(not n for n in names):
        raise NamesError(f"{name}: expected one class name per line with no blank lines in between.")
    if len(names) > MAX_NAMES:
        raise NamesError(f"{name}: {len(names):,} class names; at most {MAX_NAMES:,} are supported.")
    longest = max(range(len(names)), key=lambda i: len(names[i]))
    if len(names[longest]) > MAX_NAME_CHARS:
        raise NamesError(f"{name}, line {longest + 1}: a class name of {len(names[longest]):,} characters; at most "
                         f"{MAX_NAME_CHARS} are supported.")
    return names


def read_cfg_text(path: Path) -> str:
    """The text of a cfg file, refused unread when it is not a regular file or far too large."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise UserFacingError(f"{path.name}: not a regular file.")
        if info.st_size > 4 * MAX_CFG_CHARS:
            raise UserFacingError(f"{path.name}: {info.st_size:,} bytes is far more than any Darknet cfg.")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserFacingError(f"{path.name}: not a UTF-8 text file (byte {error.start}).") from None
    except OSError as error:
        raise UserFacingError(f"{path.name}: cannot be read ({error.strerror or 'I/O error'}).") from None


def check_names(config: DarknetConfig, names: list[str], name: str = "names") -> None:
    if not config.classes:
        raise NamesError(f"{config.name}: the [yolo] layers disagree on the number of classes.")
    if len(names) != config.classes:
        raise NamesError(f"{name} has {len(names)} class names but {config.name} has classes={config.classes}; "
                         "use the names file that belongs to these weights.")


def load_darknet(cfg_path: str | os.PathLike, weights_path: str | os.PathLike, names: list[str],
                 *, key: str | None = None, title: str | None = None, random_weights: bool = False,
                 names_source: str = "names") -> DarknetModel:
    cfg_path, weights_path = Path(cfg_path), Path(weights_path)
    config = parse_cfg(read_cfg_text(cfg_path), cfg_path.name)
    check_names(config, names, names_source)
    weights = load_weights(config, weights_path)
    return DarknetModel(key or cfg_path.stem, title or cfg_path.stem, config, weights, names,
                        cfg_path, weights_path, random_weights)
