"""The book's histology classifiers (ch. 8) and a small inception network (ch. 4).

Every builder takes ``input_shape`` and ``num_classes`` and returns an uncompiled
``keras.Model`` whose inputs are float images scaled to [0, 1]. At the book's input
(150x150x3, 8 classes) the parameter counts equal the book's:

============  ============  =================================================================
model         parameters    notes
============  ============  =================================================================
cnn_v1        85,512        ``Conv2D(32, 3, 3)`` in the book is Keras-1 style: 3x3 kernel,
                            **stride 3**. The book's final ``sigmoid`` under categorical
                            cross-entropy is a bug: softmax here.
cnn_v2        5,447,912     deliberate over-fitting example (train 99.5 %, val 74 %).
cnn_v3        639,240       deep and narrow, ends in GlobalMaxPool.
vgg16_v4      23,112,520    VGG16 notop at 150 px, all but the last 4 layers frozen
              (15,477,256   (trainable count with the backbone frozen that way).
              trainable)
============  ============  =================================================================

``mini_inception`` has GoogLeNet-style auxiliary classifiers: the model built for training has
three outputs named ``main``, ``aux1``, ``aux2`` (loss weights :data:`AUX_LOSS_WEIGHTS`);
:func:`inference_model` strips the auxiliary heads for evaluation and export.
"""

from __future__ import annotations

from pathlib import Path

from services.errors import UserFacingError
from services.provenance import IMAGENET
from services.runtime import tensorflow

AUX_LOSS_WEIGHTS = {"main": 1.0, "aux1": 0.3, "aux2": 0.3}
"""GoogLeNet's total loss: loss_main + 0.3 * loss_aux1 + 0.3 * loss_aux2."""


def _keras():
    tensorflow()  # configures TF (GPU memory growth, quiet logs) before Keras touches it
    import keras

    return keras


def cnn_v1(input_shape=(150, 150, 3), num_classes=8) -> "keras.Model":
    """Book ch. 8, first model: two strided convolutions, 85,512 parameters at 150x150."""
    keras = _keras()
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Conv2D(32, 3, strides=3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, strides=3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax", dtype="float32"),
    ], name="cnn_v1")


def cnn_v2(input_shape=(150, 150, 3), num_classes=8, dropout=0.25) -> "keras.Model":
    """Book ch. 8, second model: wide convolutions and a big dense head (5,447,912 parameters)."""
    keras = _keras()
    layers = keras.layers
    blocks = []
    for filters, kernel in ((128, 5), (64, 3), (64, 3)):
        blocks += [layers.Conv2D(filters, kernel, padding="same", activation="relu"),
                   layers.MaxPooling2D(2), layers.Dropout(dropout)]
    head = [layers.Dense(units, activation="relu") for units in (256, 64, 32)]
    return keras.Sequential([
        keras.Input(shape=input_shape), *blocks, layers.Flatten(), *head,
        layers.Dense(num_classes, activation="softmax", dtype="float32"),
    ], name="cnn_v2")


def cnn_v3(input_shape=(150, 150, 3), num_classes=8, dropout=0.25) -> "keras.Model":
    """Book ch. 8, third model: four conv stages pooled by 3, GlobalMaxPool (639,240 parameters)."""
    keras = _keras()
    layers = keras.layers
    stages = ((16, 16, 16), (32, 32, 32), (64, 64, 64), (128, 128, 256))
    body = []
    for filters in stages:
        body += [layers.Conv2D(f, 3, padding="same", activation="relu") for f in filters]
        body += [layers.Dropout(dropout), layers.MaxPooling2D(3)]
    return keras.Sequential([
        keras.Input(shape=input_shape), *body, layers.GlobalMaxPooling2D(),
        layers.Dense(num_classes, activation="softmax", dtype="float32"),
    ], name="cnn_v3")


