"""What the pages hand to the services (issue 22, item 7): the detector's model keys, catalog and
result cache, the tissue map's job parameters, the explorer's job decisions, the monitor's run
filter and clean-up, and the transfer page's cross-dataset rows and report tiles."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from services.access import Actor
from services.detection import catalog, registry
from services.detection.cfg import parse_cfg
from services.detection.inference import ResultCache
from services.detection.model_key import ModelKey
from services.detection.weights import random_weights_bytes
from services.errors import UserFacingError
from tests.detection_helpers import SYNTHETIC_CFG


@pytest.mark.parametrize("text, source, name, family", [
    ("yolov3", "lab", "yolov3", "darknet"), ("demo-random", "lab", "demo-random", "darknet"),
    ("upload:mine", "upload", "mine", "darknet"), ("onnx:yolo:v8", "onnx", "yolo:v8", "onnx"),
    ("other:thing", "lab", "other:thing", "darknet")])
def test_a_model_key_parses_to_its_source_and_back_to_the_same_string(text, source, name, family):
    key = ModelKey.parse(text)
    assert (key.source, key.name, key.family) == (source, name, family)
    assert str(key) == text
    assert key.is_upload == (source in ("upload", "onnx"))


def _upload(stem: str, owner: str | None) -> str:
    weights = random_weights_bytes(parse_cfg(SYNTHETIC_CFG))
    return registry.save_upload((f"{stem}.cfg", SYNTHETIC_CFG.encode()), (f"{stem}.weights", weights),
                                (f"{stem}.names", b"a\nb\n"), owner).model.key


def test_the_catalog_offers_uploads_remembers_choices_and_lets_only_the_owner_delete(data_root):
    options = catalog.model_options()
    assert registry.DEMO_KEY in options and not any(ModelKey.parse(k).is_upload for k in options)
    assert catalog.default_model(options, [None, "gone"]) == registry.DEMO_KEY
    key = _upload("mine", "alice")
    options = catalog.model_options()
    assert key == "upload:mine" and options[key] == "mine (uploaded Darknet)"
    assert catalog.default_model(options, [None]) == key  # an uploaded model before the demo
    assert catalog.default_model(options, ["gone", registry.DEMO_KEY]) == registry.DEMO_KEY
    assert catalog.backends_for(key) == catalog.DARKNET_BACKENDS
    assert catalog.upload_owner(key) == "alice" and catalog.upload_owner(registry.DEMO_KEY) is None
    with pytest.raises(UserFacingError):
        catalog.delete_upload(key, Actor("bob"))
    assert key in catalog.model_options()
    catalog.delete_upload(key, Actor("alice"))
    assert key not in catalog.model_options()


def test_the_result_cache_runs_each_key_once_and_keeps_the_newest():
    cache, computed = ResultCache(limit=2), []

    def compute(value):
        computed.append(value)
        return value * 10

    assert [cache.get((k,), lambda k=k: compute(k)) for k in (1, 1, 2, 1)] == [10, 10, 20, 10]
    assert computed == [1, 2] and cache.runs == 2
    cache.get((3,), lambda: compute(3))  # the oldest entry goes
    assert cache.get((1,), lambda: compute(1)) == 10 and computed == [1, 2, 3, 1] and cache.runs == 4


def test_a_map_is_submitted_with_the_parameters_its_job_reads(data_root):
    from services.tissuemap import job
    from services.tissuemap.models import ModelChoice
    from services.jobs import kinds
    from services.tissuemap.submit import MapSettings, submit_map

    image = data_root / "slides" / "a.png"
    image.parent.mkdir()
    image.write_bytes(b"png")
    choice = ModelChoice("onnx", "m.onnx", "my model " + "x" * 200, ["A", "B"])
    submitted = []
    manager = SimpleNamespace(submit=lambda kind, title, params: submitted.append((kind, title, params)) or "id1")
    assert submit_map(manager, image, MapSettings(None, 20, 0.1, 2, 0.5), choice) == "id1"
    (kind, title, params), = submitted
    assert kind == kinds.TISSUE_MAP and title.startswith("Map of a.png with my model") and len(title) == 120
    assert job.image_path(params, data_root) == image.resolve()
    assert ModelChoice.from_params(params["model"]) == choice
    assert (params["mpp"], params["threshold"], params["min_tissue"], params["overlap"], params["min_confidence"]) \
        == (None, 20, 0.1, 2, 0.5)


def test_the_explorer_verifies_a_published_zip_and_imports_any_other(data_root):
    from services.datasets import job_requests, published, tasks
    from services.jobs import kinds

    item = published.PUBLISHED[0]
    verified = job_requests.zip_job(Path("/x") / item.file_name, f"downloads/{item.file_name}", "alice")
    assert verified.kind == item.kind and verified.params == item.job_params(f"downloads/{item.file_name}")
    imported = job_requests.zip_job(Path("/x/My Tiles (v2).zip"), "zips/My Tiles (v2).zip", "alice")
    assert imported.kind == kinds.DATASET_IMPORT and imported.selects_dataset
    assert imported.params["zip_path"] == "zips/My Tiles (v2).zip" and imported.params["owner"] == "alice"
    assert imported.title == f"Import {imported.params['dataset']}" and "/" not in imported.params["dataset"]
    upload = job_requests.upload_import("tiles", "../../evil/" + "z" * 300 + ".zip", b"PK", None)
    assert upload.files == {tasks.UPLOAD_FILE: b"PK"} and len(upload.params["zip_name"]) == 120
    assert "/" not in upload.params["zip_name"]
    index = job_requests.index_job("tiles")
    assert index.kind == kinds.DATASET_INDEX and not index.selects_dataset
    assert job_requests.index_failed(SimpleNamespace(status="failed"))
    assert not job_requests.index_failed(SimpleNamespace(status="running")) and not job_requests.index_failed(None)


def _run(run_id, status="finished", model="cnn", dataset="kather", tags=(), owner=None):
    return SimpleNamespace(id=run_id, status=status, model=model, dataset=dataset, tags=list(tags), owner=owner)


def test_the_runs_filter_and_the_clean_up_keep_others_runs():
    from services.training.overview import RunFilter, delete_runs

    runs = [_run("a", tags=["x"]), _run("b", status="failed", model=None), _run("c", dataset="nct", tags=["y"])]
    assert [r.id for r in RunFilter().shown(runs)] == ["a", "b", "c"]
    assert [r.id for r in RunFilter(statuses=("failed",)).shown(runs)] == ["b"]
    assert [r.id for r in RunFilter(models=("",)).shown(runs)] == ["b"]
    assert [r.id for r in RunFilter(datasets=("nct",), tags=("y",)).shown(runs)] == ["c"]
    assert RunFilter(models=("cnn",), tags=("y", "x")).shown(runs) == [runs[0], runs[2]]
    deleted = []
    store = SimpleNamespace(delete_run=deleted.append)
    assert delete_runs(store, [_run("a", owner="alice"), _run("b", owner="bob")], Actor("alice")) == (1, 1)
    assert deleted == ["a"]


def test_cross_dataset_rows_and_report_tiles():
    from services.transfer import crossdataset, report

    mapping = crossdataset.mapping_for(crossdataset.SAME_CLASSES, ["TUMOR", "STROMA"])
    evaluation = crossdataset.score_mapped(["TUMOR", "TUMOR", "STROMA"], ["TUMOR", "STROMA", "STROMA"], mapping,
                                           ["TUMOR", "STROMA"])
    rows = {row["class"]: row for row in crossdataset.class_rows(evaluation)}
    assert rows["TUMOR"]["tiles"] == 2 and rows["TUMOR"]["accuracy"] == pytest.approx(0.5)
    assert rows["TUMOR"]["predicted as"] == "TUMOR 1, STROMA 1"
    assert rows["TUMOR"]["accuracy (95 % CI, n)"] == "50.0 % (95 % CI 9.5-90.5, n = 2)"
    assert rows["STROMA"]["accuracy"] == 1.0 and rows["STROMA"]["accuracy (95 % CI, n)"].endswith("n = 1)")
    split = pd.DataFrame({"split": ["train", "test", "test", "test", "test"], "label": list("AABBC"),
                          "path": [f"p{i}" for i in range(5)]})
    assert report.example_tiles(split) == ["p1", "p2", "p4"]
    assert report.example_tiles(split, 1) == ["p1"]


ROOT = Path(__file__).resolve().parent.parent


def test_running_work_is_shown_by_the_one_live_job_widget():
    """No page writes its own job panel: the status line lives in dashboard/widgets.py only."""
    for path in [*ROOT.glob("pages/*.py"), *ROOT.glob("dashboard/*.py")]:
        if path.name != "widgets.py":
            assert "job_status_line(" not in path.read_text(), f"{path.name}: use widgets.live_job"


def test_model_keys_are_spelled_only_by_the_model_key_module():
    for path in [*ROOT.glob("pages/*.py"), *ROOT.glob("dashboard/*.py"), *ROOT.glob("services/**/*.py")]:
        if path.name != "model_key.py":
            text = path.read_text()
            assert not any(f'{q}{prefix}:' in text or f'{q}{prefix}:{{' in text
                           for q in ('"', "'", 'f"') for prefix in ("onnx", "upload")), path.name
