"""The backbone registry: every pretrained Keras application the dashboard uses, in one table.

One :class:`BackboneSpec` per backbone carries everything any area needs to know about it: how
to build it (``keras.applications`` constructor and options), the ImageNet weights file Keras
itself downloads for it (file name, official URL, md5 where Keras checks one), how its
``preprocess_input`` treats 0..255 RGB (:attr:`BackboneSpec.preprocess_mode`), the input sizes it
accepts and the layer-name prefixes of its last block (what strategy D fine-tunes).

Where the weights come from (caches, download, upload) is :mod:`services.models.weights`; this
module imports nothing heavy (Keras only inside :meth:`BackboneSpec.build`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from services.errors import UserFacingError

_KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"

CAFFE, TF, NONE = "caffe", "tf", "none"
PREPROCESS_MODES = {
    CAFFE: "RGB to BGR, ImageNet channel means subtracted (caffe style, 0..255 input)",
    TF: "scaled from 0..255 to -1..1 (tf style)",
    NONE: "none (the model rescales and normalises 0..255 input itself)",
}
"""What each ``preprocess_input`` mode does to 0..255 RGB (checked against Keras in tests)."""


@dataclass(frozen=True)
class BackboneSpec:
    """One Keras application, without its classifier top unless asked, and its ImageNet weights."""

    name: str
    title: str
    module: str
    """Submodule of ``keras.applications`` holding the constructor and ``preprocess_input``."""
    constructor: str
    file_name: str
    """The no-top weights file name exactly as Keras caches it."""
    url: str
    md5: str | None
    """The ``file_hash`` Keras checks (md5); None where Keras checks none (MobileNet v1 / v2)."""
    approx_mb: float
    preprocess_mode: str
    """``caffe``, ``tf`` or ``none`` (see :data:`PREPROCESS_MODES`)."""
    top_block_prefixes: tuple[str, ...] = ()
    """Layer-name prefixes of the last block (strategy D unfreezes these); empty: no reliable
    prefix (InceptionV3's names are generic), the caller takes the last layers instead."""
    min_side: int = 32
    default_side: int = 224
    options: dict[str, Any] = field(default_factory=dict)
    """Extra constructor arguments (MobileNet v1's ``alpha``)."""
    size: int | None = None
    """Exact byte size where known (checked on download); None: only the md5 is checked."""
    full_file_name: str | None = None
    """Keras's file name of the full model with its ImageNet top (also accepted as an upload)."""

    @property
    def preprocessing(self) -> str:
        """What ``preprocess_input`` does, in words."""
        return PREPROCESS_MODES[self.preprocess_mode]

    def keras_module(self):
        return importlib.import_module(f"keras.applications.{self.module}")

    def build(self, input_shape: Sequence[int] | None = None, *, include_top: bool = False):
        """The architecture with ``weights=None`` (random initialisation). With ``include_top``
        the ImageNet classifier (1000 classes) is kept, at the default input size if none given."""
        from services.runtime import tensorflow

        tensorflow()
        shape = tuple(input_shape) if input_shape else (self.default_side, self.default_side, 3)
        constructor = getattr(self.keras_module(), self.constructor)
        return constructor(include_top=include_top, weights=None, input_shape=shape, **self.options)


def _mobilenet_v1(alpha: float, approx_mb: float) -> BackboneSpec:
    """Keras's MobileNet (v1) at width ``alpha``; Keras names its files by alpha and 224 px rows."""
    alpha_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]
    file_name = f"mobilenet_{alpha_text}_224_tf_no_top.h5"
    return BackboneSpec(
        f"mobilenet_v1_{alpha:.2f}", f"MobileNet v1 (alpha {alpha:g})", "mobilenet", "MobileNet", file_name,
        _KERAS_APPLICATIONS + "mobilenet/" + file_name, None, approx_mb, TF,
        top_block_prefixes=("conv_dw_13", "conv_pw_13"), options={"alpha": alpha},
        full_file_name=f"mobilenet_{alpha_text}_224_tf.h5")


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "vgg16", "VGG16", "vgg16", "VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            _KERAS_APPLICATIONS + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "6d6bbae143d832006294945121d1f1fc", 58.9, CAFFE, ("block5_",),
            full_file_name="vgg16_weights_tf_dim_ordering_tf_kernels.h5"),
        BackboneSpec(
            "vgg19", "VGG19", "vgg19", "VGG19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            _KERAS_APPLICATIONS + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "253f8cb515780f3b799900260a226db6", 80.1, CAFFE, ("block5_",),
            full_file_name="vgg19_weights_tf_dim_ordering_tf_kernels.h5"),
        BackboneSpec(
            "resnet50", "ResNet50", "resnet50", "ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            _KERAS_APPLICATIONS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "4d473c1dd8becc155b73f8504c6f6626", 94.8, CAFFE, ("conv5_block3_",),
            full_file_name="resnet50_weights_tf_dim_ordering_tf_kernels.h5"),
        _mobilenet_v1(0.25, 0.9),
        _mobilenet_v1(0.5, 3.3),
        _mobilenet_v1(0.75, 7.4),
        _mobilenet_v1(1.0, 12.9),
        BackboneSpec(
            "mobilenet_v2", "MobileNetV2 (alpha 1.0)", "mobilenet_v2", "MobileNetV2",
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
            _KERAS_APPLICATIONS + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
            None, 9.4, TF, ("block_16_", "Conv_1", "out_relu"),
            full_file_name="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"),
        BackboneSpec(
            "efficientnet_b0", "EfficientNetB0", "efficientnet", "EfficientNetB0", "efficientnetb0_notop.h5",
            "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
            "50bc09e76180e00e4465e1a485ddc09d", 16.7, NONE, ("block7a_", "top_"),
            full_file_name="efficientnetb0.h5"),
        BackboneSpec(
            "inception_v3", "InceptionV3", "inception_v3", "InceptionV3",
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            _KERAS_APPLICATIONS + "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "bcbd6486424b2319ff4ef7d526e38f63", 87.9, TF, (), min_side=75, default_side=299,
            full_file_name="inception_v3_weights_tf_dim_ordering_tf_kernels.h5"),
    )
}


def spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name``; an unknown name raises :class:`UserFacingError`."""
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise UserFacingError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}.") from None
