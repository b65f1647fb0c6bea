"""The demo journey of issue 20 in a real browser, with the app's memory sampled while it runs:
index the demo set, train cnn_v1 for 3 epochs, map the demo mosaic, a Grad-CAM of one of its
tiles, a fast style transfer, a detection on the TensorFlow backend. Shared by
``tests/test_e2e_cloud_journey.py`` (budget guard) and ``bench/bench_memory.py`` (the figures).

:class:`MemorySampler` reads the PSS of the web server and every process of the data root from
``/proc`` (``services/processes.py``) twice a second in a thread, and records per step the peak
sum, the processes at that peak, and the most processes with TensorFlow loaded at one time.
"""

from __future__ import annotations

import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from services import processes
from tests.conftest import wait_for, wait_for_app
from tests.e2e_helpers import assert_clean, selected

MIB = 2**20
DEMO_STEPS = ("index the demo set", "train cnn_v1, 3 epochs", "tissue map of the demo mosaic",
              "Grad-CAM of a tile", "fast style transfer", "detection on TensorFlow")


@dataclass
class StepPeak:
    total_mib: float = 0.0
    processes: dict[str, float] = field(default_factory=dict)
    tensorflow: list[str] = field(default_factory=list)
    """The most processes with TensorFlow loaded seen at one time during the step."""


class MemorySampler:
    """Samples the app's memory in a thread until :meth:`stop`; :meth:`step` starts a new step."""

    def __init__(self, data_root: Path, server_pid: int, interval_s: float = 0.5):
        self.data_root, self.server_pid, self.interval_s = data_root, server_pid, interval_s
        self.peaks: dict[str, StepPeak] = {}
        self.server_peak_mib = 0.0
        """The web server's own largest PSS in any sample."""
        self.current = "start"
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def step(self, name: str) -> None:
        self.sample()
        with self._lock:
            self.current = name

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.sample()

    def sample(self) -> StepPeak:
        usages = processes.app_usage(self.data_root, self.server_pid)
        now = StepPeak(processes.total_bytes(usages) / MIB,
                       {f"{u.role} {u.pid}": (u.bytes or 0) / MIB for u in usages},
                       [f"{u.role} {u.pid}" for u in usages if processes.loaded_tensorflow(u.pid)])
        server = (usages[0].bytes or 0) / MIB if usages else 0.0  # app_usage lists the server first
        with self._lock:
            self.server_peak_mib = max(self.server_peak_mib, server)
            peak = self.peaks.setdefault(self.current, StepPeak())
            if now.total_mib > peak.total_mib:
                peak.total_mib, peak.processes = now.total_mib, now.processes
            if len(now.tensorflow) > len(peak.tensorflow):
                peak.tensorflow = now.tensorflow
        return now

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.sample()

    @property
    def peak(self) -> tuple[str, StepPeak]:
        return max(self.peaks.items(), key=lambda item: item[1].total_mib)

    @property
    def most_tensorflow(self) -> tuple[str, list[str]]:
        step, peak = max(self.peaks.items(), key=lambda item: len(item[1].tensorflow))
        return step, peak.tensorflow


def install_magenta(model_cache: Path, shared_fixtures: Path) -> None:
    """The real Magenta TF Lite files in the model cache, as a user would put them (offline)."""
    from services.style import fast_models

    target = model_cache / fast_models.FOLDER
    target.mkdir(parents=True, exist_ok=True)
    for item in [fast_models.PREDICT, *fast_models.TRANSFER_VARIANTS.values()]:
        shutil.copyfile(shared_fixtures / "style" / "magenta" / item.file_name, target / item.file_name)


def _open(page, url: str) -> None:
    page.goto(url)
    wait_for_app(page)


def index_demo_set(page, url: str, timeout_s: float = 300) -> None:
    """Open the explorer once: it indexes the demo set in a job and shows the overview by itself
    when the job ends (no reload: reloading every few seconds never lets a slow first render of a
    busy machine finish)."""
    _open(page, f"{url}/dataset_explorer")
    page.get_by_text("Source images").first.wait_for(timeout=timeout_s * 1000)
    wait_for_app(page)


