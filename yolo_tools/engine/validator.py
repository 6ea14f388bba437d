"""Ultralytics' validator (`YOLO.val`): overall and per-class metrics as it reports them (each task names the ones
it reports: yolo_tools/tasks/), and
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

@dataclass(frozen=True)
class Validation:
    """What the validator found: its results under Ultralytics' own keys (`metrics/mAP50(B)`, ...; each task
    names the ones it reports: `Task.short_metrics`), per-class rows of its box and mask metrics where it has
    them ('box', 'seg'; the task says which are its own), and its plots folder."""

    task: str
    results: dict[str, float]
    save_dir: Path
    per_class: dict[str, list[dict[str, Any]]]


def _per_class(metrics: Any) -> dict[str, list[dict[str, Any]]]:
    """The validator's precision, recall, mAP50 and mAP50-95 per class, for boxes ('box') and masks ('seg') where
    its metrics hold them (a detector's boxes, a segmenter's boxes and masks, none for a classifier)."""
    found = {}
    for kind in ("box", "seg"):
        metric = getattr(metrics, kind, None)
        if metric is None:
            continue
        found[kind] = [
            {
                "class": metrics.names[int(class_id)],
                "images": int(metrics.nt_per_image[class_id]),
                "instances": int(metrics.nt_per_class[class_id]),
                "precision": float(metric.p[i]),
                "recall": float(metric.r[i]),
                "mAP50": float(metric.ap50[i]),
                "mAP50-95": float(metric.ap[i]),
            }
            for i, class_id in enumerate(metric.ap_class_index)
        ]
    return found


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
    results = {key: float(value) for key, value in metrics.results_dict.items()}
    return Validation(yolo.task, results, Path(metrics.save_dir), _per_class(metrics))


def validate(weights: Path, data: Path | None, args: dict[str, Any]) -> tuple[str, dict[str, float], Path]:
    """Validate weights on a dataset; returns the task, the results (Ultralytics' keys) and where plots were saved."""
    result = validate_full(weights, data, args)
    return result.task, result.results, result.save_dir


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
