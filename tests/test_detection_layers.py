"""Every layer type and option of the Darknet builder against OpenCV 4.x's readNetFromDarknet.

Each case is a small cfg with random weights written in the exact Darknet byte layout (labelled
random: the values mean nothing), loaded through the real loading path, run by the Keras
rebuild and by OpenCV on the same input; the inputs of the [yolo] layers must agree to 1e-3.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from services.detection.backends import KerasBackend, OpenCVDarknetBackend
from services.detection.decode import decode_head
from services.detection.keras_builder import build_model
from services.detection.yolo_layers import new_coords_rows
from tests.detection_helpers import opencv_heads, opencv_yolo_rows, write_model

TOLERANCE = 1e-3


def conv(filters: int, size: int = 3, stride: int = 1, activation: str = "leaky", extra: str = "") -> str:
    return (f"[convolutional]\nbatch_normalize=1\nfilters={filters}\nsize={size}\nstride={stride}\npad=1\n"
            f"activation={activation}\n{extra}\n")


def small_cfg(body: str, classes: int = 1, anchors: int = 1, head_activation: str = "linear",
              yolo_extra: str = "") -> str:
    """[net] + body + a 1x1 head + [yolo] (anchors 8x8, 16x16, ...)."""
    sizes = ", ".join(f"{8 * (i + 1)},{8 * (i + 1)}" for i in range(anchors))
    return (f"[net]\nwidth=32\nheight=32\nchannels=3\n\n{body}\n"
            f"[convolutional]\nsize=1\nstride=1\npad=1\nfilters={anchors * (5 + classes)}\n"
            f"activation={head_activation}\n\n"
            f"[yolo]\nmask={','.join(str(i) for i in range(anchors))}\nanchors={sizes}\nclasses={classes}\n"
            f"num={anchors}\n{yolo_extra}\n")


def _image_batch(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (1, size, size, 3)).astype(np.float32)


def _run_both(tmp_path, text: str, size: int = 32, seed: int = 0):
    model = write_model(tmp_path, text, "case.cfg", size, seed=seed)
    batch = _image_batch(size, seed)
    keras_heads = [np.asarray(h) for h in build_model(model.config, model.weights)(batch)]
    return model, batch, keras_heads, opencv_heads(model, batch)


def assert_matches_opencv(tmp_path, text: str, size: int = 32, seed: int = 0):
    model, batch, keras_heads, cv_heads = _run_both(tmp_path, text, size, seed)
    assert [h.shape for h in keras_heads] == [(1, *layer.output_shape) for layer in model.config.yolo_layers]
    assert [h.shape for h in cv_heads] == [h.shape for h in keras_heads]
    for keras_head, cv_head in zip(keras_heads, cv_heads):
        assert np.isfinite(keras_head).all() and np.abs(keras_head).max() > 1e-2  # not trivially zero
        assert np.abs(keras_head - cv_head).max() <= TOLERANCE
    return model, batch, keras_heads


C8 = conv(8)
CASES = {
    "grouped conv": C8 + conv(12, extra="groups=2"),
    "grouped conv, no batch norm": C8 + "[convolutional]\nfilters=8\nsize=3\npad=1\ngroups=4\nactivation=leaky\n",
    "depthwise conv": C8 + conv(8, extra="groups=8"),
    "depthwise conv, multiplier 2, 5x5": C8 + conv(16, size=5, extra="groups=8"),
    "depthwise conv, stride 2": C8 + conv(8, stride=2, extra="groups=8"),
    "conv pad=0": conv(8, extra="").replace("pad=1", "pad=0"),
    "conv padding=2 without pad": conv(8).replace("pad=1", "padding=2"),
    "conv stride 3": conv(8, stride=3),
    "dropout": C8 + "[dropout]\nprobability=.15\n\n" + conv(8),
    "avgpool + scale_channels (squeeze-excite)": C8 + "[avgpool]\n\n" + conv(4, 1, activation="relu")
                                                 + conv(8, 1, activation="logistic") + "[scale_channels]\nfrom=-4\n",
    "scale_channels with activation": C8 + "[avgpool]\n\n" + conv(8, 1, activation="logistic")
                                      + "[scale_channels]\nfrom=-3\nactivation=leaky\n",
    "sam": C8 + conv(8, 1, activation="logistic") + "[sam]\nfrom=-2\n",
    "shortcut": C8 + conv(8) + "[shortcut]\nfrom=-2\nactivation=linear\n",
    "shortcut with activation": C8 + conv(8) + "[shortcut]\nfrom=-2\nactivation=leaky\n",
    "shortcut from fewer channels": conv(4) + conv(8) + "[shortcut]\nfrom=-2\nactivation=linear\n",
    "shortcut from more channels": conv(8) + conv(4) + "[shortcut]\nfrom=-2\nactivation=linear\n",
    "shortcut with absolute from": conv(8) + conv(8) + "[shortcut]\nfrom=0\nactivation=linear\n",
    "route one layer": C8 + conv(4) + "[route]\nlayers=-2\n",
    "route two layers": C8 + conv(4) + "[route]\nlayers=-1,0\n",
    "route groups": C8 + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n",
    "route groups, group 0 of 4": C8 + "[route]\nlayers=-1\ngroups=4\ngroup_id=0\n",
    "upsample 2": conv(4, stride=2) + "[upsample]\nstride=2\n",
    "upsample 4": conv(4, stride=4) + "[upsample]\nstride=4\n",
}


@pytest.mark.parametrize("case", CASES)
def test_layer_matches_opencv(tmp_path, case):
    assert_matches_opencv(tmp_path, small_cfg(CASES[case]))


@pytest.mark.parametrize("activation", ["leaky", "linear", "mish", "swish", "silu", "logistic", "relu", "tanh"])
def test_activation_matches_opencv(tmp_path, activation):
    assert_matches_opencv(tmp_path, small_cfg(conv(8, activation=activation) + conv(8, activation=activation)))


@pytest.mark.parametrize("size, stride, padding, input_size", [
    (2, 2, None, 32), (2, 1, None, 32), (3, 1, None, 32), (3, 2, None, 32), (3, 2, None, 30), (5, 1, None, 32),
    (9, 1, None, 32), (13, 1, None, 32), (2, 2, 0, 30), (3, 2, 0, 31), (3, 3, None, 32), (4, 2, 2, 32),
])
def test_maxpool_matches_opencv(tmp_path, size, stride, padding, input_size):
    pool = f"[maxpool]\nsize={size}\nstride={stride}\n" + (f"padding={padding}\n" if padding is not None else "")
    assert_matches_opencv(tmp_path, small_cfg(conv(8) + pool), size=input_size)


def test_spp_block_matches_opencv(tmp_path):
    """YOLOv4's spatial pyramid pooling: stride-1 pools of 5, 9 and 13 concatenated with their input."""
    body = (conv(8) + "[maxpool]\nstride=1\nsize=5\n\n[route]\nlayers=-2\n\n[maxpool]\nstride=1\nsize=9\n\n"
            "[route]\nlayers=-4\n\n[maxpool]\nstride=1\nsize=13\n\n[route]\nlayers=-1,-3,-5,-6\n")
    model, _, _ = assert_matches_opencv(tmp_path, small_cfg(body))
    assert model.config.layers[6].output_shape == (32, 32, 32)