def train_cnn_v1(page, url: str, epochs: int = 3, timeout_s: float = 900) -> None:
    _open(page, f"{url}/training_monitor")
    form = page.get_by_test_id("stForm")
    expander = page.get_by_test_id("stExpander").filter(has_text="Start a training run")
    if expander.locator("details").get_attribute("open") is None:
        expander.get_by_text("Start a training run").click()
    field = form.get_by_label("Epochs")
    field.fill(str(epochs))
    field.press("Tab")
    assert selected(page, "Model").startswith("cnn_v1"), selected(page, "Model")  # the form's default
    form.get_by_label("Run name (optional)").fill("journey run")
    form.get_by_role("button", name="Start training").click()
    page.get_by_test_id("stProgress").filter(
        has_text=re.compile(rf"journey run.*finished.*epoch {epochs}/{epochs}")).first.wait_for(timeout=timeout_s * 1000)
    wait_for_app(page)


def map_the_demo_mosaic(page, url: str, timeout_s: float = 600) -> None:
    _open(page, f"{url}/tissue_map")
    page.get_by_text("synthetic demo mosaic").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Map queued", exact=False).first.wait_for()
    page.get_by_role("tab", name="Maps").click()
    wait_for(lambda: selected(page, "Map").endswith(" · finished"), timeout=timeout_s)
    wait_for_app(page)


def gradcam_of_a_tile(page, timeout_s: float = 300) -> None:
    """On the finished map: click a tile, then its Grad-CAM button (the model service)."""
    chart = page.locator("[data-testid='stPlotlyChart']").first
    chart.wait_for(timeout=60_000)
    chart.scroll_into_view_if_needed()
    markers = chart.locator(".scatterlayer path.point")
    markers.nth(0).wait_for(state="attached")
    for attempt in range(3):  # a late rerun can redraw the chart under the click: click again
        tile = markers.nth(markers.count() // 2).bounding_box()
        page.mouse.click(tile["x"] + tile["width"] * 0.3, tile["y"] + tile["height"] * 0.3)
        wait_for_app(page)
        try:
            page.get_by_text("Tile at x").first.wait_for(timeout=20_000)
            break
        except Exception:
            if attempt == 2:
                raise
            chart.scroll_into_view_if_needed()
    page.get_by_role("button", name="Grad-CAM").click()
    page.get_by_text("Grad-CAM (predicted class)").first.wait_for(timeout=timeout_s * 1000)
    wait_for_app(page)


def fast_style(page, url: str, timeout_s: float = 300) -> None:
    _open(page, f"{url}/style_transfer")
    page.get_by_role("button", name="Start").click()
    page.get_by_text("finished", exact=True).first.wait_for(timeout=timeout_s * 1000)
    wait_for_app(page)


def detect_on_tensorflow(page, url: str, photo: Path, timeout_s: float = 300) -> None:
    _open(page, f"{url}/detector")
    page.locator("[data-testid='stRadio']").filter(has_text="Backend").get_by_text("TensorFlow").click()
    wait_for_app(page)
    uploader = page.locator("[data-testid='stFileUploader']").filter(has_text="Photos to detect on")
    uploader.locator("input[type='file']").set_input_files(str(photo))
    page.get_by_text(re.compile(r"^\d+ detections · ")).first.wait_for(timeout=timeout_s * 1000)
    wait_for_app(page)


def detect_on_opencv(page, url: str, photo: Path, timeout_s: float = 300) -> None:
    """A detection in the web server itself (the default backend of Darknet models)."""
    _open(page, f"{url}/detector")
    uploader = page.locator("[data-testid='stFileUploader']").filter(has_text="Photos to detect on")
    uploader.locator("input[type='file']").set_input_files(str(photo))
    page.get_by_text(re.compile(r"^\d+ detections · ")).first.wait_for(timeout=timeout_s * 1000)
    wait_for_app(page)


def demo_journey(page, server, shared_fixtures: Path, sampler: MemorySampler) -> None:
    """The six steps, each measured as a step of ``sampler``; every page left clean."""
    url = server.url
    install_magenta(server.data_dir / "models", shared_fixtures)
    actions = (lambda: index_demo_set(page, url), lambda: train_cnn_v1(page, url),
               lambda: map_the_demo_mosaic(page, url), lambda: gradcam_of_a_tile(page),
               lambda: fast_style(page, url),
               lambda: detect_on_tensorflow(page, url, shared_fixtures / "darknet" / "dog.jpg"))
    for name, action in zip(DEMO_STEPS, actions):
        sampler.step(name)
        action()
        assert_clean(page, server)
    sampler.step("journey done")
