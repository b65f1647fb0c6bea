"""The transfer-learning strategies as Keras models (book ch. 4 and 8).

- B, :func:`frozen_backbone_model`: the book's vgg16_v4 generalised to every registry backbone:
  all but the last ``trainable_top_layers`` backbone layers frozen; Flatten, Dense 1024 relu,
  Dropout 0.5, softmax; optionally the book's augmentation in front (active only in training).
- C, :func:`feature_head`: the small head trained on cached backbone features (Dense 512,
  Dropout 0.3, Dense 512, Dropout 0.3, softmax; Adam 1e-4); :func:`compose` puts it back on its
  backbone to classify and explain images.
- D, :func:`unfreeze_top_block`: after the head has converged, make the backbone's top block
  trainable (batch-norm layers stay frozen) and continue at a low learning rate.

Every model here takes float RGB images in [0, 1] (as the training service feeds them) and
applies the backbone's own ``preprocess_input`` inside, with serialisable layers, so saved
``.keras`` files load with ``safe_mode=True``. Models are built *flat*: the backbone's layers
are called directly on the preprocessed tensor (``backbone.call``), so every conv layer is a
top-level layer that Grad-CAM and the feature-map view can reach by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.errors import UserFacingError
from services.provenance import IMAGENET
from services.runtime import tensorflow

HEAD_C_LEARNING_RATE = 1e-4
FINE_TUNE_LEARNING_RATE = 1e-5

TOP_BLOCK_FALLBACK_LAYERS = 20
"""Backbones without top-block prefixes (InceptionV3's layer names are generic) unfreeze this many."""
POOLINGS = {"flatten": "Flatten (the book's head)", "avg": "global average pooling"}


def _keras():
    tensorflow()
    import keras

    return keras


def preprocess_layer(backbone_name: str):
    """A serialisable layer doing ``preprocess_input(x * 255)`` for [0, 1] input."""
    from services.models.backbones import spec

    keras = _keras()
    style = spec(backbone_name).preprocess_mode
    if style == "caffe":
        from services.models.layers import CaffePreprocess

        return CaffePreprocess(name=f"{backbone_name}_preprocess")
    if style == "tf":
        return keras.layers.Rescaling(2.0, offset=-1.0, name=f"{backbone_name}_preprocess")
    if style == "none":
        return keras.layers.Rescaling(255.0, name=f"{backbone_name}_preprocess")
    raise UserFacingError(f"no preprocessing layer for mode {style!r} of backbone {backbone_name!r}.")


def attach(backbone, backbone_name: str, *, augmentation=None):
    """(inputs, features): the backbone's layers applied, flat, to preprocessed [0, 1] images."""
    keras = _keras()
    inputs = keras.Input(shape=tuple(backbone.input.shape[1:]), name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    features = backbone.call(preprocess_layer(backbone_name)(x))
    return inputs, features


def _freeze_all_but_top(backbone, trainable_top_layers: int) -> None:
    layers = backbone.layers[1:]  # without its InputLayer
    cut = len(layers) - max(0, trainable_top_layers)
    for index, layer in enumerate(layers):
        layer.trainable = index >= cut


def frozen_backbone_model(
    backbone,
    backbone_name: str,
    num_classes: int,
    *,
    trainable_top_layers: int = 4,
    dense_units: int = 1024,
    dropout: float = 0.5,
    pooling: str = "flatten",
    augmentation=None,
    name: str | None = None,
):
    """Strategy B. With VGG16 at 150 px and 8 classes: 23,112,520 parameters, 15,477,256
    trainable, as the book's vgg16_v4."""
    keras = _keras()
    _freeze_all_but_top(backbone, trainable_top_layers)
    inputs, features = attach(backbone, backbone_name, augmentation=augmentation)
    x = pool(features, pooling)
    x = keras.layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="head_output")(x)
    return keras.Model(inputs, outputs, name=name or f"{backbone_name}_frozen")


def pool(features, pooling: str):
    """The head's first layer on 4-D backbone features: the book's Flatten, or global average
    pooling (``"avg"``: channels only, far fewer head weights on large feature maps)."""
    keras = _keras()
    if pooling == "flatten":
        return keras.layers.Flatten(name="head_flatten")(features)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="head_pool")(features)
    raise UserFacingError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}.")


def feature_extractor(backbone, backbone_name: str):
    """The frozen backbone with its preprocessing: [0, 1] images in, feature maps out."""
    keras = _keras()
    backbone.trainable = False
    inputs, features = attach(backbone, backbone_name)
    return keras.Model(inputs, features, name=f"{backbone_name}_features")


def feature_head(feature_shape, num_classes: int, *, units: int = 512, dropout: float = 0.3,
                 pooling: str = "flatten", name: str = "feature_head"):
    """Strategy C's head (book ch. 4): Flatten (or global average pooling), Dense 512, Dropout
    0.3, Dense 512, Dropout 0.3, softmax. Compile it with ``Adam(1e-4)`` (:func:`compile_model`).
    The pooling head takes maps of any height and width: strategy C fits it on maps pooled once
    (1 x 1, :func:`services.transfer.strategy_c.head_inputs`) and puts it back on the whole maps."""
    keras = _keras()
    if pooling == "avg":
        feature_shape = (None, None, feature_shape[-1])
    inputs = keras.Input(shape=tuple(feature_shape), name="features")
    x = pool(inputs, pooling)
    for index in (1, 2):
        x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{index}")(x)
        x = keras.layers.Dropout(dropout, name=f"head_dropout_{index}")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="head_output")(x)
    return keras.Model(inputs, outputs, name=name)


