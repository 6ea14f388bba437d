"""Several models as one: each model predicts the same images, and each image's predictions are fused.

Models trained on folds of a set, or with other seeds, make different mistakes; combining their outputs
per image usually beats each of them. This module runs the models side by side and checks they fit
together (one task, the same classes, the same image order); how one image's predictions are combined
is the task's (`Task.fuse`: weighted box fusion for detection, voted masks for segmentation, averaged
probabilities for classification, all in `yolo_tools/fusion.py`), so nothing here depends on the task.

The fused result of each image is a `prediction.Prediction` again, so `predictions.write`, the drawings and
`evaluation` treat an ensemble exactly like a single model.

Examples:
    >>> for prediction in predict(["runs/heart/a", "runs/heart/b"], "images/", {"imgsz": 512}):
    ...     print(prediction.path, prediction.boxes)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from yolo_tools import engine, operating_point, tasks
from yolo_tools.errors import UserError
from yolo_tools.prediction import DEFAULT_CONF, Prediction
from yolo_tools.runs import weights_of


def _task(name: str) -> tasks.Task:
    """The task whose `fuse` combines these models' predictions; refused before any model runs if there is none."""
    if name not in tasks.TASKS:
        raise UserError(f"ensemble: {name} models are not supported ({', '.join(tasks.TASKS)} are)")
    return tasks.get(name)


def fuse_image(task: str, models: Sequence[Any], image: np.ndarray, args: dict[str, Any]) -> Prediction:
    """One in-memory image (BGR uint8) through already loaded models, fused; for the dashboard."""
    spec = _task(task)
    args = {**args, **spec.predict_args}
    found = [engine.predict_array(model, image, args) for model in models]
    return spec.fuse(found, None, args.get("conf", DEFAULT_CONF))


def members(runs: Sequence[str | Path]) -> tuple[str, list[Path]]:
    """The weights of each run and their common task; refuses models that disagree on task or classes."""
    weights = [weights_of(run)[0] for run in runs]
    kinds, names = zip(*(engine.task_and_names(w) for w in weights))
    if len(set(kinds)) > 1:
        raise UserError(f"ensemble: the models do not share a task ({', '.join(sorted(set(kinds)))}): {', '.join(map(str, weights))}")
    for path, other in zip(weights[1:], names[1:]):
        if other != names[0]:
            raise UserError(f"ensemble: {path} has classes {list(other.values())}, {weights[0]} has {list(names[0].values())}")
    return kinds[0], weights


def member_args(runs: Sequence[str | Path], args: dict[str, Any]) -> list[dict[str, Any]]:
    """Each model's predict arguments: `args`, and, unless they give `conf`, the confidences chosen on the model's
    own val split (its operating_point.json; a cv fold's were chosen on its held-out patients), so that each
    model's masks or boxes enter the vote as that model is evaluated alone."""
    return [operating_point.predict_args(None, weights_of(run)[1], args) for run in runs]


def predict(
    runs: Sequence[str | Path], source: str | list[Path], args: dict[str, Any], weights: Sequence[float] | None = None
) -> Iterator[Prediction]:
    """Fused predictions, image by image: every model streams over the same source in the same order, each at its
    own operating point (`member_args`) unless `args` give `conf`."""
    task, paths = members(runs)
    spec = _task(task)
    args = {**args, **spec.predict_args}  # segment: masks at the image's own size, where they are voted
    own = member_args(runs, args)
    conf = args.get("conf", min(a.get("conf", DEFAULT_CONF) for a in own))  # fused boxes: held to the lowest again
    streams = [engine.predict(path, source, a, keep_image=i == 0) for i, (path, a) in enumerate(zip(paths, own))]
    for found in zip(*streams, strict=True):
        if len({str(prediction.path) for prediction in found}) != 1:
            raise UserError(f"ensemble: models read {source} in different orders")
        yield spec.fuse(found, weights, conf)
