"""Several models' predictions of one image made one: weighted box fusion, voted masks, averaged probabilities.

Models trained on folds of a set, or with other seeds, make different mistakes; combining their outputs
per image usually beats each of them. Detection uses weighted box fusion (Solovyev et al. 2021, the
`ensemble-boxes` package): overlapping boxes of one class from all models are averaged, weighted by
their confidence, instead of NMS keeping one and dropping the rest; a box that only some models found
keeps a proportionally lower confidence, so the confidence threshold is applied again after fusing.
Classification averages the class probabilities. Segmentation averages each class's mask over the
models and keeps the pixels at least half of the (weighted) models marked, so two models give their
union and three their majority; the vote and the instances read from it are written here by hand, as
no library votes on masks of differently many instances.

Only the arithmetic is here; which fusion a task uses is its `Task.fuse` (yolo_tools/tasks/), and running
the models over a source is `ensemble`'s job. Each `fuse_*` takes one image's predictions (the first with
its image kept), the models' weights (None: equal) and the confidence threshold, and returns a
`prediction.Prediction` again (`engine.from_arrays`), so outputs, drawings and evaluation treat it like a single
model's.

Examples:
    >>> fused = fuse_detections([prediction_a, prediction_b], weights=None, conf=0.25)
    >>> fuse_boxes([prediction_a, prediction_b])   # (pixel boxes, confidences, classes)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolo_tools import engine
from yolo_tools.prediction import Prediction

WBF_IOU = 0.55  # boxes of one class overlapping this much are the same finding (the package's default)


def fuse_boxes(
    predictions: Sequence[Prediction], weights: Sequence[float] | None = None, iou_thr: float = WBF_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted box fusion of one image's boxes from several models: pixel boxes, confidences, classes."""
    from ensemble_boxes import weighted_boxes_fusion

    height, width = predictions[0].shape
    scale = np.array([width, height, width, height], np.float64)
    boxes = [np.clip(p.boxes / scale, 0.0, 1.0).tolist() for p in predictions]
    if not any(boxes):
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)
    fused, confidences, classes = weighted_boxes_fusion(
        boxes,
        [p.confidences.tolist() for p in predictions],
        [p.classes.tolist() for p in predictions],
        weights=list(weights) if weights is not None else None,
        iou_thr=iou_thr,
        skip_box_thr=0.0,
    )
    return np.asarray(fused).reshape(-1, 4) * scale, np.asarray(confidences), np.asarray(classes).astype(int)


def average_probabilities(probabilities: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """The (weighted) mean of several models' class probabilities for one image."""
    return np.average(np.stack(probabilities), axis=0, weights=weights)


def vote_masks(
    predictions: Sequence[Prediction], n_classes: int, weights: Sequence[float] | None = None
) -> np.ndarray:
    """Per-class masks (classes, H, W) bool: pixels that at least half of the models' weight marks."""
    votes = np.average(np.stack([p.class_masks(n_classes) for p in predictions]), axis=0, weights=weights)
    return votes >= 0.5


def _as_instances(masks: np.ndarray, predictions: Sequence[Prediction]):
    """One instance per class present in the fused masks: its bounding box and the models' mean top confidence."""
    present = [c for c in range(len(masks)) if masks[c].any()]
    boxes, confidences = [], []
    for class_id in present:
        ys, xs = np.nonzero(masks[class_id])
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        tops = [p.confidences[p.classes == class_id].max(initial=0.0) for p in predictions]
        confidences.append(float(np.mean(tops)))
    return (
        np.asarray(boxes, np.float64).reshape(-1, 4),
        np.asarray(confidences),
        np.asarray(present, int),
        masks[present],
    )


def fuse_detections(predictions: Sequence[Prediction], weights: Sequence[float] | None, conf: float) -> Prediction:
    """Boxes fused (`fuse_boxes`), then the threshold again: a box only some models found has a lower confidence."""
    first = predictions[0]
    boxes, confidences, classes = fuse_boxes(predictions, weights)
    return engine.from_arrays(first.image, first.path, first.names, boxes, confidences, classes).above(conf)


def fuse_masks(predictions: Sequence[Prediction], weights: Sequence[float] | None, conf: float) -> Prediction:
    """Masks voted per class (`vote_masks`), one instance per class; each model already kept masks above `conf`."""
    first = predictions[0]
    boxes, confidences, classes, masks = _as_instances(vote_masks(predictions, len(first.names), weights), predictions)
    return engine.from_arrays(first.image, first.path, first.names, boxes, confidences, classes, masks=masks)


def fuse_probabilities(predictions: Sequence[Prediction], weights: Sequence[float] | None, conf: float) -> Prediction:
    """Class probabilities averaged; a classifier's threshold is the task's own (`conf` does not apply)."""
    first = predictions[0]
    probabilities = average_probabilities([p.probabilities for p in predictions], weights)
    return engine.from_arrays(first.image, first.path, first.names, probabilities=probabilities)
