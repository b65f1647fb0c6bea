"""Darknet weights: header versions, exact-size validation, Darknet order of the values."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from services.detection.cfg import parse_cfg
from services.detection.weights import (Header, WeightsError, expected_size, parse_weights,
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
