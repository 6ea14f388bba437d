"""Bootstrap intervals over patients and operating points, checked against what they must be by construction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from yolo_tools.errors import UserError
from yolo_tools.metrics.bootstrap import Bootstrap
from yolo_tools.operating_point import choose_threshold, decide


def test_draws_are_by_patient_and_seeded() -> None:
    patients = ["a", "a", "a", "b", "c"]
    boot = Bootstrap(patients, n_boot=200, seed=3)
    assert boot.weights.shape == (200, 5) and (boot.patient_weights.sum(1) == 3).all()  # 3 patients drawn each time
    assert (boot.weights[:, 0] == boot.weights[:, 1]).all() and (boot.weights[:, 1] == boot.weights[:, 2]).all()
    assert np.array_equal(Bootstrap(patients, n_boot=200, seed=3).weights, boot.weights)
    assert not np.array_equal(Bootstrap(patients, n_boot=200, seed=4).weights, boot.weights)


def test_patient_intervals_are_wider_than_image_intervals_for_clustered_data() -> None:
    rng = np.random.default_rng(0)
    patient_effect = rng.normal(0, 1, 20)
    values = np.repeat(patient_effect, 10) + rng.normal(0, 0.1, 200)  # 20 patients, 10 near-identical images each
    by_patient = Bootstrap(np.repeat(np.arange(20).astype(str), 10), n_boot=500).mean(values)
    by_image = Bootstrap(np.arange(200).astype(str), n_boot=500).mean(values)
    assert by_patient[0] < values.mean() < by_patient[1]
    assert (by_patient[1] - by_patient[0]) > 2 * (by_image[1] - by_image[0])


def test_ratio_and_weighted_metrics_agree_with_direct_computation() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 60).astype(bool)
    scores = truth * 0.3 + rng.random(60)
    boot = Bootstrap([str(i // 2) for i in range(60)], n_boot=300)
    row = boot.weights[0]
    chosen = np.repeat(np.arange(60), row.astype(int))
    weighted_auc = roc_auc_score(truth, scores, sample_weight=row)
    assert weighted_auc == pytest.approx(roc_auc_score(truth[chosen], scores[chosen]))
    low, high = boot.weighted(lambda w: roc_auc_score(truth, scores, sample_weight=w))
    assert low < roc_auc_score(truth, scores) < high
    low, high = boot.ratio(truth.astype(float), np.ones(60))
    assert low < truth.mean() < high
    assert Bootstrap(["a"] * 5, n_boot=50).ratio(np.zeros(5), np.zeros(5)) is None  # undefined everywhere: no interval


def test_youden_and_target_thresholds() -> None:
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.4, 0.8, 0.85, 0.9])
    point = choose_threshold(truth == 1, scores)
    assert point["threshold"] == 0.8 and point["sensitivity"] == 0.75 and point["specificity"] == 1.0
    point = choose_threshold(truth == 1, scores, "sensitivity=0.95")
    assert point["threshold"] == 0.4 and point["sensitivity"] == 1.0 and point["specificity"] == 0.75
    point = choose_threshold(truth == 1, scores, "specificity=0.75")
    assert point["threshold"] == 0.4
    assert decide(np.array([0.6, 0.4]), {"threshold": 0.35}) == 1 and decide(np.array([0.6, 0.4]), None) == 0
    with pytest.raises(UserError, match="sensitivity=0.95"):
        choose_threshold(truth == 1, scores, "sens=0.9")
    with pytest.raises(UserError, match="both classes"):
        choose_threshold(np.ones(3, bool), np.ones(3))


def test_app_calls_the_class_at_the_runs_operating_point() -> None:
    from pathlib import Path

    from yolo_tools.prediction import Prediction
    from yolo_tools.review.app import diagnosis

    prediction = Prediction(Path("x.png"), {0: "normal", 1: "pneumonia"}, (8, 8), np.zeros((0, 4)), np.zeros(0, int),
                            np.zeros(0), None, np.array([0.7, 0.3]))
    assert diagnosis(prediction, 0.25).startswith("**normal**")
    point = {"rule": "youden", "threshold": 0.2}
    assert diagnosis(prediction, 0.25, point).startswith("**pneumonia**") and "youden" in diagnosis(prediction, 0.25, point)


def test_each_class_is_held_to_its_own_confidence_and_a_given_conf_replaces_them(tmp_path) -> None:
    from pathlib import Path

    from yolo_tools import operating_point
    from yolo_tools.prediction import CLASS_CONF, Prediction, class_thresholds

    point = operating_point.per_class("rule", 0.3, {"heart": 0.05, "lung": 0.6}, ["heart", "lung", "rare"])
    assert point["conf"] == 0.05 and point[CLASS_CONF] == {"heart": 0.05, "lung": 0.6, "rare": 0.3}
    operating_point.save(tmp_path, point)
    implied = operating_point.predict_args(None, tmp_path, {"device": "cpu"})
    assert implied["conf"] == 0.05 and implied[CLASS_CONF]["lung"] == 0.6
    assert CLASS_CONF not in operating_point.predict_args(None, tmp_path, {"conf": 0.5})  # one number for all classes

    args, thresholds = class_thresholds(implied, {0: "heart", 1: "lung", 2: "rare"})
    assert CLASS_CONF not in args and thresholds.tolist() == [0.05, 0.6, 0.3]  # Ultralytics never sees class_conf
    found = Prediction(Path("x.png"), {0: "heart", 1: "lung", 2: "rare"}, (8, 8), np.zeros((4, 4)),
                       np.array([0, 1, 1, 2]), np.array([0.1, 0.5, 0.7, 0.2]), None, None)
    kept = found.above(thresholds)
    assert kept.classes.tolist() == [0, 1] and kept.confidences.tolist() == [0.1, 0.7]
    assert found.above(0.05) is found  # nothing dropped: the same prediction (and its drawing)


def test_sliced_inference_has_its_own_point_and_falls_back_to_the_whole_image_one(tmp_path, capsys) -> None:
    from yolo_tools import operating_point
    from yolo_tools.prediction import CLASS_CONF

    operating_point.save(tmp_path, operating_point.per_class("rule", 0.3, {"stone": 0.3}, ["stone"]))
    assert operating_point.predict_args(None, tmp_path, {}, (320, 0.2))["conf"] == 0.3
    assert "slice=320 chooses one from sliced predictions" in capsys.readouterr().out
    operating_point.save(tmp_path, operating_point.per_class("rule", 0.1, {"stone": 0.1}, ["stone"]), (320, 0.2))
    assert operating_point.predict_args(None, tmp_path, {}, (320, 0.2))[CLASS_CONF] == {"stone": 0.1}
    assert operating_point.predict_args(None, tmp_path, {}, (320, 0.25))["conf"] == 0.3  # another overlap: not chosen
    assert operating_point.predict_args(None, tmp_path, {})["conf"] == 0.3  # whole images keep theirs
    assert operating_point.load(tmp_path, (320, 0.2))["predictions"] == "slices of 320 px overlapping by 0.2"


def test_a_per_class_confidence_for_a_class_the_model_lacks_is_refused() -> None:
    from yolo_tools.prediction import CLASS_CONF, class_thresholds

    with pytest.raises(UserError, match=r"name 'hart', which the model does not have \(its classes: heart, lung\)"):
        class_thresholds({"conf": 0.1, CLASS_CONF: {"hart": 0.2, "lung": 0.3}}, {0: "heart", 1: "lung"})


def test_a_damaged_per_class_confidence_is_refused(tmp_path) -> None:
    import json

    from yolo_tools import operating_point

    (tmp_path / operating_point.FILE).write_text(json.dumps({"conf": 0.1, "class_conf": {"heart": "low"}}))
    with pytest.raises(UserError, match="each class's conf"):
        operating_point.load(tmp_path)


def test_surface_distances_in_millimetres_and_pixels() -> None:
    from yolo_tools.metrics.surface import surface_scores

    true = np.zeros((3, 40, 40), bool)
    true[0, 10:30, 10:30] = True
    true[1, 5:10, 5:10] = True  # class 1: missed by the prediction
    pred = np.zeros_like(true)
    pred[0] = np.roll(true[0], 3, axis=1)  # class 0: shifted 3 columns; class 2 absent from both
    hd95, nsd = surface_scores(pred, true, spacing=(0.5, 2.0), tolerance=4.0)
    assert hd95[0] == pytest.approx(6.0)  # 3 columns of 2 mm: the left and right edges are 6 mm off
    assert 0 < nsd[0] < 1 and np.isnan(hd95[1]) and nsd[1] == 0.0 and np.isnan(hd95[2]) and nsd[2] == 1.0
    hd95_px, nsd_px = surface_scores(pred, true)
    assert hd95_px[0] == pytest.approx(3.0) and nsd_px[0] < 1
    same, _ = surface_scores(true, true)
    assert same[0] == 0.0


def test_a_point_older_than_the_weights_is_not_used(tmp_path) -> None:
    import os

    from yolo_tools import operating_point

    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "best.pt").write_text("")
    operating_point.save(tmp_path, {"rule": "youden", "threshold": 0.3})
    assert operating_point.load(tmp_path)["threshold"] == 0.3 and operating_point.load(tmp_path)["chosen_on"] == "val"
    later = (tmp_path / operating_point.FILE).stat().st_mtime + 10
    os.utime(tmp_path / "weights" / "best.pt", (later, later))  # trained on after the point was chosen
    assert operating_point.load(tmp_path) is None


def test_f1_confidence_takes_the_top_of_a_plateau() -> None:
    from yolo_tools.engine import f1_confidence

    x = np.linspace(0, 1, 1000)
    peaked = np.exp(-((x - 0.4) ** 2) / 0.01)[None]
    assert f1_confidence(peaked, x) == pytest.approx(0.4, abs=0.01)
    plateau = np.where(x < 0.3, 0.9, 0.9 - (x - 0.3))[None]  # max_det 1: flat until the weakest top box
    assert 0.2 < f1_confidence(plateau, x) <= 0.3


def test_per_class_confidences_without_an_overall_one_are_used(tmp_path) -> None:
    """A hand-written point with `class_conf` only: Ultralytics predicts at the lowest, each class at its own."""
    import json

    from yolo_tools import operating_point
    from yolo_tools.prediction import CLASS_CONF

    (tmp_path / operating_point.FILE).write_text(json.dumps({"rule": "by hand", CLASS_CONF: {"heart": 0.2, "lung": 0.05}}))
    implied = operating_point.predict_args(None, tmp_path, {})
    assert implied["conf"] == 0.05 and implied[CLASS_CONF] == {"heart": 0.2, "lung": 0.05}


def test_a_point_deciding_nothing_is_refused_and_one_hiding_everything_is_not_used(tmp_path, caplog) -> None:
    import json
    import logging

    from yolo_tools import operating_point

    (tmp_path / operating_point.FILE).write_text(json.dumps({"rule": "max F1", "class_conf": {}}))
    with pytest.raises(UserError, match="it holds conf, class_conf"):
        operating_point.load(tmp_path)
    (tmp_path / operating_point.FILE).write_text(json.dumps({"rule": "max F1", "conf": 1.0, "class_conf": {"stone": 1.0}}))
    with caplog.at_level(logging.WARNING, logger="yolo_tools"):
        assert operating_point.load(tmp_path) is None and operating_point.load(tmp_path) is None
        assert "conf" not in operating_point.predict_args(None, tmp_path, {})  # Ultralytics' default applies
    said = [r.getMessage() for r in caplog.records if "hides every finding" in r.getMessage()]
    assert len(said) == 1, said  # once, though read three times


def test_no_detector_point_when_val_predictions_find_nothing() -> None:
    """F1 is 0 at every confidence: its flat 'peak' (1.0) hid every finding; now no point. A class never found
    keeps out of the per-class peaks (it gets the overall one)."""
    from yolo_tools.metrics.detection import ap_inputs, f1_confidence

    truth, truth_classes = np.array([[0, 0, 10, 10]], float), np.array([0])
    far = np.array([[50, 50, 60, 60]], float)
    missed = ap_inputs([(far, np.array([0]), np.array([0.3]), truth, truth_classes)] * 3, np.array([0.5]))
    assert f1_confidence(missed) is None
    truth2, classes2 = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0, 1])
    half = ap_inputs([(np.array([[0, 0, 10, 10], [50, 50, 60, 60]], float), np.array([0, 1]), np.array([0.6, 0.4]), truth2, classes2)], np.array([0.5]))
    overall, per_class = f1_confidence(half)
    assert list(per_class) == [0] and 0.5 < per_class[0] <= 0.6 and overall < 1.0


def test_no_segmenter_point_when_no_mask_overlaps_the_truth() -> None:
    from yolo_tools.tasks import segment
    from yolo_tools.tasks.protocol import Scoring

    thresholds = len(segment.SWEEP)
    state = Scoring(None, ["heart", "lung"])
    counts = np.zeros((2, thresholds, 3))
    counts[:, :, 2] = 100  # true pixels of both classes
    counts[:, :50, 1] = 40  # predicted pixels below confidence 0.5, none on the truth
    state.kept = [counts, counts]
    assert segment.choose_conf(state) is None
    found = counts.copy()
    found[0, :30, 0] = 30  # the heart overlaps up to confidence 0.3; the lung never
    state.kept = [found, counts]
    point = segment.choose_conf(state)
    assert point["class_conf"]["heart"] == pytest.approx(0.3) and point["class_conf"]["lung"] < 1.0
