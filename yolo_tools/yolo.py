"""Everything that touches Ultralytics: models, devices, train, val, predict, export.

Keeping the library behind one module means an Ultralytics upgrade is a local change, and the rest of
the workbench deals in plain paths and dictionaries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def validate(weights: Path, data: Path | None, args: dict[str, Any]) -> tuple[str, dict[str, float], Path]:
    """Validate weights on a dataset; returns the task, the metrics and where plots were saved."""
    yolo = load_model(weights)
    args = dict(args)
    args["device"] = pick_device(args.get("device"))
    if data is not None:
        args["data"] = str(data)
    metrics = yolo.val(**args)
    return yolo.task, short_metrics(yolo.task, metrics.results_dict), Path(metrics.save_dir)


def predict(weights: Path, source: str, args: dict[str, Any]) -> Iterator[Any]:
    """Stream Ultralytics results for `source` (an image, a folder, a glob), batched on the chosen device."""
    yolo = load_model(weights)
    args = {"batch": 16, **args, "stream": True, "verbose": False}
    args["device"] = pick_device(args.get("device"))
    yield from yolo.predict(source=source, **args)


def export(weights: Path, args: dict[str, Any]) -> Path:
    yolo = load_model(weights)
    return Path(yolo.export(**args))
