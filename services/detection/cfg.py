"""Darknet ``.cfg`` parser for the YOLO family that OpenCV 4.x's Darknet importer reads.

``parse_cfg`` turns the text into a :class:`DarknetConfig`: typed layers with absolute
indices and resolved output shapes (height, width, channels). Anything the builder cannot
reproduce exactly (an unknown section, an unknown or repeated key, a bad value, inconsistent
shapes, a default on which Darknet and OpenCV disagree) raises :class:`CfgError` naming the
file, the line and the section.

Sections: ``[net]``, ``[convolutional]`` (``groups=``: grouped and depthwise), ``[maxpool]``,
``[avgpool]`` (global), ``[dropout]`` (identity at inference), ``[route]`` (``groups`` /
``group_id`` of one layer), ``[shortcut]`` (channels truncated or zero-extended to the current layer's, as
Darknet and OpenCV do), ``[scale_channels]``, ``[sam]``, ``[upsample]``, ``[yolo]``
(``scale_x_y``, ``new_coords``). Activations: those OpenCV 4.14 implements (see
:data:`ACTIVATIONS`); Darknet's hard variants (hard_mish, hardtan, ...) are not among them and
are refused, because the rebuild could not be checked against OpenCV.

Hostile input: the text, the number of layers, every size and stride, the parameter count and
the activation memory of one image (batch 1, float32) are checked against limits while parsing,
before anything is built. Parsing is iterative, so 10,000 layers are refused, not recursed into.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from services.config import Env, get_settings
from services.errors import UserFacingError

ACTIVATIONS = ("leaky", "linear", "mish", "swish", "logistic", "relu", "tanh")
"""The activations OpenCV 4.14's Darknet importer implements (``silu`` is read as ``swish``)."""
ACTIVATION_ALIASES = {"silu": "swish"}
HARD_ACTIVATIONS = ("hard_mish", "hardtan", "hardswish", "hard_sigmoid", "lhtan", "relu6", "elu", "selu",
                    "gelu", "loggy", "plse", "ramp", "stair", "relie", "normalize_channels",
                    "normalize_channels_softmax", "normalize_channels_softmax_maxval")

# Limits on what a cfg may ask for (a cfg is untrusted input).
MAX_CFG_CHARS = 2_000_000
"""Real cfgs are 2-40 kB."""
MAX_PARAMETER_BYTES = 1 << 30
"""Darknet weights are float32; the largest YOLO (YOLOv4-P7) is about 1 GB."""
MAX_INPUT_SIDE = 4096
MAX_INPUT_CHANNELS = 16
MAX_FILTERS = 32768
MAX_KERNEL = 32
MAX_POOL = 64
MAX_STRIDE = 32
MAX_SOURCES = 32
MAX_CLASSES = 10000
MAX_ANCHORS = 64

