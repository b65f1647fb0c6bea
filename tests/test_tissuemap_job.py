"""The tissue-map job body on real (tiny) Keras models: accuracy on known layouts, resume, bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from services.jobs.context import run_inline
from services.tissuemap.demo import blob_layout, build_mosaic, demo_layout, placed_tiles, write_tiled_tiff
from services.tissuemap.maps import load_map
from services.tissuemap.models import KATHER_MPP, ModelChoice, list_run_models, load_predictor
from services.training.store import RunStore
from tests import tissuemap_helpers as helpers

HELD_OUT_SOURCES = {"3", "4"}
"""Demo tiles come from 5 synthetic source images per class; the last two are held out."""


@pytest.fixture(scope="module")
def demo_root_env(tmp_path_factory):
    from services.datasets.demo import ensure_demo_dataset

    root = tmp_path_factory.mktemp("tissuemap-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DASHBOARD_DATA_DIR", str(root))
        patch.setenv("DASHBOARD_OFFLINE", "1")
        ensure_demo_dataset(root)
        yield root


@pytest.fixture(scope="module")
def demo_model(demo_root_env):
    """A tiny CNN trained on demo tiles of sources 0-2, as a finished run: (choice, names, held-out tiles)."""
    names, tiles = helpers.class_tiles(demo_root_env / "datasets" / "demo")
    train = [(k, t) for k, pool in tiles.items() for source, t in pool if source[-1] not in HELD_OUT_SOURCES]
    held = {k: [t for source, t in pool if source[-1] in HELD_OUT_SOURCES] for k, pool in tiles.items()}
    model = helpers.train_tiny(helpers.shrink([t for _, t in train]), np.array([k for k, _ in train]), len(names))
    store = RunStore()
    helpers.finished_run(store, model, names, synthetic=True)
    choice = list_run_models(store)[0]
    return choice, names, held, model


def test_keras_predictor_matches_predict_and_traces_once_for_every_batch_size(demo_model):
    """uint8 tiles scaled inside one traced graph: the model's own probabilities, and the short
    last batch of a map does not retrace the model."""
    choice, _, held, model = demo_model
    tiles = helpers.shrink([t for pool in held.values() for t in pool][:37])
    predictor = load_predictor(choice)
    for size in (32, 5, 1):
        expected = model.predict(tiles[:size].astype(np.float32) / 255.0, verbose=0)
        assert np.allclose(predictor.predict(tiles[:size]), expected, atol=1e-5)
    assert predictor.forward.experimental_get_tracing_count() == 1


def map_params(choice: ModelChoice, path: Path, **extra) -> dict:
    return {"image": {"source": "path", "path": str(path)}, "model": choice.to_params(), **extra}


def mosaic_accuracy(folder: Path, layout: np.ndarray, margin_cells: int) -> tuple[float, float]:
    """(accuracy of the map on the layout's tiles, fraction of them mapped)."""
    labels = load_map(folder / "map").labels
    rows, cols = layout.shape
    mapped = labels[margin_cells:margin_cells + rows, margin_cells:margin_cells + cols]
    seen = mapped >= 0
    return float((mapped[seen] == layout[seen]).mean()), float(seen.mean())


def test_map_of_held_out_mosaic_matches_the_models_own_accuracy(demo_model, demo_root_env, tmp_path):
    choice, names, held, model = demo_model
    classes = [i for i, name in enumerate(names) if name != "EMPTY"]
    layout = np.array(classes)[blob_layout(8, 10, classes, seed=3)]
    mosaic = build_mosaic({k: held[k] for k in classes}, layout, margin=150)
    path = demo_root_env / "held_out.tif"
    write_tiled_tiff(path, mosaic, mpp=KATHER_MPP, description="SYNTHETIC held-out mosaic")
    outcome = run_inline("tissue-map", map_params(choice, path, batch_size=16), tmp_path / "job")
    assert outcome.status == "finished", outcome.error
    map_accuracy, mapped = mosaic_accuracy(tmp_path / "job", layout, 1)
    tile_accuracy = helpers.accuracy_on_tiles(model, placed_tiles(held, layout), layout.ravel())
    print(f"held-out demo mosaic: map accuracy {map_accuracy:.3f}, model on the tiles {tile_accuracy:.3f}, "
          f"{mapped:.0%} of tiles mapped")
    assert mapped >= 0.9
    assert abs(map_accuracy - tile_accuracy) <= 0.05
    assert outcome.result["tiles_per_second"] > 0


def test_demo_mosaic_map_outputs_are_labelled_synthetic(demo_model, demo_root_env, tmp_path):
    choice = demo_model[0]
    params = {"image": {"source": "demo"}, "model": choice.to_params(), "overlap": 2}
    outcome = run_inline("tissue-map", params, tmp_path / "job")
    assert outcome.status == "finished", outcome.error
    folder = tmp_path / "job" / "map"
    assert outcome.result["synthetic_model"] and outcome.result["synthetic_image"]
    layout = demo_layout()
    assert layout["synthetic"] and np.array(layout["layout"]).shape == (8, 10)
    tissue_map = load_map(folder)
    # the white margin: unmapped, or (next to the tissue) given to the model, which calls it background
    empty = tissue_map.classes.index("EMPTY")
    assert set(np.unique(np.r_[tissue_map.labels[0], tissue_map.labels[:, -1]])) <= {-1, empty}
    assert sum(a["fraction"] for a in outcome.result["areas"] if not a["background"]) == pytest.approx(1.0)
    assert all(a["fraction"] is None for a in outcome.result["areas"] if a["background"])  # EMPTY is not tissue
    # the helper's run has no held-out confusion matrix: a ratio perhaps, never a verdict
    assert outcome.result["tumour_stroma"]["category"] in ("uncertain", "not defined")
    assert "synthetic" in json.loads(tifffile.TiffFile(folder / "labels.tif").pages[0].description).__repr__()
    assert (pd.read_csv(folder / "tiles.csv")["note"] == "synthetic-data model").all()
    regions = json.loads((folder / "regions.geojson").read_text())
    assert regions["features"] and all(f["properties"]["note"] for f in regions["features"])
    html = (folder / "report.html").read_text()
    assert "SYNTHETIC DATA" in html and "SYNTHETIC IMAGE" in html and "not a diagnosis" in html
    assert Image.open(folder / "overlay.png").size == Image.open(folder / "thumbnail.png").size


def test_clicked_tile_goes_to_the_model_services_inspect_op(demo_model, demo_root_env, tmp_path):
    """What the page sends for a clicked tile (full-resolution pixels) gets probabilities and Grad-CAM."""
    from services.model_service.cache import ModelCache
    from services.tissuemap.demo import ensure_demo_mosaic
    from services.tissuemap.reader import open_image
    from services.transfer.service_ops import inspect_tile

    choice = demo_model[0]
    with open_image(ensure_demo_mosaic()) as source:
        tile = source.read_region(300, 300, 150, 150)
    result, arrays = inspect_tile(ModelCache(), {"model_path": choice.path}, {"tile": tile})
    assert len(result["probabilities"]) == len(choice.classes)
    assert arrays["overlay"].dtype == np.uint8 and arrays["overlay"].shape[2] == 3


def test_a_later_map_of_the_same_model_file_keeps_it_loaded_until_the_file_changes(demo_model, tmp_path,
                                                                                   monkeypatch):
    """What a reused warm worker gains (services/jobs/worker.py): no loading, no first run."""
    import os

    choice = demo_model[0]
    params = {"image": {"source": "demo"}, "model": choice.to_params()}
    run_inline("tissue-map", params, tmp_path / "one")
    kept = run_inline("tissue-map", params, tmp_path / "two")
    assert kept.status == "finished" and kept.result["model_kept"] is True
    assert (load_map(tmp_path / "one" / "map").labels == load_map(tmp_path / "two" / "map").labels).all()
    stat = os.stat(choice.path)
    os.utime(choice.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file replaced: loaded again
    assert run_inline("tissue-map", params, tmp_path / "three").result["model_kept"] is False
    monkeypatch.setenv("DASHBOARD_MAP_MODELS_KEPT", "0")  # the cloud profile's default: nothing kept
    run_inline("tissue-map", params, tmp_path / "four")
    assert run_inline("tissue-map", params, tmp_path / "five").result["model_kept"] is False


def test_stopped_map_resumes_from_saved_tiles(demo_model, tmp_path):
    choice = demo_model[0]
    params = {"image": {"source": "demo"}, "model": choice.to_params(), "batch_size": 8}
    folder = tmp_path / "job"
    stopped = run_inline("tissue-map", params, folder, stop_after=4)
    assert stopped.status == "stopped" and not (folder / "map").exists()
    saved = len(list((folder / "predictions").glob("*.npy")))
    assert saved >= 1
    resumed = run_inline("tissue-map", params, folder, resumed=True)
    assert resumed.status == "finished", resumed.error
    assert resumed.result["tiles_resumed"] == min(saved * 8, resumed.result["tiles"])
    assert resumed.result["tiles_predicted_now"] == resumed.result["tiles"] - resumed.result["tiles_resumed"]
    fresh = run_inline("tissue-map", params, tmp_path / "fresh")
    assert (load_map(folder / "map").labels == load_map(tmp_path / "fresh" / "map").labels).all()
    assert fresh.result["tiles_resumed"] == 0


def test_bad_input_fails_clearly_and_leaves_no_outputs(demo_model, demo_root_env, tmp_path):
    choice = demo_model[0]
    blank = demo_root_env / "blank.tif"
    write_tiled_tiff(blank, np.full((600, 600, 3), 250, np.uint8), mpp=0.5, description="blank glass")
    no_mpp = demo_root_env / "no_mpp.png"
    Image.fromarray(np.full((400, 400, 3), 120, np.uint8)).save(no_mpp)
    wrong_classes = ModelChoice(**{**choice.to_params(), "classes": ["TUMOR", "STROMA"]})
    cases = [
        (map_params(choice, blank), "No tissue found"),
        (map_params(choice, no_mpp), "microns per pixel"),
        (map_params(choice, no_mpp, mpp=900), "not plausible"),
        (map_params(wrong_classes, blank), "8 outputs but 2 classes"),
        (map_params(choice, demo_root_env / "missing.tif"), "not found"),
        ({"image": {"source": "path", "path": "/etc/passwd"}, "model": choice.to_params()}, "outside the data root"),
        ({"image": {"source": "demo"}, "model": {"kind": "pickle"}}, "Choose a model"),
        (map_params(choice, blank, threshold="high"), "threshold must be a number"),
        (map_params(choice, blank, overlap=9), "overlap must be a number from 1 to 4"),
    ]
    for index, (params, message) in enumerate(cases):
        folder = tmp_path / f"job{index}"
        outcome = run_inline("tissue-map", params, folder)
        assert outcome.status == "failed" and message in outcome.error, (message, outcome.error)
        assert not (folder / "map").exists()
        assert "Traceback" not in outcome.error


@pytest.mark.needs_shared
def test_map_of_real_kather_tiles_with_a_model_trained_on_other_real_tiles(shared_fixtures, demo_root_env, tmp_path):
    """Real tiles: train on one half of the source images, map a mosaic of the other half (figure printed)."""
    names, tiles = helpers.class_tiles(shared_fixtures / "histology" / "kather2016")
    sources = sorted({source for pool in tiles.values() for source, _ in pool})
    held_sources = set(sources[1::2])
    train = [(k, t) for k, pool in tiles.items() for s, t in pool if s not in held_sources]
    held = {k: [t for s, t in pool if s in held_sources] for k, pool in tiles.items()}
    classes = [k for k in held if held[k] and names[k] != "EMPTY"]
    model = helpers.train_tiny(helpers.shrink([t for _, t in train]), np.array([k for k, _ in train]), len(names),
                               epochs=40)
    store = RunStore()
    helpers.finished_run(store, model, names, synthetic=False, dataset="kather2016 fixtures")
    choice = next(c for c in list_run_models(store) if not c.synthetic)
    layout = np.array(classes)[blob_layout(6, 6, classes, seed=5)]
    path = demo_root_env / "kather_mosaic.tif"
    write_tiled_tiff(path, build_mosaic({k: held[k] for k in classes}, layout, margin=150), mpp=KATHER_MPP,
                     description="mosaic of real Kather 2016 tiles")
    outcome = run_inline("tissue-map", map_params(choice, path), tmp_path / "job")
    assert outcome.status == "finished", outcome.error
    map_accuracy, mapped = mosaic_accuracy(tmp_path / "job", layout, 1)
    tile_accuracy = helpers.accuracy_on_tiles(model, placed_tiles(held, layout), layout.ravel())
    print(f"real Kather mosaic ({len(train)} training tiles, {len(classes)} classes): map accuracy "
          f"{map_accuracy:.3f}, model on the tiles {tile_accuracy:.3f}, {mapped:.0%} mapped")
    assert not outcome.result["synthetic_model"]
    assert mapped >= 0.8
    assert abs(map_accuracy - tile_accuracy) <= 0.05
