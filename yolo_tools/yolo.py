"""Everything that touches Ultralytics: models, devices, train, val, predict, export.

Keeping the library behind one module means an Ultralytics upgrade is a local change, and the rest of
the workbench deals in plain paths and dictionaries.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolo_tools.errors import UserError

LOG = logging.getLogger(__name__)

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


def pick_device(requested: Any = None) -> str:
    """The GPU when there is one, the CPU otherwise; an explicit `device=` always wins."""
    import torch

    if requested not in (None, ""):
        device = str(requested)
    else:
        device = "0" if torch.cuda.is_available() else "cpu"
    name = "CPU" if device == "cpu" else f"GPU {device}"
    if device != "cpu" and torch.cuda.is_available():
        name += f" ({torch.cuda.get_device_name(int(device.split(',')[0]))})"
    print(f"device: {name}")
    return device


def load_model(model: str | Path):
    """A YOLO model from a model YAML (from scratch), local weights, or official weights Ultralytics downloads."""
    from ultralytics import YOLO

    model = str(model)
    if model.endswith(".pt") and Path(model).parent != Path(".") and not Path(model).is_file():
        raise UserError(f"{model}: no such weights file")
    try:
        return YOLO(model)
    except (ConnectionError, OSError) as exc:
        if model.endswith(".pt") and not Path(model).is_file():
            raise UserError(
                f"{model}: not found locally and could not be downloaded ({exc.__class__.__name__}).\n"
                f"  Train from scratch with the model's YAML instead (model={Path(model).stem}.yaml), or\n"
                "  start from a run of your own (model=runs/<recipe>/<run>/weights/best.pt)."
            ) from None
        raise UserError(f"{model}: cannot load model: {exc}") from None
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise UserError(f"{model}: cannot load model: {exc}") from None


def short_metrics(task: str, results: dict[str, float]) -> dict[str, float]:
    return {short: float(results[key]) for key, short in METRIC_NAMES[task].items() if key in results}


def train(model: str, data: Path, run_dir: Path, args: dict[str, Any]) -> dict[str, float]:
    """Train into `run_dir` and return the final validation metrics of the best weights."""
    yolo = load_model(model)
    args = dict(args)
    args["device"] = pick_device(args.get("device"))
    yolo.train(data=str(data), project=str(run_dir.parent), name=run_dir.name, exist_ok=True, **args)
    return short_metrics(yolo.task, yolo.trainer.metrics or {})


def resume(run_dir: Path) -> dict[str, float]:
    """Continue an interrupted run from its last checkpoint, with the arguments it was started with."""
    last = run_dir / "weights" / "last.pt"
    if not last.is_file():
        raise UserError(f"{run_dir}: no weights/last.pt to resume from")
    yolo = load_model(last)
    yolo.train(resume=True)
    return short_metrics(yolo.task, yolo.trainer.metrics or {})


@dataclass(frozen=True)
class Validation:
    """What the validator found: overall metrics, per-class rows (detect, segment) and its plots folder."""

    task: str
    metrics: dict[str, float]
    save_dir: Path
    per_class: list[dict[str, Any]]
    f1_conf: float | None = None  # detect, segment: the confidence where the validator's mean F1 curve peaks


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
    metrics = yolo.val(**args)
    f1_conf = None
    if yolo.task in ("detect", "segment"):
        curves = metrics.seg if yolo.task == "segment" else metrics.box
        f1_conf = f1_confidence(curves.f1_curve, curves.px) if len(curves.f1_curve) else None
    return Validation(
        yolo.task,
        short_metrics(yolo.task, metrics.results_dict),
        Path(metrics.save_dir),
        _per_class(yolo.task, metrics),
        f1_conf,
    )


def f1_confidence(f1_curve: np.ndarray, confidences: np.ndarray) -> float:
    """The confidence where F1 averaged over classes is highest, smoothed as Ultralytics' validator does.

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


def validate(weights: Path, data: Path | None, args: dict[str, Any]) -> tuple[str, dict[str, float], Path]:
    """Validate weights on a dataset; returns the task, the metrics and where plots were saved."""
    result = validate_full(weights, data, args)
    return result.task, result.metrics, result.save_dir


def predict(weights: Path, source: str, args: dict[str, Any]) -> Iterator[Any]:
    """Stream Ultralytics results for `source` (an image, a folder, a glob), batched on the chosen device."""
    yolo = load_model(weights)
    args = {"batch": 16, **args, "stream": True, "verbose": False}
    args["device"] = pick_device(args.get("device"))
    yield from yolo.predict(source=source, **args)


def predict_arrays(weights: Path, images: Iterable[tuple[Path, np.ndarray]], args: dict[str, Any]) -> Iterator[Any]:
    """Like `predict`, for images the workbench mapped itself (DICOM, intensity rules): BGR uint8 arrays.

    Each result keeps its file's path, so the outputs are named after the inputs as with `predict`.
    """
    yolo = load_model(weights)
    args = {"batch": 16, **args, "verbose": False}
    args["device"] = pick_device(args.get("device"))
    pending = iter(images)
    while chunk := list(itertools.islice(pending, args["batch"])):
        paths, arrays = zip(*chunk)
        for path, result in zip(paths, yolo.predict(source=list(arrays), **args)):
            result.path = str(path)
            yield result


