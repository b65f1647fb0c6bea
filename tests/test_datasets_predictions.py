"""Gallery filtering by a model's predictions: the validation predictions a run wrote, joined to
the dataset's real index by file, then narrowed by true class, predicted class and confidence."""

from __future__ import annotations

import pandas as pd

from services.csv_files import write_csv
from services.datasets import index, predictions
from services.datasets.index import usable
from services.training.store import RunStore
from tests.datasets_helpers import make_dataset
from tests.training_helpers import recorded_run


def _indexed(data_root):
    folder = make_dataset(data_root / "datasets" / "demo", sources=3, tiles_per_source=2)
    return usable(index.load_index(folder))


def _predicted(tiles: pd.DataFrame, every: int = 2) -> pd.DataFrame:
    """Predictions for every ``every``-th tile as lifecycle writes them: the second class of
    the two always, with confidences 0.5, 0.6, ... (paths spelt differently: ``a/./b``)."""
    rows = tiles.iloc[::every]
    return pd.DataFrame({"path": [p.replace("/demo/", "/demo/./") for p in rows["path"]],
                         "label": rows["label"].tolist(), "predicted": "STROMA",
                         "confidence": [0.5 + 0.1 * i for i in range(len(rows))]})


def test_predictions_join_by_file_and_filter_by_class_prediction_and_confidence(data_root):
    tiles = _indexed(data_root)
    joined = predictions.with_predictions(tiles, _predicted(tiles))
    assert len(tiles) == 12 and len(joined) == 6  # only the predicted tiles
    assert set(joined.columns) >= {"path", "label", "predicted", "confidence"}
    confident = predictions.filter_tiles(joined, confidence=(0.7, 1.0))
    assert confident["confidence"].min() >= 0.7 and len(confident) == 4  # 0.7, 0.8, 0.9, 1.0
    tumour = predictions.filter_tiles(joined, labels=["TUMOR"], predicted=["STROMA"])
    assert set(tumour["label"]) == {"TUMOR"} and len(tumour) == 3
    assert predictions.filter_tiles(joined, predicted=["TUMOR"]).empty
    wrong = predictions.mistakes(joined)
    assert set(wrong["label"]) == {"TUMOR"} and (wrong["predicted"] == "STROMA").all()
    assert len(predictions.filter_tiles(tiles, labels=["STROMA"])) == 6  # no predictions: class only


def test_no_predictions_no_rows_and_only_finished_runs_of_the_dataset_count(data_root):
    tiles = _indexed(data_root)
    empty = predictions.with_predictions(tiles, _predicted(tiles).iloc[0:0])
    assert empty.empty and "confidence" in empty.columns
    store = RunStore()
    finished, other = recorded_run(store, name="with predictions"), recorded_run(store, name="without")
    running = recorded_run(store, name="running", status="running")
    for run_id in (finished, running):
        path = store.run_dir(run_id) / "val_predictions.csv"
        write_csv(_predicted(tiles), path)
        store.add_artifact(run_id, "val_predictions", path)
    assert [run.id for run in predictions.runs_with_predictions(store, "demo")] == [finished]
    assert predictions.runs_with_predictions(store, "another dataset") == []
    assert other not in [run.id for run in predictions.runs_with_predictions(store, "demo")]
