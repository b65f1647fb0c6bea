"""What the real-tissue demo downloads, from where, under which licence, and where each file goes.

Three files, each with its size and checksum (the known-dataset and weights modules own the real
values; this module only gathers them):

- ``tiles``: Kather 2016 tiles zip (Zenodo 53169, CC BY 4.0) -> ``<data root>/downloads/``;
- ``weights``: MobileNetV2's ImageNet no-top weights (Keras applications, Apache 2.0) -> the
  model cache;
- ``larger``: ONE image of the Kather 2016 larger-images zip (Zenodo 53169, CC BY 4.0) ->
  ``<data root>/datasets/kather2016_larger/``; read by range requests, or from the whole zip.

``DASHBOARD_DEMO_SOURCES`` (:attr:`services.config.Settings.demo_sources`) names a JSON file that
replaces the address and checks of any of them: ``{"tiles": {"url", "size", "md5"}, "weights":
{"url", "md5"?, "size"?}, "larger": {"url", "size"}}``. An entry may also declare ``"generated":
true`` (generated data, not tissue) or, for weights, ``"random_weights": true``: the results then
say so. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services import untrusted_json
from services.config import display_path, get_settings
from services.datasets import kather
from services.errors import UserFacingError
from services.models import backbones
from services.tissuemap import kather_large

BACKBONE = "mobilenet_v2"
TILES, WEIGHTS, LARGER = "tiles", "weights", "larger"
LICENCES = {
    TILES: "CC BY 4.0 (Kather et al. 2016, Zenodo record 53169)",
    WEIGHTS: "Apache 2.0 (Keras applications)",
    LARGER: "CC BY 4.0 (Kather et al. 2016, Zenodo record 53169)",
}


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    url: str
    size: int | None
    """Bytes of the file downloaded (for ``larger``: the whole zip; one image is fetched from it)."""
    checks: dict[str, Any]
    """Checksums passed to the download (``md5`` / ``sha256``); empty where none is published."""
    licence: str
    generated: bool = False
    """Declared by a sources file: generated data, not tissue (tests)."""
    random_weights: bool = False
    """Declared by a sources file: randomly initialised weights, not ImageNet (tests)."""
    replaced: bool = False
    """True when ``DASHBOARD_DEMO_SOURCES`` gave its address and checks."""

    @property
    def size_text(self) -> str:
        if not self.size:
            return "size not published"
        return f"{self.size / 1e6:,.0f} MB" if self.size >= 1e6 else f"{self.size / 1e3:,.0f} kB"


def _overrides() -> dict[str, dict[str, Any]]:
    path = get_settings().demo_sources
    if path is None:
        return {}
    try:
        values = untrusted_json.read(Path(path), expect=None)
    except untrusted_json.BadJSON as error:
        raise UserFacingError(f"DASHBOARD_DEMO_SOURCES names {Path(path).name}, which is not a readable JSON file "
                              f"({error}); fix or unset it.") from None
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise UserFacingError("DASHBOARD_DEMO_SOURCES must hold a JSON object of objects (tiles, weights, larger).")
    return values


def _number(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserFacingError(f"DASHBOARD_DEMO_SOURCES: {name} must be a positive whole number of bytes.")
    return value


def _with_override(source: Source, override: dict[str, Any] | None) -> Source:
    if not override:
        return source
    if not isinstance(override.get("url"), str) or not override["url"]:
        raise UserFacingError(f"DASHBOARD_DEMO_SOURCES: the {source.key} entry needs a url.")
    checks = {k: str(override[k]) for k in ("md5", "sha256") if override.get(k)}
    if source.key != WEIGHTS and override.get("size") is None:
        raise UserFacingError(f"DASHBOARD_DEMO_SOURCES: the {source.key} entry needs its size in bytes.")
    return Source(source.key, source.title, override["url"], _number(override.get("size"), f"{source.key}.size"),
                  checks, source.licence, generated=bool(override.get("generated")),
                  random_weights=bool(override.get("random_weights")), replaced=True)


def demo_sources() -> dict[str, Source]:
    """The three files of the demo, with any replacement from ``DASHBOARD_DEMO_SOURCES``."""
    weights = backbones.spec(BACKBONE)
    real = (
        Source(TILES, "Kather 2016 tiles (5,000 tiles, 8 classes)", kather.URL, kather.SIZE, {"md5": kather.MD5},
               LICENCES[TILES]),
        Source(WEIGHTS, f"{weights.title} ImageNet weights (no top)", weights.url,
               weights.size or int(weights.approx_mb * 1e6), {"md5": weights.md5} if weights.md5 else {},
               LICENCES[WEIGHTS]),
        Source(LARGER, "One Kather 2016 larger image (5000 x 5000 px)", kather_large.URL, kather_large.SIZE,
               {"sha256": kather_large.SHA256}, LICENCES[LARGER]),
    )
    overrides = _overrides()
    return {source.key: _with_override(source, overrides.get(source.key)) for source in real}


def weights_file() -> Path:
    return get_settings().model_cache_dir / backbones.spec(BACKBONE).file_name


@dataclass(frozen=True)
class Placement:
    """Where to put one file by hand (offline), and whether something usable is there."""
    key: str
    what: str
    where: str
    alternative: str
    present: bool


def placements() -> list[Placement]:
    """For each of the three files: where to place it by hand and whether it is there already."""
    from services.models import weights as registry

    larger_zip = kather_large.download_path()
    return [
        Placement(TILES, f"{kather.FILE_NAME} ({kather.SIZE:,} bytes, md5 {kather.MD5})",
                  display_path(kather.download_path()),
                  f"or its extracted folder at {display_path(kather.install_folder())}",
                  kather.is_installed() or kather.download_path().is_file()),
        Placement(WEIGHTS, f"{backbones.spec(BACKBONE).file_name} (from {backbones.spec(BACKBONE).url})",
                  display_path(weights_file()), "or in Keras's own cache (~/.keras/models)",
                  registry.weights_status(BACKBONE).usable),
        Placement(LARGER, f"any one image of {kather_large.FILE_NAME} (e.g. a .tif of "
                          "Kather_texture_2016_larger_images_10/)",
                  display_path(kather_large.install_folder()) + "/",
                  f"or the whole zip ({kather_large.SIZE:,} bytes) at {display_path(larger_zip)}",
                  bool(kather_large.installed_images()) or larger_zip.is_file()),
    ]


def missing_text(items: list[Placement]) -> str:
    """One sentence per missing file: what, where to place it (offline instructions)."""
    missing = [p for p in items if not p.present]
    return " ".join(f"Place {p.what} at {p.where} ({p.alternative})." for p in missing)
