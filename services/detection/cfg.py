"""Darknet ``.cfg`` parser for the layers YOLOv3, YOLOv3-tiny and YOLOv4-tiny use.

``parse_cfg`` turns the text into a :class:`DarknetConfig`: typed layers with absolute
indices and resolved output shapes (height, width, channels). Anything the builder cannot
reproduce exactly (an unknown section, an unknown key, a bad value, inconsistent shapes) raises
:class:`CfgError` naming the file, the line and the section.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from services.errors import UserFacingError

ACTIVATIONS = ("leaky", "linear", "mish", "logistic", "relu")

# Keys that only matter for training: accepted and ignored.
NET_KEYS = {
    "batch", "subdivisions", "width", "height", "channels", "momentum", "decay", "angle",
    "saturation", "exposure", "hue", "learning_rate", "burn_in", "max_batches", "policy", "steps",
    "scales", "mosaic", "flip", "max_chart_loss", "letter_box", "cutmix", "mixup", "blur",
    "gaussian_noise", "label_smooth_eps", "aspect", "power", "adam", "B1", "B2", "eps", "step",
    "gamma", "track", "time_steps", "min_crop", "max_crop", "inputs", "optimized_memory",
    "workspace_size_limit_MB", "dynamic_minibatch", "random", "mosaic_bound", "ema_alpha",
    "loss_scale", "resize_step", "sequential_subdivisions", "try_fix_nan", "seed",
}
YOLO_TRAINING_KEYS = {
    "jitter", "ignore_thresh", "truth_thresh", "random", "iou_thresh", "cls_normalizer",
    "iou_normalizer", "obj_normalizer", "iou_loss", "nms_kind", "beta_nms", "max_delta",
    "resize", "counters_per_class", "label_smooth_eps", "focal_loss", "max", "objectness_smooth",
    "track_history_size", "sim_thresh", "dets_for_track", "dets_for_show", "track_ciou_norm",
    "embedding_layer", "map", "uc_normalizer", "delta_normalizer",
}
SECTION_KEYS = {
    "net": NET_KEYS,
    "convolutional": {"batch_normalize", "filters", "size", "stride", "pad", "padding", "activation"},
    "maxpool": {"size", "stride", "padding"},
    "route": {"layers", "groups", "group_id"},
    "shortcut": {"from", "activation"},
    "upsample": {"stride"},
    "yolo": {"mask", "anchors", "classes", "num", "scale_x_y"} | YOLO_TRAINING_KEYS,
}
SECTION_ALIASES = {"conv": "convolutional", "network": "net", "max": "maxpool"}


class CfgError(UserFacingError):
    """A Darknet cfg that cannot be parsed or is not supported."""


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


@dataclass
class Convolutional(Layer):
    filters: int = 1
    size: int = 1
    stride: int = 1
    padding: int = 0
    batch_normalize: bool = False
    activation: str = "logistic"
    input_channels: int = 0


@dataclass
class MaxPool(Layer):
    size: int = 2
    stride: int = 2
    padding: int = 1
    """Total padding; Darknet puts padding // 2 before and the rest after."""


@dataclass
class Route(Layer):
    sources: tuple[int, ...] = ()
    groups: int = 1
    group_id: int = 0


@dataclass
class Shortcut(Layer):
    source: int = 0
    activation: str = "linear"


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

    @property
    def layer_anchors(self) -> list[tuple[float, float]]:
        return [self.anchors[i] for i in self.mask]


KIND_OF = {Convolutional: "convolutional", MaxPool: "maxpool", Route: "route", Shortcut: "shortcut",
           Upsample: "upsample", Yolo: "yolo"}


@dataclass
class DarknetConfig:
    name: str
    width: int
    height: int
    channels: int
    layers: list[Layer]

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

    def with_input_size(self, width: int, height: int | None = None) -> "DarknetConfig":
        """The same network for another input size (shapes re-resolved; must be a multiple of 32
        for the YOLO topologies, otherwise a :class:`CfgError` names the layer that breaks)."""
        layers = [dataclasses.replace(layer) for layer in self.layers]
        resized = DarknetConfig(self.name, width, height or width, self.channels, layers)
        resolve_shapes(resized)
        return resized