def compose(backbone, backbone_name: str, head, name: str | None = None):
    """A strategy-C head put back on its backbone: one flat image classifier for inspection."""
    keras = _keras()
    backbone.trainable = False
    inputs, features = attach(backbone, backbone_name)
    return keras.Model(inputs, head.call(features), name=name or f"{backbone_name}_{head.name}")


def top_block_layers(model, backbone_name: str, backbone_layer_names: list[str]) -> list:
    """The layers of ``model`` that form the backbone's last block."""
    from services.models.backbones import spec

    prefixes = spec(backbone_name).top_block_prefixes
    names = [n for n in backbone_layer_names if prefixes and n.startswith(prefixes)]
    if not names:
        names = backbone_layer_names[-TOP_BLOCK_FALLBACK_LAYERS:]
    return [model.get_layer(n) for n in names]


def unfreeze_top_block(model, backbone_name: str, backbone_layer_names: list[str]) -> list[str]:
    """Strategy D's second phase: make the top block trainable except batch-norm layers (their
    statistics stay frozen, the usual advice for fine-tuning on small data). Recompile after."""
    keras = _keras()
    unfrozen = []
    for layer in top_block_layers(model, backbone_name, backbone_layer_names):
        if isinstance(layer, keras.layers.BatchNormalization) or not layer.weights:
            continue
        layer.trainable = True
        unfrozen.append(layer.name)
    return unfrozen


def compile_model(model, learning_rate: float) -> None:
    """Adam, sparse categorical cross-entropy, accuracy (integer labels)."""
    keras = _keras()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])


@dataclass(frozen=True)
class Strategy:
    key: str
    title: str
    description: str
    needs_pretrained: bool


STRATEGIES: dict[str, Strategy] = {s.key: s for s in (
    Strategy("A", "A · from scratch", "The book's CNNs trained from random weights (training service).", False),
    Strategy("B", "B · frozen backbone + head",
             "vgg16_v4 generalised: backbone frozen but its last 4 layers; Flatten, Dense 1024, "
             "Dropout 0.5. Every epoch runs the whole backbone.", True),
    Strategy("B+aug", "B · frozen backbone + head + augmentation",
             "As B with the book's augmentation (rotation 40°, shift/shear/zoom 0.2, flips): the "
             "book's 91 % validation accuracy on Kather 2016.", True),
    Strategy("C", "C · head on cached features",
             "Backbone run once over every tile, features cached on disk; only Dense 512 / 512 "
             "heads are trained (Adam 1e-4): an epoch takes seconds.", True),
    Strategy("D", "D · fine-tuning",
             "Head trained on the frozen backbone first, then the top block unfrozen and trained "
             "on at a low learning rate (1e-5).", True),
)}


# --- builders behind the catalog names (trained by the training service's worker) ---------------


def build_frozen(input_shape=(150, 150, 3), num_classes: int = 8, *, backbone: str = "vgg16",
                 weights: str = IMAGENET, trainable_top_layers: int = 4, dense_units: int = 1024,
                 dropout: float = 0.5, pooling: str = "flatten"):
    """Catalog ``transfer_frozen`` (strategy B; with ``trainable_top_layers=0`` also strategy D's
    first phase). The backbone comes from the weights registry: ``weights="imagenet"`` never falls
    back to random weights, ``"random"`` is the labelled untrained baseline."""
    from services.models import weights as registry

    base = registry.load_backbone(backbone, input_shape=tuple(input_shape), weights=weights)
    suffix = "" if weights == IMAGENET else "_random"
    return frozen_backbone_model(base, backbone, num_classes, trainable_top_layers=trainable_top_layers,
                                 dense_units=dense_units, dropout=dropout, pooling=pooling,
                                 name=f"{backbone}_frozen{suffix}")


def backbone_layer_names(model) -> list[str]:
    """The layers of a flat transfer model that belong to the backbone (between its
    preprocessing layer and the head)."""
    names = [layer.name for layer in model.layers]
    start = next((i for i, n in enumerate(names) if n.endswith("_preprocess")), 0) + 1
    return [n for n in names[start:] if not n.startswith("head_")]


def build_finetune(input_shape=(150, 150, 3), num_classes: int = 8, *, init_model: str, backbone: str):
    """Catalog ``transfer_finetune`` (strategy D's second phase): the converged model of the first
    phase (a ``.keras`` file under the data root) with its top block unfrozen; train it at a low
    learning rate (:data:`FINE_TUNE_LEARNING_RATE`)."""
    from services.config import confine
    from services.models.saved import load_saved_model

    model = load_saved_model(confine(init_model))
    if tuple(model.input.shape[1:]) != tuple(input_shape) or model.output.shape[-1] != num_classes:
        raise UserFacingError(
            f"the first-phase model takes {tuple(model.input.shape[1:])} with {model.output.shape[-1]} "
            f"classes, not {tuple(input_shape)} with {num_classes}; fine-tune with the same data."
        )
    unfreeze_top_block(model, backbone, backbone_layer_names(model))
    return model