def _rows_match(rows: np.ndarray, reference: np.ndarray) -> None:
    """Decoded rows against OpenCV's yolo rows (which zero class scores under 0.2)."""
    assert rows.shape == reference.shape
    assert np.allclose(rows[:, :5], reference[:, :5], atol=TOLERANCE, rtol=TOLERANCE)
    clear = np.abs(rows[:, 5:] - 0.2) > 1e-4
    thresholded = np.where(rows[:, 5:] > 0.2, rows[:, 5:], 0)
    assert np.allclose(thresholded[clear], reference[:, 5:][clear], atol=TOLERANCE)


def test_yolo_scale_x_y_boxes_match_opencv(tmp_path):
    text = small_cfg(conv(8, stride=2), classes=3, anchors=2, yolo_extra="scale_x_y=1.2")
    model, batch, heads = assert_matches_opencv(tmp_path, text)
    layer = model.config.yolo_layers[0]
    assert layer.scale_x_y == 1.2 and not layer.new_coords
    _rows_match(decode_head(heads[0], layer, 32, 32), opencv_yolo_rows(model, batch)[0])


def test_yolo_new_coords_boxes_match_opencv(tmp_path):
    text = small_cfg(conv(8, stride=2), classes=3, anchors=2, head_activation="logistic",
                     yolo_extra="scale_x_y=2.0\nnew_coords=1")
    model, batch, heads = assert_matches_opencv(tmp_path, text)
    layer = model.config.yolo_layers[0]
    assert layer.new_coords and layer.scale_x_y == 2.0
    assert heads[0].min() >= 0 and heads[0].max() <= 1  # the head's logistic is in the model
    rows = new_coords_rows(heads[0], layer, 32, 32)
    reference = opencv_yolo_rows(model, batch)[0]
    _rows_match(rows, reference)
    # The product path (TensorFlow backend, decode_head) uses the same coding.
    _rows_match(KerasBackend(model).rows(batch), reference)
    _rows_match(OpenCVDarknetBackend(model).rows(batch), reference)  # and the OpenCV backend
    # The usual coding would read these inputs differently: the new coding is really exercised.
    usual = decode_head(heads[0], dataclasses.replace(layer, new_coords=False), 32, 32)
    assert not np.allclose(usual[:, :4], rows[:, :4], atol=1e-2)


def test_two_heads_with_route_and_upsample_match_opencv(tmp_path):
    """A YOLOv4-tiny-like neck with grouped routes, depthwise convolutions and two heads."""
    body = (conv(8, stride=2) + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n\n" + conv(4, extra="groups=4")
            + "[route]\nlayers=-1,-3\n\n" + "[maxpool]\nsize=2\nstride=2\n\n" + conv(12))
    head = "[convolutional]\nsize=1\nstride=1\npad=1\nfilters=12\nactivation=linear\n\n"
    yolo = "[yolo]\nmask={}\nanchors=8,8, 16,16, 24,24, 32,32\nclasses=1\nnum=4\nscale_x_y=1.05\n\n"
    text = ("[net]\nwidth=32\nheight=32\nchannels=3\n\n" + body + head + yolo.format("2,3")
            + "[route]\nlayers=-3\n\n[upsample]\nstride=2\n\n[route]\nlayers=-1,3\n\n" + head + yolo.format("0,1"))
    model, _, heads = assert_matches_opencv(tmp_path, text)
    assert [h.shape for h in heads] == [(1, 8, 8, 12), (1, 16, 16, 12)]


def test_model_has_one_keras_layer_per_darknet_layer_and_no_functional_graph(tmp_path):
    model = write_model(tmp_path, small_cfg(C8 + conv(8, extra="groups=8")), "case.cfg", 32)
    keras_model = build_model(model.config, model.weights)
    assert [layer.name for layer in keras_model.layers] == ["000_convolutional", "001_convolutional",
                                                            "002_convolutional", "003_yolo"]
    depthwise = keras_model.layers[1]
    assert depthwise.kernel.shape == (3, 3, 8, 1)  # DepthwiseConv2D layout
