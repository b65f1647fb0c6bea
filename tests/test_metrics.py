"""Intervals, formatting and the honesty rules of services.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.metrics import formatting, honesty, intervals


@pytest.mark.parametrize("k, n", [(33, 54), (0, 10), (10, 10), (1, 3), (540, 1000)])
def test_wilson_matches_the_closed_form(k, n):
    z = 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = intervals.wilson(k, n)
    assert low == pytest.approx(max(0.0, centre - half), abs=1e-12)
    assert high == pytest.approx(min(1.0, centre + half), abs=1e-12)
    assert 0.0 <= low <= p <= high <= 1.0


def test_wilson_known_value_and_nothing_known_without_tiles():
    # 1 of 3 (the TUMOR recall): a wide interval, not "0.333"
    low, high = intervals.wilson(1, 3)
    assert (round(low, 3), round(high, 3)) == (0.061, 0.792)
    assert intervals.proportion(0, 0) == intervals.Estimate(None, None, None, 0, 0)


def test_estimates_from_a_confusion_matrix_carry_n():
    result = intervals.confusion_estimates([[1, 2], [0, 5]], ["TUMOR", "STROMA"])
    assert result["accuracy"].n == 8 and result["accuracy"].successes == 6
    assert result["recall"]["TUMOR"].n == 3 and result["recall"]["TUMOR"].value == pytest.approx(1 / 3)


def test_fold_interval_uses_student_t():
    values = [0.6, 0.7, 0.65, 0.55, 0.75]
    summary = intervals.fold_interval(values)
    half = 2.7764451051977987 * np.std(values, ddof=1) / math.sqrt(5)  # t(0.975, 4)
    assert summary["mean"] == pytest.approx(0.65)
    assert summary["low"] == pytest.approx(0.65 - half) and summary["high"] == pytest.approx(0.65 + half)
    assert intervals.fold_interval([0.5])["sd"] is None


def test_bootstrap_over_source_images_is_seeded_and_covers():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(40), 5)
    true = rng.integers(0, 3, len(groups))
    predicted = np.where(rng.random(len(groups)) < 0.7, true, rng.integers(0, 3, len(groups)))
    first = intervals.bootstrap_macro_f1(true, predicted, groups, 3, seed=7)
    again = intervals.bootstrap_macro_f1(true, predicted, groups, 3, seed=7)
    assert first == again
    assert first.low < first.value < first.high and first.high - first.low > 0.02
    # coverage: over many simulated test sets, the interval holds the population macro F1 most of the time
    big_true = rng.integers(0, 3, 200_000)
    big_pred = np.where(rng.random(200_000) < 0.7, big_true, rng.integers(0, 3, 200_000))
    truth = intervals.macro_f1(big_true, big_pred, 3)
    hits = 0
    for trial in range(40):
        t = rng.integers(0, 3, 200)
        p = np.where(rng.random(200) < 0.7, t, rng.integers(0, 3, 200))
        estimate = intervals.bootstrap_macro_f1(t, p, groups, 3, samples=300, seed=trial)
        hits += estimate.low <= truth <= estimate.high
    assert hits >= 32  # nominal 95 % of 40 = 38; a loose floor for a 40-trial check


def test_numbers_formatted_for_people():
    estimate = intervals.proportion(33, 54)
    assert formatting.estimate_text(estimate) == "61.1 % (95 % CI 47.8-73.0, n = 54)"
    assert formatting.decimal(0.6111111111111112) == "0.611"
    assert formatting.percent(None) == "—" and formatting.percent(float("nan")) == "—"
    assert formatting.fold_text(intervals.fold_interval([0.6, 0.7])).startswith("65.0 % ± 7.1 (95 % CI")


def _summary(confusion, classes=("TUMOR", "STROMA")):
    return {"classes": list(classes), "test_confusion_matrix": confusion, "val_confusion_matrix": [[3, 0], [0, 3]]}


def test_headline_is_held_out_and_says_validation_chose_the_checkpoint():
    line = honesty.headline(_summary([[20, 5], [3, 22]]))
    assert line.held_out and line.estimate.n == 50 and "choose the checkpoint" in line.note
    without = honesty.headline({"classes": ["A", "B"], "val_confusion_matrix": [[3, 0], [0, 3]]})
    assert not without.held_out and "no held-out test split" in without.note


def test_weak_model_guard_names_the_classes():
    strong = honesty.weak_model(_summary([[95, 5], [3, 97]]))
    assert not strong.weak and strong.banner() == ""
    weak = honesty.weak_model(_summary([[4, 14], [1, 30]]))  # TUMOR recall 4/18, n < 20
    assert weak.weak and weak.classes == ["TUMOR"] and weak.banner().startswith("Not reliable for TUMOR")
    assert honesty.weak_model({"classes": ["A", "B"]}).classes == ["A", "B"]


def test_leakage_badge_counts_source_images_on_both_sides():
    import pandas as pd

    frame = pd.DataFrame({"source_image": ["a", "a", "b", "c"], "split": ["train", "test", "train", "val"]})
    assert honesty.split_leakage(frame) == 1
    assert honesty.leakage_badge(1) == "⚠ LEAKY SPLIT: 1 source image on both sides"
    assert honesty.leakage_badge(0) == "" and honesty.leakage_text(None) == "not recorded"


def test_calibration_of_a_deliberately_overconfident_model():
    from services.metrics import calibration

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 4000)
    logits = rng.normal(0, 1, (4000, 4))
    logits[np.arange(4000), labels] += 1.0  # a calibrated model's logits ...
    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    overconfident = softmax(4.0 * logits)  # ... made overconfident
    result = calibration.calibrate((overconfident[:2000], labels[:2000]), (overconfident[2000:], labels[2000:]))
    assert result["temperature"] == pytest.approx(4.0, rel=0.15)
    assert result["ece_after"] < 0.5 * result["ece_before"] and result["ece_after"] < 0.04
    assert calibration.temperature_of({"calibration": {"temperature": result["temperature"]}}) == result["temperature"]
    assert calibration.temperature_of({"calibration": {"temperature": "x"}}) == 1.0
    assert "<svg" in calibration.reliability_svg(result)


def test_cross_dataset_identity_mapping_and_the_complex_note_before_the_run():
    from services.transfer import crossdataset

    classes = ["TUMOR", "STROMA", "COMPLEX"]
    mapping = crossdataset.mapping_for(crossdataset.SAME_CLASSES, classes)
    result = crossdataset.score_mapped(["TUMOR", "STROMA", "COMPLEX", "TUMOR"], ["TUMOR", "TUMOR", "COMPLEX", "TUMOR"],
                                       mapping, classes)
    assert result.scored == 4 and result.accuracy == 0.75 and result.unmappable_tiles == {}
    rows = crossdataset.mapping_rows(crossdataset.MAPPINGS["kather-model-on-nct"])
    assert any("COMPLEX" in row["class of the tiles"] and row["why"] for row in rows)


def test_cross_dataset_accuracy_and_recall_carry_their_interval_and_n():
    from services.metrics.intervals import wilson
    from services.transfer import crossdataset

    classes = ["TUMOR", "STROMA"]
    truth = ["TUMOR"] * 10 + ["STROMA"] * 4
    predicted = ["TUMOR"] * 7 + ["STROMA"] * 3 + ["STROMA"] * 4
    evaluation = crossdataset.score_mapped(truth, predicted, crossdataset.identity_mapping(classes), classes)
    overall = evaluation.estimate()
    assert (overall.successes, overall.n) == (11, 14) and (overall.low, overall.high) == wilson(11, 14)
    tumour = evaluation.class_estimates()["TUMOR"]
    assert (tumour.successes, tumour.n, tumour.value) == (7, 10, 0.7)
    assert evaluation.class_estimates()["STROMA"].n == 4
