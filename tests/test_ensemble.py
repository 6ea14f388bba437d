"""Ensembles: weighted box fusion, averaged probabilities and voted masks on hand-made cases, our own AP,
and two tiny real heart detectors predicted and evaluated as one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import RECIPES, needs_data
from yolo_tools import fusion, pipeline, tasks
from yolo_tools.metrics.detection import average_precision
from yolo_tools.prediction import Prediction


def _prediction(boxes, confidences, classes, masks=None, shape=(100, 100)) -> Prediction:
    return Prediction(
        Path("a.png"), {0: "heart", 1: "lung"}, shape, np.asarray(boxes, float).reshape(-1, 4),
        np.asarray(classes, int), np.asarray(confidences, float), masks, None,
    )


def test_wbf_averages_overlapping_boxes_and_discounts_lone_ones() -> None:
    a = _prediction([[10, 10, 50, 50], [70, 70, 90, 90]], [0.9, 0.8], [0, 0])
    b = _prediction([[14, 10, 54, 50]], [0.9], [0])
    boxes, confidences, classes = fusion.fuse_boxes([a, b])
    order = np.argsort(-confidences)
    np.testing.assert_allclose(boxes[order[0]], [12, 10, 52, 50], atol=1e-3)  # equal confidences: the midpoint
    assert confidences[order[0]] == pytest.approx(0.9)
    np.testing.assert_allclose(boxes[order[1]], [70, 70, 90, 90], atol=1e-3)
    assert confidences[order[1]] == pytest.approx(0.4)  # found by one model of two
    assert classes.tolist() == [0, 0]


def test_wbf_keeps_classes_apart_and_handles_no_boxes() -> None:
    a = _prediction([[10, 10, 50, 50]], [0.9], [0])
    b = _prediction([[10, 10, 50, 50]], [0.9], [1])
    _, confidences, classes = fusion.fuse_boxes([a, b])
    assert sorted(classes.tolist()) == [0, 1] and np.allclose(confidences, 0.45)
    boxes, _, _ = fusion.fuse_boxes([_prediction([], [], []), _prediction([], [], [])])
    assert boxes.shape == (0, 4)


def test_probabilities_are_averaged_with_weights() -> None:
    mean = fusion.average_probabilities([np.array([0.8, 0.2]), np.array([0.2, 0.8])], weights=[3, 1])
    np.testing.assert_allclose(mean, [0.65, 0.35])


def test_masks_are_voted_per_class() -> None:
    def masks(rows):
        m = np.zeros((1, 4, 4), bool)
        m[0, rows] = True
        return m

    two = [_prediction([[0, 0, 4, 4]], [0.9], [0], masks(slice(0, 2)), (4, 4)),
           _prediction([[0, 0, 4, 4]], [0.9], [0], masks(slice(1, 3)), (4, 4))]
    assert fusion.vote_masks(two, 2)[0].sum(1).tolist() == [4, 4, 4, 0]  # two models: their union
    three = [*two, _prediction([], [], [], None, (4, 4))]
    assert fusion.vote_masks(three, 2)[0].sum(1).tolist() == [0, 4, 0, 0]  # three: the majority
    assert not fusion.vote_masks(three, 2)[1].any()


def test_each_task_fuses_its_own_way() -> None:
    """`Task.fuse`, what an ensemble asks: detect thresholds the fused boxes again, segment votes masks into one
    instance per class, classify averages probabilities (conf does not apply)."""
    image = np.zeros((100, 100, 3), np.uint8)
    a = replace(_prediction([[10, 10, 50, 50], [70, 70, 90, 90]], [0.9, 0.8], [0, 0]), image=image)
    b = _prediction([[14, 10, 54, 50]], [0.9], [0])
    fused = tasks.get("detect").fuse([a, b], None, 0.5)
    assert fused.confidences.tolist() == pytest.approx([0.9], abs=1e-3)  # the lone box (0.4) is below 0.5 again
    assert len(tasks.get("detect").fuse([a, b], None, 0.3).boxes) == 2

    mask = np.zeros((2, 100, 100), bool)
    mask[0, 10:30, 20:40], mask[1, 60:70, 60:70] = True, True
    one = replace(_prediction([[20, 10, 40, 30], [60, 60, 70, 70]], [0.8, 0.6], [0, 1], mask), image=image)
    other = _prediction([[20, 10, 40, 30]], [0.4], [0], mask[:1])
    fused = tasks.get("segment").fuse([one, other], None, 0.99)  # each model already kept masks above conf
    assert fused.classes.tolist() == [0, 1] and fused.confidences.tolist() == pytest.approx([0.6, 0.3])
    assert fused.masks[0].sum() == 400 and fused.masks[1].sum() == 100  # class 1: one of two models is half the weight

    def probs(p):
        return replace(_prediction([], [], []), probabilities=np.array(p), image=image)

    fused = tasks.get("classify").fuse([probs([0.8, 0.2]), probs([0.2, 0.8])], [3, 1], 0.99)
    np.testing.assert_allclose(fused.probabilities, [0.65, 0.35], atol=1e-6)


def test_average_precision_by_hand() -> None:
    truth, truth_cls = np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([0, 0])
    # best-ranked box is wrong, then both true boxes: precision 0, 1/2, 2/3 at recall 0, .5, 1
    boxes = np.array([[50, 50, 60, 60], [0, 0, 10, 10], [20, 20, 30, 30]])
    ap = average_precision([(boxes, np.zeros(3, int), np.array([0.9, 0.8, 0.7]), truth, truth_cls)])
    assert ap[0] == pytest.approx(2 / 3, abs=0.005)  # Ultralytics' 101-point interpolation of the same envelope
    shifted = boxes.copy()
    shifted[1] = [0, 0, 10, 14]  # IoU 10/14 = 0.71: counted at 0.5..0.7, missed above
    ap = average_precision([(shifted, np.zeros(3, int), np.array([0.9, 0.8, 0.7]), truth, truth_cls)])
    assert ap[0] > ap[-1] and ap[-1] == pytest.approx(0.5 * 1 / 3, abs=0.005)


def test_average_precision_is_per_class_then_averaged() -> None:
    # class 0: one true box, found; class 1: one true box, only a wrong box of class 1 above it
    truth, truth_cls = np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([0, 1])
    boxes, cls = np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), np.array([0, 1])
    ap = average_precision([(boxes, cls, np.array([0.9, 0.8]), truth, truth_cls)])
    assert ap[0] == pytest.approx(0.5, abs=0.01)  # (1 + 0) / 2; pooled into one curve it would be 0.5 * 1 = 0.5 too,
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]])  # so: class 1 found after its wrong box
    ap = average_precision([(boxes, np.array([0, 1, 1]), np.array([0.9, 0.8, 0.1]), truth, truth_cls)])
    per_class = (1.0 + 0.5) / 2  # class 1: precision 1/2 at recall 1
    pooled = 0.5 * 1.0 + 0.5 * (2 / 3)  # one curve: hits at ranks 1 and 3
    assert ap[0] == pytest.approx(per_class, abs=0.01) and abs(per_class - pooled) > 0.05


QUICK = {"epochs": 1, "imgsz": 64, "fraction": 0.1, "batch": 8, "workers": 0, "plots": False, "device": "cpu"}


@pytest.mark.slow
@needs_data("heart-cxr-jsrt")
def test_two_runs_predict_and_evaluate_as_one(workspace: Path, tmp_path: Path) -> None:
    first, _ = pipeline.train_recipe(RECIPES / "heart.yaml", {**QUICK, "seed": 1}, name="ens-a")
    second, _ = pipeline.train_recipe(RECIPES / "heart.yaml", {**QUICK, "seed": 2}, name="ens-b")
    images = sorted((workspace / "datasets" / "heart" / "images" / "val").iterdir())[:3]
    source = tmp_path / "in"
    source.mkdir()
    for image in images:
        (source / image.name).write_bytes(image.read_bytes())
    csv_path, json_path, count = pipeline.predict([first, second], str(source), tmp_path / "out", {"imgsz": 64, "conf": 0.0})
    assert count == 3 and len(list((tmp_path / "out").glob("*.jpg"))) == 3
    table = pd.read_csv(csv_path)
    assert set(table["image"]) <= {image.name for image in images} and (table["class_name"] == "heart").all()

    out = pipeline.evaluate([first, second], {"imgsz": 64, "conf": 0.01})
    assert out == first / "eval-ensemble"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ensemble_of"] == [str(first / "weights" / "best.pt"), str(second / "weights" / "best.pt")]
    assert summary["images"] == len(list((workspace / "datasets" / "heart" / "images" / "val").iterdir()))
    assert 0.0 <= summary["metrics"]["ap50_95"] <= summary["metrics"]["ap50"] <= 1.0
    assert not (first / "eval" / "summary.json").exists()  # the first run's own evaluation is left alone


def test_cli_takes_more_runs_with_ensemble() -> None:
    from yolo_tools.cli import build_parser

    # key=value before the options: argparse takes the positionals as one block
    args = build_parser().parse_args(["predict", "runs/a", "images/", "conf=0.3", "--ensemble", "runs/b", "--ensemble", "runs/c"])
    assert (args.weights, args.ensemble, args.source, args.overrides) == ("runs/a", ["runs/b", "runs/c"], "images/", ["conf=0.3"])
    args = build_parser().parse_args(["evaluate", "runs/a", "augment=True", "--ensemble", "runs/b"])
    assert (args.run, args.ensemble, args.overrides) == ("runs/a", ["runs/b"], ["augment=True"])
