"""Darknet cfg parser: the real cfgs, the shipped YOLOv4-tiny cfg, hostile cfgs and names files."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.config import Env
from services.detection.cfg import MAX_CFG_CHARS, CfgError, Convolutional, MaxPool, Route, parse_cfg
from services.detection.models import NamesError, load_darknet, parse_names
from services.errors import UserFacingError
from tests.detection_helpers import SYNTHETIC_CFG

CFGS = Path(__file__).resolve().parent.parent / "services" / "detection" / "cfgs"


@pytest.mark.needs_shared
def test_yolov3_fixture_has_three_heads_at_strides_32_16_8(shared_fixtures):
    config = parse_cfg((shared_fixtures / "darknet" / "yolov3.cfg").read_text(), "yolov3.cfg").with_input_size(416)
    assert len(config.layers) == 107 and len(config.conv_layers) == 75
    assert [layer.output_shape for layer in config.yolo_layers] == [(13, 13, 255), (26, 26, 255), (52, 52, 255)]
    assert [layer.mask for layer in config.yolo_layers] == [(6, 7, 8), (3, 4, 5), (0, 1, 2)]
    assert config.yolo_layers[0].layer_anchors == [(116, 90), (156, 198), (373, 326)]
    assert config.classes == 80


@pytest.mark.needs_shared
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
    (("activation=mish", "activation=hard_mish"), "activation=hard_mish",
     "activation='hard_mish' is not supported (OpenCV 4.14 does not implement it either)"),
    (("filters=16\nsize=3\nstride=2", "filters=sixteen\nsize=3\nstride=2"), "filters=sixteen", "not an integer"),
    (("layers=-1,-2", "layers=-1,-40"), "layers=-1,-40", "does not exist"),
    (("scale_x_y=1.05", "scale_x_y=1.05\nscale_wh=1"), "scale_wh=1", "key 'scale_wh'= is not supported in [yolo]"),
    (("filters=21\nactivation=linear\n\n[yolo]\nmask=3", "filters=20\nactivation=linear\n\n[yolo]\nmask=3"),
     None, "21 are needed"),
    (("anchors=4,5, 8,9, 12,10, 16,20, 24,30, 40,36\nclasses=2\nnum=6\nscale",
      "anchors=4,5, 8,9\nclasses=2\nnum=6\nscale"), "anchors=4,5, 8,9", "needs 12"),
    (("[route]\nlayers=-1,-8", "[route]\nlayers=-1,-6"), None, "different sizes"),
    (("stride=2\npad=1\nactivation=leaky", "stride=2\npad=1\nactivation=leaky\nfoo bar"), "foo bar",
     "expected key=value"),
    # Hostile sizes: refused by value, at their line, before any shape is worked out.
    (("[upsample]\nstride=2", "[upsample]\nstride=1000"), "stride=1000", "stride=1000 is larger than the limit 32"),
    (("[maxpool]\nsize=2\nstride=2", "[maxpool]\nsize=100000\nstride=2"), "size=100000",
     "size=100000 is larger than the limit 64"),
    (("filters=16\nsize=3\nstride=2", "filters=1000000000000\nsize=3\nstride=2"), "filters=1000000000000",
     "larger than the limit"),
    (("filters=16\nsize=3\nstride=2", "filters=16\nsize=0\nstride=2"), "size=0", "size=0 must be at least 1"),
    (("filters=16\nsize=3\nstride=2", "filters=16\nsize=3\nstride=-2"), "stride=-2", "must be at least 1"),
    (("scale_x_y=1.05", "scale_x_y=nan"), "scale_x_y=nan", "is not a number"),
    (("anchors=4,5, 8,9, 12,10, 16,20, 24,30, 40,36", "anchors=4,5, 8,9, 12,10, 16,20, 24,30, 40,inf"),
     "40,inf", "list of numbers"),
    (("anchors=4,5, 8,9, 12,10, 16,20, 24,30, 40,36", "anchors=4,5, 8,9, 12,10, 16,20, 24,30, 40,-36"),
     "40,-36", "must be positive"),
    (("filters=16\nsize=3\nstride=2", "filters=16\nsize=3\nstride=2\nfilters=32"), "filters=32", "repeated"),
    (("filters=16\nsize=3\nstride=2", "filters=16\nsize=3\nstride=2\ngroups=3"), None,
     "groups=3 must divide both"),
    (("filters=16\nsize=3\nstride=2", "filters=16\nsize=3\nstride=2\ndilation=2"), "dilation=2",
     "key 'dilation'= is not supported in [convolutional]"),
    (("[maxpool]\nsize=2\nstride=2", "[maxpool]\nsize=2"), None, "stride= is required here"),
    (("[upsample]\nstride=2", "[upsample]"), None, "stride= is required here"),
    (("filters=16\nsize=3\nstride=2\npad=1\nactivation=mish", "filters=16\nsize=3\nstride=2\npad=1"), None,
     "activation= is required here (Darknet's default is logistic, OpenCV's linear)"),
    (("[route]\nlayers=-1\ngroups=2", "[route]\nlayers=-1\ngroups=2\nactivation=tanh"), "activation=tanh",
     "key 'activation'= is not supported in [route]"),
    (("[route]\nlayers=-3", "[route]\nlayers=-1"), None, "reads the [yolo] layer 11"),
    (("[route]\nlayers=-1,-2", "[route]\nlayers=-1,-2\ngroups=4"), "groups=4",
     "groups= with several layers is not supported"),
    (("[shortcut]\nfrom=-5", "[shortcut]\nfrom=-5,-4"), "from=-5,-4", "exactly one from= layer"),
    (("[shortcut]\nfrom=-5", "[sam]\nfrom=-6"), None, "they must be equal"),
    (("[shortcut]\nfrom=-5", "[shortcut]\nfrom=-6"), None, "heights and widths must be equal"),
    (("[shortcut]\nfrom=-5", "[scale_channels]\nfrom=-5"), None, "the scale must be (1, 1, 16)"),
    (("[route]\nlayers=-1,-2", "[route]\nlayers=" + ",".join(["-1"] * 40)), "layers=-1,-1", "the limit is 32"),
    (("[upsample]", "[<img src=x onerror=alert(1)>]"), "<img", "section ['<img src=x onerror=alert(1)>'] is not"),
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
    ("[net]\nwidth=64\n[convolutional]\nfilters=3\nactivation=linear\n", "no [yolo] section"),
    ("\x00\x01binary", "before any [section]"),
])
def test_malformed_cfgs_are_refused(text, message):
    with pytest.raises(CfgError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_cfg(text, "bad.cfg")


def test_too_small_input_is_refused_with_the_layer():
    with pytest.raises(CfgError, match="different sizes|too small"):
        parse_cfg(SYNTHETIC_CFG, "synthetic.cfg").with_input_size(4)


def _yolo_tail(channels: int) -> str:
    return (f"[convolutional]\nsize=1\nfilters=6\nactivation=linear\n\n"
            f"[yolo]\nmask=0\nanchors=4,5\nclasses=1\nnum=1\n")


def test_ten_thousand_layers_are_refused_at_the_cap_without_recursion():
    layers = "[dropout]\nprobability=.1\n\n" * 10_000
    text = "[net]\nwidth=32\nheight=32\n\n[convolutional]\nfilters=6\nactivation=linear\n\n" + layers + _yolo_tail(6)
    with pytest.raises(CfgError) as caught:
        parse_cfg(text, "deep.cfg")
    assert "more than 1,000 layers" in str(caught.value) and Env.DARKNET_MAX_LAYERS in str(caught.value)
    assert f"line {text[:text.index('[dropout]')].count(chr(10)) + 1 + 3 * 999}" in str(caught.value)


def test_layer_cap_is_a_setting(monkeypatch):
    parse_cfg(SYNTHETIC_CFG, "synthetic.cfg")
    monkeypatch.setenv(Env.DARKNET_MAX_LAYERS, "10")
    with pytest.raises(CfgError, match="more than 10 layers"):
        parse_cfg(SYNTHETIC_CFG, "synthetic.cfg")


def test_a_network_at_the_layer_cap_builds_and_runs_without_recursion(monkeypatch):
    """Keras's functional graph fails at about 1,000 layers; the Darknet model walks its layers."""
    import numpy as np

    from services.detection.keras_builder import build_model
    from services.detection.weights import parse_weights, random_weights_bytes

    layers = "[dropout]\nprobability=.1\n\n" * 997
    text = "[net]\nwidth=8\nheight=8\n\n[convolutional]\nfilters=6\nactivation=leaky\n\n" + layers + _yolo_tail(6)
    config = parse_cfg(text, "deep.cfg")
    assert len(config.layers) == 1000
    weights = parse_weights(config, random_weights_bytes(config))
    heads = build_model(config, weights)(np.ones((1, 8, 8, 3), np.float32))
    assert heads[0].shape == (1, 8, 8, 6)