@dataclass(frozen=True)
class Prediction:
    """One image's result as plain arrays: boxes in pixels (x1 y1 x2 y2), masks at the image's own size."""

    path: Path
    names: dict[int, str]
    shape: tuple[int, int]
    boxes: np.ndarray
    classes: np.ndarray
    confidences: np.ndarray
    masks: np.ndarray | None
    probabilities: np.ndarray | None


def as_arrays(result: Any) -> Prediction:
    """An Ultralytics result as numpy arrays; masks are scaled to the original image when predicted smaller."""
    shape = tuple(int(v) for v in result.orig_shape)
    boxes, masks, probabilities = result.boxes, result.masks, result.probs
    if masks is not None:
        data = masks.data
        if tuple(data.shape[1:]) != shape:
            from ultralytics.utils.ops import scale_masks

            data = scale_masks(data[None].float(), shape)[0]
        masks = (data > 0.5).cpu().numpy()
    return Prediction(
        path=Path(result.path),
        names=dict(result.names),
        shape=shape,
        boxes=boxes.xyxy.cpu().numpy() if boxes is not None else np.zeros((0, 4)),
        classes=boxes.cls.cpu().numpy().astype(int) if boxes is not None else np.zeros(0, int),
        confidences=boxes.conf.cpu().numpy() if boxes is not None else np.zeros(0),
        masks=masks,
        probabilities=probabilities.data.cpu().numpy() if probabilities is not None else None,
    )


def predict_array_result(model: Any, image: np.ndarray, args: dict[str, Any]) -> Any:
    """One in-memory image (uint8 BGR) through an already loaded model: its Ultralytics result."""
    return model.predict(source=image, verbose=False, **args)[0]


def predict_array(model: Any, image: np.ndarray, args: dict[str, Any]) -> tuple[Prediction, np.ndarray]:
    """One in-memory image (uint8 BGR, as OpenCV reads it) through an already loaded model.

    For callers that keep a model between requests (the dashboard) rather than reloading it per file;
    returns the result as arrays and the image with boxes, masks or class probabilities drawn (BGR).
    """
    result = predict_array_result(model, image, args)
    return as_arrays(result), result.plot()


def results_from_arrays(
    image: np.ndarray,
    path: str | Path,
    names: dict[int, str],
    boxes: np.ndarray | None = None,
    confidences: np.ndarray | None = None,
    classes: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
) -> Any:
    """An Ultralytics result made from plain arrays (e.g. fused from several models' predictions).

    So that combined predictions go through the same writers, plots and scoring as a single model's:
    boxes in pixels (x1 y1 x2 y2), masks (N, H, W) at the image's own size, probabilities (C,).
    """
    import torch
    from ultralytics.engine.results import Results

    box_tensor = mask_tensor = prob_tensor = None
    if boxes is not None:
        rows = np.concatenate(
            [np.asarray(boxes, np.float32).reshape(-1, 4), np.c_[confidences, classes].astype(np.float32)], axis=1
        )
        box_tensor = torch.from_numpy(rows)
    if masks is not None and len(masks):
        mask_tensor = torch.from_numpy(np.asarray(masks, np.float32))
    if probabilities is not None:
        prob_tensor = torch.from_numpy(np.asarray(probabilities, np.float32))
    return Results(image, str(path), dict(names), boxes=box_tensor, masks=mask_tensor, probs=prob_tensor)


def export(weights: Path, args: dict[str, Any]) -> Path:
    yolo = load_model(weights)
    return Path(yolo.export(**args))


def convert_coco(json_file: Path, out_dir: Path, use_segments: bool) -> Path:
    """Ultralytics' COCO converter on one annotation file; returns the folder of YOLO label files it wrote.

    `out_dir` must not exist yet (Ultralytics would otherwise write to `out_dir2`). Category ids are kept
    as they are, minus one (no COCO-91 to COCO-80 mapping), so the caller maps them to its own classes.
    """
    import shutil

    from ultralytics.data.converter import convert_coco as ultralytics_convert_coco

    annotations = out_dir / "annotations"
    annotations.mkdir(parents=True)
    shutil.copyfile(json_file, annotations / "coco.json")
    ultralytics_convert_coco(str(annotations), str(out_dir / "converted"), use_segments=use_segments, cls91to80=False)
    return out_dir / "converted" / "labels" / "coco"


def convert_label_masks(masks_dir: Path, out_dir: Path, classes: int) -> Path:
    """Ultralytics' converter for label-map masks (pixel value = class index + 1, 0 = background).

    One class per pixel and outer outlines only; for overlapping classes or holes use
    `yolo_tools.convert.polygons` instead. Returns the folder of YOLO label files it wrote.
    """
    from ultralytics.data.converter import convert_segment_masks_to_yolo_seg

    convert_segment_masks_to_yolo_seg(str(masks_dir), str(out_dir), classes)
    return out_dir
