"""Darknet ``.weights`` files: header, exact-size validation, per-convolution arrays.

Layout: int32 major, minor, revision; ``seen`` as int64 when ``major * 10 + minor >= 2`` and
``major < 1000`` (int32 otherwise); then for each convolution in cfg order: biases[filters],
and with batch normalisation scales, rolling means, rolling variances [filters each]; then the
kernel as float32[filters, in_channels / groups, size, size]. OpenCV does not check the length
and silently runs on garbage; here the size must match the cfg exactly, and a file is measured
(``stat`` and its 20-byte header) before a byte of its values is read.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.detection.cfg import Convolutional, DarknetConfig
from services.errors import UserFacingError

HEADER_INTS = 3


class WeightsError(UserFacingError):
    """A weights file that does not belong to the cfg or is truncated."""


@dataclass(frozen=True)
class Header:
    major: int
    minor: int
    revision: int
    seen: int

    @property
    def seen_bytes(self) -> int:
        return seen_size(self.major, self.minor)

    @property
    def nbytes(self) -> int:
        return 4 * HEADER_INTS + self.seen_bytes


@dataclass
class ConvWeights:
    biases: np.ndarray
    kernel: np.ndarray
    """float32 [filters, in_channels / groups, size, size] (Darknet order)."""
    scales: np.ndarray | None = None
    rolling_mean: np.ndarray | None = None
    rolling_variance: np.ndarray | None = None


@dataclass
class DarknetWeights:
    header: Header
    convs: dict[int, ConvWeights]
    """Keyed by the layer index of the convolution."""


def seen_size(major: int, minor: int) -> int:
    return 8 if major * 10 + minor >= 2 and major < 1000 else 4


def kernel_shape(layer: Convolutional) -> tuple[int, int, int, int]:
    return layer.filters, layer.input_channels // layer.groups, layer.size, layer.size


def expected_size(config: DarknetConfig, header: Header) -> int:
    return header.nbytes + 4 * config.parameter_count


def read_header(data: bytes, name: str = "weights") -> Header:
    if len(data) < 4 * HEADER_INTS + 4:
        raise WeightsError(f"{name}: {len(data)} bytes is too short for a Darknet weights header.")
    major, minor, revision = struct.unpack_from("<3i", data, 0)
    if seen_size(major, minor) == 8:
        if len(data) < 20:
            raise WeightsError(f"{name}: {len(data)} bytes is too short for a Darknet weights header.")
        (seen,) = struct.unpack_from("<q", data, 12)
    else:
        (seen,) = struct.unpack_from("<i", data, 12)
    return Header(major, minor, revision, seen)


def check_size(config: DarknetConfig, header: Header, size: int, name: str = "weights") -> None:
    """Refuse a file whose size is not exactly what ``config`` implies."""
    expected = expected_size(config, header)
    if size != expected:
        difference = size - expected
        raise WeightsError(
            f"{name}: expected {expected:,} bytes for {config.name} "
            f"({len(config.conv_layers)} convolutions, header v{header.major}.{header.minor}.{header.revision}), "
            f"got {size:,} bytes ({'+' if difference > 0 else ''}{difference:,}). "
            "The weights do not belong to this cfg (or the file is truncated)."
        )


def parse_weights(config: DarknetConfig, data: bytes, name: str = "weights") -> DarknetWeights:
    """Split ``data`` into per-convolution arrays, refusing any size mismatch."""
    header = read_header(data, name)
    check_size(config, header, len(data), name)
    values = np.frombuffer(data, dtype="<f4", offset=header.nbytes)
    convs: dict[int, ConvWeights] = {}
    position = 0

    def take(count: int) -> np.ndarray:
        nonlocal position
        chunk = values[position:position + count].astype(np.float32)
        position += count
        return chunk

    for layer in config.conv_layers:
        biases = take(layer.filters)
        bn = [take(layer.filters) for _ in range(3)] if layer.batch_normalize else [None, None, None]
        shape = kernel_shape(layer)
        kernel = take(int(np.prod(shape)))
        convs[layer.index] = ConvWeights(biases=biases, kernel=kernel.reshape(shape),
                                         scales=bn[0], rolling_mean=bn[1], rolling_variance=bn[2])
    return DarknetWeights(header, convs)


def load_weights(config: DarknetConfig, path: str | os.PathLike) -> DarknetWeights:
    """Read a weights file that is a regular file of exactly the size ``config`` implies; the
    size is checked from ``stat`` and the header before the values are read."""
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # before open(): a FIFO would block there
            raise WeightsError(f"{path.name}: not a regular file.")
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            header = read_header(handle.read(4 * HEADER_INTS + 8), path.name)
            check_size(config, header, info.st_size, path.name)
            handle.seek(0)
            data = handle.read(info.st_size + 1)
    except OSError as error:
        raise WeightsError(f"{path.name}: cannot be read ({error.strerror or 'I/O error'}).") from None
    return parse_weights(config, data, path.name)


def random_weights_bytes(config: DarknetConfig, seed: int = 0, kernel_scale: float | None = None,
                         header: Header = Header(0, 2, 0, 0), objectness_bias: float | None = None,
                         head_gain: float = 1.0) -> bytes:
    """A weights file with the exact Darknet layout and random values (tests and the labelled
    demo model). Kernels are scaled by 1/sqrt(fan-in) unless ``kernel_scale`` is given, BN
    variances are near 1, so activations stay finite through deep networks. ``objectness_bias``
    sets the objectness biases of the convolutions feeding yolo layers (a negative value keeps
    the random demo from drawing thousands of boxes); ``head_gain`` scales their kernels so that
    scores vary with the image."""
    rng = np.random.default_rng(seed)
    heads = {layer.index - 1: layer for layer in config.yolo_layers}
    parts = [struct.pack("<3i", header.major, header.minor, header.revision),
             struct.pack("<q" if header.seen_bytes == 8 else "<i", header.seen)]
    for layer in config.conv_layers:
        fan_in = layer.input_channels // layer.groups * layer.size * layer.size
        scale = kernel_scale if kernel_scale is not None else 1.0 / np.sqrt(fan_in)
        scale *= head_gain if layer.index in heads else 1.0
        arrays = [rng.normal(0, 0.1, layer.filters)]
        if objectness_bias is not None and layer.index in heads:
            arrays[0][4::5 + heads[layer.index].classes] = objectness_bias
        if layer.batch_normalize:
            arrays += [rng.uniform(0.5, 1.5, layer.filters), rng.normal(0, 0.1, layer.filters),
                       rng.uniform(0.5, 1.5, layer.filters)]
        arrays.append(rng.normal(0, scale, layer.filters * fan_in))
        parts.extend(np.asarray(a, dtype="<f4").tobytes() for a in arrays)
    return b"".join(parts)