def test_activation_memory_is_estimated_from_the_header_and_refused_over_the_limit(monkeypatch):
    wide = ("[net]\nwidth=4096\nheight=4096\n\n[convolutional]\nfilters=4096\nsize=1\nactivation=linear\n\n"
            + _yolo_tail(6))
    with pytest.raises(CfgError) as caught:
        parse_cfg(wide, "wide.cfg")
    message = str(caught.value)
    assert "line 5, [convolutional] (layer 0)" in message and "262,336 MiB of activations" in message
    assert Env.DARKNET_MAX_ACTIVATION_MB in message
    # Chained upsamples within the value limits are caught by the same estimate.
    upsamples = "[upsample]\nstride=32\n\n" * 3
    text = "[net]\nwidth=64\nheight=64\n\n" + upsamples + "[maxpool]\nsize=64\nstride=32\n\n" * 3 + _yolo_tail(6)
    with pytest.raises(CfgError, match=r"\[upsample\] \(layer 1\).*MiB of activations"):
        parse_cfg(text, "upsample.cfg")
    config = parse_cfg(SYNTHETIC_CFG, "synthetic.cfg")
    assert 4 * 64 * 64 * 3 < config.activation_bytes < 2 ** 20
    monkeypatch.setenv(Env.DARKNET_MAX_ACTIVATION_MB, "1")
    with pytest.raises(CfgError, match="the limit is 1 MiB"):
        config.with_input_size(416)


