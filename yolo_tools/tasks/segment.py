"""Segmentation: Dice and IoU per class and image, HD95 and surface Dice, 3D Dice per volume.

Ground truth is the dataset's published masks where the converter kept them, else its polygons filled;
predictions are the model's masks at the image's own size (`retina_masks`), OR-ed per class. When the
dataset lists the slices of its volumes (`slices.csv`), each volume is scored with its slices stacked: 3D
Dice from the slices' pixel counts, 3D HD95 and surface Dice on the stacked masks in mm (volumes.json's
spacing), and the Dice each class would have with only its largest connected component kept, which decides
the run's post-processing (yolo_tools/postprocess.py; per image for images that are no volume's slices).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo_tools import fusion, operating_point, postprocess
from yolo_tools.codecs import mask_png
from yolo_tools.codecs.label_lines import LabelLines, read_labels
from yolo_tools.codecs.polygons import polygons_to_mask
from yolo_tools.errors import UserError
from yolo_tools.metrics import bootstrap, detection, segmentation, surface
from yolo_tools.prediction import mask_boxes
from yolo_tools.tasks.protocol import VALIDATOR_MEANING, Calibrating, Evaluation, Scores, Scoring, Task, intervals_of

if TYPE_CHECKING:  # pandas is imported where tables are made: reading a recipe asks a task for its facts only
    import pandas as pd


def truth_masks(path: Path, shape: tuple[int, int], n_classes: int) -> np.ndarray:
    """Ground-truth masks of one image, (classes, H, W) bool: each polygon filled with `cv2.fillPoly`, OR-ed per class."""
    polygons: list[list[np.ndarray]] = [[] for _ in range(n_classes)]
    for class_id, coords in read_labels(path):
        polygons[class_id].append(coords.reshape(-1, 2))
    return np.stack([polygons_to_mask(polygons[c], shape).astype(bool) for c in range(n_classes)])


def score(state: Scoring, prediction: Any) -> tuple[dict[str, Any], np.ndarray]:
    """Dice/IoU and HD95/NSD per class; against the published masks when the dataset kept them, else its polygons.

    Kept: the image's (classes, 3) pixel counts (shared, predicted, true) for pooled and 3D Dice.
    """
    names, stem = state.names, prediction.path.stem
    predicted = prediction.class_masks(len(names))
    truth = _truth(state, prediction)
    counts = segmentation.overlaps(predicted, truth)
    hd95, nsd = surface.surface_scores(predicted, truth, state.spacing.get(stem))
    if state.masks_dir:
        mask_png.save(predicted, state.masks_dir / f"{stem}.png")
    dice, iou = segmentation.dice(counts), segmentation.iou(counts)
    box_iou = _box_fit(predicted, truth)
    volumes = state.volume_slices
    where = volumes.slice_of.get(stem) if volumes else None
    if where is not None:
        _hold_slice(state, where, predicted, truth)
        largest = np.full(len(names), np.nan)  # a slice's share of its volume's: see per_patient.csv
    else:
        largest = segmentation.dice(segmentation.overlaps(postprocess.keep_largest(predicted, range(len(names))), truth))
    row: dict[str, Any] = {
        "image": prediction.path.name, "dice": dice.mean(), "iou": iou.mean(),
        "hd95": np.nanmean(hd95) if np.isfinite(hd95).any() else np.nan, "nsd": nsd.mean(),
    }
    for index, name in enumerate(names):
        row |= {
            f"dice_{name}": dice[index],
            f"iou_{name}": iou[index],
            f"hd95_{name}": hd95[index],
            f"nsd_{name}": nsd[index],
            f"box_iou_{name}": box_iou[index],
            f"dice_largest_{name}": largest[index],
            f"true_px_{name}": counts[index, 2],
            f"pred_px_{name}": counts[index, 1],
        }
    return row, counts


def _hold_slice(state: Scoring, where: tuple[str, int], predicted: np.ndarray, truth: np.ndarray) -> None:
    """Keep a volume's slices until all have come, then score the stacked volume (`_volume_row`)."""
    volume, index = where
    held = state.pending.setdefault("slices", {}).setdefault(volume, [])
    held.append((index, predicted, truth))
    if len(held) == state.volume_slices.counts[volume]:
        del state.pending["slices"][volume]
        held.sort(key=lambda item: item[0])
        stacked_pred = np.stack([p for _, p, _ in held], axis=1)  # (classes, slices, H, W)
        stacked_true = np.stack([t for _, _, t in held], axis=1)
        state.pending.setdefault("volumes", []).append(_volume_row(state, volume, stacked_pred, stacked_true))


