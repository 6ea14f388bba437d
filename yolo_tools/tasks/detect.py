"""Detection: boxes matched to the ground truth per image; found, false positives and misses; our AP.

Ultralytics' validator gives precision, recall and mAP over the split; this adds the per-image errors
at the confidence threshold (chosen on val where F1 peaks, yolo_tools/operating_point.py) and AP
computed from the predictions themselves, so a single model and an ensemble (which the validator cannot
run) are scored by the same code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo_tools import fusion, operating_point
from yolo_tools.codecs.label_lines import LabelLines, read_labels
from yolo_tools.metrics import classification, detection
from yolo_tools.tasks.protocol import (
    VALIDATOR_MEANING, Calibrating, Evaluation, Scores, Scoring, Task, calibrated, intervals_of,
)

if TYPE_CHECKING:  # pandas is imported where tables are made: reading a recipe asks a task for its facts only
    import pandas as pd


def truth_boxes(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth boxes of one image in pixels (x1 y1 x2 y2) and their classes."""
    rows = [(c, xywh) for c, xywh in read_labels(path) if len(xywh) == 4]
    if not rows:
        return np.zeros((0, 4)), np.zeros(0, int)
    height, width = shape
    xywh = np.stack([coords for _, coords in rows]) * [width, height, width, height]
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    return boxes, np.array([c for c, _ in rows], dtype=int)


def score(state: Scoring, prediction: Any) -> tuple[dict[str, Any], tuple]:
    """One image's row; kept: its (classes, 3) found/false-positive/missed counts and what AP needs."""
    boxes, classes = truth_boxes(state.dataset.label_file(state.split, prediction.path.stem), prediction.shape)
    found = (prediction.boxes, prediction.classes, prediction.confidences, boxes, classes)
    hit, matched = detection.match(prediction.boxes, prediction.classes, prediction.confidences, boxes, classes)
    counts = detection.errors_per_class(prediction.classes, hit, classes, matched, len(state.names))
    tp, fp, fn = counts.sum(0)
    fit = detection.best_iou(boxes, classes, prediction.boxes, prediction.classes)
    row = {
        "image": prediction.path.name,
        "boxes_true": len(boxes),
        "boxes_predicted": len(prediction.boxes),
        "found": tp,
        "false_positives": fp,
        "missed": fn,
        "errors": fp + fn,
        "box_iou": fit.mean() if len(fit) else np.nan,
    }
    return row, (counts, found)


def _intervals(evaluation: Evaluation, found: list[tuple]) -> dict[str, Any]:
    per_image, boot = evaluation.per_image, evaluation.boot
    out: dict[str, Any] = {
        "recall_at_conf": boot.ratio(per_image["found"], per_image["found"] + per_image["missed"]),
        "precision_at_conf": boot.ratio(per_image["found"], per_image["boxes_predicted"]),
        "false_positives_per_image": boot.mean(per_image["false_positives"].to_numpy()),
    }
    prepared = detection.ap_inputs(found)  # matched once; each replicate only re-ranks
    images = np.arange(len(per_image))
    replicates = np.stack([detection.ap_of([prepared[i] for i in np.repeat(images, row.astype(int))]) for row in boot.weights])
    out["ap50"] = boot.interval(replicates[:, 0])
    out["ap50_95"] = boot.interval(replicates.mean(1))
    out["box_iou"] = boot.ratio(*_box_iou_sums(per_image))
    return out


