"""The report's pictures, drawn with matplotlib and returned as encoded bytes: curves, matrices, overlays.

Overlays show the ground truth and the prediction side by side on the same image, from the very files
the metrics were computed from: label files (rasterised as for Dice), `eval/predictions.json` and, for
segmentation, the predicted masks in `eval/masks/`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from yolo_tools import evaluation  # noqa: E402
from yolo_tools.metrics import detection  # noqa: E402

COLOURS = plt.get_cmap("tab10").colors
FOUND, ERROR = "#1a9850", "#d73027"  # detection overlays: matched boxes, false positives and misses
PANEL_INCHES = 3.6


def _encode(figure: plt.Figure, kind: str = "png") -> bytes:
    buffer = io.BytesIO()
    options = {"pil_kwargs": {"quality": 85}} if kind == "jpeg" else {}
    figure.savefig(buffer, format=kind, dpi=100, bbox_inches="tight", **options)
    plt.close(figure)
    return buffer.getvalue()


def training_curves(results_csv: Path) -> bytes | None:
    """Losses and validation metrics per epoch from Ultralytics' results.csv."""
    if not results_csv.is_file():
        return None
    table = pd.read_csv(results_csv)
    table.columns = [c.strip() for c in table.columns]
    if "epoch" not in table or table.empty:
        return None
    losses = [c for c in table.columns if c.startswith(("train/", "val/"))]
    metrics = [c for c in table.columns if c.startswith("metrics/")]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for column in losses:
        style = "-" if column.startswith("train/") else "--"
        left.plot(table["epoch"], table[column], style, marker="o", markersize=3, label=column)
    left.set(title="losses (train solid, val dashed)", xlabel="epoch")
    for column in metrics:
        right.plot(table["epoch"], table[column], marker="o", markersize=3, label=column.removeprefix("metrics/"))
    right.set(title="validation metrics", xlabel="epoch", ylim=(0, 1.02))
    for axes in (left, right):
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend(fontsize=7)
    return _encode(figure)


def confusion_matrix(matrix: list[list[int]], classes: list[str]) -> bytes:
    """A confusion matrix of counts (rows: truth, columns: prediction), each cell labelled."""
    values = np.asarray(matrix)
    size = max(3.2, 0.8 * len(classes) + 1.5)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(values, cmap="Blues")
    for (row, column), count in np.ndenumerate(values):
        dark = count > values.max() / 2
        axes.text(column, row, str(count), ha="center", va="center", color="white" if dark else "black")
    axes.set(
        xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
        xlabel="predicted", ylabel="truth", title="confusion matrix (images)",
    )
    plt.setp(axes.get_xticklabels(), rotation=30, ha="right")
    return _encode(figure)


def roc_and_calibration(curves: dict[str, list[float]], point: dict[str, Any] | None, positive: str) -> bytes:
    """ROC curve with the operating point marked, beside the reliability diagram (predicted vs observed rate)."""
    figure, (roc, calibration) = plt.subplots(1, 2, figsize=(2 * PANEL_INCHES, PANEL_INCHES))
    roc.plot(curves["fpr"], curves["tpr"], color=COLOURS[0])
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    if point and "sensitivity" in point:
        roc.plot(1 - point["specificity"], point["sensitivity"], "o", color=ERROR,
                 label=f"{point['rule']}: threshold {point['threshold']:.3f}")
        roc.legend(loc="lower right", fontsize=8)
    roc.set(xlabel="1 - specificity", ylabel=f"sensitivity ({positive})", title="ROC", xlim=(0, 1), ylim=(0, 1.02))
    calibration.plot(curves["calibration_predicted"], curves["calibration_observed"], "o-", color=COLOURS[0])
    calibration.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    if point and "threshold" in point:
        calibration.axvline(point["threshold"], color=ERROR, linewidth=1)
    calibration.set(xlabel=f"predicted p({positive})", ylabel="observed share", title="Calibration", xlim=(0, 1), ylim=(0, 1.02))
    figure.tight_layout()
    return _encode(figure)


def _image_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(path)
    return image[..., ::-1]


def _draw_masks(axes: plt.Axes, masks: np.ndarray) -> None:
    overlay = np.zeros((*masks.shape[1:], 4))
    for class_id, mask in enumerate(masks):
        overlay[mask] = (*COLOURS[class_id % len(COLOURS)], 0.45)
    axes.imshow(overlay)
    for class_id, mask in enumerate(masks):
        if mask.any():
            axes.contour(mask, levels=[0.5], colors=[COLOURS[class_id % len(COLOURS)]], linewidths=0.8)


def _draw_boxes(axes: plt.Axes, boxes: np.ndarray, colours: list, labels: list[str], dashed: bool = False) -> None:
    for (x1, y1, x2, y2), colour, label in zip(boxes, colours, labels):
        axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.2, ec=colour, ls="--" if dashed else "-"))
        if label:
            axes.text(x1, y1 - 2, label, color="white", fontsize=6, va="bottom", bbox={"fc": colour, "ec": "none", "pad": 1})