def _volume_row(state: Scoring, volume: str, predicted: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """A whole volume's 3D HD95 and surface Dice per class (mm where volumes.json gives the spacing, else voxels),
    and the Dice each class would have with only its largest 3D component kept."""
    spacing = state.volume_slices.spacing.get(volume)
    hd95, nsd = surface.surface_scores(predicted, truth, spacing)
    largest = segmentation.dice(segmentation.overlaps(postprocess.keep_largest(predicted, range(len(predicted))), truth))
    row: dict[str, Any] = {"volume": volume, "hd95": np.nanmean(hd95) if np.isfinite(hd95).any() else np.nan, "nsd": nsd.mean()}
    for index, name in enumerate(state.names):
        row |= {f"hd95_{name}": hd95[index], f"nsd_{name}": nsd[index], f"dice_largest_{name}": largest[index]}
    return row


def _truth(state: Scoring, prediction: Any) -> np.ndarray:
    """The image's true (classes, H, W) masks: the published ones where the converter kept them, else its polygons filled."""
    n_classes, published = len(state.names), state.dataset.mask_file(state.split, prediction.path.stem)
    if published is not None and published.is_file():
        truth = mask_png.load(published, n_classes)
        if truth.shape[1:] != tuple(prediction.shape):
            raise UserError(f"{published}: mask is {truth.shape[2]}x{truth.shape[1]} but its image {prediction.path} is {prediction.shape[1]}x{prediction.shape[0]}")
        return truth
    return truth_masks(state.dataset.label_file(state.split, prediction.path.stem), prediction.shape, n_classes)


# The confidences a segmenter's operating point is chosen among (Ultralytics' F1 curves sample 1000 points;
# Dice moves only where an instance drops out, so a hundredth is fine enough).
SWEEP = np.round(np.arange(0.01, 1.0, 0.01), 2)


def sweep(state: Scoring, prediction: Any) -> tuple[dict[str, Any], np.ndarray]:
    """While choosing the operating point: the image's (classes, thresholds, 3) overlap counts at each of `SWEEP`."""
    masks = prediction.masks if prediction.masks is not None else np.zeros((0, *prediction.shape), bool)
    counts = segmentation.overlaps_by_threshold(masks, prediction.classes.astype(int), prediction.confidences, _truth(state, prediction), SWEEP)
    return {}, counts


def choose_conf(state: Scoring) -> dict[str, Any] | None:
    """Per class, the confidence where its Dice pooled over the val images peaks, from val predictions made at a
    floor confidence; on a plateau the highest (the same Dice, fewer weak findings). Dice, not the validator's
    F1 at mask IoU 0.5: it is what evaluate reports, and it is computed from the very predictions `predict`
    makes, whose confidences differ from the validator's (another letterbox). Pooled (every pixel counted
    together, as a volume's Dice counts its slices), not averaged over images: an empty slice scores 1 when
    nothing is predicted and would pull the threshold up (hippocampus, 3D Dice: averaged 0.801, pooled
    0.806). A class no val image holds, or one no prediction ever overlapped (Dice 0 at every confidence,
    whose "peak" would be the top of the sweep and hide it), gets the peak of the mean over classes;
    None when no class is found at all (or val holds none), so no threshold that hides everything is stored."""
    if not state.kept:
        return None
    counts = np.stack(state.kept)  # (images, classes, thresholds, 3)
    per_class = segmentation.dice(counts.sum(0))  # (classes, thresholds): pooled over the val images

    def peak(curve: np.ndarray) -> float:
        return float(SWEEP[np.flatnonzero(curve >= curve.max() - 1e-9)[-1]])

    present = counts[:, :, 0, 2].sum(0) > 0
    found = present & (counts[:, :, :, 0].sum((0, 2)) > 0)  # true pixels, and some overlapped at some confidence
    if not found.any():
        return None
    chosen = {name: peak(per_class[i]) for i, name in enumerate(state.names) if found[i]}
    rule = "max Dice per class, from predictions on val"
    return operating_point.per_class(rule, peak(per_class.mean(0)), chosen, state.names)


def _box_fit(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per class, the IoU of the bounding boxes of the predicted and the true mask: the box a segmentation
    gives, comparable with a detector's `box_iou` on the same images. NaN where the truth has no such
    class, 0 where only the prediction lacks it."""
    (pred_boxes, pred_any), (true_boxes, true_any) = mask_boxes(predicted), mask_boxes(truth)
    fit = np.diagonal(detection.box_iou(pred_boxes, true_boxes)) * pred_any
    return np.where(true_any, fit, np.nan)


def _unit(images: pd.Series, spacing: dict[str, tuple[float, float]]) -> str:
    known = images.map(lambda image: Path(str(image)).stem in spacing)
    return "mm" if known.all() else "px" if not known.any() else "mm where the spacing is known, else px (mixed)"


def _intervals(evaluation: Evaluation, counts: np.ndarray) -> dict[str, Any]:
    per_image, boot = evaluation.per_image, evaluation.boot
    out: dict[str, Any] = {"dice": boot.mean(per_image["dice"].to_numpy()), "iou": boot.mean(per_image["iou"].to_numpy())}
    pooled = np.einsum("bi,ick->bck", boot.weights, counts.astype(np.float64))  # each replicate's pixel counts per class
    out["dice_pooled"] = boot.interval(segmentation.dice(pooled).mean(1))
    for name in ("hd95", "nsd"):
        if name in per_image:
            out[name] = boot.mean(per_image[name].to_numpy())
    return out


def _volume_intervals(volumes: pd.DataFrame, names: list[str]) -> dict[str, Any]:
    """95% bootstrap intervals of the per-volume means, resampling patients (a patient's volumes together)."""
    boot = bootstrap.Bootstrap(volumes["patient"].astype(str).tolist())
    columns = {"dice_3d": "dice", **{f"dice_3d_{n}": f"dice_{n}" for n in names}}
    if "hd95" in volumes:
        columns |= {"hd95_3d": "hd95", "nsd_3d": "nsd", **{f"hd95_3d_{n}": f"hd95_{n}" for n in names}}
    return {metric: boot.mean(volumes[column].to_numpy(np.float64)) for metric, column in columns.items()}


def choose_postprocessing(state: Scoring, decided_on: str) -> dict[str, Any]:
    """Whether to keep only each class's largest connected component (yolo_tools/postprocess.py), from the Dice of
    every scored volume (3D) or, for images that are no volume's slices, every image (2D), without and with it."""
    import pandas as pd

    names, volumes = state.names, state.pending.get("volumes")
    if volumes:
        table, dimensions = pd.DataFrame(volumes), 3
        counts = np.stack(state.kept)
        slices = state.volume_slices
        summed: dict[str, np.ndarray] = {}
        for image, kept in zip(state.rows, counts):
            volume = slices.slice_of[Path(image["image"]).stem][0]
            summed[volume] = summed.get(volume, 0) + kept
        dice = np.stack([segmentation.dice(summed[v]) for v in table["volume"]])
    else:
        table, dimensions = pd.DataFrame(state.rows), 2
        dice = table[[f"dice_{name}" for name in names]].to_numpy(np.float64)
    largest = table[[f"dice_largest_{name}" for name in names]].to_numpy(np.float64)
    return postprocess.decide(names, dice, largest, decided_on, dimensions)


def summarise(state: Scoring, evaluation: Evaluation) -> Scores:
    """Per-class and overall Dice/IoU; per-volume 3D scores when the dataset lists its slices."""
    import pandas as pd

    per_image, names, dataset = evaluation.per_image, state.names, state.dataset
    counts = np.stack(state.kept)  # (images, classes, 3)
    pooled = counts.sum(0)
    per_class = pd.DataFrame(
        {
            "class": names,
            "images": (counts[:, :, 2] > 0).sum(0),
            "dice_mean": segmentation.dice(counts).mean(0),
            "iou_mean": segmentation.iou(counts).mean(0),
            "dice_pooled": segmentation.dice(pooled),
            "iou_pooled": segmentation.iou(pooled),
            "hd95_mean": [per_image[f"hd95_{name}"].mean() for name in names],  # NaN (undefined) left out
            "hd95_defined": [int(per_image[f"hd95_{name}"].notna().sum()) for name in names],
            "nsd_mean": [per_image[f"nsd_{name}"].mean() for name in names],
            "box_iou_mean": [per_image[f"box_iou_{name}"].mean() for name in names],  # images holding the class
        }
    )
    metrics: dict[str, Any] = {
        "dice": float(per_class["dice_mean"].mean()),
        "iou": float(per_class["iou_mean"].mean()),
        "dice_pooled": float(per_class["dice_pooled"].mean()),
        "hd95": float(per_image["hd95"].mean()),
        "nsd": float(per_image["nsd"].mean()),
        "box_iou": float(per_class["box_iou_mean"].mean()),
        "distance_unit": _unit(per_image["image"], state.spacing),
        "nsd_tolerance": surface.TOLERANCE,
        "truth": "published masks" if dataset.masks(state.split).is_dir() else "polygons of the label files",
    }
    volumes = None
    slices = dataset.slices()
    if slices is not None:
        slices["stem"] = slices["image"].map(lambda name: Path(str(name)).stem)
        position = {Path(name).stem: i for i, name in enumerate(per_image["image"])}
        slices = slices[slices["stem"].isin(position)].sort_values(["patient", "volume", "slice"])
        if len(slices):
            volumes = segmentation.volume_scores(slices, counts[slices["stem"].map(position).to_numpy()], names)
            measured = state.pending.get("volumes")
            if measured:  # the stacked volumes' surface distances and largest-component Dice (`_volume_row`)
                volumes = volumes.merge(pd.DataFrame(measured), on="volume", how="left")
            per_class["dice_3d_mean"] = [volumes[f"dice_{name}"].mean() for name in names]
            metrics |= {
                "dice_3d": float(volumes["dice"].mean()),
                **{f"dice_3d_{name}": float(volumes[f"dice_{name}"].mean()) for name in names},
                "volumes": len(volumes),
                "patients": int(volumes["patient"].nunique()),
            }
            if "hd95" in volumes:
                per_class["hd95_3d_mean"] = [volumes[f"hd95_{name}"].mean() for name in names]
                metrics |= {
                    "hd95_3d": float(volumes["hd95"].mean()),
                    **{f"hd95_3d_{name}": float(volumes[f"hd95_{name}"].mean()) for name in names},
                    "nsd_3d": float(volumes["nsd"].mean()),
                    "distance_unit_3d": "mm" if set(volumes["volume"]) <= set(state.volume_slices.spacing) else "voxels",
                }
    found = _intervals(evaluation, counts)
    if volumes is not None:
        found |= _volume_intervals(volumes, names)
    intervals = intervals_of(found, metrics)
    return Scores(per_class, metrics, intervals, evaluation.operating_point, per_patient=volumes)


def group_numbers(group: pd.DataFrame) -> dict[str, float]:
    """A group of images' mean Dice and IoU (per_group.csv)."""
    return {"dice": float(group["dice"].mean()), "iou": float(group["iou"].mean())}


def conventions(conf: str) -> str:
    return (
        f"the masks of findings with confidence >= {conf}, OR-ed per class, against the true masks; "
        + segmentation.EMPTY_CONVENTION
        + "; dice_mean averages images, dice_pooled counts all pixels of the split together, "
        "dice_3d is per volume (its slices stacked) averaged over volumes"
    )


def caption(row: pd.Series, classes: list[str], fmt) -> str:
    parts = ", ".join(f"{name} {fmt(row[f'dice_{name}'])}" for name in classes)
    return f"{row['image']}: Dice {fmt(row['dice'])} ({parts})"


def calibration(given: Calibrating) -> dict[str, Any]:
    return {"what": None, "note": "not computed for segment models: a mask's confidence is not a chance of a pixel being right"}


TASK = Task(
    name="segment",
    summary="masks",
    label_lines=LabelLines(polygons=True, wanted="4 (a box) or an even number >= 6 (a polygon)"),
    model_suffix="-seg",
    validator_metrics={
        "metrics/precision(B)": "box_precision",
        "metrics/recall(B)": "box_recall",
        "metrics/mAP50(B)": "box_mAP50",
        "metrics/mAP50-95(B)": "box_mAP50-95",
        "metrics/precision(M)": "precision",
        "metrics/recall(M)": "recall",
        "metrics/mAP50(M)": "mAP50",
        "metrics/mAP50-95(M)": "mAP50-95",
    },
    validator_per_class="seg",
    labels="masks",
    kind="instance segmentation",
    fused_as="masks kept where at least half of the models mark them",
    curve_metric="metrics/mAP50-95(M)",
    conf_criterion="Dice",
    calibration=calibration,
    paired={
        "dice": lambda t: (t["dice"].to_numpy(float), np.ones(len(t))),
        "iou": lambda t: (t["iou"].to_numpy(float), np.ones(len(t))),
    },
    score=score,
    summarise=summarise,
    headline=("dice", "iou", "dice_pooled", "hd95", "nsd"),
    per_image_metric={"column": "dice", "higher_is_better": True},
    conventions=conventions,
    group_numbers=group_numbers,
    meaning={
        **VALIDATOR_MEANING,
        "box_precision": "precision of the findings' boxes",
        "box_recall": "recall of the findings' boxes",
        "box_mAP50": "mAP50 of the findings' boxes",
        "box_mAP50-95": "mAP50-95 of the findings' boxes",
        "dice": "overlap of predicted and true area, 2 x shared / (predicted + true); 1 identical, 0 disjoint; mean over images and classes",
        "iou": "shared area / combined area (Jaccard); mean over images and classes",
        "dice_pooled": "Dice with every pixel of the split counted together, so large structures weigh more",
        "dice_3d": "Dice of each whole volume, its slices stacked, averaged over volumes and classes",
        "hd95_3d": "95th percentile of the distances between predicted and true surfaces of each whole volume (mm where "
        "the spacing is known, else voxels), averaged over volumes and classes where defined; lower is better",
        "nsd_3d": "surface Dice of each whole volume (tolerance in mm), averaged over volumes and classes",
        "volumes": "3D volumes evaluated",
        "patients": "patients evaluated",
        "hd95": "95th percentile of the distances between predicted and true outlines (mm where the spacing is known, else pixels); lower is better",
        "nsd": "surface Dice: share of both outlines within the tolerance of the other (1 = all within)",
        "box_iou": "IoU of the bounding boxes of the predicted and the true mask, per class over the images holding it, then averaged: the box a segmentation gives, comparable with a detector's box_iou",
    },
    count_columns=("slices", "volumes", "patients", "(true|pred)_(px|voxels)_.+"),
    decides_by="confidence",
    predict_args={"retina_masks": True},  # masks at the image's own size, like the ground truth
    saves_masks=True,
    findings_columns=r"^(true_px_.*)$",
    caption=caption,
    fuse=fusion.fuse_masks,
    choose_conf=choose_conf,
    choose_score=sweep,
    choose_postprocessing=choose_postprocessing,
    validator_plots=(
        ("confusion_matrix_normalized.png", "Confusion matrix (Ultralytics' validator, normalised per true class)"),
        ("MaskPR_curve.png", "Precision-recall curve of the masks (Ultralytics' validator)"),
    ),
    gallery_note="Ground truth left, prediction right: filled areas are the masks Dice is computed from; dashed boxes are the predicted instances.",
    gallery_note_html="Ground truth left, prediction right: filled areas are the masks Dice is computed from, one colour "
    "per class; dashed boxes are the predicted instances. ",
)