# Keys that only matter for training: accepted and ignored.
NET_KEYS = {
    "batch", "subdivisions", "width", "height", "channels", "momentum", "decay", "angle",
    "saturation", "exposure", "hue", "learning_rate", "burn_in", "max_batches", "policy", "steps",
    "scales", "mosaic", "flip", "max_chart_loss", "letter_box", "cutmix", "mixup", "blur",
    "gaussian_noise", "label_smooth_eps", "aspect", "power", "adam", "B1", "B2", "eps", "step",
    "gamma", "track", "time_steps", "min_crop", "max_crop", "inputs", "optimized_memory",
    "workspace_size_limit_MB", "dynamic_minibatch", "random", "mosaic_bound", "ema_alpha",
    "loss_scale", "resize_step", "sequential_subdivisions", "try_fix_nan", "seed", "contrastive",
    "unsupervised", "contrastive_jit_flip", "contrastive_color", "adversarial_lr", "attention",
}
YOLO_TRAINING_KEYS = {
    "jitter", "ignore_thresh", "truth_thresh", "random", "iou_thresh", "cls_normalizer",
    "iou_normalizer", "obj_normalizer", "iou_loss", "nms_kind", "beta_nms", "max_delta",
    "resize", "counters_per_class", "label_smooth_eps", "focal_loss", "max", "objectness_smooth",
    "track_history_size", "sim_thresh", "dets_for_track", "dets_for_show", "track_ciou_norm",
    "embedding_layer", "map", "uc_normalizer", "delta_normalizer",
}
DROPOUT_TRAINING_KEYS = {"probability", "dropblock", "dropblock_size_rel", "dropblock_size_abs"}
TRAINING_KEYS = NET_KEYS | YOLO_TRAINING_KEYS | DROPOUT_TRAINING_KEYS
SECTION_KEYS = {
    "net": NET_KEYS,
    "convolutional": {"batch_normalize", "filters", "size", "stride", "pad", "padding", "activation", "groups"},
    "maxpool": {"size", "stride", "padding"},
    "avgpool": set(),
    "dropout": DROPOUT_TRAINING_KEYS,
    "route": {"layers", "groups", "group_id"},
    "shortcut": {"from", "activation"},
    "scale_channels": {"from", "activation"},
    "sam": {"from", "activation"},
    "upsample": {"stride"},
    "yolo": {"mask", "anchors", "classes", "num", "scale_x_y", "new_coords"} | YOLO_TRAINING_KEYS,
}
SECTION_ALIASES = {"conv": "convolutional", "network": "net", "max": "maxpool", "avg": "avgpool"}
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_NUMBER = re.compile(r"[+-]?([0-9]{1,12}(\.[0-9]{0,12})?|\.[0-9]{1,12})([eE][+-]?[0-9]{1,3})?")


class CfgError(UserFacingError):
    """A Darknet cfg that cannot be parsed or is not supported."""


def max_layers() -> int:
    """The layer cap (setting ``DASHBOARD_DARKNET_MAX_LAYERS``)."""
    return get_settings().darknet_max_layers


def max_activation_bytes() -> int:
    """The activation-memory cap for one image (setting ``DASHBOARD_DARKNET_MAX_ACTIVATION_MB``)."""
    return get_settings().darknet_max_activation_mb * (1 << 20)


@dataclass
class Section:
    kind: str
    line: int
    options: dict[str, str] = field(default_factory=dict)
    key_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class Layer:
    index: int
    line: int
    output_shape: tuple[int, int, int] = (0, 0, 0)
    """(height, width, channels) for the configured input size."""

    @property
    def kind(self) -> str:
        return KIND_OF[type(self)]

    @property
    def inputs(self) -> tuple[int, ...]:
        """Indices of the layers this one reads, in the order it reads them (-1: the image)."""
        return (self.index - 1,)


