"""Several models as one: weighted box fusion for detection, averaged probabilities and masks otherwise.

Models trained on folds of a set, or with other seeds, make different mistakes; combining their outputs
per image usually beats each of them. Detection uses weighted box fusion (Solovyev et al. 2021, the
`ensemble-boxes` package): overlapping boxes of one class from all models are averaged, weighted by
their confidence, instead of NMS keeping one and dropping the rest; a box that only some models found
keeps a proportionally lower confidence. Classification averages the class probabilities. Segmentation
averages each class's mask over the models and keeps the pixels at least half of the (weighted) models
marked, so two models give their union and three their majority.

The fused result of each image is a `yolo.Prediction` again (`yolo.from_arrays`), so
`predictions.write`, the drawings and `evaluation` treat an ensemble exactly like a single model.

Examples:
    >>> for prediction in predict(["runs/heart/a", "runs/heart/b"], "images/", {"imgsz": 512}):
    ...     print(prediction.path, prediction.boxes)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from yolo_tools import yolo
from yolo_tools.errors import UserError
from yolo_tools.runs import weights_of

WBF_IOU = 0.55  # boxes of one class overlapping this much are the same finding (the package's default)


def fuse_boxes(
    predictions: Sequence[yolo.Prediction], weights: Sequence[float] | None = None, iou_thr: float = WBF_IOU
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
    predictions: Sequence[yolo.Prediction], n_classes: int, weights: Sequence[float] | None = None
) -> np.ndarray:
    """Per-class masks (classes, H, W) bool: pixels that at least half of the models' weight marks."""
    votes = np.average(np.stack([p.class_masks(n_classes) for p in predictions]), axis=0, weights=weights)
    return votes >= 0.5


def _as_instances(masks: np.ndarray, predictions: Sequence[yolo.Prediction]):
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


def fuse(task: str, predictions: Sequence[yolo.Prediction], weights: Sequence[float] | None = None) -> yolo.Prediction:
    """Several models' predictions for the same image (the first with its image kept) combined into one."""
    first = predictions[0]
    if task == "classify":
        probabilities = average_probabilities([p.probabilities for p in predictions], weights)
        return yolo.from_arrays(first.image, first.path, first.names, probabilities=probabilities)
    if task == "segment":
        boxes, confidences, classes, masks = _as_instances(vote_masks(predictions, len(first.names), weights), predictions)
        return yolo.from_arrays(first.image, first.path, first.names, boxes, confidences, classes, masks=masks)
    boxes, confidences, classes = fuse_boxes(predictions, weights)
    return yolo.from_arrays(first.image, first.path, first.names, boxes, confidences, classes)


def fuse_image(task: str, models: Sequence[Any], image: np.ndarray, args: dict[str, Any]) -> yolo.Prediction:
    """One in-memory image (BGR uint8) through already loaded models, fused; for the dashboard."""
    args = {**args, "retina_masks": True} if task == "segment" else args
    fused = fuse(task, [yolo.predict_array(model, image, args) for model in models])
    return fused.above(args.get("conf", yolo.DEFAULT_CONF)) if task == "detect" else fused


def members(runs: Sequence[str | Path]) -> tuple[str, list[Path]]:
    """The weights of each run and their common task; refuses models that disagree on task or classes."""
    weights = [weights_of(run)[0] for run in runs]
    tasks, names = zip(*(yolo.task_and_names(w) for w in weights))
    if len(set(tasks)) > 1:
        raise UserError(f"ensemble: the models do not share a task ({', '.join(sorted(set(tasks)))}): {', '.join(map(str, weights))}")
    for path, other in zip(weights[1:], names[1:]):
        if other != names[0]:
            raise UserError(f"ensemble: {path} has classes {list(other.values())}, {weights[0]} has {list(names[0].values())}")
    return tasks[0], weights


def predict(
    runs: Sequence[str | Path], source: str | list[Path], args: dict[str, Any], weights: Sequence[float] | None = None
) -> Iterator[yolo.Prediction]:
    """Fused predictions, image by image: every model streams over the same source in the same order."""
    task, paths = members(runs)
    if task not in ("detect", "segment", "classify"):
        raise UserError(f"ensemble: {task} models are not supported (detect, segment, classify are)")
    args = dict(args)
    if task == "segment":
        args["retina_masks"] = True  # vote on masks at the image's own size
    streams = [yolo.predict(path, source, args, keep_image=i == 0) for i, path in enumerate(paths)]
    for found in zip(*streams, strict=True):
        if len({str(prediction.path) for prediction in found}) != 1:
            raise UserError(f"ensemble: models read {source} in different orders")
        fused = fuse(task, found, weights)
        if task == "detect":  # a box only some models found has a lower fused confidence: apply the threshold again
            fused = fused.above(args.get("conf", yolo.DEFAULT_CONF))
        yield fused
