"""Real browser journeys for every download button, against a local mirror on 127.0.0.1.

A second warm server runs online with ``DASHBOARD_DOWNLOAD_MIRROR`` pointing at a local HTTP
server (tests never reach the internet). The mirror holds the genuine Magenta networks and
Yolo-Fastest weights (third-party fixtures), MobileNet v1 weights taken from the genuine Keras
model file, and, for the files too large to keep (VGG19, the larger Kather images), generated
stand-ins that the download must refuse by size or checksum with a clear sentence. The style page
then runs the downloaded fast engine on an uploaded photo and painting, and takes an uploaded
silhouette."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image

from tests.conftest import StreamlitServer, new_browser_page, serve_folder, wait_for, wait_for_app
from tests.e2e_helpers import assert_clean, open_weights_panel, timed_click, upload

pytestmark = pytest.mark.e2e

GENUINE = {"style/magenta": ("style_predict_quantized_256.tflite", "style_transfer_f16_384.tflite"),
           "darknet": ("yolo-fastest-1.1.weights", "yolo-fastest-1.1.cfg")}


def _mobilenet_no_top(full_model, cache):
    """Keras's MobileNet v1 (alpha 0.25) no-top weights file, taken from the genuine full model
    file by the dashboard's own installer (run in a model cache of the test's)."""
    from services.models import weights

    previous = os.environ.get("DASHBOARD_MODEL_CACHE")
    os.environ["DASHBOARD_MODEL_CACHE"] = str(cache)
    try:
        return weights.install_weights_file("mobilenet_v1_0.25", full_model.read_bytes(),
                                            original_name=full_model.name)
    finally:
        if previous is None:
            os.environ.pop("DASHBOARD_MODEL_CACHE")
        else:
            os.environ["DASHBOARD_MODEL_CACHE"] = previous


@pytest.fixture(scope="module")
def mirror(shared_fixtures, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mirror")
    for sub, names in GENUINE.items():
        for name in names:
            (folder / name).symlink_to(shared_fixtures / sub / name)
    made = _mobilenet_no_top(shared_fixtures / "keras" / "mobilenet_v1_0.25_224.h5", tmp_path_factory.mktemp("cache"))
    (folder / made.name).symlink_to(made)
    for stand_in in ("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "Kather_texture_2016_larger_images_10.zip"):
        (folder / stand_in).write_bytes(b"not the published file\n" * 1000)
    with serve_folder(folder) as server:
        yield server


@pytest.fixture(scope="module")
def online_server(mirror, tmp_path_factory, artifacts_dir):
    data_dir = tmp_path_factory.mktemp("e2e-online")
    server = StreamlitServer(data_dir, artifacts_dir / "streamlit-online-server.log",
                             extra_args=("--secrets.files", str(data_dir / "no-secrets.toml")),
                             env={"DASHBOARD_OFFLINE": "", "DASHBOARD_DOWNLOAD_MIRROR": mirror.url})
    yield server
    server.stop()


@pytest.fixture
def page(_browser, online_server):
    with new_browser_page(_browser) as page:
        yield page


def _status(page, title: str):
    """The status line (progress bar) of the job titled ``title``."""
    return page.get_by_test_id("stProgress").filter(has_text=title)


def test_style_downloads_the_fast_networks_and_runs_on_uploaded_pictures(page, online_server, shared_fixtures,
                                                                        artifacts_dir, tmp_path):
    style = shared_fixtures / "style"
    page.goto(f"{online_server.url}/style_transfer")
    wait_for_app(page)
    page.get_by_role("radio", name="Fast (Magenta)").click()
    wait_for_app(page)
    timed_click(page, "style: Download the Magenta style networks",
                page.get_by_role("button", name="Download the Magenta style networks"),
                page.get_by_test_id("stToast").filter(has_text="Downloading the Magenta style networks"))
    page.get_by_text("Magenta arbitrary-style networks (f16) in the model cache.").wait_for(timeout=120_000)
    wait_for_app(page)
    assert_clean(page, online_server)

    for label, picture in (("Content", style / "photos" / "tubingen.jpg"),
                           ("Style", style / "paintings" / "starry_night.jpg")):
        page.get_by_role("radiogroup", name=f"{label} source").get_by_text("Upload", exact=True).click()
        wait_for_app(page)
        upload(page, f"{label} image", picture)
    timed_click(page, "style: Start (fast, uploaded pictures)", page.get_by_role("button", name="Start"),
                page.get_by_test_id("stToast").filter(has_text="Started Fast (Magenta)"))
    page.get_by_text(re.compile(r"^Stylised in [\d.]+ s")).wait_for(timeout=120_000)
    page.get_by_role("button", name="Download result (PNG)").wait_for()
    assert_clean(page, online_server)
    page.screenshot(path=str(artifacts_dir / "journey_style_fast_uploads.png"), full_page=True)

    shape = np.full((120, 160), 255, np.uint8)
    shape[30:90, 40:120] = 0  # a black rectangle on white
    silhouette = tmp_path / "silhouette.png"
    Image.fromarray(shape, "L").save(silhouette)
    page.get_by_role("radio", name="Silhouette mosaic").click()
    wait_for_app(page)
    page.get_by_role("radiogroup", name="Silhouette source").get_by_text("Upload", exact=True).click()
    wait_for_app(page)
    upload(page, "Silhouette (black shape on white)", silhouette)
    page.get_by_text("Silhouette used").first.wait_for()
    assert_clean(page, online_server)


def test_style_refuses_a_vgg19_file_that_is_not_the_published_one(page, online_server):
    page.goto(f"{online_server.url}/style_transfer")
    wait_for_app(page)
    page.get_by_role("radio", name="Gatys (VGG19)").click()
    wait_for_app(page)
    timed_click(page, "style: Download VGG19 weights", page.get_by_role("button", name="Download VGG19 weights"),
                _status(page, "Download VGG19 weights"))
    page.get_by_text(re.compile(r"md5 is [0-9a-f]+, expected 253f8cb5.*refused")).first.wait_for(timeout=120_000)
    assert not any((online_server.data_dir / "models").glob("vgg19*"))
    assert_clean(page, online_server)


def test_detector_downloads_yolo_fastest_and_lists_it_installed(page, online_server, artifacts_dir):
    weights = online_server.data_dir / "models" / "darknet" / "yolo-fastest-1.1.weights"
    page.goto(f"{online_server.url}/detector")
    wait_for_app(page)
    page.get_by_text("Add a model", exact=False).first.click()
    timed_click(page, "detector: Download weights", page.get_by_role("button", name="Download yolo-fastest-1.1.weights"),
                _status(page, "download yolo-fastest-1.1.weights"))
    wait_for(weights.is_file, timeout=120)
    page.reload()
    wait_for_app(page)
    page.get_by_text("Add a model", exact=False).first.click()
    page.get_by_text("Yolo-Fastest 1.1 (COCO, 1.4 MB): installed", exact=False).wait_for()
    assert_clean(page, online_server)
    page.screenshot(path=str(artifacts_dir / "journey_detector_download.png"), full_page=True)


def test_transfer_downloads_mobilenet_weights(page, online_server):
    open_weights_panel(page, online_server.url, "MobileNet v1 (alpha 0.25)")
    title = "Download MobileNet v1 (alpha 0.25) weights"
    timed_click(page, "transfer: Download weights", page.get_by_role("button", name=re.compile(re.escape(title))),
                page.get_by_test_id("stToast").filter(has_text="Downloading the MobileNet v1 (alpha 0.25) weights"))
    _status(page, title).filter(has_text="finished").first.wait_for(timeout=180_000)
    assert (online_server.data_dir / "models" / "mobilenet_2_5_224_tf_no_top.h5").is_file()
    assert_clean(page, online_server)


def test_tissue_map_refuses_larger_images_that_are_not_the_published_zip(page, online_server):
    page.goto(f"{online_server.url}/tissue_map")
    wait_for_app(page)
    page.get_by_role("radiogroup", name="Image").get_by_text("Kather 2016 larger images", exact=True).click()
    wait_for_app(page)
    timed_click(page, "tissue map: Download the larger images",
                page.get_by_role("button", name="Download the larger images"),
                _status(page, "Download Kather 2016 larger images"))
    page.get_by_text(re.compile(r"expected 742,020,106 bytes")).first.wait_for(timeout=120_000)
    assert not any((online_server.data_dir / "datasets").glob("kather2016_larger*"))
    assert_clean(page, online_server)