@dataclass
class Convolutional(Layer):
    filters: int = 1
    size: int = 1
    stride: int = 1
    padding: int = 0
    batch_normalize: bool = False
    activation: str = "linear"
    groups: int = 1
    input_channels: int = 0

    @property
    def depthwise(self) -> bool:
        """One group per input channel (each filter sees one channel)."""
        return self.groups > 1 and self.groups == self.input_channels

    @property
    def parameter_count(self) -> int:
        per_filter = 4 if self.batch_normalize else 1
        return self.filters * per_filter + self.filters * (self.input_channels // self.groups) * self.size ** 2


@dataclass
class MaxPool(Layer):
    size: int = 2
    stride: int = 2
    padding: int = 1
    """Total padding; Darknet puts padding // 2 before and the rest after."""


@dataclass
class AvgPool(Layer):
    """Global average pooling to 1 x 1."""


@dataclass
class Dropout(Layer):
    """The identity at inference."""


@dataclass
class Route(Layer):
    sources: tuple[int, ...] = ()
    groups: int = 1
    group_id: int = 0

    @property
    def inputs(self) -> tuple[int, ...]:
        return self.sources


@dataclass
class _FromLayer(Layer):
    """A layer combining the previous layer's output with the output of ``source``."""

    source: int = 0
    activation: str = "linear"

    @property
    def inputs(self) -> tuple[int, ...]:
        return (self.index - 1, self.source)


@dataclass
class Shortcut(_FromLayer):
    """previous + source over the previous layer's channels (extra source channels are dropped,
    missing ones count as zero), then the activation."""


@dataclass
class ScaleChannels(_FromLayer):
    """source (H, W, C) times the previous layer's (1, 1, C), channel by channel."""


@dataclass
class Sam(_FromLayer):
    """Spatial attention: source times the previous layer, element by element."""


@dataclass
class Upsample(Layer):
    stride: int = 2


@dataclass
class Yolo(Layer):
    mask: tuple[int, ...] = ()
    anchors: tuple[tuple[float, float], ...] = ()
    """All anchors of the cfg as (width, height) in input pixels; ``mask`` picks this layer's."""
    classes: int = 20
    scale_x_y: float = 1.0
    new_coords: bool = False
    """Scaled-YOLOv4 box coding: the inputs are already logistic; w = (2 tw)^2 anchor."""

    @property
    def layer_anchors(self) -> list[tuple[float, float]]:
        return [self.anchors[i] for i in self.mask]


KIND_OF = {Convolutional: "convolutional", MaxPool: "maxpool", AvgPool: "avgpool", Dropout: "dropout",
           Route: "route", Shortcut: "shortcut", ScaleChannels: "scale_channels", Sam: "sam",
           Upsample: "upsample", Yolo: "yolo"}


@dataclass
class DarknetConfig:
    name: str
    width: int
    height: int
    channels: int
    layers: list[Layer]
    activation_bytes: int = 0
    """Sum of every layer's output for one image, float32 (what inference may hold at once)."""

    @property
    def yolo_layers(self) -> list[Yolo]:
        return [layer for layer in self.layers if isinstance(layer, Yolo)]

    @property
    def conv_layers(self) -> list[Convolutional]:
        return [layer for layer in self.layers if isinstance(layer, Convolutional)]

    @property
    def classes(self) -> int:
        counts = {layer.classes for layer in self.yolo_layers}
        return counts.pop() if len(counts) == 1 else 0

    @property
    def parameter_count(self) -> int:
        return sum(layer.parameter_count for layer in self.conv_layers)

    def with_input_size(self, width: int, height: int | None = None) -> "DarknetConfig":
        """The same network for another input size (shapes and memory re-checked; must be a
        multiple of the network stride, otherwise a :class:`CfgError` names the layer that breaks)."""
        height = height or width
        for side in (width, height):
            if not 1 <= side <= MAX_INPUT_SIDE:
                raise CfgError(f"{self.name}: input size {width}x{height} is outside 1..{MAX_INPUT_SIDE}.")
        layers = [dataclasses.replace(layer) for layer in self.layers]
        resized = DarknetConfig(self.name, width, height, self.channels, layers)
        resolve_shapes(resized)
        return resized


def split_sections(text: str, name: str = "cfg", layer_limit: int | None = None) -> list[Section]:
    """Sections with their options, keeping the line of every header and key. Stops as soon as
    the text or the number of sections passes its limit."""
    if len(text) > MAX_CFG_CHARS:
        raise CfgError(f"{name}: {len(text):,} characters is far more than any Darknet cfg "
                       f"(limit {MAX_CFG_CHARS:,}).")
    layer_limit = max_layers() if layer_limit is None else layer_limit
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise CfgError(f"{name}, line {number}: malformed section header {_shown(raw)}.")
            if len(sections) > layer_limit:
                raise CfgError(f"{name}, line {number}: more than {layer_limit:,} layers; the limit is "
                               f"{layer_limit:,} (setting {Env.DARKNET_MAX_LAYERS}).")
            kind = line[1:-1].strip().lower()
            sections.append(Section(SECTION_ALIASES.get(kind, kind), number))
            continue
        if not sections:
            raise CfgError(f"{name}, line {number}: {_shown(raw)} appears before any [section].")
        key, sep, value = line.partition("=")
        key = key.strip()
        section = sections[-1]
        if not sep or not key:
            raise CfgError(f"{name}, line {number}, [{_shown_kind(section.kind)}]: expected key=value, "
                           f"got {_shown(raw)}.")
        if key in section.options:
            raise CfgError(f"{name}, line {number}, [{_shown_kind(section.kind)}]: key {_shown(key, 40)}= is "
                           f"repeated (first at line {section.key_lines[key]}); Darknet and OpenCV would "
                           "read different values.")
        section.options[key] = value.strip()
        section.key_lines[key] = number
    return sections


def _shown(text: str, limit: int = 60) -> str:
    """User text quoted for a message, shortened and with control characters escaped."""
    text = text.strip()
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def _shown_kind(kind: str) -> str:
    return kind if kind.isidentifier() and len(kind) <= 30 else _shown(kind, 30)


class _Reader:
    """Typed access to one section's options with errors that name the line."""

    def __init__(self, section: Section, name: str):
        self.section, self.name = section, name

    def fail(self, message: str, key: str | None = None) -> CfgError:
        line = self.section.key_lines.get(key, self.section.line) if key else self.section.line
        return CfgError(f"{self.name}, line {line}, [{self.section.kind}]: {message}")

    def raw(self, key: str, default: str | None = None) -> str | None:
        return self.section.options.get(key, default)

    def require(self, key: str, why: str) -> None:
        if key not in self.section.options:
            raise self.fail(f"{key}= is required here ({why}).")

    def int(self, key: str, default: int | None = None, minimum: int | None = None,
            maximum: int | None = None) -> int:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise self.fail(f"missing required key {key}=.")
            return default
        if not _INTEGER.fullmatch(value):
            raise self.fail(f"{key}={_shown(value, 20)} is not an integer.", key)
        number = int(value)
        if minimum is not None and number < minimum:
            raise self.fail(f"{key}={value} must be at least {minimum}.", key)
        if maximum is not None and number > maximum:
            raise self.fail(f"{key}={value} is larger than the limit {maximum}.", key)
        return number

    def float(self, key: str, default: float, minimum: float | None = None, maximum: float | None = None) -> float:
        value = self.raw(key)
        if value is None:
            return default
        if not _NUMBER.fullmatch(value) or not math.isfinite(float(value)):
            raise self.fail(f"{key}={_shown(value, 20)} is not a number.", key)
        number = float(value)
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise self.fail(f"{key}={value} must be between {minimum} and {maximum}.", key)
        return number

    def ints(self, key: str, limit: int) -> list[int]:
        parts = self._parts(key, limit)
        if not all(_INTEGER.fullmatch(part) for part in parts):
            raise self.fail(f"{key}= must be a comma-separated list of integers.", key)
        return [int(part) for part in parts]

    def floats(self, key: str, limit: int) -> list[float]:
        parts = self._parts(key, limit)
        if not all(_NUMBER.fullmatch(part) and math.isfinite(float(part)) for part in parts):
            raise self.fail(f"{key}= must be a comma-separated list of numbers.", key)
        return [float(part) for part in parts]

    def _parts(self, key: str, limit: int) -> list[str]:
        parts = [part.strip() for part in self.raw(key, "").split(",") if part.strip()]
        if len(parts) > limit:
            raise self.fail(f"{key}= has {len(parts):,} entries; the limit is {limit}.", key)
        return parts

    def activation(self) -> str:
        value = (self.raw("activation") or "linear").lower()
        value = ACTIVATION_ALIASES.get(value, value)
        if value not in ACTIVATIONS:
            hard = " (OpenCV 4.14 does not implement it either)" if value in HARD_ACTIVATIONS else ""
            raise self.fail(f"activation={_shown(value, 30)} is not supported{hard}; supported: "
                            f"{', '.join(ACTIVATIONS)}.", "activation")
        return value

    def check_keys(self) -> None:
        allowed = SECTION_KEYS[self.section.kind]
        for key in self.section.options:
            if key not in allowed:
                shown = sorted(allowed - TRAINING_KEYS) or ["none"]
                raise self.fail(f"key {_shown(key, 40)}= is not supported in [{self.section.kind}] "
                                f"(supported: {', '.join(shown)}).", key)


def _absolute(reader: _Reader, key: str, offset: int, index: int) -> int:
    target = index + offset if offset < 0 else offset
    if not 0 <= target < index:
        raise reader.fail(f"{key} refers to layer {offset}, which does not exist before layer {index}.", key)
    return target


def _from_source(reader: _Reader, index: int) -> int:
    offsets = reader.ints("from", MAX_SOURCES)
    if len(offsets) != 1:
        raise reader.fail(f"[{reader.section.kind}] needs exactly one from= layer.", "from")
    return _absolute(reader, "from", offsets[0], index)


def _convolutional(reader: _Reader, index: int, line: int) -> Convolutional:
    reader.require("activation", "Darknet's default is logistic, OpenCV's linear")
    size = reader.int("size", 1, minimum=1, maximum=MAX_KERNEL)
    # Darknet and OpenCV: pad=1 means size // 2 and overrides padding=.
    padding = (size // 2 if reader.int("pad", 0, minimum=0)
               else reader.int("padding", 0, minimum=0, maximum=MAX_KERNEL))
    return Convolutional(index, line, filters=reader.int("filters", 1, minimum=1, maximum=MAX_FILTERS),
                         size=size, stride=reader.int("stride", 1, minimum=1, maximum=MAX_STRIDE),
                         padding=padding, batch_normalize=bool(reader.int("batch_normalize", 0, 0, 1)),
                         activation=reader.activation(),
                         groups=reader.int("groups", 1, minimum=1, maximum=MAX_FILTERS))


def _maxpool(reader: _Reader, index: int, line: int) -> MaxPool:
    for key in ("size", "stride"):
        reader.require(key, "Darknet and OpenCV have different defaults")
    size = reader.int("size", minimum=1, maximum=MAX_POOL)
    return MaxPool(index, line, size=size, stride=reader.int("stride", minimum=1, maximum=MAX_STRIDE),
                   padding=reader.int("padding", size - 1, minimum=0, maximum=MAX_POOL))


def _route(reader: _Reader, index: int, line: int) -> Route:
    offsets = reader.ints("layers", MAX_SOURCES)
    if not offsets:
        raise reader.fail("route needs layers=.", "layers")
    groups = reader.int("groups", 1, minimum=1, maximum=MAX_FILTERS)
    group_id = reader.int("group_id", 0, minimum=0)
    if group_id >= groups:
        raise reader.fail(f"group_id={group_id} must be smaller than groups={groups}.", "group_id")
    if groups > 1 and len(offsets) > 1:
        raise reader.fail("groups= with several layers is not supported (OpenCV 4.14 reads it differently from "
                          "Darknet, so the rebuild could not be checked).", "groups")
    return Route(index, line, sources=tuple(_absolute(reader, "layers", o, index) for o in offsets),
                 groups=groups, group_id=group_id)


def _from_layer(cls):
    def make(reader: _Reader, index: int, line: int):
        return cls(index, line, source=_from_source(reader, index), activation=reader.activation())
    return make


def _upsample(reader: _Reader, index: int, line: int) -> Upsample:
    reader.require("stride", "Darknet's default is 2, OpenCV's 1")
    return Upsample(index, line, stride=reader.int("stride", minimum=1, maximum=MAX_STRIDE))


def _yolo(reader: _Reader, index: int, line: int) -> Yolo:
    num = reader.int("num", 1, minimum=1, maximum=MAX_ANCHORS)
    values = reader.floats("anchors", 2 * MAX_ANCHORS)
    if len(values) != 2 * num:
        raise reader.fail(f"anchors= has {len(values)} numbers but num={num} needs {2 * num}.", "anchors")
    if any(not 0 < value <= 4 * MAX_INPUT_SIDE for value in values):
        raise reader.fail(f"anchors= must be positive sizes in pixels (at most {4 * MAX_INPUT_SIDE}).", "anchors")
    mask = reader.ints("mask", MAX_ANCHORS) if reader.raw("mask") else list(range(num))
    if any(not 0 <= m < num for m in mask):
        raise reader.fail(f"mask={reader.raw('mask')} refers to anchors outside 0..{num - 1}.", "mask")
    return Yolo(index, line, mask=tuple(mask), anchors=tuple(zip(values[0::2], values[1::2])),
                classes=reader.int("classes", 20, minimum=1, maximum=MAX_CLASSES),
                scale_x_y=reader.float("scale_x_y", 1.0, minimum=0.5, maximum=4.0),
                new_coords=bool(reader.int("new_coords", 0, minimum=0, maximum=1)))


LAYER_PARSERS = {
    "convolutional": _convolutional,
    "maxpool": _maxpool,
    "avgpool": lambda reader, index, line: AvgPool(index, line),
    "dropout": lambda reader, index, line: Dropout(index, line),
    "route": _route,
    "shortcut": _from_layer(Shortcut),
    "scale_channels": _from_layer(ScaleChannels),
    "sam": _from_layer(Sam),
    "upsample": _upsample,
    "yolo": _yolo,
}


def parse_cfg(text: str, name: str = "cfg") -> DarknetConfig:
    """Parse Darknet cfg text into a :class:`DarknetConfig` with resolved shapes."""
    sections = split_sections(text, name)
    if not sections or sections[0].kind != "net":
        raise CfgError(f"{name}: the first section must be [net] (found "
                       f"{'[' + _shown_kind(sections[0].kind) + '] at line ' + str(sections[0].line) if sections else 'no sections'}).")
    layers: list[Layer] = []
    for section in sections:
        if section.kind not in SECTION_KEYS:
            raise CfgError(f"{name}, line {section.line}: section [{_shown_kind(section.kind)}] is not supported "
                           f"(supported: {', '.join('[' + k + ']' for k in SECTION_KEYS)}).")
        reader = _Reader(section, name)
        reader.check_keys()
        if section.kind == "net":
            if section is not sections[0]:
                raise reader.fail("[net] may only appear once, as the first section.")
            continue
        layers.append(LAYER_PARSERS[section.kind](reader, len(layers), section.line))
    net = _Reader(sections[0], name)
    config = DarknetConfig(name, net.int("width", 416, minimum=1, maximum=MAX_INPUT_SIDE),
                           net.int("height", 416, minimum=1, maximum=MAX_INPUT_SIDE),
                           net.int("channels", 3, minimum=1, maximum=MAX_INPUT_CHANNELS), layers)
    if not config.yolo_layers:
        raise CfgError(f"{name}: no [yolo] section; only YOLO detectors are supported.")
    resolve_shapes(config)
    return config


def _where(config: DarknetConfig, layer: Layer) -> str:
    return f"{config.name}, line {layer.line}, [{layer.kind}] (layer {layer.index})"


class _ShapeError(Exception):
    """Raised by a shape rule; :func:`resolve_shapes` adds where it happened."""


def _conv_shape(layer: Convolutional, shape, shapes) -> tuple[int, int, int]:
    height, width, channels = shape
    layer.input_channels = channels
    if channels % layer.groups or layer.filters % layer.groups:
        raise _ShapeError(f"groups={layer.groups} must divide both the {channels} input channels and "
                          f"filters={layer.filters}.")
    return ((height + 2 * layer.padding - layer.size) // layer.stride + 1,
            (width + 2 * layer.padding - layer.size) // layer.stride + 1, layer.filters)


def _maxpool_shape(layer: MaxPool, shape, shapes) -> tuple[int, int, int]:
    height, width, channels = shape
    return ((height + layer.padding - layer.size) // layer.stride + 1,
            (width + layer.padding - layer.size) // layer.stride + 1, channels)


def _route_shape(layer: Route, shape, shapes) -> tuple[int, int, int]:
    parts = [shapes[s] for s in layer.sources]
    if len({p[:2] for p in parts}) != 1:
        raise _ShapeError(f"routed layers have different sizes {[p[:2] for p in parts]}.")
    if any(p[2] % layer.groups for p in parts):
        raise _ShapeError(f"groups={layer.groups} does not divide the channels {[p[2] for p in parts]}.")
    return (*parts[0][:2], sum(p[2] // layer.groups for p in parts))


def _shortcut_shape(layer: Shortcut, shape, shapes) -> tuple[int, int, int]:
    if shapes[layer.source][:2] != shape[:2]:
        raise _ShapeError(f"shortcut adds layer {layer.source} of shape {shapes[layer.source]} to a shape "
                          f"{shape}; their heights and widths must be equal.")
    return shape


def _scale_channels_shape(layer: ScaleChannels, shape, shapes) -> tuple[int, int, int]:
    source = shapes[layer.source]
    if shape != (1, 1, source[2]):
        raise _ShapeError(f"scales layer {layer.source} of shape {source} by a shape {shape}; the scale must be "
                          f"(1, 1, {source[2]}).")
    return source


def _sam_shape(layer: Sam, shape, shapes) -> tuple[int, int, int]:
    if shapes[layer.source] != shape:
        raise _ShapeError(f"multiplies layer {layer.source} of shape {shapes[layer.source]} by a shape {shape}; "
                          "they must be equal.")
    return shape


def _yolo_shape(layer: Yolo, shape, shapes) -> tuple[int, int, int]:
    needed = len(layer.mask) * (5 + layer.classes)
    if shape[2] != needed:
        raise _ShapeError(f"the layer before has {shape[2]} filters but {len(layer.mask)} anchors x "
                          f"(5 + {layer.classes} classes) = {needed} are needed.")
    return shape


SHAPE_RULES = {
    Convolutional: _conv_shape,
    MaxPool: _maxpool_shape,
    AvgPool: lambda layer, shape, shapes: (1, 1, shape[2]),
    Dropout: lambda layer, shape, shapes: shape,
    Route: _route_shape,
    Shortcut: _shortcut_shape,
    ScaleChannels: _scale_channels_shape,
    Sam: _sam_shape,
    Upsample: lambda layer, shape, shapes: (shape[0] * layer.stride, shape[1] * layer.stride, shape[2]),
    Yolo: _yolo_shape,
}


def _check_sources(config: DarknetConfig, layer: Layer) -> None:
    """No layer may read a [yolo] layer: Darknet passes activated values on, OpenCV its boxes."""
    for source in layer.inputs:
        if source >= 0 and isinstance(config.layers[source], Yolo):
            raise CfgError(f"{_where(config, layer)}: reads the [yolo] layer {source}, which is not supported.")


def resolve_shapes(config: DarknetConfig) -> None:
    """Fill in every layer's output shape and the activation estimate; raise :class:`CfgError`
    where shapes do not fit or the parameters or activations pass their limits (checked layer by
    layer, so an absurd layer is refused where it appears)."""
    shape = (config.height, config.width, config.channels)
    shapes: list[tuple[int, int, int]] = []
    limit = max_activation_bytes()
    total = 4 * config.height * config.width * config.channels
    parameters = 0
    for layer in config.layers:
        _check_sources(config, layer)
        try:
            shape = SHAPE_RULES[type(layer)](layer, shape, shapes)
        except _ShapeError as error:
            raise CfgError(f"{_where(config, layer)}: {error} (input {config.width}x{config.height})") from None
        if min(shape[:2]) < 1:
            raise CfgError(f"{_where(config, layer)}: the input {config.width}x{config.height} is too small "
                           "for this network.")
        total += 4 * shape[0] * shape[1] * shape[2]
        if total > limit:
            raise CfgError(f"{_where(config, layer)}: by this layer one {config.width}x{config.height} image needs "
                           f"{total / 2**20:,.0f} MiB of activations (float32, batch 1); the limit is "
                           f"{limit / 2**20:,.0f} MiB (setting {Env.DARKNET_MAX_ACTIVATION_MB}).")
        if isinstance(layer, Convolutional):
            parameters += layer.parameter_count
            if 4 * parameters > MAX_PARAMETER_BYTES:
                raise CfgError(f"{_where(config, layer)}: the weights would pass {MAX_PARAMETER_BYTES / 2**30:.0f} "
                               "GiB by this layer; no YOLO model is that large.")
        layer.output_shape = shape
        shapes.append(shape)
    config.activation_bytes = total