def split_sections(text: str, name: str = "cfg") -> list[Section]:
    """Sections with their options, keeping the line of every header and key."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise CfgError(f"{name}, line {number}: malformed section header {raw.strip()!r}.")
            kind = line[1:-1].strip().lower()
            sections.append(Section(SECTION_ALIASES.get(kind, kind), number))
            continue
        if not sections:
            raise CfgError(f"{name}, line {number}: {raw.strip()!r} appears before any [section].")
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CfgError(f"{name}, line {number}, [{sections[-1].kind}]: expected key=value, got {raw.strip()!r}.")
        section = sections[-1]
        section.options[key] = value.strip()
        section.key_lines[key] = number
    return sections


class _Reader:
    """Typed access to one section's options with errors that name the line."""

    def __init__(self, section: Section, name: str):
        self.section, self.name = section, name

    def fail(self, message: str, key: str | None = None) -> CfgError:
        line = self.section.key_lines.get(key, self.section.line) if key else self.section.line
        return CfgError(f"{self.name}, line {line}, [{self.section.kind}]: {message}")

    def raw(self, key: str, default: str | None = None) -> str | None:
        return self.section.options.get(key, default)

    def int(self, key: str, default: int | None = None, minimum: int | None = None) -> int:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise self.fail(f"missing required key {key}=.")
            return default
        try:
            number = int(value)
        except ValueError:
            raise self.fail(f"{key}={value} is not an integer.", key) from None
        if minimum is not None and number < minimum:
            raise self.fail(f"{key}={value} must be at least {minimum}.", key)
        return number

    def float(self, key: str, default: float) -> float:
        value = self.raw(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise self.fail(f"{key}={value} is not a number.", key) from None

    def ints(self, key: str) -> list[int]:
        return self._list(key, int, "integers")

    def floats(self, key: str) -> list[float]:
        return self._list(key, float, "numbers")

    def _list(self, key: str, convert, what: str) -> list:
        value = self.raw(key, "")
        try:
            return [convert(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise self.fail(f"{key}={value} must be a comma-separated list of {what}.", key) from None

    def activation(self, default: str) -> str:
        value = (self.raw("activation") or default).lower()
        if value not in ACTIVATIONS:
            raise self.fail(f"activation={value} is not supported (supported: {', '.join(ACTIVATIONS)}).",
                            "activation")
        return value

    def check_keys(self) -> None:
        allowed = SECTION_KEYS[self.section.kind]
        for key in self.section.options:
            if key not in allowed:
                raise self.fail(f"key {key}= is not supported in [{self.section.kind}] "
                                f"(supported: {', '.join(sorted(allowed - YOLO_TRAINING_KEYS - NET_KEYS))}).",
                                key)


def _absolute(reader: _Reader, key: str, offset: int, index: int) -> int:
    target = index + offset if offset < 0 else offset
    if not 0 <= target < index:
        raise reader.fail(f"{key} refers to layer {offset}, which does not exist before layer {index}.", key)
    return target


def _make_layer(reader: _Reader, index: int) -> Layer:
    kind, line = reader.section.kind, reader.section.line
    if kind == "convolutional":
        size = reader.int("size", 1, minimum=1)
        pad = reader.int("pad", 0, minimum=0)
        padding = reader.int("padding", size // 2 if pad else 0, minimum=0)
        return Convolutional(index, line, filters=reader.int("filters", 1, minimum=1), size=size,
                             stride=reader.int("stride", 1, minimum=1), padding=padding,
                             batch_normalize=bool(reader.int("batch_normalize", 0)),
                             activation=reader.activation("logistic"))
    if kind == "maxpool":
        size = reader.int("size", 2, minimum=1)
        return MaxPool(index, line, size=size, stride=reader.int("stride", size, minimum=1),
                       padding=reader.int("padding", size - 1, minimum=0))
    if kind == "route":
        offsets = reader.ints("layers")
        if not offsets:
            raise reader.fail("route needs layers=.", "layers")
        groups = reader.int("groups", 1, minimum=1)
        group_id = reader.int("group_id", 0, minimum=0)
        if group_id >= groups:
            raise reader.fail(f"group_id={group_id} must be smaller than groups={groups}.", "group_id")
        return Route(index, line, sources=tuple(_absolute(reader, "layers", o, index) for o in offsets),
                     groups=groups, group_id=group_id)
    if kind == "shortcut":
        offsets = reader.ints("from")
        if len(offsets) != 1:
            raise reader.fail("shortcut needs exactly one from= layer.", "from")
        return Shortcut(index, line, source=_absolute(reader, "from", offsets[0], index),
                        activation=reader.activation("linear"))
    if kind == "upsample":
        return Upsample(index, line, stride=reader.int("stride", 2, minimum=1))
    # yolo
    num = reader.int("num", 1, minimum=1)
    values = reader.floats("anchors")
    if len(values) != 2 * num:
        raise reader.fail(f"anchors= has {len(values)} numbers but num={num} needs {2 * num}.", "anchors")
    mask = reader.ints("mask") if reader.raw("mask") else list(range(num))
    if any(not 0 <= m < num for m in mask):
        raise reader.fail(f"mask={reader.raw('mask')} refers to anchors outside 0..{num - 1}.", "mask")
    return Yolo(index, line, mask=tuple(mask), anchors=tuple(zip(values[0::2], values[1::2])),
                classes=reader.int("classes", 20, minimum=1), scale_x_y=reader.float("scale_x_y", 1.0))


def parse_cfg(text: str, name: str = "cfg") -> DarknetConfig:
    """Parse Darknet cfg text into a :class:`DarknetConfig` with resolved shapes."""
    sections = split_sections(text, name)
    if not sections or sections[0].kind != "net":
        raise CfgError(f"{name}: the first section must be [net] (found "
                       f"{'[' + sections[0].kind + '] at line ' + str(sections[0].line) if sections else 'no sections'}).")
    layers: list[Layer] = []
    for section in sections:
        if section.kind not in SECTION_KEYS:
            raise CfgError(f"{name}, line {section.line}: section [{section.kind}] is not supported "
                           f"(supported: {', '.join('[' + k + ']' for k in SECTION_KEYS)}).")
        reader = _Reader(section, name)
        reader.check_keys()
        if section.kind == "net":
            if section is not sections[0]:
                raise reader.fail("[net] may only appear once, as the first section.")
            continue
        layers.append(_make_layer(reader, len(layers)))
    net = _Reader(sections[0], name)
    config = DarknetConfig(name, net.int("width", 416, minimum=1), net.int("height", 416, minimum=1),
                           net.int("channels", 3, minimum=1), layers)
    if not config.yolo_layers:
        raise CfgError(f"{name}: no [yolo] section; only YOLO detectors are supported.")
    resolve_shapes(config)
    return config


def _where(config: DarknetConfig, layer: Layer) -> str:
    return f"{config.name}, line {layer.line}, [{layer.kind}] (layer {layer.index})"


def resolve_shapes(config: DarknetConfig) -> None:
    """Fill in every layer's output shape; raise :class:`CfgError` where shapes do not fit."""
    shape = (config.height, config.width, config.channels)
    shapes: list[tuple[int, int, int]] = []
    for layer in config.layers:
        height, width, channels = shape
        if isinstance(layer, Convolutional):
            layer.input_channels = channels
            out_h = (height + 2 * layer.padding - layer.size) // layer.stride + 1
            out_w = (width + 2 * layer.padding - layer.size) // layer.stride + 1
            shape = (out_h, out_w, layer.filters)
        elif isinstance(layer, MaxPool):
            shape = ((height + layer.padding - layer.size) // layer.stride + 1,
                     (width + layer.padding - layer.size) // layer.stride + 1, channels)
        elif isinstance(layer, Route):
            parts = [shapes[s] for s in layer.sources]
            if len({p[:2] for p in parts}) != 1:
                raise CfgError(f"{_where(config, layer)}: routed layers have different sizes "
                               f"{[p[:2] for p in parts]} at input {config.width}x{config.height}.")
            if any(p[2] % layer.groups for p in parts):
                raise CfgError(f"{_where(config, layer)}: groups={layer.groups} does not divide the channels "
                               f"{[p[2] for p in parts]}.")
            shape = (*parts[0][:2], sum(p[2] // layer.groups for p in parts))
        elif isinstance(layer, Shortcut):
            if shapes[layer.source] != shape:
                raise CfgError(f"{_where(config, layer)}: shortcut adds layer {layer.source} of shape "
                               f"{shapes[layer.source]} to a shape {shape}; they must be equal.")
        elif isinstance(layer, Upsample):
            shape = (height * layer.stride, width * layer.stride, channels)
        elif isinstance(layer, Yolo):
            needed = len(layer.mask) * (5 + layer.classes)
            if channels != needed:
                raise CfgError(f"{_where(config, layer)}: the layer before has {channels} filters but "
                               f"{len(layer.mask)} anchors x (5 + {layer.classes} classes) = {needed} are needed.")
        if min(shape[:2]) < 1:
            raise CfgError(f"{_where(config, layer)}: the input {config.width}x{config.height} is too small "
                           "for this network.")
        layer.output_shape = shape
        shapes.append(shape)
