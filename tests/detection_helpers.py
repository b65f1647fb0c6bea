"""Helpers for the detection tests: cfgs with small inputs and random weights on disk."""

from __future__ import annotations

from pathlib import Path

from services.detection.cfg import parse_cfg
from services.detection.models import DarknetModel, load_darknet
from services.detection.weights import random_weights_bytes

# A small network that uses every supported layer type and option: stride-2 conv (Darknet
# padding), size-2 stride-1 maxpool, route groups, multi-source route, shortcut, upsample,
# leaky / linear / mish / logistic / relu activations, conv without batch norm, scale_x_y.
SYNTHETIC_CFG = """\
[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=mish

[route]
layers=-1
groups=2
group_id=1

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=logistic

[route]
layers=-1,-2

[convolutional]
filters=16
size=3
stride=1
pad=1
activation=relu

[shortcut]
from=-5
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=3,4,5
anchors=4,5, 8,9, 12,10, 16,20, 24,30, 40,36
classes=2
num=6
scale_x_y=1.05

[route]
layers=-3

[upsample]
stride=2

[route]
layers=-1,-8

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=0,1,2
anchors=4,5, 8,9, 12,10, 16,20, 24,30, 40,36
classes=2
num=6
"""


def write_model(directory: Path, text: str, name: str, size: int, seed: int = 0,
                kernel_scale: float | None = None) -> DarknetModel:
    """cfg (with the input size changed) + random weights on disk, loaded through load_darknet."""
    directory.mkdir(parents=True, exist_ok=True)
    config = parse_cfg(text, name).with_input_size(size)
    lines = [f"width={size}" if l.startswith("width") else f"height={size}" if l.startswith("height") else l
             for l in text.splitlines()]
    cfg_path = directory / name
    cfg_path.write_text("\n".join(lines) + "\n")
    weights_path = directory / (Path(name).stem + ".weights")
    weights_path.write_bytes(random_weights_bytes(config, seed=seed, kernel_scale=kernel_scale))
    names = [f"class{i}" for i in range(config.classes)]
    return load_darknet(cfg_path, weights_path, names, random_weights=True)
