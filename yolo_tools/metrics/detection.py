"""Per-image false positives and misses: predictions matched to ground-truth boxes, greedily by confidence.

Precision, recall, mAP50 and mAP50-95 over the whole split come from Ultralytics' validator (see
`yolo_tools.engine.validate_full`); what it does not give is which images hold the errors, which is what a
reader checks first. A prediction is a true positive when it overlaps a not yet matched ground-truth
box of its own class with IoU >= 0.5; predictions are taken in order of confidence, highest first, and
each takes the free box it overlaps most. Unmatched predictions are false positives, unmatched boxes
are misses.

Examples:
    >>> truth = np.array([[0, 0, 10, 10]]); truth_cls = np.array([0])
    >>> boxes = np.array([[1, 1, 10, 10], [50, 50, 60, 60]]); cls = np.array([0, 0]); conf = np.array([.9, .8])
    >>> match(boxes, cls, conf, truth, truth_cls)
    (array([ True, False]), array([ True]))
"""

from __future__ import annotations

import numpy as np

IOU_THRESHOLD = 0.5


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4), corners x1 y1 x2 y2: an (N, M) array."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def best_iou(truth: np.ndarray, truth_classes: np.ndarray, boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """For each true box, the IoU of the predicted box of its class that overlaps it most (0 when none does).

    How well a finding is outlined, beside whether it counts as found: at IoU 0.5 a heart box is "found",
    but a cardiothoracic ratio read from it needs its edges.
    """
    same = np.asarray(truth_classes)[:, None] == np.asarray(classes)[None, :]
    return (box_iou(truth, boxes) * same).max(1, initial=0.0)


def match(
    boxes: np.ndarray,
    classes: np.ndarray,
    confidences: np.ndarray,
    truth: np.ndarray,
    truth_classes: np.ndarray,
    iou_threshold: float = IOU_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """Which predictions are true positives and which ground-truth boxes were found.

    Returns two boolean arrays: one per prediction (True = matched, False = false positive) and one
    per ground-truth box (True = found, False = missed).
    """
    classes, truth_classes = np.asarray(classes).reshape(-1), np.asarray(truth_classes).reshape(-1)
    hit = np.zeros(len(classes), bool)
    found = np.zeros(len(truth_classes), bool)
    if not len(classes) or not len(truth_classes):
        return hit, found
    overlap = box_iou(boxes, truth)
    overlap[classes[:, None] != truth_classes[None, :]] = 0.0  # only boxes of the same class can match
    for index in np.argsort(-np.asarray(confidences).reshape(-1), kind="stable"):
        candidates = np.where(found, -1.0, overlap[index])
        best = int(candidates.argmax())
        if candidates[best] >= iou_threshold:
            hit[index] = found[best] = True
    return hit, found


def errors_per_class(
    classes: np.ndarray, hit: np.ndarray, truth_classes: np.ndarray, found: np.ndarray, n_classes: int
) -> np.ndarray:
    """(n_classes, 3) counts of true positives, false positives and misses for one image."""
    classes, truth_classes = np.asarray(classes, int).reshape(-1), np.asarray(truth_classes, int).reshape(-1)
    tp = np.bincount(classes[hit], minlength=n_classes)
    fp = np.bincount(classes[~hit], minlength=n_classes)
    fn = np.bincount(truth_classes[~found], minlength=n_classes)
    return np.stack([tp, fp, fn], axis=1)


AP_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def ap_inputs(
    images: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    thresholds: np.ndarray = AP_THRESHOLDS,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per image: which predictions are true positives at each IoU threshold (n, T), their confidences,
    classes, and the true classes; what `ap_of` ranks. Matching is done once, so a bootstrap only re-ranks."""
    prepared = []
    for boxes, classes, confidences, truth, truth_classes in images:
        hits = [match(boxes, classes, confidences, truth, truth_classes, iou_threshold=t)[0] for t in thresholds]
        prepared.append((np.stack(hits, axis=1), np.reshape(confidences, -1), np.reshape(classes, -1), np.reshape(truth_classes, -1)))
    return prepared


def ap_of(prepared: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """AP at each IoU threshold, per class (Ultralytics' `ap_per_class`) and then averaged over the true classes.

    NaN when there is nothing to find. Per class first, as Ultralytics' validator does, so that a
    frequent class does not drown a rare one and single models and ensembles compare.
    """
    from yolo_tools.engine import ap_per_class

    n_thresholds = prepared[0][0].shape[1] if prepared else len(AP_THRESHOLDS)
    if not prepared or not sum(len(item[3]) for item in prepared):
        return np.full(n_thresholds, np.nan)
    tp, confidences, classes, truth = (np.concatenate(parts) for parts in zip(*prepared))
    return ap_per_class(tp.reshape(-1, n_thresholds), confidences, classes, truth).mean(0)


def average_precision(
    images: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    thresholds: np.ndarray = AP_THRESHOLDS,
) -> np.ndarray:
    """AP at each IoU threshold over a split, per class then averaged, from the predictions given.

    For scoring anything that yields boxes the same way, a single model or an ensemble whose fused boxes
    Ultralytics' validator cannot see. `images` holds per image (boxes, classes, confidences, truth boxes,
    truth classes). Only the predictions passed in count, so AP over predictions above a threshold is lower
    than the validator's, which sweeps from confidence 0.001; compare like with like.
    """
    return ap_of(ap_inputs(images, thresholds))


def f1_confidence(prepared: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> tuple[float, dict[int, float]] | None:
    """The confidence where F1 at IoU 0.5 (mean over classes) peaks, and each true class's own peak (by class
    id), from `ap_inputs` of low-threshold predictions; None when nothing is there to find, or when no
    prediction found any of it (F1 0 at every confidence: its "peak" would be the top of that flat curve,
    a confidence of 1.0 that hides every finding). A class never found is left out of the per-class peaks.

    Computed from the very predictions `predict` and `evaluate` make, so the threshold fits their
    confidences (the validator letterboxes differently, e.g. 160 px for imgsz=128, and scores differ).
    """
    from yolo_tools.engine import f1_confidence as peak, f1_curve

    if not prepared or not sum(len(item[3]) for item in prepared):
        return None
    tp, confidences, classes, truth = (np.concatenate(parts) for parts in zip(*prepared))
    curves, x = f1_curve(tp.reshape(len(confidences), -1)[:, :1], confidences, classes, truth)
    if not len(curves):
        return None
    if not curves.max() > 0:
        return None
    classes = np.unique(truth)  # the curves' rows: true classes, sorted
    per_class = {int(c): peak(curves[i : i + 1], x) for i, c in enumerate(classes) if curves[i].max() > 0}
    return peak(curves, x), per_class