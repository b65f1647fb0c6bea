"""Honest numbers on real tissue: leakage that travels with a result, a tumour-stroma verdict only
when the model can support it, adipose kept as tissue (real Kather 2016 fixture tiles)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from services.jobs.context import run_inline
from services.tissuemap import reader, tsr
from services.tissuemap.demo import build_mosaic, write_tiled_tiff
from services.tissuemap.grid import Grid
from services.tissuemap.models import KATHER_FIELD_UM, KATHER_MPP, list_run_models
from services.training.evaluation import confusion_matrix
from services.training.store import RunStore
from tests import tissuemap_helpers as helpers

pytestmark = pytest.mark.needs_shared


def test_the_correction_recovers_a_known_ratio_and_gives_a_verdict_only_when_it_can():
    classes = ["TUMOR", "STROMA", "ADIPOSE"]
    rng = np.random.default_rng(0)
    good = np.array([[90, 10, 0], [5, 95, 0], [0, 0, 100]])
    truth = rng.choice(3, 3000, p=[0.6, 0.3, 0.1])
    rates = good / good.sum(axis=1, keepdims=True)
    mapped = np.array([rng.choice(3, p=rates[t]) for t in truth])
    ratio = tsr.estimate(mapped, classes, good.tolist(), samples=400)
    true_ratio = (truth == 1).sum() / np.isin(truth, [0, 1]).sum()
    assert ratio["low"] <= true_ratio <= ratio["high"] and ratio["category"] == "stroma-low"
    assert abs(ratio["corrected"] - true_ratio) < abs(ratio["as_mapped"] - true_ratio)
    # the model: TUMOR recall 2/9 on its test split, most tumour called stroma
    weak = np.array([[2, 6, 1], [1, 5, 0], [0, 1, 8]])
    mapped = np.array([0] * 4 + [1] * 9 + [2] * 5)  # 69 % stroma as mapped: "stroma-high" before
    ratio = tsr.estimate(mapped, classes, weak.tolist(), samples=400)
    assert ratio["as_mapped"] > 0.5 and ratio["category"] == "uncertain"
    assert tsr.estimate(np.array([1, 1, 2]), classes, good.tolist())["category"] == "not defined"
    assert tsr.text(tsr.estimate(np.array([1, 2]), classes)) == "not defined: the map has no TUMOR cells"


@pytest.fixture(scope="module")
def real_root(tmp_path_factory, shared_fixtures):
    root = tmp_path_factory.mktemp("honest-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DASHBOARD_DATA_DIR", str(root))
        patch.setenv("DASHBOARD_OFFLINE", "1")
        patch.setenv("DASHBOARD_TENSORBOARD", "0")
        yield root


@pytest.fixture(scope="module")
def tiny_real_model(real_root, shared_fixtures):
    """A tiny CNN trained on half of the real tiles' source images, its test confusion matrix
    measured on a quarter, the last quarter kept for mosaics: (choice, names, mosaic tiles)."""
    names, tiles = helpers.class_tiles(shared_fixtures / "histology" / "kather2016")
    part: dict[str, str] = {}
    for pool in tiles.values():  # every class's source images in turn: each part holds every class
        for i, source in enumerate(sorted({s for s, _ in pool} - set(part))):
            part[source] = ("train", "test", "mosaic", "train")[i % 4]

    def pick(which):
        return [(k, t) for k, pool in tiles.items() for s, t in pool if part[s] == which]

    train, test = pick("train"), pick("test")
    model = helpers.train_tiny(helpers.shrink([t for _, t in train], 64), np.array([k for k, _ in train]), len(names),
                               epochs=60)
    predicted = model.predict(helpers.shrink([t for _, t in test], 64) / 255.0, verbose=0).argmax(axis=1)
    confusion = confusion_matrix([k for k, _ in test], predicted, len(names)).tolist()
    store = RunStore()
    helpers.finished_run(store, model, names, synthetic=False, dataset="kather2016 fixtures",
                         summary={"test_confusion_matrix": confusion,
                                  "leakage_source_images": 0})
    mosaic = {k: [t for s, t in pool if part[s] == "mosaic"] for k, pool in tiles.items()}
    return list_run_models(store)[0], names, mosaic, (model, test, pick("mosaic"))


@pytest.mark.parametrize("tumour, stroma", [(12, 6), (6, 6), (4, 10)])
def test_tumour_stroma_interval_contains_the_truth_or_reads_uncertain(tiny_real_model, real_root, tmp_path,
                                                                     tumour, stroma):
    choice, names, mosaic, _ = tiny_real_model
    index = {name: i for i, name in enumerate(names)}
    others = [index[n] for n in ("LYMPHO", "MUCOSA", "ADIPOSE", "DEBRIS", "COMPLEX") if mosaic[index[n]]]
    cells = [index["TUMOR"]] * tumour + [index["STROMA"]] * stroma
    cells += [others[i % len(others)] for i in range(36 - len(cells))]
    layout = np.random.default_rng(tumour).permutation(cells).reshape(6, 6)
    path = real_root / f"tsr_{tumour}_{stroma}.tif"
    write_tiled_tiff(path, build_mosaic(mosaic, layout, margin=150), mpp=KATHER_MPP,
                     description="mosaic of held-out real Kather 2016 tiles")
    outcome = run_inline("tissue-map", {"image": {"source": "path", "path": str(path)}, "model": choice.to_params()},
                         tmp_path / "job")
    assert outcome.status == "finished", outcome.error
    ratio = outcome.result["tumour_stroma"]
    true_ratio = stroma / (tumour + stroma)
    cells = [(a["class"], a["cells"]) for a in outcome.result["areas"]]
    print(f"\ntrue TSR {true_ratio:.1%}: {tsr.text(ratio)}; cells {cells}")
    if ratio["defined"] and ratio["category"] != "uncertain":
        assert ratio["low"] <= true_ratio <= ratio["high"]
        assert ratio["category"] == ("stroma-high" if true_ratio > 0.5 else "stroma-low")
    report = (tmp_path / "job" / "map" / "report.html").read_text()
    assert "Not reliable for" in report  # fewer than 20 held-out tiles per class: the guard speaks
    assert "held-out test accuracy" in report and "choose the checkpoint" in report


def test_adipose_mosaic_loses_no_fat_cells(real_root, shared_fixtures):
    from services.tissuemap.job import detect_tissue

    names, tiles = helpers.class_tiles(shared_fixtures / "histology" / "kather2016")
    fat = [t for _, t in tiles[names.index("ADIPOSE")]]
    layout = np.zeros((4, 5), int)
    path = real_root / "adipose.tif"
    write_tiled_tiff(path, build_mosaic({0: fat}, layout, margin=150), mpp=KATHER_MPP, description="adipose mosaic")
    with reader.open_image(path) as source:
        grid = Grid(source.width, source.height, KATHER_FIELD_UM / KATHER_MPP)
        stained = {tuple(t) for t in detect_tissue(source, grid, {}).tiles.tolist()}
        found = detect_tissue(source, grid, {}, ring=True)  # a model with a background class
    mapped = {tuple(t) for t in found.tiles.tolist()}
    fat = {(r + 1, c + 1) for r in range(4) for c in range(5)}  # the margin is one tile
    assert fat <= mapped and len(mapped) <= 6 * 7  # every fat tile, and at most the one-tile ring of glass
    assert not fat <= stained  # (colour alone loses the palest fat: the model decides at the edge)


def _split_run(root, name: str, method: str) -> str:
    from services.datasets import index, sources, splits
    from services.training import launcher, worker
    from services.training.config import RunConfig

    frame = index.usable(index.load_index(sources.dataset_folder("kather-real")))
    splits.save_split("kather-real", name, splits.make_split(frame, method=method, seed=3))
    config = RunConfig(model="cnn_v1", dataset="kather-real", split=name, epochs=1, batch_size=16, image_size=48,
                       name=f"cnn_v1 {method}")
    run_id = launcher.create_run_for(config, RunStore())
    assert worker.execute(run_id) == "finished"
    return run_id


def test_a_random_splits_result_carries_the_leakage_badge_and_a_grouped_one_does_not(real_root, shared_fixtures):
    from services.tissuemap.models import model_card
    from services.tissuemap.report import _model_card
    from services.training import overview
    from services.transfer.report import table_html
    from services.transfer.results import LEAKAGE_COLUMN, RunResult, results_frame

    shutil.copytree(shared_fixtures / "histology" / "kather2016", real_root / "datasets" / "kather-real",
                    dirs_exist_ok=True)
    store = RunStore()
    runs = {method: store.get_run(_split_run(real_root, method, method)) for method in ("random", "grouped")}
    leak = runs["random"].summary["leakage_source_images"]
    assert leak > 0 and runs["grouped"].summary["leakage_source_images"] == 0
    badge = f"LEAKY SPLIT: {leak} source images on both sides"
    table = overview.runs_frame(store, list(runs.values())).set_index("name")
    assert badge in table.loc["cnn_v1 random", "leakage"] and "LEAKY" not in table.loc["cnn_v1 grouped", "leakage"]
    assert "n = " in table.loc["cnn_v1 random", "held-out test accuracy (95 % CI, n)"]
    assert badge in _model_card(model_card(runs["random"]), False)
    assert "LEAKY" not in _model_card(model_card(runs["grouped"]), False)
    results = [RunResult(name=run.name, strategy="A", model="cnn_v1", leakage_source_images=run.summary[
        "leakage_source_images"], confusion=run.summary["test_confusion_matrix"], class_names=run.summary["classes"])
               for run in runs.values()]
    frame = results_frame(results).set_index("strategy")
    assert [badge in text for text in results_frame(results)[LEAKAGE_COLUMN]] == [True, False]
    assert badge in results_frame(results)["name"].iloc[0] and "LEAKY" not in results_frame(results)["name"].iloc[1]
    assert table_html(results).count(badge) == 2 and frame is not None  # its name and its leakage cell


def test_temperature_scaling_lowers_ece_on_held_out_real_tiles(tiny_real_model):
    """Fitted on one set of held-out source images, judged on another: the tiny model is
    overconfident (it fits its 40-odd training tiles), and scaling lowers its ECE there."""
    from services.metrics import calibration

    model, fit_on, judge_on = tiny_real_model[3]

    def outputs(pairs):
        return (model.predict(helpers.shrink([t for _, t in pairs], 64) / 255.0, verbose=0),
                np.array([k for k, _ in pairs]))

    result = calibration.calibrate(outputs(fit_on), outputs(judge_on))
    print(f"\nT = {result['temperature']:.2f}, ECE {result['ece_before']:.3f} -> {result['ece_after']:.3f} "
          f"(n = {result['tiles']})")
    assert result["measured_on"] == "test" and result["temperature"] > 1.0
    assert result["ece_after"] < result["ece_before"]
    assert (calibration.apply_temperature(outputs(judge_on)[0], result["temperature"]).argmax(axis=1)
            == outputs(judge_on)[0].argmax(axis=1)).all()  # accuracy unchanged


@pytest.mark.parametrize("tumour, stroma", [(12, 6), (6, 6)])
def test_tumour_stroma_of_a_strategy_c_model_on_its_untouched_validation_tiles(strategy_c_run, real_root, tmp_path,
                                                                              tumour, stroma):
    """A real strategy-C run (ImageNet MobileNet features, a head fitted on the training tiles of a
    split grouped by source image; its held-out confusion matrix and calibration from the test
    part): a mosaic of the validation part's tiles (no checkpoint was chosen on them)."""
    from PIL import Image

    choice, frame = strategy_c_run
    val = frame[frame.split == "val"]
    pools = {label: [np.asarray(Image.open(p).convert("RGB")) for p in rows.path]
             for label, rows in val.groupby("label")}
    assert pools.get("TUMOR") and pools.get("STROMA")
    fill = [name for name in ("LYMPHO", "MUCOSA", "ADIPOSE", "DEBRIS") if pools.get(name)]
    cells = ["TUMOR"] * tumour + ["STROMA"] * stroma + [fill[i % len(fill)] for i in range(36 - tumour - stroma)]
    names = sorted(pools)
    layout = np.array([names.index(c) for c in np.random.default_rng(tumour).permutation(cells)]).reshape(6, 6)
    path = real_root / f"strategy_c_{tumour}_{stroma}.tif"
    write_tiled_tiff(path, build_mosaic({i: pools[n] for i, n in enumerate(names)}, layout, margin=150),
                     mpp=KATHER_MPP, description="mosaic of held-out real Kather 2016 tiles")
    outcome = run_inline("tissue-map", {"image": {"source": "path", "path": str(path)}, "model": choice.to_params(),
                                        "min_confidence": 0.5}, tmp_path / "job")
    assert outcome.status == "finished", outcome.error
    ratio, true_ratio = outcome.result["tumour_stroma"], stroma / (tumour + stroma)
    print(f"\nstrategy C, true TSR {true_ratio:.1%}: {tsr.text(ratio)}")
    assert ratio is not None
    if ratio["defined"] and ratio["category"] != "uncertain":
        assert ratio["low"] <= true_ratio <= ratio["high"]
    report = (tmp_path / "job" / "map" / "report.html").read_text()
    assert "Temperature scaling fitted on the validation split" in report and "<svg" in report


