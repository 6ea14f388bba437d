"""Training and resuming a run (`YOLO.train`), with the trainer callbacks the workbench adds: usage events
off and exactly the requested experiment logger (`Trackers`) in the process that trains, and the
classification trainer that oversamples the smaller classes (`class_balance: oversample`).
"""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from yolo_tools.engine.devices import UsageEventsOff, pick_device
from yolo_tools.engine.weights import load_model, metrics_from_checkpoint

LOG = logging.getLogger(__name__)


def _trained_metrics(returned: Any, run_dir: Path) -> dict[str, float]:
    """The final validation results of a training (Ultralytics' keys; the task names the ones it reports:
    `Task.short_metrics`), from what `YOLO.train` returned, else from the saved best.pt.

    Not from `trainer.metrics`: under DDP the training runs in worker processes and the parent's trainer
    never validates, so it stays empty there; what `train` returns and the checkpoint do not.
    """
    results = getattr(returned, "results_dict", returned)
    if isinstance(results, dict) and any(key.startswith("metrics/") for key in results):
        return dict(results)
    for weights in (run_dir / "weights" / "best.pt", run_dir / "weights" / "last.pt"):
        if weights.is_file():
            return metrics_from_checkpoint(weights)
    return {}


def _fit(yolo: Any, track: str | None, **args: Any) -> Any:
    """`YOLO.train` with only the requested experiment logger on.

    Ultralytics' Ray Tune callback asks Ray for a trial id after every epoch, and Ray warns when asked
    outside a search; that warning is silenced here, where no search runs (searches: yolo_tools/training/tune.py).
    """
    yolo.callbacks["on_pretrain_routine_start"][:0] = [UsageEventsOff(), Trackers(track)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`get_trial_id` is meant to only be called inside", category=UserWarning)
        return yolo.train(**args)


def oversampled(classes: np.ndarray, seed: int) -> np.ndarray:
    """Indices of a training set in which every class has as many images as the largest one.

    The largest class keeps each of its images once; a smaller class repeats all of its images as many
    whole times as fit, then a seeded random draw (without replacement) of the rest, so no image of a
    class is seen twice more often than another. The order does not matter: the loader shuffles.
    """
    counts = np.bincount(classes)
    target = counts.max()
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.flatnonzero(counts):
        members = np.flatnonzero(classes == c)
        whole, rest = divmod(int(target), len(members))
        picked += [np.tile(members, whole), rng.choice(members, rest, replace=False)]
    return np.concatenate(picked)


@functools.cache
def _oversampling_trainer() -> type:
    """Ultralytics' classification trainer with its training images oversampled per class (`oversampled`).

    Ultralytics weights classes only in detection losses (`cls_pw`); its classifier trains on the folder
    as it is, so a 1 : 3 split of normal and pneumonia films teaches it to say pneumonia. Repeating the
    smaller classes' images in the training set (the validation set is left as it is) is the plain remedy
    none of the libraries here offers for a YOLO classifier. Built on first use so importing this module
    does not import Ultralytics; Ultralytics pickles the trainer by value for multi-GPU runs.
    """
    from ultralytics.models.yolo.classify import ClassificationTrainer

    class OversamplingClassificationTrainer(ClassificationTrainer):
        def build_dataset(self, img_path: str, mode: str = "train", batch: Any = None) -> Any:
            dataset = super().build_dataset(img_path, mode, batch)
            if mode == "train" and dataset.samples:
                classes = np.array([sample[1] for sample in dataset.samples])
                kept = oversampled(classes, self.args.seed)
                dataset.samples = [dataset.samples[i] for i in kept]  # repeats share one entry (and its RAM cache)
                names = self.data["names"]
                before, after = (np.bincount(c, minlength=len(names)) for c in (classes, classes[kept]))
                LOG.warning("class balance: training images per class oversampled from %s to %s",
                            ", ".join(f"{names[i]} {n}" for i, n in enumerate(before)),
                            ", ".join(f"{names[i]} {n}" for i, n in enumerate(after)))
            return dataset

    return OversamplingClassificationTrainer


def _trainer(balance: str) -> type | None:
    """The trainer class a recipe's `class_balance` asks for; None: Ultralytics' own for the model's task."""
    return _oversampling_trainer() if balance == "oversample" else None


def train(model: str, data: Path, run_dir: Path, args: dict[str, Any], track: str | None = None,
          balance: str = "none") -> dict[str, float]:
    """Train into `run_dir` and return the final validation results of the best weights (Ultralytics' keys).

    `track` ('mlflow' or 'tensorboard') turns on that Ultralytics logger for this run only (see `Trackers`);
    `balance` is the recipe's `class_balance` ('oversample': see `_oversampling_trainer`).
    """
    yolo = load_model(model)
    args = dict(args)
    args["device"] = pick_device(args.get("device"))
    returned = _fit(yolo, track, data=str(data), project=str(run_dir.parent), name=run_dir.name, exist_ok=True,
                    trainer=_trainer(balance), **args)
    return _trained_metrics(returned, run_dir)


def resume(run_dir: Path, track: str | None = None, balance: str = "none") -> dict[str, float]:
    """Continue an interrupted run from its last checkpoint, with the arguments (and data) it was started with.

    `resume` is given the checkpoint's path: with `resume=True`, a checkpoint that cannot be resumed (a
    finished run) makes Ultralytics start a new training on its default dataset (coco8.yaml) instead.
    `pipeline.resume_run` refuses finished runs before this is called. `balance` as the run was started.
    """
    last = run_dir / "weights" / "last.pt"
    yolo = load_model(last)
    returned = _fit(yolo, track, resume=str(last), trainer=_trainer(balance))
    return _trained_metrics(returned, run_dir)


# The experiment loggers the workbench switches per run; Ultralytics' other integrations are left as set.
TRACKERS = ("mlflow", "tensorboard")


def trackers_in_settings() -> list[str]:
    """Which of `TRACKERS` Ultralytics' settings switch on for trainings the workbench does not start itself."""
    from ultralytics.utils import SETTINGS

    return [name for name in TRACKERS if SETTINGS.get(name) is True]


class Trackers:
    """A trainer callback that leaves exactly the requested experiment logger (or none) among `TRACKERS`.

    Ultralytics adds its MLflow and TensorBoard callbacks to every trainer whose global settings file has
    them on (MLflow is on by default there), and `SETTINGS[key] = ...` would rewrite that file for every
    later run. Instead this runs first at `on_pretrain_routine_start`, in the process that trains, and
    edits that trainer's own callback lists: the unrequested logger's callbacks are removed, the
    requested one's added. Being a plain picklable object in the trainer's callbacks, it travels with
    them to DDP workers, so a multi-GPU run is tracked like a single-device one. The settings file is
    never written.
    """

    def __init__(self, track: str | None) -> None:
        self.track = track

    def __call__(self, trainer: Any) -> None:
        from importlib import import_module

        modules = {f"ultralytics.utils.callbacks.{name}" for name in TRACKERS}
        wanted = import_module(f"ultralytics.utils.callbacks.{self.track}").callbacks if self.track else {}
        for event, functions in trainer.callbacks.items():
            kept = [f for f in functions if getattr(f, "__module__", None) not in modules]
            functions[:] = kept + ([wanted[event]] if event in wanted else [])  # in place: this event is running
