"""The metric functions on cases small enough to compute by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from yolo_tools import evaluation
from yolo_tools.metrics.classification import classify_metrics
from yolo_tools.metrics.detection import best_iou, box_iou, errors_per_class, match
from yolo_tools.metrics.segmentation import dice, iou, overlaps, overlaps_by_threshold, volume_scores
from yolo_tools.prediction import mask_boxes


def masks(shape: tuple[int, ...], *regions: tuple[int, slice | tuple]) -> np.ndarray:
    """(2, *shape) boolean masks with each (class, index) region set."""
    out = np.zeros((2, *shape), bool)
    for class_id, index in regions:
        out[class_id][index] = True
    return out


# --- segmentation -------------------------------------------------------------------------------------


def test_dice_and_iou_by_hand() -> None:
    pred = masks((4, 4), (0, np.s_[:2]))  # class 0: 8 pixels
    true = masks((4, 4), (0, np.s_[:1]))  # class 0: 4 pixels, all inside the prediction
    counts = overlaps(pred, true)
    assert counts.tolist() == [[4, 8, 4], [0, 0, 0]]
    assert dice(counts) == pytest.approx([2 * 4 / 12, 1.0])  # class 1 empty in both: 1 by convention
    assert iou(counts) == pytest.approx([4 / 8, 1.0])


def test_empty_masks_follow_the_stated_convention() -> None:
    empty = masks((3, 3))
    something = masks((3, 3), (0, np.s_[0, 0]), (1, np.s_[1, 1]))
    assert dice(overlaps(empty, empty)).tolist() == [1.0, 1.0]  # nothing there, nothing predicted
    assert iou(overlaps(empty, empty)).tolist() == [1.0, 1.0]
    assert dice(overlaps(empty, something)).tolist() == [0.0, 0.0]  # everything missed
    assert dice(overlaps(something, empty)).tolist() == [0.0, 0.0]  # a false alarm
    assert iou(overlaps(something, empty)).tolist() == [0.0, 0.0]


def test_perfect_and_disjoint_predictions() -> None:
    true = masks((5, 5), (0, np.s_[1:3, 1:3]), (1, np.s_[4, :]))
    assert dice(overlaps(true, true)).tolist() == [1.0, 1.0]
    shifted = masks((5, 5), (0, np.s_[3:5, 3:5]), (1, np.s_[0, :]))
    assert dice(overlaps(shifted, true)).tolist() == [0.0, 0.0]


def test_overlaps_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        overlaps(masks((3, 3)), masks((3, 4)))


def test_overlaps_by_threshold_are_overlaps_of_the_instances_kept_at_each_threshold() -> None:
    rng = np.random.default_rng(0)
    instances = rng.random((5, 6, 7)) > 0.6
    classes, confidences = np.array([0, 1, 0, 1, 0]), np.array([0.9, 0.2, 0.5, 0.7, 0.05])
    truth = rng.random((2, 6, 7)) > 0.5
    thresholds = np.array([0.01, 0.1, 0.3, 0.6, 0.8, 0.95])
    swept = overlaps_by_threshold(instances, classes, confidences, truth, thresholds)
    for t, threshold in enumerate(thresholds):  # by hand: OR the kept instances per class, then count
        kept = confidences >= threshold
        predicted = np.stack([instances[kept & (classes == c)].any(0) for c in range(2)])
        assert (swept[:, t] == overlaps(predicted, truth)).all()


def test_volume_dice_is_the_dice_of_the_stacked_slices() -> None:
    # Volume A, class 0: slice 0 perfect (4 px), slice 1 a false alarm (4 px, nothing true).
    # 2D Dice per slice: 1 and 0 (mean 0.5); 3D Dice: 2*4 / (8 + 4) = 2/3.
    pred = [masks((2, 4), (0, np.s_[0])), masks((2, 4), (0, np.s_[1]))]
    true = [masks((2, 4), (0, np.s_[0])), masks((2, 4))]
    # Volume B (another patient), three random slices, listed out of order on purpose.
    rng = np.random.default_rng(0)
    pred += [rng.random((2, 2, 4)) > 0.5 for _ in range(3)]
    true += [rng.random((2, 2, 4)) > 0.5 for _ in range(3)]
    slices = pd.DataFrame(
        {"patient": ["p1", "p1", "p2", "p2", "p2"], "volume": ["a", "a", "b", "b", "b"], "slice": [0, 1, 2, 0, 1]}
    )
    counts = np.stack([overlaps(p, t) for p, t in zip(pred, true)])
    table = volume_scores(slices, counts, ["lv", "rv"])

    assert table[["patient", "volume", "slices"]].values.tolist() == [["p1", "a", 2], ["p2", "b", 3]]
    assert table.loc[0, "dice_lv"] == pytest.approx(2 / 3)
    assert table.loc[0, "dice_rv"] == 1.0  # class 1 absent from both slices of volume A
    assert table.loc[0, "true_voxels_lv"] == 4 and table.loc[0, "pred_voxels_lv"] == 8
    # Volume B: stack the slices in slice order and compute Dice on the 3D arrays directly.
    order = [3, 4, 2]
    stacked = overlaps(np.stack([pred[i] for i in order], axis=1), np.stack([true[i] for i in order], axis=1))
    assert table.loc[1, ["dice_lv", "dice_rv"]].tolist() == pytest.approx(dice(stacked).tolist())
    assert table.loc[1, ["iou_lv", "iou_rv"]].tolist() == pytest.approx(iou(stacked).tolist())
    assert table.loc[1, "dice"] == pytest.approx(dice(stacked).mean())


def test_truth_masks_fill_each_polygon_and_keep_overlapping_classes(tmp_path: Path) -> None:
    label = tmp_path / "x.txt"
    # Class 0: the square x, y in [0.25, 0.75] of a 8x8 image; class 1: the left half, overlapping it.
    label.write_text("0 0.25 0.25 0.75 0.25 0.75 0.75 0.25 0.75\n1 0 0 0.5 0 0.5 1 0 1\n")
    truth = evaluation.truth_masks(label, (8, 8), 2)
    assert truth.shape == (2, 8, 8)
    assert truth[0, 2:7, 2:7].all() and truth[0].sum() == 25  # fillPoly includes the outline's pixels
    assert truth[1, :, :5].all() and truth[1].sum() == 40
    assert (truth[0] & truth[1]).any()
    assert not evaluation.truth_masks(tmp_path / "missing.txt", (8, 8), 2).any()  # no label file: background


def test_predicted_masks_round_trip_through_their_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    original = rng.random((3, 5, 7)) > 0.5  # three overlapping classes
    evaluation.save_masks(original, tmp_path / "m.png")
    assert np.array_equal(evaluation.load_masks(tmp_path / "m.png", 3), original)


# --- detection ----------------------------------------------------------------------------------------


def test_box_iou_by_hand() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10], [2, 2, 4, 4]])
    assert box_iou(a, b)[0] == pytest.approx([50 / 150, 0.0, 1.0, 4 / 100])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)
    assert box_iou(b, a).shape == (4, 1)


TRUTH = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
TRUTH_CLS = np.array([0, 0])


def test_best_iou_takes_the_closest_box_of_the_same_class() -> None:
    truth, truth_cls = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]]), np.array([0, 0, 1])
    boxes = np.array([[0, 0, 10, 5], [0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]])
    cls = np.array([0, 0, 1, 0])  # the perfect boxes of the last two truths have the other class
    np.testing.assert_allclose(best_iou(truth, truth_cls, boxes, cls), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(best_iou(truth, truth_cls, boxes[:1], cls[:1]), [0.5, 0.0, 0.0])
    assert best_iou(truth, truth_cls, np.zeros((0, 4)), np.zeros(0, int)).tolist() == [0.0, 0.0, 0.0]


def test_mask_boxes_are_the_pixel_edges_of_each_class() -> None:
    masks = np.zeros((3, 8, 10), bool)
    masks[0, 2:5, 3:7] = True  # rows 2-4, columns 3-6
    masks[1, 7, 0] = True  # one pixel in the corner
    boxes, present = mask_boxes(masks)
    assert present.tolist() == [True, True, False]
    assert boxes[:2].tolist() == [[3, 2, 7, 5], [0, 7, 1, 8]]


def test_perfect_predictions_have_no_errors() -> None:
    hit, found = match(TRUTH, np.array([0, 0]), np.array([0.9, 0.8]), TRUTH, TRUTH_CLS)
    assert hit.all() and found.all()
    assert errors_per_class(np.array([0, 0]), hit, TRUTH_CLS, found, 2).tolist() == [[2, 0, 0], [0, 0, 0]]


def test_no_predictions_miss_everything() -> None:
    hit, found = match(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0), TRUTH, TRUTH_CLS)
    assert hit.shape == (0,) and not found.any()
    assert errors_per_class(np.zeros(0, int), hit, TRUTH_CLS, found, 1).tolist() == [[0, 0, 2]]


def test_one_false_positive_and_one_miss() -> None:
    boxes = np.array([[1, 1, 10, 10], [50, 50, 60, 60]])  # finds the first truth box; the second is nowhere
    hit, found = match(boxes, np.array([0, 0]), np.array([0.9, 0.95]), TRUTH, TRUTH_CLS)
    assert hit.tolist() == [True, False] and found.tolist() == [True, False]
    assert errors_per_class(np.array([0, 0]), hit, TRUTH_CLS, found, 1).tolist() == [[1, 1, 1]]


def test_matching_is_greedy_by_confidence_and_one_to_one() -> None:
    truth = np.array([[0, 0, 10, 10]])
    # The exact box has the lower confidence: the confident, looser one takes the truth box first.
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 14]])  # IoU 1.0 and 100/140
    hit, found = match(boxes, np.array([0, 0]), np.array([0.5, 0.9]), truth, np.array([0]))
    assert hit.tolist() == [False, True] and found.tolist() == [True]


def test_matching_needs_the_same_class_and_iou_of_one_half() -> None:
    truth = np.array([[0, 0, 10, 10]])
    wrong_class, _ = match(truth, np.array([1]), np.array([0.9]), truth, np.array([0]))
    assert not wrong_class.any()
    half = np.array([[0, 0, 10, 5]])  # IoU exactly 0.5 counts
    below = np.array([[0, 0, 10, 4.9]])
    assert match(half, np.array([0]), np.array([0.9]), truth, np.array([0]))[0].tolist() == [True]
    assert match(below, np.array([0]), np.array([0.9]), truth, np.array([0]))[0].tolist() == [False]


def test_truth_boxes_from_a_yolo_label(tmp_path: Path) -> None:
    label = tmp_path / "x.txt"
    label.write_text("0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.2 0.2\n")
    boxes, classes = evaluation.truth_boxes(label, (100, 200))  # height 100, width 200
    assert np.allclose(boxes, [[80, 30, 120, 70], [0, 0, 40, 20]])
    assert classes.tolist() == [0, 1]


# --- classification -----------------------------------------------------------------------------------


def test_classification_by_hand() -> None:
    truth = [0, 0, 1, 1]
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.1, 0.9]])  # predicted 0, 1, 1, 1
    summary, per_class, matrix = classify_metrics(truth, probabilities, ["normal", "pneumonia"])
    assert matrix.tolist() == [[1, 1], [0, 2]]
    assert summary["accuracy"] == 0.75
    assert [row["precision"] for row in per_class] == pytest.approx([1.0, 2 / 3])
    assert [row["recall"] for row in per_class] == pytest.approx([0.5, 1.0])
    assert [row["f1"] for row in per_class] == pytest.approx([2 / 3, 0.8])
    assert summary["precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert summary["f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    # Every pneumonia image scores above every normal one: AUC 1 although one normal is misclassified.
    assert summary["roc_auc"] == 1.0
    assert [row["images"] for row in per_class] == [2, 2] and [row["predicted"] for row in per_class] == [1, 3]


def test_classification_auc_from_ranks() -> None:
    truth = [0, 1, 0, 1]
    probabilities = np.array([[0.2, 0.8], [0.4, 0.6], [0.7, 0.3], [0.9, 0.1]])
    # Positive scores 0.6, 0.1 vs negative 0.8, 0.3: one pair of four ranked right.
    assert classify_metrics(truth, probabilities, ["a", "b"])[0]["roc_auc"] == 0.25


def test_perfect_classifier_and_single_class_truth() -> None:
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    summary, per_class, matrix = classify_metrics([0, 1, 2], probabilities, ["a", "b", "c"])
    assert summary["accuracy"] == summary["f1"] == summary["roc_auc"] == 1.0
    assert np.array_equal(matrix, np.eye(3, dtype=int))
    only_one, rows, _ = classify_metrics([1, 1], np.array([[0.3, 0.7], [0.6, 0.4]]), ["a", "b"])
    assert only_one["roc_auc"] is None and rows[1]["roc_auc"] is None  # no negatives: no ROC curve
    assert only_one["accuracy"] == 0.5