def _box_iou_sums(per_image: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per image: the sum of its true boxes' best IoUs, and how many true boxes it has (box_iou is their ratio)."""
    true = per_image["boxes_true"].to_numpy(np.float64)
    return np.nan_to_num(per_image["box_iou"].to_numpy(np.float64)) * true, true


def summarise(state: Scoring, evaluation: Evaluation) -> Scores:
    """The validator's per-class P/R/mAP beside our found/false positives/missed at the threshold."""
    import pandas as pd

    per_image = evaluation.per_image
    counts = np.stack([counts for counts, _ in state.kept]).sum(0)
    found = [f for _, f in state.kept]
    ours = pd.DataFrame(
        {"class": state.names, "found": counts[:, 0], "false_positives": counts[:, 1], "missed": counts[:, 2]}
    )
    validation = evaluation.validation
    validator = pd.DataFrame(
        validation.per_class.get(TASK.validator_per_class, []) if validation else [],
        columns=["class", "images", "instances", "precision", "recall", "mAP50", "mAP50-95"],
    )
    per_class = validator.merge(ours, on="class", how="right")
    metrics: dict[str, Any] = {
        "boxes_true": int(per_image["boxes_true"].sum()),
        "boxes_predicted": int(per_image["boxes_predicted"].sum()),
        "found": int(counts[:, 0].sum()),
        "false_positives": int(counts[:, 1].sum()),
        "missed": int(counts[:, 2].sum()),
        "images_with_errors": int((per_image["errors"] > 0).sum()),
    }
    ap = detection.average_precision(found)
    metrics |= {"ap50": float(ap[0]), "ap50_95": float(ap.mean())}
    metrics["recall_at_conf"] = metrics["found"] / max(metrics["found"] + metrics["missed"], 1)
    metrics["precision_at_conf"] = metrics["found"] / max(metrics["boxes_predicted"], 1)
    metrics["false_positives_per_image"] = metrics["false_positives"] / len(per_image)
    fit, true = _box_iou_sums(per_image)
    metrics["box_iou"] = float(fit.sum() / true.sum()) if true.sum() else float("nan")
    return Scores(per_class, metrics, intervals_of(_intervals(evaluation, found), metrics), evaluation.operating_point)


def choose_conf(state: Scoring) -> dict[str, Any] | None:
    """Per class, the confidence where its F1 at IoU 0.5 peaks, from val predictions made at a floor confidence
    (`operating_point.per_class`); None when none scores."""
    found = detection.f1_confidence(detection.ap_inputs([f for _, f in state.kept], detection.AP_THRESHOLDS[:1]))
    if found is None:
        return None
    overall, by_id = found
    chosen = {state.names[class_id]: conf for class_id, conf in by_id.items()}
    return operating_point.per_class("max F1 at IoU 0.5 per class, from predictions on val", overall, chosen, state.names)


def group_numbers(group: pd.DataFrame) -> dict[str, float]:
    """A group of images' findings, misses and false positives (per_group.csv)."""
    found, missed = group["found"].sum(), group["missed"].sum()
    return {
        "boxes_true": int(group["boxes_true"].sum()),
        "found": int(found),
        "false_positives": int(group["false_positives"].sum()),
        "missed": int(missed),
        "recall": float(found / (found + missed)) if found + missed else np.nan,
        "images_with_errors": int((group["errors"] > 0).sum()),
    }


def conventions(conf: str) -> str:
    return (
        f"a prediction with confidence >= {conf} is found when it overlaps a free true box of its class "
        f"with IoU >= {detection.IOU_THRESHOLD}, greedily by confidence; others are false positives, "
        "unmatched true boxes are missed; precision, recall and mAP come from Ultralytics' validator; "
        "ap50 and ap50_95 are ours (Ultralytics' ap_per_class on the predictions above conf, per class, then averaged)"
    )


def caption(row: pd.Series, classes: list[str], fmt) -> str:
    return (
        f"{row['image']}: {row['found']} found, {row['false_positives']} false positive(s), "
        f"{row['missed']} missed ({row['boxes_true']} true)"
    )


def calibration(given: Calibrating) -> dict[str, Any]:
    """The confidence of each reported test box against whether it is a true finding (IoU >= 0.5, matched as the
    metrics match)."""
    by_image: dict[str, list[dict[str, Any]]] = {}
    for record in given.findings():
        by_image.setdefault(record["image"], []).append(record)
    outcome, scores = [], []
    for image, found_boxes in by_image.items():
        width, height = given.image_size(image)
        truth, truth_classes = truth_boxes(given.label_file(image), (height, width))
        boxes = np.array([[f["x1"], f["y1"], f["x2"], f["y2"]] for f in found_boxes])
        confidences = np.array([f["confidence"] for f in found_boxes])
        hit, _ = detection.match(boxes, np.array([f["class_id"] for f in found_boxes]), confidences, truth, truth_classes)
        outcome.append(hit)
        scores.append(confidences)
    found = classification.reliability(np.concatenate(outcome or [np.zeros(0)]), np.concatenate(scores or [np.zeros(0)]))
    return calibrated("the confidence of each reported test box against whether it is a true finding (IoU >= 0.5)", found)


TASK = Task(
    name="detect",
    summary="boxes",
    label_lines=LabelLines(polygons=False, wanted="4 (x y w h)"),  # a polygon is no box
    validator_metrics={
        "metrics/precision(B)": "precision",
        "metrics/recall(B)": "recall",
        "metrics/mAP50(B)": "mAP50",
        "metrics/mAP50-95(B)": "mAP50-95",
    },
    validator_per_class="box",
    labels="boxes",
    kind="object detection",
    fused_as="boxes fused by weighted box fusion, the threshold applied again after fusing",
    curve_metric="metrics/mAP50-95(B)",
    conf_criterion="F1",
    paired={
        "recall_at_conf": lambda t: (t["found"].to_numpy(float), (t["found"] + t["missed"]).to_numpy(float)),
        "precision_at_conf": lambda t: (t["found"].to_numpy(float), t["boxes_predicted"].to_numpy(float)),
        "false_positives_per_image": lambda t: (t["false_positives"].to_numpy(float), np.ones(len(t))),
        "missed_per_image": lambda t: (t["missed"].to_numpy(float), np.ones(len(t))),
    },
    slices=True,
    calibration=calibration,
    score=score,
    summarise=summarise,
    headline=("recall_at_conf", "precision_at_conf", "false_positives_per_image", "ap50", "ap50_95", "box_iou"),
    per_image_metric={"column": "errors", "higher_is_better": False},
    conventions=conventions,
    group_numbers=group_numbers,
    meaning={
        **VALIDATOR_MEANING,
        "boxes_true": "findings marked in the ground truth",
        "boxes_predicted": "findings the model reported at the confidence threshold",
        "found": "reported findings that match a true one (IoU >= 0.5, same class)",
        "false_positives": "reported findings that match no true one",
        "missed": "true findings the model did not report",
        "images_with_errors": "images with at least one false positive or miss",
        "ap50": "our AP at IoU 0.5 from the findings above the threshold, per class then averaged (Ultralytics' ap_per_class)",
        "ap50_95": "the same, averaged over IoU 0.5 to 0.95",
        "recall_at_conf": "found / (found + missed) at the confidence threshold",
        "precision_at_conf": "found / reported at the confidence threshold",
        "false_positives_per_image": "reported findings matching no true one, per image",
        "box_iou": "how well the boxes fit: each true box's IoU with the predicted box of its class overlapping it most (0 when none), averaged over true boxes",
    },
    count_columns=("found", "false_positives", "missed", "errors", "boxes_true", "boxes_predicted", "images_with_errors"),
    decides_by="confidence",
    choose_conf=choose_conf,
    findings_columns=r"^(boxes_true)$",
    caption=caption,
    fuse=fusion.fuse_detections,
    validator_plots=(
        ("confusion_matrix_normalized.png", "Confusion matrix (Ultralytics' validator, normalised per true class)"),
        ("BoxPR_curve.png", "Precision-recall curve (Ultralytics' validator)"),
    ),
    gallery_note="Ground truth left, prediction right: green found, red missed (left) or false positive (right).",
    gallery_note_html='Ground truth left, prediction right: <span class="found">green</span> found, '
    '<span class="error">red</span> missed (left) or false positive (right). ',
)
