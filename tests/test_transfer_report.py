"""Metrics, the comparison table with its book-reference column, and the CSV/JSON/HTML exports."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from services.images import encode_png
from services.transfer import metrics, report
from services.transfer.results import BOOK_REFERENCE_COLUMN, RunResult, results_frame


def test_metrics_on_a_known_confusion():
    true = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 1])
    probabilities = np.eye(3)[predicted]
    evaluation = metrics.evaluate(true, probabilities, ["a", "b", "c"])
    assert evaluation.confusion == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    assert evaluation.accuracy == pytest.approx(4 / 6)
    assert evaluation.per_class_recall == {"a": pytest.approx(2 / 3), "b": 1.0, "c": 0.0}
    # F1: a = 2*2/(3+2) = 0.8, b = 2*2/(2+4) = 2/3, c = 0
    assert evaluation.macro_f1 == pytest.approx((0.8 + 2 / 3 + 0) / 3)
    absent = metrics.evaluate(np.array([0, 0]), np.eye(3)[[0, 0]], ["a", "b", "c"])
    assert absent.per_class_recall["b"] is None and absent.macro_f1 == pytest.approx(1.0)


def sample_results() -> list[RunResult]:
    history = {"accuracy": [0.4, 0.6, 0.7], "val_accuracy": [0.35, 0.5, 0.66], "loss": [1.5, 1.0, 0.8],
               "val_loss": [1.6, 1.2, 1.0]}
    common = dict(dataset="demo", split="grouped", synthetic=True, class_names=["TUMOR", "STROMA"],
                  confusion=[[5, 1], [2, 4]], per_class_recall={"TUMOR": 5 / 6, "STROMA": 4 / 6},
                  history=history, device="CPU")
    return [
        RunResult("cnn_v1 <scratch>", "A", "cnn_v1", val_accuracy=0.6, test_accuracy=0.58, macro_f1=0.55, **common),
        RunResult("vgg16 B+aug", "B+aug", "transfer_frozen", backbone="vgg16", weights="imagenet", augment=True,
                  val_accuracy=0.8, test_accuracy=0.75, total_parameters=23_112_520, trainable_parameters=15_477_256, **common),
        RunResult("mobilenet C", "C", "feature_head", backbone="mobilenet_v2", weights="random init",
                  val_accuracy=0.7, extraction_seconds=12.5, **common),
    ]


def test_table_puts_book_numbers_only_in_their_labelled_column():
    frame = results_frame(sample_results())
    assert list(frame[BOOK_REFERENCE_COLUMN].fillna(-1)) == [0.827, 0.91, -1]
    assert list(frame["val_accuracy"]) == [0.6, 0.8, 0.7]  # measured values untouched
    assert "book reference" in BOOK_REFERENCE_COLUMN and "published" in BOOK_REFERENCE_COLUMN


def test_csv_and_json_exports_round_trip():
    results = sample_results()
    frame = pd.read_csv(io.BytesIO(report.to_csv(results)))
    assert list(frame["name"]) == [r.name for r in results]
    assert frame.loc[1, BOOK_REFERENCE_COLUMN] == pytest.approx(0.91)
    payload = json.loads(report.to_json(results))
    assert payload["book_reference"]["cnn_v1"]["val_accuracy"] == 0.827
    restored = [RunResult.from_dict(r) for r in payload["runs"]]
    assert restored[2].extraction_seconds == 12.5 and restored[0].confusion == [[5, 1], [2, 4]]


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.open: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in ("meta", "img", "br", "line", "polyline"):
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data):
        self.text.append(data)


def test_html_report_is_self_contained_valid_and_holds_the_table():
    results = sample_results()
    png = encode_png(np.zeros((8, 8, 3), np.uint8))
    document = report.html_report(results, dataset_note="demo set", gradcam_examples=[("tile 1 · vgg16 B", png)])
    parser = _Collector()
    parser.feed(document)
    parser.close()
    assert parser.open == [], "every element is closed"
    text = " ".join(parser.text)
    tags = [tag for tag, _ in parser.tags]
    assert document.startswith("<!DOCTYPE html>")
    assert "&lt;scratch&gt;" in document and "<scratch>" not in document  # names are escaped
    assert BOOK_REFERENCE_COLUMN in text and "91.0 %" in text and "82.7 %" in text
    assert "synthetic demo data" in text and "random init" in text
    assert tags.count("table") == 1 + len(results)  # results + one confusion matrix per run
    assert tags.count("svg") == 4  # val_accuracy, accuracy, val_loss, loss
    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    assert images and all(attrs["src"].startswith("data:image/png;base64,") for attrs in images)
    assert not any(tag in ("script", "link") for tag in tags)
    assert "http://" not in document.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_damaged_store_rows_leave_fields_empty_and_exports_name_no_server_path(data_root):
    from services.training.store import RunStore
    from services.transfer import experiments

    store = RunStore()
    run_id = store.create_run("C · x", model="feature_head", dataset="demo", status="finished")
    store.update_summary(run_id, val_accuracy="high", test_accuracy=float("nan"), total_parameters=[1],
                         test_recall={"TUMOR": "all"}, test_confusion_matrix=[[1, "x"], [0]], classes="abc",
                         cv_accuracy_mean=0.5)
    spec = experiments.ExperimentSpec("demo", "grouped", ["C"])
    job = {"spec": spec.to_dict(), "entries": [{"label": "C · x", "strategy": "C", "model": "feature_head",
                                                 "backbone": "mobilenet_v2", "run_ids": [run_id]}, "junk"]}
    [row] = experiments.collect_results(job, store)
    assert row.val_accuracy is None and row.test_accuracy is None and row.total_parameters is None
    assert row.per_class_recall == {"TUMOR": None} and row.confusion == [] and row.class_names == []
    assert row.cv_accuracy_mean == 0.5
    row.model_path = str(data_root / "runs" / run_id / "final.keras")
    assert str(data_root) not in report.to_json([row]).decode() and report.html_report([row])
    assert experiments.collect_results({"entries": []}, store) == []
