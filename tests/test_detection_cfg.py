"""Darknet cfg parser: the real cfgs, the shipped YOLOv4-tiny cfg, and hostile cfgs."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.detection.cfg import Convolutional, CfgError, MaxPool, Route, parse_cfg
from tests.detection_helpers import SYNTHETIC_CFG

CFGS = Path(__file__).resolve().parent.parent / "services" / "detection" / "cfgs"


def test_yolov3_fixture_has_three_heads_at_strides_32_16_8(shared_fixtures):
    config = parse_cfg((shared_fixtures / "darknet" / "yolov3.cfg").read_text(), "yolov3.cfg").with_input_size(416)
    assert len(config.layers) == 107 and len(config.conv_layers) == 75
    assert [layer.output_shape for layer in config.yolo_layers] == [(13, 13, 255), (26, 26, 255), (52, 52, 255)]
    assert [layer.mask for layer in config.yolo_layers] == [(6, 7, 8), (3, 4, 5), (0, 1, 2)]
    assert config.yolo_layers[0].layer_anchors == [(116, 90), (156, 198), (373, 326)]
    assert config.classes == 80


def test_yolov3_tiny_fixture_keeps_size_through_stride_1_maxpool(shared_fixtures):
    config = parse_cfg((shared_fixtures / "darknet" / "yolov3-tiny.cfg").read_text(), "yolov3-tiny.cfg")
    pool = [layer for layer in config.layers if isinstance(layer, MaxPool) and layer.stride == 1][0]
    assert (pool.size, pool.padding) == (2, 1)
    assert pool.output_shape == config.layers[pool.index - 1].output_shape == (13, 13, 512)
    assert [layer.output_shape for layer in config.yolo_layers] == [(13, 13, 255), (26, 26, 255)]


def test_yolov4_tiny_cfg_uses_route_groups_and_scale_x_y():
    config = parse_cfg((CFGS / "yolov4-tiny.cfg").read_text(), "yolov4-tiny.cfg")
    grouped = [layer for layer in config.layers if isinstance(layer, Route) and layer.groups == 2]
    assert len(grouped) == 3 and all(layer.group_id == 1 for layer in grouped)
    assert grouped[0].output_shape == (104, 104, 32)  # half of the 64 channels
    assert [layer.scale_x_y for layer in config.yolo_layers] == [1.05, 1.05]
    assert [layer.output_shape for layer in config.yolo_layers] == [(13, 13, 255), (26, 26, 255)]


def test_stride_2_convolution_uses_darknet_padding():
    config = parse_cfg(SYNTHETIC_CFG, "synthetic.cfg").with_input_size(96)
    first = config.layers[0]
    assert isinstance(first, Convolutional) and first.padding == 1 and first.output_shape == (48, 48, 8)
    assert {layer.kind for layer in config.layers} == {"convolutional", "maxpool", "route", "shortcut",
                                                       "upsample", "yolo"}


def test_comments_spaces_and_aliases_are_accepted():
    text = SYNTHETIC_CFG.replace("[maxpool]\nsize=2\nstride=1", "[max]  # comment\n size = 2 \nstride=1 ; note")
    config = parse_cfg(text, "spaced.cfg")
    assert isinstance(config.layers[1], MaxPool) and config.layers[1].stride == 1


def _line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("change, needle, message", [
    (("[upsample]", "[reorg]"), "[reorg]", "section [reorg] is not supported"),
    (("activation=mish", "activation=swish"), "activation=swish", "activation=swish is not supported"),
    (("filters=16\nsize=3\nstride=2", "filters=sixteen\nsize=3\nstride=2"), "filters=sixteen", "not an integer"),
    (("layers=-1,-2", "layers=-1,-40"), "layers=-1,-40", "does not exist"),
    (("scale_x_y=1.05", "scale_x_y=1.05\nnew_coords=1"), "new_coords=1", "key new_coords= is not supported"),
    (("filters=21\nactivation=linear\n\n[yolo]\nmask=3", "filters=20\nactivation=linear\n\n[yolo]\nmask=3"),
     None, "21 are needed"),
    (("anchors=4,5, 8,9, 12,10, 16,20, 24,30, 40,36\nclasses=2\nnum=6\nscale",
      "anchors=4,5, 8,9\nclasses=2\nnum=6\nscale"), "anchors=4,5, 8,9", "needs 12"),
    (("[route]\nlayers=-1,-8", "[route]\nlayers=-1,-6"), None, "different sizes"),
    (("stride=2\npad=1\nactivation=leaky", "stride=2\npad=1\nactivation=leaky\nfoo bar"), "foo bar",
     "expected key=value"),
])
def test_hostile_cfgs_name_section_and_line(change, needle, message):
    text = SYNTHETIC_CFG.replace(*change, 1)
    assert text != SYNTHETIC_CFG
    with pytest.raises(CfgError) as caught:
        parse_cfg(text, "bad.cfg")
    error = str(caught.value)
    assert message in error
    assert "bad.cfg" in error
    if needle is not None:
        assert f"line {_line_of(text, needle)}" in error


@pytest.mark.parametrize("text, message", [
    ("", "first section must be [net]"),
    ("[convolutional]\nfilters=3\n", "first section must be [net]"),
    ("width=3\n[net]\n", "before any [section]"),
    ("[net\nwidth=3\n", "malformed section header"),
    ("[net]\nwidth=64\n[convolutional]\nfilters=3\n", "no [yolo] section"),
    ("\x00\x01binary", "before any [section]"),
])
def test_malformed_cfgs_are_refused(text, message):
    with pytest.raises(CfgError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_cfg(text, "bad.cfg")


def test_too_small_input_is_refused_with_the_layer():
    with pytest.raises(CfgError, match="different sizes|too small"):
        parse_cfg(SYNTHETIC_CFG, "synthetic.cfg").with_input_size(4)