def test_absurd_parameter_counts_are_refused_before_anything_is_read():
    text = ("[net]\nwidth=32\nheight=32\n\n" + "[convolutional]\nfilters=32768\nsize=32\npad=1\nactivation=linear\n\n" * 2
            + _yolo_tail(6))
    with pytest.raises(CfgError, match=r"\(layer 1\): the weights would pass 1 GiB"):
        parse_cfg(text, "huge.cfg")


def test_oversized_cfg_text_is_refused_unsplit():
    with pytest.raises(CfgError, match="far more than any Darknet cfg"):
        parse_cfg("[net]\n" + "#" * MAX_CFG_CHARS, "big.cfg")


def test_cfg_files_are_measured_and_checked_before_reading(tmp_path):
    import os

    names = ["class0", "class1"]
    fifo = tmp_path / "stuck.cfg"
    os.mkfifo(fifo)
    with pytest.raises(UserFacingError, match="stuck.cfg: not a regular file"):
        load_darknet(fifo, tmp_path / "x.weights", names)
    big = tmp_path / "big.cfg"
    with open(big, "wb") as handle:
        handle.truncate(1 << 33)  # 8 GiB, sparse: must be refused from its size
    with pytest.raises(UserFacingError, match="far more than any Darknet cfg"):
        load_darknet(big, tmp_path / "x.weights", names)
    binary = tmp_path / "binary.cfg"
    binary.write_bytes(b"[net]\n\xff\xfe")
    with pytest.raises(UserFacingError, match="not a UTF-8 text file") as caught:
        load_darknet(binary, tmp_path / "x.weights", names)
    assert str(tmp_path) not in str(caught.value)


# Names files (services.detection.models.parse_names)

def test_names_file_with_a_million_lines_is_refused_unsplit():
    with pytest.raises(NamesError, match="too large for a names file"):
        parse_names("cat\n" * 1_000_000, "huge.names")


def test_names_caps_count_and_length():
    assert parse_names("person\nbicycle\n\n", "coco.names") == ["person", "bicycle"]
    with pytest.raises(NamesError, match="10,001 class names; at most 10,000"):
        parse_names("c\n" * 10_001, "many.names")
    with pytest.raises(NamesError, match="line 2: a class name of 500 characters"):
        parse_names("dog\n" + "x" * 500 + "\ncat", "long.names")
    with pytest.raises(NamesError, match="no blank lines"):
        parse_names("dog\n\ncat", "gap.names")
