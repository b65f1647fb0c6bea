"""The pages shown in the navigation. Only pages that work are listed here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    section: str
    summary: str
    default: bool = False

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.file

    @property
    def link(self) -> str:
        """The page's path as st.page_link wants it: relative to the entrypoint's folder."""
        return f"../pages/{self.file}"


def page(file: str) -> PageSpec:
    return next(spec for spec in PAGES if spec.file == file)


PAGES: list[PageSpec] = [
    PageSpec("home.py", "Home", ":material/home:", "Overview",
             "What the dashboard does and which compute device it runs on.", default=True),
    PageSpec("system.py", "System", ":material/memory:", "Overview",
             "TensorFlow devices and the book's CPU vs GPU matrix-multiplication probe."),
    PageSpec("dataset_explorer.py", "Dataset explorer", ":material/grid_view:", "Data",
             "Histology tile datasets: demo and Kather 2016, gallery, colour, quality, splits, augmentation."),
    PageSpec("training_monitor.py", "Training monitor", ":material/monitoring:", "Models",
             "Train the book's histology CNNs and watch loss, accuracy and confusion matrices live."),
    PageSpec("transfer_learning.py", "Transfer learning", ":material/model_training:", "Models",
             "Compare from-scratch, frozen-backbone, cached-feature and fine-tuned models; Grad-CAM per tile."),
    PageSpec("tissue_map.py", "Tissue map", ":material/map:", "Models",
             "Classify a whole image tile by tile: class map, areas, tumour-stroma ratio, QuPath GeoJSON, report."),
    PageSpec("detector.py", "Object detector", ":material/center_focus_strong:", "Create",
             "YOLO (Darknet or ONNX) on photos with TensorFlow or OpenCV, thresholds live, batch jobs."),
    PageSpec("style_transfer.py", "Style transfer", ":material/palette:", "Create",
             "Neural style transfer on VGG19 and stained-glass silhouettes (book ch. 5), as background jobs."),
]
