"""Darknet weights: header versions, exact-size validation, Darknet order of the values."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from services.detection.cfg import parse_cfg
from services.detection.weights import (Header, WeightsError, expected_size, load_weights, parse_weights,
                                        random_weights_bytes, read_header)
from tests.detection_helpers import SYNTHETIC_CFG


@pytest.fixture(scope="module")
def config():
    return parse_cfg(SYNTHETIC_CFG, "synthetic.cfg")


@pytest.mark.parametrize("major, minor, seen_bytes", [(0, 2, 8), (0, 1, 4), (1, 0, 8), (1000, 2, 4), (0, 0, 4)])
def test_seen_is_int64_from_version_0_2_and_int32_before(config, major, minor, seen_bytes):
    header = Header(major, minor, 5, 123456789)
    data = random_weights_bytes(config, header=header)
    assert len(data) == expected_size(config, header)
    assert read_header(data) == header and header.seen_bytes == seen_bytes
    parse_weights(config, data)


def test_truncated_and_padded_files_name_expected_and_actual_bytes(config):
    data = random_weights_bytes(config)
    expected = len(data)
    for broken in (data[:-4], data + b"\0" * 8):
        with pytest.raises(WeightsError) as caught:
            parse_weights(config, broken, "model.weights")
        message = str(caught.value)
        assert f"expected {expected:,} bytes" in message and f"got {len(broken):,} bytes" in message
    with pytest.raises(WeightsError, match="too short"):
        parse_weights(config, b"\0" * 10)


@pytest.mark.needs_shared
def test_weights_of_another_cfg_are_refused(shared_fixtures, config):
    tiny = parse_cfg((shared_fixtures / "darknet" / "yolov3-tiny.cfg").read_text(), "yolov3-tiny.cfg")
    with pytest.raises(WeightsError, match="do not belong"):
        parse_weights(tiny, random_weights_bytes(config))


def test_values_are_read_in_darknet_order(config):
    # Fill the file with 0, 1, 2, ... so every array shows where it was read from.
    header = struct.pack("<3iq", 0, 2, 0, 0)
    count = (expected_size(config, Header(0, 2, 0, 0)) - len(header)) // 4
    weights = parse_weights(config, header + np.arange(count, dtype="<f4").tobytes())
    first = weights.convs[0]  # filters=8, 3x3 over 3 channels, batch-normalised
    assert first.biases.tolist() == list(range(0, 8))
    assert first.scales.tolist() == list(range(8, 16))
    assert first.rolling_mean.tolist() == list(range(16, 24))
    assert first.rolling_variance.tolist() == list(range(24, 32))
    assert first.kernel.shape == (8, 3, 3, 3) and first.kernel[0, 0, 0, 1] == 33 and first.kernel[1, 0, 0, 0] == 32 + 27
    no_bn = weights.convs[6]  # relu conv without batch_normalize: biases then kernel
    assert no_bn.scales is None and no_bn.kernel[0, 0, 0, 0] == no_bn.biases[-1] + 1


GROUPED_CFG = """\
[net]
width=16
height=16
channels=4

[convolutional]
filters=6
size=3
pad=1
groups=2
activation=leaky

[convolutional]
batch_normalize=1
filters=12
size=1
groups=6
activation=linear

[yolo]
mask=0,1
anchors=4,4, 8,8
classes=1
num=2
"""


def test_grouped_convolutions_read_in_channels_over_groups_per_filter():
    config = parse_cfg(GROUPED_CFG, "grouped.cfg")
    assert expected_size(config, Header(0, 2, 0, 0)) == 20 + 4 * (6 + 6 * 2 * 9 + 12 * 4 + 12 * 1)
    header = struct.pack("<3iq", 0, 2, 0, 0)
    count = (expected_size(config, Header(0, 2, 0, 0)) - len(header)) // 4
    weights = parse_weights(config, header + np.arange(count, dtype="<f4").tobytes())
    grouped, depthwise = weights.convs[0], weights.convs[1]
    assert grouped.kernel.shape == (6, 2, 3, 3) and grouped.kernel[0, 0, 0, 0] == 6
    assert depthwise.kernel.shape == (12, 1, 1, 1) and depthwise.biases[0] == 6 + 108
    assert depthwise.kernel.ravel().tolist() == list(range(6 + 108 + 48, count))
    assert config.layers[1].depthwise and not config.layers[0].depthwise


def test_a_file_is_measured_before_it_is_read(tmp_path, config):
    huge = tmp_path / "huge.weights"
    with open(huge, "wb") as handle:
        handle.write(struct.pack("<3iq", 0, 2, 0, 0))
        handle.truncate(1 << 34)  # 16 GiB, sparse: refused from stat + header, never read into memory
    with pytest.raises(WeightsError, match="got 17,179,869,184 bytes"):
        load_weights(config, huge)
    exact = tmp_path / "exact.weights"
    exact.write_bytes(random_weights_bytes(config))
    assert load_weights(config, exact).convs[0].kernel.shape == (8, 3, 3, 3)


def test_fifos_folders_and_missing_files_are_refused_without_blocking(tmp_path, config):
    import os

    fifo = tmp_path / "stuck.weights"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    with pytest.raises(WeightsError, match="stuck.weights: not a regular file"):
        load_weights(config, fifo)
    with pytest.raises(WeightsError, match="not a regular file"):
        load_weights(config, tmp_path)
    with pytest.raises(WeightsError, match="missing.weights: cannot be read") as caught:
        load_weights(config, tmp_path / "missing.weights")
    assert str(tmp_path) not in str(caught.value)
