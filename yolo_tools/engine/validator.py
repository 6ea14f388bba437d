"""Ultralytics' validator (`YOLO.val`): overall and per-class metrics under the workbench's short names, and
the pieces of its metric arithmetic the workbench's own metrics reuse (AP per class, F1-confidence curves).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolo_tools.engine.devices import pick_device
from yolo_tools.engine.weights import load_model
from yolo_tools.errors import UserError

# Ultralytics' result keys, per task, and the short names the workbench prints and stores.
METRIC_NAMES = {
    "detect": {
        "metrics/precision(B)": "precision",
        "metrics/recall(B)": "recall",
        "metrics/mAP50(B)": "mAP50",
        "metrics/mAP50-95(B)": "mAP50-95",
    },
    "segment": {
        "metrics/precision(B)": "box_precision",
        "metrics/recall(B)": "box_recall",
        "metrics/mAP50(B)": "box_mAP50",
        "metrics/mAP50-95(B)": "box_mAP50-95",
        "metrics/precision(M)": "precision",
        "metrics/recall(M)": "recall",
        "metrics/mAP50(M)": "mAP50",
        "metrics/mAP50-95(M)": "mAP50-95",
    },
    "classify": {"metrics/accuracy_top1": "top1_accuracy", "metrics/accuracy_top5": "top5_accuracy"},
}


def short_metrics(task: str, results: dict[str, float]) -> dict[str, float]:
    return {short: float(results[key]) for key, short in METRIC_NAMES[task].items() if key in results}


@dataclass(frozen=True)
class Validation:
    """What the validator found: overall metrics, per-class rows (detect, segment) and its plots folder."""

    task: str
    metrics: dict[str, float]
    save_dir: Path
    per_class: list[dict[str, Any]]


def _per_class(task: str, metrics: Any) -> list[dict[str, Any]]:
    """The validator's precision, recall, mAP50 and mAP50-95 per class (masks for segment, boxes for detect)."""
    if task not in ("detect", "segment"):
        return []
    metric = metrics.seg if task == "segment" else metrics.box
    rows = []
    for i, class_id in enumerate(metric.ap_class_index):
        rows.append(
            {
                "class": metrics.names[int(class_id)],
                "images": int(metrics.nt_per_image[class_id]),
                "instances": int(metrics.nt_per_class[class_id]),
                "precision": float(metric.p[i]),
                "recall": float(metric.r[i]),
                "mAP50": float(metric.ap50[i]),
                "mAP50-95": float(metric.ap[i]),
            }
        )
    return rows


def validate_full(weights: Path, data: Path | None, args: dict[str, Any]) -> Validation:
    """Validate weights on a dataset: overall and per-class metrics, and where the plots were saved."""
    yolo = load_model(weights)
    args = dict(args)
    args["device"] = pick_device(args.get("device"))
    if data is not None:
        args["data"] = str(data)
    try:
        metrics = yolo.val(**args)
    except FileNotFoundError as exc:  # Ultralytics' own check of data= and the images it names
        raise UserError(f"data={args.get('data')}: {exc}; give a dataset YAML (or a folder for classify) that exists") from None
    return Validation(yolo.task, short_metrics(yolo.task, metrics.results_dict), Path(metrics.save_dir), _per_class(yolo.task, metrics))


def validate(weights: Path, data: Path | None, args: dict[str, Any]) -> tuple[str, dict[str, float], Path]:
    """Validate weights on a dataset; returns the task, the metrics and where plots were saved."""
    result = validate_full(weights, data, args)
    return result.task, result.metrics, result.save_dir


def f1_confidence(f1_curve: np.ndarray, confidences: np.ndarray) -> float:
    """The confidence where F1 averaged over the curves' classes (rows) is highest, smoothed as Ultralytics'
    validator does; one row gives that class's own.

    On a plateau (e.g. `max_det: 1`, where every threshold below the weakest top box gives the same F1)
    the highest confidence of the plateau, where Ultralytics takes the lowest: the same F1, fewer weak findings.
    """
    from ultralytics.utils.metrics import smooth

    f1 = smooth(np.asarray(f1_curve).mean(0), 0.1)
    return float(confidences[int(np.flatnonzero(f1 >= f1.max() - 1e-9)[-1])])


def ap_per_class(tp: np.ndarray, confidences: np.ndarray, classes: np.ndarray, truth_classes: np.ndarray) -> np.ndarray:
    """Ultralytics' AP per true class (rows) and IoU threshold (columns of `tp`), as its validator computes it."""
    from ultralytics.utils.metrics import ap_per_class as ultralytics_ap_per_class

    return ultralytics_ap_per_class(tp, confidences, classes, truth_classes)[5]


def f1_curve(
    tp: np.ndarray, confidences: np.ndarray, classes: np.ndarray, truth_classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ultralytics' F1-confidence curves (per true class, 1000 points) and the confidences they are sampled at."""
    from ultralytics.utils.metrics import ap_per_class as ultralytics_ap_per_class

    result = ultralytics_ap_per_class(tp, confidences, classes, truth_classes)
    return result[9], result[10]
