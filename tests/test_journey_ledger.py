"""Every button and upload of every page has a journey: a test that presses or uses it.

The buttons, form buttons and file uploaders are read from the pages and the dashboard's views;
each must be listed in :data:`JOURNEYS` (with the test file that presses it, which must name
it) or, honestly, in :data:`NO_JOURNEY_YET`. A new button without either fails this test."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WIDGETS = ("button", "form_submit_button", "file_uploader")

JOURNEYS: dict[tuple[str, str], tuple[str, str]] = {
    # (source file, label as written) -> (test file, text that test uses to reach it)
    ("dashboard/dataset_views.py", "'Download, verify and extract'"): ("test_datasets_page.py", "Download, verify"),
    ("dashboard/dataset_views.py", "'Save split'"): ("test_datasets_page.py", "Save split"),
    ("dashboard/dataset_views.py", "'Add'"): ("test_datasets_page.py", '"Add"'),
    ("dashboard/dataset_views.py", "'Zip of class folders'"): ("test_e2e_explorer.py", "stFileUploader"),
    ("dashboard/dataset_views.py", "'Import'"): ("test_e2e_explorer.py", '"Import"'),
    ("dashboard/dataset_views.py", "':material/zoom_in:'"): ("test_e2e_explorer.py", "zoom_in"),
    ("dashboard/delete_control.py", "label"): ("test_ownership_pages.py", "Delete"),
    ("dashboard/delete_control.py", "'Delete permanently'"): ("test_ownership_pages.py", "Delete permanently"),
    ("dashboard/delete_control.py", "'Keep it'"): ("test_ownership_pages.py", "Keep it"),
    ("dashboard/demo_widget.py", "label"): ("test_e2e_demo.py", "Run the real-tissue demo"),
    ("dashboard/widgets.py", "'Retry'"): ("test_lifecycle_pages.py", "Retry"),
    ("dashboard/widgets.py", "'Stop'"): ("test_e2e_lifecycle.py", "Stop"),
    ("dashboard/widgets.py", "'Resume'"): ("test_lifecycle_pages.py", "Resume"),
    ("dashboard/auth.py", "'Log out'"): ("test_e2e_login.py", "Log out"),
    ("pages/detector.py", "'Photos to detect on'"): ("test_e2e_detector_models.py", "Photos to detect on"),
    ("pages/detector.py", "'cfg'"): ("test_e2e_detector_models.py", '"cfg"'),
    ("pages/detector.py", "'weights'"): ("test_e2e_detector_models.py", '"weights"'),
    ("pages/detector.py", "'names (one class per line)'"): ("test_e2e_detector_models.py", "names (one class"),
    ("pages/detector.py", "'Check and add'"): ("test_e2e_detector_models.py", "Check and add"),
    ("pages/detector.py", "'ONNX detector (YOLOv5/v7, YOLOv8/11, YOLOX, NMS inside)'"):
        ("test_e2e_detector_models.py", "ONNX detector"),
    ("pages/detector.py", "'Photos or zips'"): ("test_e2e_journeys.py", "Photos or zips"),
    ("pages/detector.py", "'Start batch job'"): ("test_e2e_journeys.py", "Start batch job"),
    ("pages/style_transfer.py", "'Start'"): ("test_e2e_style.py", "Start"),
    ("pages/style_transfer.py", "'Dismiss'"): ("test_style_page.py", "Dismiss"),
    ("pages/style_transfer.py", "'Retry'"): ("test_style_page.py", "Retry"),
    ("pages/style_transfer.py", "'Resume'"): ("test_e2e_lifecycle.py", "Resume"),
    ("pages/system.py", "'Run probe'"): ("test_e2e_shell.py", "Run probe"),
    ("pages/tissue_map.py", "'Start'"): ("test_e2e_tissuemap.py", '"Start"'),
    ("pages/tissue_map.py", "name.capitalize()"): ("test_tissuemap_page.py", "tm_pan"),
    ("pages/tissue_map.py", "'Grad-CAM'"): ("test_e2e_lifecycle.py", "Grad-CAM"),
    ("pages/training_monitor.py", "'Delete them'"): ("test_training_monitor.py", "Delete them"),
    ("pages/training_monitor.py", "'Start training'"): ("test_e2e_training.py", "Start training"),
    ("pages/training_monitor.py", "'Stop'"): ("test_training_monitor.py", '"Stop"'),
    ("pages/training_monitor.py", "'Yes, delete it'"): ("test_training_monitor.py", "Yes, delete it"),
    ("pages/training_monitor.py", "'Save notes'"): ("test_training_monitor.py", "Save notes"),
    ("pages/training_monitor.py", "'Import'"): ("test_training_monitor.py", "tb_import"),
    ("pages/transfer_learning.py", "'Evaluate'"): ("test_e2e_transfer.py", '"Evaluate"'),
    ("pages/transfer_learning.py", "'Run comparison'"): ("test_e2e_transfer.py", "Run comparison"),
    ("pages/transfer_learning.py", "'Prepare the HTML report'"): ("test_e2e_transfer.py", "Prepare the HTML report"),
    ("pages/transfer_learning.py", '"Save a 60/20/20 split grouped by source image as \'grouped\'"'):
        ("test_e2e_transfer.py", "Save a 60/20/20"),
    ("dashboard/auth.py", "label"): ("test_e2e_login.py", "Log in"),
    ("dashboard/dataset_views.py", "'Verify and extract'"): ("test_e2e_journeys_controls.py", "Verify and extract"),
    ("dashboard/dataset_views.py", "'Replace it'"): ("test_e2e_journeys_controls.py", "Replace it"),
    ("dashboard/dataset_views.py", "'Keep the saved one'"): ("test_e2e_journeys_controls.py", "Keep the saved one"),
    ("dashboard/widgets.py", "':material/close:'"): ("test_e2e_journeys_controls.py", 'name="close"'),
    ("pages/detector.py", '"names, when the model carries none (default: COCO\'s 80 classes)"'): ("test_e2e_journeys_controls.py", "names, when the model carries none"),
    ("pages/detector.py", "f\"Try the page with '{registry.DEMO_TITLE}'\""): ("test_e2e_journeys_controls.py", "Try the page with"),
    ("pages/system.py", "'Delete old jobs'"): ("test_e2e_journeys_controls.py", "Delete old jobs"),
    ("pages/tissue_map.py", "'Image'"): ("test_e2e_journeys_controls.py", 'upload(page, "Image"'),
    ("pages/transfer_learning.py", "f'…or upload {backbone_spec.file_name}{full}'"): ("test_e2e_journeys_controls.py", "mobilenet_2_5_224_tf_no_top.h5"),
    ("pages/transfer_learning.py", "'A tile image'"): ("test_e2e_transfer.py", "A tile image"),
    ("pages/transfer_learning.py", "'Check and install the file'"): ("test_e2e_journeys_controls.py", "Check and install the file"),
    ("pages/detector.py", "f'Download {spec.weights_name} ({spec.weights_size / 1000000.0:.0f} MB)'"): ("test_e2e_journeys_downloads.py", "Download yolo-fastest-1.1.weights"),
    ("pages/style_transfer.py", "'Download the Magenta style networks'"): ("test_e2e_journeys_downloads.py", "Download the Magenta style networks"),
    ("pages/style_transfer.py", "f'{label} image'"): ("test_e2e_journeys_downloads.py", 'f"{label} image"'),
    ("pages/style_transfer.py", "'Download VGG19 weights'"): ("test_e2e_journeys_downloads.py", "Download VGG19 weights"),
    ("pages/style_transfer.py", "'Silhouette (black shape on white)'"): ("test_e2e_journeys_downloads.py", "Silhouette (black shape on white)"),
    ("pages/tissue_map.py", "'Download the larger images'"): ("test_e2e_journeys_downloads.py", "Download the larger images"),
    ("pages/transfer_learning.py", "f'Download {backbone_spec.title} weights (about {backbone_spec.approx_mb:g} MB)'"): ("test_e2e_journeys_downloads.py", "Download MobileNet v1 (alpha 0.25) weights"),
    ("pages/training_monitor.py", '"TensorBoard event files, or a zip of a run\'s log folder"'): ("test_e2e_journeys_training.py", "TensorBoard event files"),
    ("pages/training_monitor.py", "'Show filters and feature maps'"): ("test_e2e_journeys_training.py", "Show filters and feature maps"),
    ("pages/training_monitor.py", "'Resume'"): ("test_e2e_journeys_training.py", 'name="Resume"'),
    ("dashboard/dataset_views.py", "'Try again'"): ("test_e2e_journeys_controls.py", "Try again"),
}

NO_JOURNEY_YET: set[tuple[str, str]] = set()
"""Buttons and uploads that no test presses yet (owed to the journey suite); empty: every control
of the app has a journey."""


def controls() -> set[tuple[str, str]]:
    """(file, label source) of every button, form button and file uploader of the app."""
    found = set()
    for path in sorted((REPO / "pages").glob("*.py")) + sorted((REPO / "dashboard").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in WIDGETS and node.args:
                found.add((path.relative_to(REPO).as_posix(), ast.unparse(node.args[0])))
    return found


def test_every_button_and_upload_has_a_journey_or_is_owed_one():
    found = controls()
    assert found - set(JOURNEYS) - NO_JOURNEY_YET == set(), "a new control without a journey"
    assert (set(JOURNEYS) | NO_JOURNEY_YET) - found == set(), "the ledger lists a control that is gone"
    assert not set(JOURNEYS) & NO_JOURNEY_YET


def test_each_journey_test_reaches_its_control():
    for (source, label), (test_file, text) in JOURNEYS.items():
        assert text in (REPO / "tests" / test_file).read_text(), (source, label, test_file)
