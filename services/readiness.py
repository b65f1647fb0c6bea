"""What works fully right now, and what to download for the rest (the Home page's banner).

Answers from file existence alone, in milliseconds and without TensorFlow: a weights file that
is present is counted here, and checked (hash, layers) by the page that loads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.config import display_path, get_settings
from services.datasets import kather
from services.datasets.demo import DEMO_NAME
from services.detection import registry as detectors
from services.models import weights
from services.models.backbones import BACKBONES
from services.style import fast_models
from services.tissuemap import kather_large

READY, DEMO = "ready", "demo"
_MB = 1_000_000


@dataclass(frozen=True)
class PageReadiness:
    page: str
    """The page's file in ``dashboard.pages_registry`` (``"detector.py"``)."""
    state: str
    """READY: works on real data and models; DEMO: works, on synthetic data or random weights."""
    now: str
    """What the page does with what is here."""
    get: str = ""
    """What to download (or copy, offline) to make it work fully; empty when READY."""


@dataclass(frozen=True)
class Readiness:
    offline: bool
    real_data: bool
    """A real dataset is present (Kather 2016 or a folder of your own), not only the demo set."""
    pages: tuple[PageReadiness, ...]

    @property
    def limited(self) -> bool:
        """Whether the Home page should show the offline / demo banner."""
        return self.offline or any(page.state != READY for page in self.pages)


def _has_real_dataset() -> bool:
    if kather.is_installed():
        return True
    folder = get_settings().datasets_dir
    try:
        return any(entry.is_dir() and entry.name not in (DEMO_NAME, kather_large.FOLDER_NAME)
                   and not entry.name.startswith((".", "_"))
                   for entry in folder.iterdir())
    except OSError:
        return False


def _backbone_present(name: str) -> bool:
    file_name = BACKBONES[name].file_name
    folders = [weights.model_cache_dir(), *weights.keras_cache_dirs()]
    return any((folder / file_name).is_file() for folder in folders)


def _how(offline: bool, online: str, file_name: str, where: str) -> str:
    if offline:
        return f"copy {file_name} (downloaded elsewhere) into {where}"
    return f"{online}, or copy {file_name} into {where}"


def _backbone_download(name: str, offline: bool) -> str:
    backbone = BACKBONES[name]
    return f"{backbone.title} ImageNet weights ({backbone.approx_mb:.0f} MB): " + _how(
        offline, "the page's download button", backbone.file_name, display_path(weights.model_cache_dir()))


def _data_pages(real_data: bool, offline: bool) -> list[PageReadiness]:
    get = "" if real_data else "Kather 2016 tiles ({:.0f} MB): {}".format(kather.SIZE / _MB, _how(
        offline, "one click on the Dataset explorer", kather.FILE_NAME, display_path(get_settings().datasets_dir)))
    state = READY if real_data else DEMO
    return [
        PageReadiness("dataset_explorer.py", state,
                      "every view works" + ("" if real_data else ", on the synthetic demo set"), get),
        PageReadiness("training_monitor.py", state,
                      "trains and monitors runs" + ("" if real_data else
                                                    " on synthetic tiles: numbers say nothing about tissue"), get),
    ]


def _transfer_page(real_data: bool, offline: bool) -> PageReadiness:
    with_weights = [name for name in BACKBONES if _backbone_present(name)]
    if with_weights and real_data:
        return PageReadiness("transfer_learning.py", READY, "pretrained backbones found: "
                             + ", ".join(BACKBONES[name].title for name in with_weights))
    needs = []
    if not with_weights:
        suggested = "mobilenet_v2" if "mobilenet_v2" in BACKBONES else min(
            BACKBONES, key=lambda name: BACKBONES[name].approx_mb)
        needs.append(_backbone_download(suggested, offline) + " (or any other backbone's)")
    if not real_data:
        needs.append("a real dataset (see the Dataset explorer)")
    now = ("from-scratch strategy works; pretrained strategies need ImageNet weights" if not with_weights
           else "every strategy works, on the synthetic demo set")
    return PageReadiness("transfer_learning.py", DEMO, now, "; ".join(needs))


def _magenta_present() -> bool:
    return all((fast_models.folder() / item.file_name).is_file() for item in fast_models.files_for())


def _style_page(offline: bool) -> PageReadiness:
    engines = {"fast style transfer (Magenta networks)": _magenta_present(),
               "Gatys optimisation (VGG19)": "vgg19" in BACKBONES and _backbone_present("vgg19")}
    working = [name for name, present in engines.items() if present]
    if len(working) == len(engines):
        return PageReadiness("style_transfer.py", READY, "silhouettes, " + " and ".join(working) + " work")
    needs = []
    if not engines["fast style transfer (Magenta networks)"]:
        files = fast_models.files_for()
        needs.append(f"the Magenta style networks ({sum(f.size for f in files) / _MB:.0f} MB): " + _how(
            offline, "the page's download button", " and ".join(f.file_name for f in files),
            display_path(fast_models.folder())))
    if not engines["Gatys optimisation (VGG19)"]:
        needs.append(_backbone_download("vgg19", offline))
    missing = [name for name in engines if name not in working]
    return PageReadiness("style_transfer.py", DEMO, ", ".join(["silhouettes", *working]) + " work; "
                         + " and ".join(missing) + " need files", "; ".join(needs))


def _tissue_map_page(real_data: bool, offline: bool) -> PageReadiness:
    images = bool(kather_large.installed_images())
    if images and real_data:
        return PageReadiness("tissue_map.py", READY, "maps the Kather 2016 larger images, or your own, with a "
                                                     "model you train")
    needs = []
    if not images:
        needs.append(f"Kather 2016 larger images ({kather_large.SIZE / _MB:.0f} MB): " + _how(
            offline, "one click on the Tissue map page", kather_large.FILE_NAME,
            display_path(kather_large.download_path().parent)))
    if not real_data:
        needs.append("a model trained on real tiles (a real dataset on the Dataset explorer, then the Training "
                     "monitor)")
    return PageReadiness("tissue_map.py", DEMO, "maps the synthetic demo mosaic or your own image with a model "
                                                "trained here", "; ".join(needs))


def _detector_page(offline: bool) -> PageReadiness:
    installed = [detectors.REGISTRY[key].title for key in detectors.installed_keys()]
    own = [f"{stem} (uploaded)" for stem in detectors.uploaded_models()]
    if installed or own:
        return PageReadiness("detector.py", READY, "detects with " + ", ".join(installed + own))
    tiny = detectors.REGISTRY["yolov3-tiny"]
    return PageReadiness(
        "detector.py", DEMO, "only the random-weights demo model: its boxes are meaningless",
        f"{tiny.weights_name} ({tiny.weights_size / _MB:.0f} MB): " + _how(
            offline, "the page's download button", tiny.weights_name, display_path(detectors.darknet_dir()))
        + "; or upload your own Darknet or ONNX model")


def readiness() -> Readiness:
    offline = get_settings().offline
    real_data = _has_real_dataset()
    pages = [PageReadiness("system.py", READY, "device report and speed probe"),
             *_data_pages(real_data, offline), _transfer_page(real_data, offline),
             _tissue_map_page(real_data, offline), _style_page(offline), _detector_page(offline)]
    return Readiness(offline, real_data, tuple(pages))