def overlay(
    image_path: Path,
    label_path: Path,
    findings: list[dict[str, Any]],
    classes: list[str],
    masks: bool,
    masks_path: Path | None = None,
) -> bytes:
    """Ground truth (left) and prediction (right) drawn on one image, as a JPEG.

    `masks`: the task is scored on masks (segment), drawn filled with the predicted boxes dashed; else
    boxes, coloured by the same matching as the metrics."""
    image = _image_rgb(image_path)
    shape = image.shape[:2]
    figure, (truth_axes, pred_axes) = plt.subplots(1, 2, figsize=(2 * PANEL_INCHES, PANEL_INCHES + 0.5))
    for axes, title in ((truth_axes, "ground truth"), (pred_axes, "prediction")):
        axes.imshow(image)
        axes.set_title(title, fontsize=9)
        axes.axis("off")
    boxes = np.array([[f["x1"], f["y1"], f["x2"], f["y2"]] for f in findings]).reshape(-1, 4)
    predicted_classes = np.array([f["class_id"] for f in findings], dtype=int)
    labels = [f"{f['class_name']} {f['confidence']:.2f}" for f in findings]
    if masks:
        _draw_masks(truth_axes, evaluation.truth_masks(label_path, shape, len(classes)))
        if masks_path is not None and masks_path.is_file():
            _draw_masks(pred_axes, evaluation.load_masks(masks_path, len(classes)))
        _draw_boxes(pred_axes, boxes, [COLOURS[c % len(COLOURS)] for c in predicted_classes], labels, dashed=True)
    else:  # the same matching as the metrics: green found, red false positive or missed
        truth, truth_classes = evaluation.truth_boxes(label_path, shape)
        confidences = np.array([f["confidence"] for f in findings])
        hit, found = detection.match(boxes, predicted_classes, confidences, truth, truth_classes)
        _draw_boxes(
            truth_axes,
            truth,
            [FOUND if ok else ERROR for ok in found],
            [classes[c] + ("" if ok else " missed") for c, ok in zip(truth_classes, found)],
        )
        _draw_boxes(
            pred_axes,
            boxes,
            [FOUND if ok else ERROR for ok in hit],
            [label + ("" if ok else " false +") for label, ok in zip(labels, hit)],
        )
    figure.tight_layout()
    return _encode(figure, "jpeg")


def classified(image_path: Path) -> bytes:
    """One classified image, as a JPEG (its truth and prediction go in the report's caption)."""
    figure, axes = plt.subplots(figsize=(PANEL_INCHES, PANEL_INCHES))
    axes.imshow(_image_rgb(image_path))
    axes.axis("off")
    return _encode(figure, "jpeg")


def fold_curves(results: list[tuple[str, Path]], metric: str, best: list[int | None]) -> bytes | None:
    """Learning curves of every fold on one figure: the summed training losses and the held-out metric that
    chose each fold's best epoch (marked), from each fold's results.csv."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    drawn = False
    for index, ((name, path), kept) in enumerate(zip(results, best)):
        if not path.is_file():
            continue
        table = pd.read_csv(path)
        table.columns = [c.strip() for c in table.columns]
        colour = COLOURS[index % len(COLOURS)]
        losses = [c for c in table.columns if c.startswith("train/")]
        if losses:
            left.plot(table["epoch"], table[losses].sum(axis=1), marker="o", markersize=3, color=colour, label=name)
        if metric in table:
            right.plot(table["epoch"], table[metric], marker="o", markersize=3, color=colour, label=name)
            if kept is not None and (table["epoch"] == kept).any():
                right.plot(kept, table.loc[table["epoch"] == kept, metric].iloc[0], "*", markersize=12, color=colour)
        drawn = True
    if not drawn:
        plt.close(figure)
        return None
    left.set(title="training loss (sum of the train/ losses)", xlabel="epoch")
    right.set(title=f"held-out {metric.removeprefix('metrics/')} (star: best epoch)", xlabel="epoch", ylim=(0, 1.02))
    for axes in (left, right):
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend(fontsize=7)
    return _encode(figure)


def reliability(calibration: dict[str, Any], score: str) -> bytes:
    """A reliability diagram: each bin's mean score against the share that came true, the count at each point."""
    figure, axes = plt.subplots(figsize=(PANEL_INCHES + 0.6, PANEL_INCHES))
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.plot(calibration["predicted"], calibration["observed"], "o-", color=COLOURS[0])
    for x, y, n in zip(calibration["predicted"], calibration["observed"], calibration["count"]):
        axes.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7, color="#4a5868")
    axes.set(xlabel=score, ylabel="observed share", title=f"Calibration (ECE {calibration['ece']:.3f})", xlim=(0, 1), ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    return _encode(figure)
