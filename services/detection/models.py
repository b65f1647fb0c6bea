"""A loaded Darknet model: parsed cfg, validated weights and class names, with the files on disk.

Everything is checked before a model is handed out: the cfg parses, the weights have exactly
the size the cfg implies, and the names file has as many lines as the cfg has classes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from services.detection.cfg import DarknetConfig, parse_cfg
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


def parse_names(text: str, name: str = "names") -> list[str]:
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names or any(not n for n in names):
        raise NamesError(f"{name}: expected one class name per line with no blank lines in between.")
    return names


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
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserFacingError(f"{cfg_path.name}: not a text file ({error}).") from error
    config = parse_cfg(text, cfg_path.name)
    check_names(config, names, names_source)
    weights = load_weights(config, weights_path)
    return DarknetModel(key or cfg_path.stem, title or cfg_path.stem, config, weights, names,
                        cfg_path, weights_path, random_weights)