@pytest.fixture(scope="module")
def strategy_c_run(real_root, shared_fixtures):
    from services.datasets import index, sources, splits
    from services.models import weights as registry
    from services.transfer import experiments

    shutil.copytree(shared_fixtures / "histology" / "kather2016", real_root / "datasets" / "kather-c",
                    dirs_exist_ok=True)
    frame = splits.make_split(index.usable(index.load_index(sources.dataset_folder("kather-c"))), method="grouped",
                              seed=3)
    splits.save_split("kather-c", "grouped", frame)
    real = shared_fixtures / "keras" / "mobilenet_v1_0.25_224.h5"
    registry.install_weights_file("mobilenet_v1_0.25", real.read_bytes(), original_name=real.name)
    spec = experiments.ExperimentSpec(strategies=["C"], backbones=["mobilenet_v1_0.25"], dataset="kather-c",
                                      split="grouped", epochs=30, batch_size=16, head_pooling="avg", weights="imagenet")
    state = run_inline("transfer", {"spec": spec.to_dict()}, real_root / "jobs" / "strategy-c")
    assert state.status == "finished", state.error
    [result] = experiments.collect_results(state.result, RunStore())
    choice = next(c for c in list_run_models(RunStore()) if c.run_id == result.run_id)
    assert isinstance(choice.card.get("calibration"), dict) and choice.card.get("leakage_source_images") == 0
    return choice, frame
