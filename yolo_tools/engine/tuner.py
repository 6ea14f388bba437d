"""Ultralytics' hyperparameter search (`YOLO.tune`), its own tuner or Ray Tune; the search's recipe side
(space, Ray's cluster, the best iteration's arguments) is `yolo_tools/training/tune.py`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yolo_tools.engine.devices import pick_device
from yolo_tools.engine.weights import load_model


def tune(
    model: str, data: Path, out_dir: Path, args: dict[str, Any], iterations: int, use_ray: bool, options: dict[str, Any]
) -> tuple[str, Any]:
    """Ultralytics' hyperparameter search (`YOLO.tune`) on `data`, everything written under `out_dir`.

    Without Ray, its own tuner mutates the hyperparameters of the best iteration so far, one training
    after another (`out_dir/tuner/`, its trainings in `out_dir/multitrain*/`), and returns its folder. With Ray
    (`use_ray`), `run_ray_tune` spreads trials over the Ray cluster the caller connected to (Ray's state in
    `out_dir/trial/`, the trainings in `out_dir/trial_<id>/`) and returns Ray's ResultGrid. `options`
    go to the search itself (space, grace_period, gpu_per_trial, search_alg). Also returns the metric
    Ultralytics ranks trials by for this task.
    """
    from ultralytics.cfg import TASK2METRIC

    yolo = load_model(model)
    args = {**args, "data": str(data), "project": str(out_dir)}
    if use_ray:  # a Ray trial trains on the devices Ray gives its worker, which this process may not have
        result = yolo.tune(use_ray=True, iterations=iterations, name="trial", **options, **args)
    else:
        args["device"] = pick_device(args.get("device"))
        yolo.tune(iterations=iterations, name="tuner", **options, **args)
        result = out_dir / "tuner"
    return TASK2METRIC[yolo.task], result