def inception_module(x, filters_1x1, filters_3x3, filters_5x5, filters_pool, name):
    """Book ch. 4: parallel 1x1, 3x3, 5x5 convolutions and a 3x3 max-pool ('same'), concatenated.

    As in GoogLeNet, 1x1 convolutions reduce the channels before the 3x3 and 5x5 branches and
    project the pooled branch.
    """
    layers = _keras().layers
    conv = lambda f, k, n: layers.Conv2D(f, k, padding="same", activation="relu", name=f"{name}_{n}")  # noqa: E731
    branch1 = conv(filters_1x1, 1, "1x1")(x)
    branch3 = conv(filters_3x3, 3, "3x3")(conv(max(filters_3x3 // 2, 1), 1, "3x3_reduce")(x))
    branch5 = conv(filters_5x5, 5, "5x5")(conv(max(filters_5x5 // 2, 1), 1, "5x5_reduce")(x))
    pooled = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    branch_pool = conv(filters_pool, 1, "pool_proj")(pooled)
    return layers.Concatenate(name=f"{name}_concat")([branch1, branch3, branch5, branch_pool])


def _auxiliary_head(x, num_classes, name):
    """GoogLeNet's side classifier: average pool, 1x1 conv, dense, dropout, softmax."""
    layers = _keras().layers
    x = layers.AveragePooling2D(3, strides=2, padding="same", name=f"{name}_avgpool")(x)
    x = layers.Conv2D(32, 1, activation="relu", name=f"{name}_conv")(x)
    x = layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    x = layers.Dense(64, activation="relu", name=f"{name}_dense")(x)
    x = layers.Dropout(0.5, name=f"{name}_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name=name)(x)


def mini_inception(input_shape=(150, 150, 3), num_classes=8) -> "keras.Model":
    """A small GoogLeNet: stem, three inception modules, auxiliary heads after modules 1 and 2.

    Outputs ``[main, aux1, aux2]``; train with :data:`AUX_LOSS_WEIGHTS` and export
    :func:`inference_model` (main output only).
    """
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="stem_conv")(inputs)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    x = inception_module(x, 16, 32, 8, 8, name="inception_1")
    aux1 = _auxiliary_head(x, num_classes, "aux1")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool_1")(x)
    x = inception_module(x, 32, 48, 16, 16, name="inception_2")
    aux2 = _auxiliary_head(x, num_classes, "aux2")
    x = inception_module(x, 48, 64, 16, 16, name="inception_3")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.4, name="dropout")(x)
    main = layers.Dense(num_classes, activation="softmax", dtype="float32", name="main")(x)
    return keras.Model(inputs, [main, aux1, aux2], name="mini_inception")


def has_auxiliary_heads(model) -> bool:
    return len(model.outputs) > 1 and model.output_names[0] == "main"


def inference_model(model) -> "keras.Model":
    """The model without auxiliary heads (shares the trained layers)."""
    if not has_auxiliary_heads(model):
        return model
    keras = _keras()
    return keras.Model(model.inputs, model.get_layer("main").output, name=model.name)


def _vgg16_backbone(input_shape, weights):
    keras = _keras()
    if weights is None:
        return keras.applications.VGG16(weights=None, include_top=False, input_shape=input_shape)
    if weights == IMAGENET:
        try:
            from services.models.weights import load_backbone
        except ImportError as error:  # the registry is optional at this point
            raise UserFacingError("The pretrained-weights registry is not available; "
                                  "use weights=None or a weights file path.") from error
        return load_backbone("vgg16", input_shape=input_shape, weights=IMAGENET)
    path = Path(weights)
    if not path.is_file():
        raise UserFacingError(f"VGG16 weights file {path} does not exist.")
    backbone = keras.applications.VGG16(weights=None, include_top=False, input_shape=input_shape)
    try:
        backbone.load_weights(path)
    except (ValueError, OSError) as error:
        raise UserFacingError(f"{path.name} does not hold VGG16 notop weights: {error}") from error
    return backbone


def vgg16_v4(input_shape=(150, 150, 3), num_classes=8, weights=None, trainable_layers=4) -> "keras.Model":
    """Book ch. 8, fourth model: VGG16 notop, all but its last ``trainable_layers`` frozen,
    Flatten, Dense 1024 relu, Dropout 0.5, softmax.

    ``weights``: ``None`` (random; label results as such), ``"imagenet"`` (through the
    pretrained-weights registry) or the path of a VGG16 notop weights file.
    """
    keras = _keras()
    layers = keras.layers
    backbone = _vgg16_backbone(tuple(input_shape), weights)
    for layer in backbone.layers[:-trainable_layers]:
        layer.trainable = False
    inputs = keras.Input(shape=input_shape, name="image")
    from services.models.layers import CaffePreprocess

    x = backbone(CaffePreprocess(name="vgg16_preprocess")(inputs))
    x = layers.Flatten()(x)
    x = layers.Dense(1024, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="vgg16_v4")


def parameter_counts(model) -> dict[str, int]:
    """Total, trainable and non-trainable parameter counts, as ``model.summary()`` shows them."""
    import math

    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    total = sum(math.prod(w.shape) for w in model.weights)
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}
