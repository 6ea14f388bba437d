"""Dice and IoU per class, for one image or for a whole volume reassembled from its slices.

Convention for empty masks, stated once and used everywhere: when a class is absent from both the
prediction and the ground truth, Dice and IoU are 1.0 (the model correctly found nothing). When only
one of them is empty, both are 0.0. The number of images or volumes that actually contain a class is
reported next to every mean, so a mean lifted by agreeing empties can be read for what it is.

Everything is computed from three pixel counts per class (intersection, predicted, true), so a volume's
3D Dice is exactly the Dice of its stacked slices without holding the volume in memory.

Examples:
    >>> pred = np.zeros((2, 4, 4), bool); true = np.zeros((2, 4, 4), bool)   # 2 classes, 4x4 image
    >>> pred[0, :2] = True; true[0, :1] = True                              # class 0: 8 vs 4 pixels
    >>> dice(overlaps(pred, true))                                          # class 1 empty in both
    array([0.66666667, 1.        ])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

EMPTY_SCORE = 1.0
EMPTY_CONVENTION = "Dice and IoU are 1 when a class is absent from both prediction and ground truth, 0 when absent from only one"


def overlaps(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pixel counts per class: a (C, 3) int array of intersection, predicted and true pixels.

    `pred` and `true` are boolean (C, ...) arrays, one mask per class; any number of spatial axes
    (an image HxW, or a volume DxHxW).
    """
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {true.shape} differ in shape")
    pred = pred.reshape(len(pred), -1).astype(bool)
    true = true.reshape(len(true), -1).astype(bool)
    return np.stack([(pred & true).sum(1), pred.sum(1), true.sum(1)], axis=1).astype(np.int64)


def overlaps_by_threshold(
    masks: np.ndarray, classes: np.ndarray, confidences: np.ndarray, true: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """`overlaps` of one image at each confidence threshold: (C, thresholds, 3) counts of the instance masks
    (N, H, W) whose confidence reaches the threshold, OR-ed per class, against the true (C, H, W) masks.

    Each class's instances are added in falling confidence, one union and two sums each, and every
    threshold reads the counts after the instances it keeps: a sweep over thresholds costs what one
    image's instances cost, not one mask pass per threshold.
    """
    n_classes, true_px = len(true), true.reshape(len(true), -1).sum(1)
    out = np.zeros((n_classes, len(thresholds), 3), np.int64)
    out[:, :, 2] = true_px[:, None]
    for class_id in range(n_classes):
        mine = np.flatnonzero(classes == class_id)
        if not len(mine):
            continue
        mine = mine[np.argsort(-confidences[mine], kind="stable")]
        union = np.zeros(true.shape[1:], bool)
        prefix = [(0, 0)]  # (shared, predicted) after the k most confident instances
        for index in mine:
            union |= masks[index]
            prefix.append((int((union & true[class_id]).sum()), int(union.sum())))
        kept = (confidences[mine][None, :] >= thresholds[:, None]).sum(1)  # instances kept at each threshold
        out[class_id, :, :2] = np.asarray(prefix)[kept]
    return out


def dice(counts: np.ndarray) -> np.ndarray:
    """Dice per class, 2|P∩T| / (|P| + |T|), from `overlaps` counts (or their sum over slices)."""
    counts = np.asarray(counts, dtype=np.float64)
    inter, total = counts[..., 0], counts[..., 1] + counts[..., 2]
    return np.divide(2 * inter, total, out=np.full(inter.shape, EMPTY_SCORE), where=total > 0)


def iou(counts: np.ndarray) -> np.ndarray:
    """IoU (Jaccard) per class, |P∩T| / |P∪T|, from `overlaps` counts."""
    counts = np.asarray(counts, dtype=np.float64)
    inter, union = counts[..., 0], counts[..., 1] + counts[..., 2] - counts[..., 0]
    return np.divide(inter, union, out=np.full(inter.shape, EMPTY_SCORE), where=union > 0)




def volume_scores(slices: pd.DataFrame, counts: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """3D Dice and IoU per class for every volume, from the per-slice counts of its slices.

    Args:
        slices: one row per evaluated slice, with columns `patient`, `volume` and `slice`, in the same
            order as `counts`.
        counts: (slices, C, 3) `overlaps` counts of each slice.
        classes: the C class names.

    Returns:
        One row per volume: patient, volume, slices, then `dice` and `iou` (means over classes) and
        `dice_<class>`, `iou_<class>`, `true_voxels_<class>`, `pred_voxels_<class>` per class. Summing
        each slice's counts equals stacking the slices and counting once, so the result is the Dice of
        the reassembled volume.
    """
    import pandas as pd  # here, not at the top: the tasks import this module, and reading a recipe imports the tasks

    counts = np.asarray(counts).reshape(len(slices), len(classes), 3)
    keys = slices[["patient", "volume"]].astype(str).agg("\x00".join, axis=1).to_numpy()
    order, codes = np.unique(keys, return_inverse=True)
    summed = np.zeros((len(order), len(classes), 3), np.int64)
    np.add.at(summed, codes, counts)
    per_class_dice, per_class_iou = dice(summed), iou(summed)
    table = pd.DataFrame(
        {
            "patient": [key.split("\x00")[0] for key in order],
            "volume": [key.split("\x00")[1] for key in order],
            "slices": np.bincount(codes, minlength=len(order)),
            "dice": per_class_dice.mean(1),
            "iou": per_class_iou.mean(1),
        }
    )
    for index, name in enumerate(classes):
        table[f"dice_{name}"] = per_class_dice[:, index]
        table[f"iou_{name}"] = per_class_iou[:, index]
        table[f"true_voxels_{name}"] = summed[:, index, 2]
        table[f"pred_voxels_{name}"] = summed[:, index, 1]
    return table.sort_values(["patient", "volume"], ignore_index=True)
