"""Everything that touches Ultralytics: models, devices, train, val, predict, export.

Keeping the library behind one module means an Ultralytics upgrade is a local change, and the rest of
the workbench deals in plain paths, dictionaries and `Prediction`s: no Ultralytics result or torch tensor
leaves this module (tests/test_imports.py checks that no other module imports Ultralytics or torch;
`yolo_args.py`, the argument names without the import cost, is the one other door).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from yolo_tools import yolo_args
from yolo_tools.errors import UserError
from yolo_tools.metrics.segmentation import mask_boxes

LOG = logging.getLogger(__name__)

DEFAULT_CONF = 0.25  # the confidence a finding needs, everywhere a run has none of its own: Ultralytics' predict default
PREDICT_DEFAULTS = {"batch": 16, "conf": DEFAULT_CONF}  # what every prediction here starts from; the caller's args win
# A run's confidence per class name (its operating_point.json), beside `conf` in the predict arguments: Ultralytics
# predicts at `conf`, the lowest of them, and each class's findings are then held to their own (`class_thresholds`).
CLASS_CONF = "class_conf"
# Test-time mirroring (a recipe's predict.flips), beside them: a `Mirroring` saying which mirror images are predicted
# too and how an image's predictions become one (`predict`).
MIRROR = "mirror"

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


def available_devices() -> str:
    """What this machine offers, in the spellings `device=` takes, for messages about a device it lacks."""
    import torch

    found = ["cpu"]
    found += [f"{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return ", ".join(found)


def pick_device(requested: Any = None, origin: str = "command line", announce: bool = True) -> str:
    """The device to run on, as Ultralytics reads it; the GPU when there is one, an explicit `device=` always wins.

    Every spelling Ultralytics accepts (`0`, `cuda:0`, `0,1`, `[0,1]`, `cpu`, `mps`, `-1` for the idlest
    GPU) goes through its own `parse_device` and `select_device`, so the workbench accepts exactly what
    `yolo` does. The canonical string comes back (`-1` resolved once, so a training and its DDP workers
    agree), and a device the machine lacks is one message naming `device` and what there is.
    """
    from ultralytics.utils import LOGGER
    from ultralytics.utils.torch_utils import parse_device, select_device

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # select_device logs a version banner before refusing; the refusal is ours to say
    try:
        device = parse_device("" if requested is None else requested)
        selected = select_device(device, verbose=False)
    except ValueError:
        raise UserError(
            f"{origin}: device={requested}: not available on this machine; available: {available_devices()}.\n"
            "  Use device=cpu, or one GPU index (device=0) or several for multi-GPU training (device=0,1)."
        ) from None
    finally:
        LOGGER.setLevel(level)
    kind = getattr(selected, "type", str(selected))
    if kind == "cuda":
        import torch

        device = device or str(selected.index)
        names = ", ".join(torch.cuda.get_device_name(int(i)) for i in device.split(","))
        label = f"GPU {device} ({names})"
    else:
        device = device if device and kind != "cpu" else "cpu"
        label = kind.upper()
        if kind == "cpu":  # the threads decide speed, and a model's last digits (torch's sums): say how many
            threads = use_every_core()
            label += f" ({threads} thread{'s' if threads != 1 else ''})"
    if announce:
        print(f"device: {label}")
    return device


# What loading a damaged or foreign file raises in torch and Ultralytics (truncated zip, bad pickle, wrong dict).
_DAMAGED = (TypeError, ValueError, KeyError, AttributeError, RuntimeError, EOFError, pickle.UnpicklingError)


def _damaged(path: str | Path, exc: BaseException) -> UserError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    detail = detail.removeprefix("ERROR ❌️ ")[:200]
    return UserError(
        f"{path}: not a readable Ultralytics weights file ({type(exc).__name__}: {detail}).\n"
        "  It may be damaged or cut short (a full disk, an interrupted copy): copy it again, use the run's\n"
        "  other weights (weights/last.pt or weights/best.pt), or train again."
    )


def check_multi_gpu_batch(device: str, batch: Any, origin: str = "command line") -> None:
    """Under DDP `batch` is the total over the GPUs, and Ultralytics refuses AutoBatch (`batch` below 1)
    there only once the run folder exists: refuse it first, naming `batch` and a size that works."""
    gpus = len(device.split(",")) if device and device not in ("cpu", "mps") else 1
    if gpus > 1 and isinstance(batch, (int, float)) and not isinstance(batch, bool) and batch < 1:
        raise UserError(
            f"{origin}: batch={batch}: AutoBatch does not work on {gpus} GPUs (device={device}); "
            f"give the total batch, a multiple of {gpus}, e.g. batch={8 * gpus}"
        )


def cpu_threads(cores: int, machine_cores: int, load: float, requested: int | None) -> tuple[int, str | None]:
    """How many threads torch gets for CPU work, and why when that is not every core of the process.

    `cores` is the process's CPU set (taskset and container limits included), `machine_cores` the
    machine's, `load` its 1-minute load average. Torch keeps every thread it is given busy, and threads
    beyond the idle cores only contend with the other work: a training slowed 3x with two others running
    (docs/benchmarks.md, "Every core for CPU training"), and at load 8-22 the demo and the tests ran 17-63 times slower
    (issue #32). So when the
    process may use the whole machine and it is busy, torch gets its idle cores (the load average less one
    for this process's own start, at least one thread). A CPU set chosen with `taskset`, and
    YOLO_TOOLS_THREADS, are used as they are: the user decided. At most 8, Ultralytics' own ceiling.
    """
    if requested is not None:
        return requested, None
    every = max(1, min(cores, 8))
    if cores < machine_cores:
        return every, None
    idle = int(round(cores - max(0.0, load - 1.0)))
    if idle >= every:
        return every, None
    threads = max(1, idle)
    return threads, (
        f"CPU: {threads} of {cores} cores for torch: the machine is busy (load average {load:.1f}); "
        f"{yolo_args.THREADS_ENV}=N sets the threads, or `taskset -c CORES yolo_tools ...` gives this process its own cores"
    )


@functools.cache
def use_every_core() -> int:
    """Let Ultralytics' CPU work use every core this process may run on, or the idle ones on a busy machine.

    Ultralytics sets torch's threads to one fewer than the machine's cores (`NUM_THREADS`, at most 8)
    whenever it picks a device, and trains on the CPU with the data loaded in the training process itself
    (`workers=0`): the spare core was meant for loader workers that a CPU training does not start. On
    the 2-core machines the workbench targets that is one core, and half the machine idles through every
    training, validation and prediction (benchmarks/training.py measures the difference). Its device
    selection reads the constant each time, so it is set once: to the cores of the process's CPU set
    (`taskset` and container limits included, which Ultralytics' count ignores), fewer when other work is
    running (`cpu_threads`, which says so in one line). A GPU run is unaffected: its threads only feed the GPU.
    Returns the threads chosen.
    """
    from ultralytics.utils import torch_utils

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    threads, why = cpu_threads(cores, os.cpu_count() or cores, load, yolo_args.requested_threads())
    if why:
        LOG.warning(why)
    torch_utils.NUM_THREADS = threads
    return threads


# Set to 1 to let Ultralytics send its anonymous usage events from the workbench's processes (`usage_events_off`).
SYNC_ENV = "YOLO_TOOLS_ULTRALYTICS_SYNC"


def usage_events_allowed() -> bool:
    return os.environ.get(SYNC_ENV, "").strip().lower() in ("1", "true", "yes")


def usage_events_off() -> None:
    """No Ultralytics usage events from this process, and the user's Ultralytics settings file left as it is.

    Ultralytics sends anonymous usage events (mode, task, model name, device, speeds) to Google Analytics
    after every training, validation, prediction and export while `sync` is on in its global settings.json,
    which its first run creates with `sync: True`. A workbench for medical images must not do that from a
    hospital network unless asked. `SETTINGS["sync"] = False` would rewrite the user's file for every
    other program, so the value is changed in this process's memory only (the dict's own `__setitem__`,
    which skips the save), and the event sender, made when its module was imported, is switched off too.
    Trainings run it again in their own process (`UsageEventsOff`, for DDP workers); Ray trials get
    `usage_events_environment`. YOLO_TOOLS_ULTRALYTICS_SYNC=1 leaves everything as set.
    """
    if usage_events_allowed():
        return
    from ultralytics.utils import SETTINGS, events

    dict.__setitem__(SETTINGS, "sync", False)
    events.events.enabled = False


def usage_events_environment() -> dict[str, str]:
    """The environment that keeps the Ray workers a search trains in (`tune.py`: Ray rebuilds each trial's
    callbacks there) from sending usage events: YOLO_OFFLINE=1, Ultralytics' own switch for its network
    calls (usage events, error reports, version checks, automatic pip installs); a trial downloads nothing.
    Empty when the user allowed the events or set YOLO_OFFLINE themselves."""
    if usage_events_allowed() or "YOLO_OFFLINE" in os.environ:
        return {}
    return {"YOLO_OFFLINE": "1"}


class UsageEventsOff:
    """A trainer callback that runs `usage_events_off` in the process that trains (a DDP worker too: the
    trainer's callbacks travel to the workers pickled, like `Trackers`)."""

    def __call__(self, trainer: Any) -> None:
        usage_events_off()


def load_model(model: str | Path):
    """A YOLO model from a model YAML (from scratch), local weights, or official weights Ultralytics downloads."""
    from ultralytics import YOLO

    use_every_core()
    usage_events_off()
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
    except _DAMAGED as exc:
        if Path(model).suffix in (".pt", ".onnx") and Path(model).is_file():
            raise _damaged(model, exc) from None
        raise UserError(f"{model}: cannot load model: {exc}") from None


def weights_dir() -> Path:
    """Ultralytics' own folder for downloaded weights (`weights_dir` in its settings): official weights go
    there, not into whatever folder the command was started from."""
    from ultralytics.utils import SETTINGS

    return Path(SETTINGS["weights_dir"])


def is_official(model: str) -> bool:
    """Whether `model` names official Ultralytics weights that Ultralytics downloads (yolov8n.pt, yolo11n-seg.pt)."""
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    return Path(model).name == model and model in GITHUB_ASSETS_NAMES


def training_start(model: str, fallback: bool = True) -> str:
    """What a training starts from: official weights downloaded (when there is a network), else the same model's YAML.

    Official weights that are neither in the working folder nor in Ultralytics' weights folder are fetched
    by Ultralytics' own `attempt_download_asset` (the download `YOLO("yolov8n.pt")` does) into its weights
    folder. When that fails, as it does offline, `fallback` trains from scratch from the matching model
    YAML (yolov8n-seg.pt -> yolov8n-seg.yaml) with one line saying so, so a recipe that names official
    weights still trains here; `fallback=False` (recipe `model_fallback: false`) stops with the message
    instead. Anything else (a YAML, a run's weights) is returned as it is.
    """
    from ultralytics.utils.downloads import attempt_download_asset

    if not is_official(model) or Path(model).is_file():
        return model
    target = weights_dir() / model
    made = [folder for folder in (target.parent, *target.parent.parents) if not folder.exists()]  # deepest first
    try:
        found = Path(attempt_download_asset(target))
    except (ConnectionError, OSError) as exc:  # what Ultralytics' download raises offline
        LOG.debug("download of %s failed: %s", model, exc)
        found = None
    if found is not None and found.is_file():
        return str(found)
    # Ultralytics' downloader makes the weights folder before it tries (an empty `weights/` in the checkout
    # the settings were first made in): a failed download leaves none.
    for folder in made:
        with contextlib.suppress(OSError):  # only while empty
            folder.rmdir()
    scratch = f"{Path(model).stem}.yaml"
    if not fallback:
        raise UserError(
            f"{model}: official weights could not be downloaded (no network?), and the recipe pins them "
            f"(model_fallback: false).\n  Put {model} into {weights_dir()} or the working folder, "
            f"or train from scratch (model={scratch}, or model_fallback: true)."
        )
    LOG.warning(
        "%s could not be downloaded (offline?): training from scratch from %s instead; for pretrained weights "
        "put %s into %s (or the working folder) and train again", model, scratch, model, weights_dir(),
    )
    return scratch


def check_model(model: str, origin: str) -> None:
    """What a training starts from must be findable before any work: weights on disk, official weights by name
    (downloaded, or their YAML, by `training_start`), or a model YAML Ultralytics knows or finds on disk.

    `origin` names where the model was given ("command line: model", "<recipe>: model"). Without this a typo
    fails only after the conversion, as "no such weights file" naming neither the key nor a fix.
    """
    from ultralytics.nn.tasks import yaml_model_load

    if Path(model).is_file():
        if Path(model).suffix == ".pt":
            try:
                checkpoint_epochs(Path(model))  # damaged weights fail now, not after the conversion
            except UserError as error:
                raise UserError(f"{origin}: {error}") from None
        return
    if is_official(model):
        return
    if model.endswith((".yaml", ".yml")):
        try:
            yaml_model_load(model)  # Ultralytics' own lookup: yolov8n.yaml is its yolov8.yaml at scale n
            return
        except (FileNotFoundError, OSError):
            what = "no such model YAML, here or among Ultralytics' own"
    else:
        what = "no such weights file"
    raise UserError(
        f"{origin}: {model}: {what}. Give a run's weights (model=runs/<recipe>/<run>/weights/best.pt), official "
        "weights by name (model=yolov8n.pt, yolo11n-seg.pt), or a model YAML to train from scratch (model=yolov8n.yaml)"
    )


def strides(model: str | Path) -> tuple[int, ...]:
    """The strides of a model's heads (8, 16, 32 for YOLOv8's P3-P5), from its YAML or weights."""
    return tuple(int(s) for s in load_model(model).model.stride.tolist())


def task_and_names(weights: str | Path) -> tuple[str, dict[int, str]]:
    """A model's task ('detect', 'segment', 'classify', ...) and class names, read by loading it."""
    model = load_model(weights)
    return model.task, dict(model.names)


def checkpoint_epochs(weights: Path) -> tuple[int, int]:
    """(epochs trained, epochs asked for) of a training checkpoint; trained is -1 once the run finished.

    Ultralytics strips the optimizer and sets the epoch to -1 when a training ends (all epochs, or stopped
    early), so such a checkpoint cannot be resumed, only trained from.
    """
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(weights))
    except (*_DAMAGED, ModuleNotFoundError, OSError) as exc:
        raise _damaged(weights, exc) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise _damaged(weights, TypeError("no model in the checkpoint"))
    epoch = ckpt.get("epoch", -1)
    epochs = (ckpt.get("train_args") or {}).get("epochs") or 0
    return (epoch + 1 if isinstance(epoch, int) and epoch >= 0 else -1), int(epochs)


def short_metrics(task: str, results: dict[str, float]) -> dict[str, float]:
    return {short: float(results[key]) for key, short in METRIC_NAMES[task].items() if key in results}


def metrics_from_checkpoint(weights: Path) -> dict[str, float]:
    """The validation metrics a checkpoint was saved with (`train_metrics`: its best epoch's validation)."""
    from ultralytics.utils.patches import torch_load

    checkpoint = torch_load(weights, map_location="cpu", weights_only=False)
    return dict(checkpoint.get("train_metrics") or {})


def best_epoch(run_dir: Path) -> int | None:
    """The epoch (1-based) whose weights a finished run kept as best.pt; None without results.csv or best.pt.

    Ultralytics sets a finished checkpoint's epoch to -1, but best.pt keeps the validation numbers it was saved
    with (`train_metrics`): the epoch is the row of results.csv holding the same validation metrics and losses
    (written there to 6 significant digits, so the nearest row; the last of equal ones, as a tie saves best.pt
    again). A study retrains on all data for the folds' mean of it (yolo_tools/study.py)."""
    import pandas as pd

    results, best = run_dir / "results.csv", run_dir / "weights" / "best.pt"
    if not (results.is_file() and best.is_file()):
        return None
    table = pd.read_csv(results)
    table.columns = [c.strip() for c in table.columns]
    saved = metrics_from_checkpoint(best)
    keys = [k for k, v in saved.items() if k.startswith(("metrics/", "val/")) and k in table and isinstance(v, (int, float))]
    if not keys or table.empty:
        return None
    distance = sum((table[k] - float(saved[k])).abs() for k in keys)
    # Ultralytics writes best.pt again on a tie (best fitness == this epoch's), so of equal rows the last is the one kept
    return int(table.loc[distance[distance <= distance.min() + 1e-12].index[-1], "epoch"])


def device_label(device: str) -> str:
    """A device as `pick_device` returns it, in words for a record of the compute used: 'GPU 0 (NVIDIA H100 80GB
    HBM3)', 'MPS', 'CPU'."""
    if device in ("cpu", "mps"):
        return device.upper()
    import torch

    return f"GPU {device} ({', '.join(torch.cuda.get_device_name(int(i)) for i in device.split(','))})"


def _trained_metrics(task: str, returned: Any, run_dir: Path) -> dict[str, float]:
    """The final metrics of a training, from what `YOLO.train` returned, else from the saved best.pt.

    Not from `trainer.metrics`: under DDP the training runs in worker processes and the parent's trainer
    never validates, so it stays empty there; what `train` returns and the checkpoint do not.
    """
    results = getattr(returned, "results_dict", returned)
    if isinstance(results, dict) and short_metrics(task, results):
        return short_metrics(task, results)
    for weights in (run_dir / "weights" / "best.pt", run_dir / "weights" / "last.pt"):
        if weights.is_file():
            return short_metrics(task, metrics_from_checkpoint(weights))
    return {}


def _fit(yolo: Any, track: str | None, **args: Any) -> Any:
    """`YOLO.train` with only the requested experiment logger on.

    Ultralytics' Ray Tune callback asks Ray for a trial id after every epoch, and Ray warns when asked
    outside a search; that warning is silenced here, where no search runs (searches: yolo_tools/tune.py).
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
    """Train into `run_dir` and return the final validation metrics of the best weights.

    `track` ('mlflow' or 'tensorboard') turns on that Ultralytics logger for this run only (see `Trackers`);
    `balance` is the recipe's `class_balance` ('oversample': see `_oversampling_trainer`).
    """
    yolo = load_model(model)
    args = dict(args)
    args["device"] = pick_device(args.get("device"))
    returned = _fit(yolo, track, data=str(data), project=str(run_dir.parent), name=run_dir.name, exist_ok=True,
                    trainer=_trainer(balance), **args)
    return _trained_metrics(yolo.task, returned, run_dir)


def resume(run_dir: Path, track: str | None = None, balance: str = "none") -> dict[str, float]:
    """Continue an interrupted run from its last checkpoint, with the arguments (and data) it was started with.

    `resume` is given the checkpoint's path: with `resume=True`, a checkpoint that cannot be resumed (a
    finished run) makes Ultralytics start a new training on its default dataset (coco8.yaml) instead.
    `pipeline.resume_run` refuses finished runs before this is called. `balance` as the run was started.
    """
    last = run_dir / "weights" / "last.pt"
    yolo = load_model(last)
    returned = _fit(yolo, track, resume=str(last), trainer=_trainer(balance))
    return _trained_metrics(yolo.task, returned, run_dir)


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


def validate(weights: Path, data: Path | None, args: dict[str, Any]) -> tuple[str, dict[str, float], Path]:
    """Validate weights on a dataset; returns the task, the metrics and where plots were saved."""
    result = validate_full(weights, data, args)
    return result.task, result.metrics, result.save_dir


@dataclass(frozen=True)
class Mirroring:
    """Test-time mirroring, nnU-Net's (Isensee et al. 2021): each image is predicted as it is and mirrored by each
    of `flips` ('horizontal': columns reversed, 'vertical': rows reversed), the mirror images' findings are
    mapped back onto the image, and `fuse` (the task's: voted masks, fused boxes; yolo_tools/fusion.py) makes
    the image's predictions one. Which flips are anatomy is the recipe's to say (`predict.flips`)."""

    flips: tuple[str, ...]
    fuse: Callable[[Sequence[Prediction], Sequence[float] | None, Any], Prediction]


def _flip(image: np.ndarray, flip: str) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1] if flip == "horizontal" else image[::-1])


def _predictions(
    results: Iterable[Any], args: dict[str, Any], thresholds: np.ndarray | None, mirroring: Mirroring | None,
    mirror_model: Any, keep_image: bool, draw: bool,
) -> Iterator[Prediction]:
    """Each result as a `Prediction` held to its class's confidence; with `mirroring`, fused with its mirror images'
    predictions, made a batch at a time by `mirror_model` (a second copy of the model where the first is
    streaming: Ultralytics' predictor holds a lock for the whole stream)."""
    if mirroring is None:
        for result in results:
            yield _prediction(result, keep_image, draw).above(thresholds)
        return
    pending = iter(results)
    conf = thresholds if thresholds is not None else args.get("conf", DEFAULT_CONF)
    once = {**args, "stream": False, "verbose": False}
    while chunk := list(itertools.islice(pending, int(args.get("batch", PREDICT_DEFAULTS["batch"])))):
        images = [_flip(result.orig_img, flip) for result in chunk for flip in mirroring.flips]
        mirrored = iter(mirror_model.predict(source=images, **once))
        for result in chunk:
            plain = _prediction(result, keep_image=True).above(thresholds)
            others = [_prediction(next(mirrored)).above(thresholds).mirrored(flip) for flip in mirroring.flips]
            fused = mirroring.fuse([plain, *[replace(o, path=plain.path) for o in others]], None, conf)
            fused = fused if keep_image or draw else replace(fused, image=None)
            yield replace(fused, drawing=fused.draw()) if draw else fused


def predict(
    weights: Path, source: str | list[Path], args: dict[str, Any], keep_image: bool = False, draw: bool = False
) -> Iterator[Prediction]:
    """Stream predictions for `source` (an image, a folder, a glob, or a list of image files), batched on the
    chosen device. A list goes to Ultralytics' own loader as a `.txt` listing (one path a line), so it decodes
    the files exactly as it would a folder. `keep_image` keeps each decoded input on its prediction (to crop
    it, or to draw a fused result later); `draw` plots the findings on it as they come (`Prediction.draw`).
    `args` may hold a run's per-class confidences (`CLASS_CONF`) and test-time mirroring (`MIRROR`)."""
    yolo = load_model(weights)
    args, thresholds = class_thresholds({**PREDICT_DEFAULTS, **args, "stream": True, "verbose": False}, yolo.names)
    mirroring = args.pop(MIRROR, None)
    args["device"] = pick_device(args.get("device"))
    keep_image = keep_image or (draw and thresholds is not None)  # a finding dropped here: drawn again without it
    mirror_model = load_model(weights) if mirroring else None
    if isinstance(source, (str, Path)):
        results = yolo.predict(source=str(source), **args)
        yield from _predictions(results, args, thresholds, mirroring, mirror_model, keep_image, draw)
        return
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "images.txt"
        listing.write_text("".join(f"{Path(f).resolve()}\n" for f in source), encoding="utf-8")
        results = yolo.predict(source=str(listing), **args)
        yield from _predictions(results, args, thresholds, mirroring, mirror_model, keep_image, draw)


def class_thresholds(args: dict[str, Any], names: dict[int, str]) -> tuple[dict[str, Any], np.ndarray | None]:
    """Ultralytics' predict arguments without `CLASS_CONF`, and those confidences as one threshold per class
    id (None without them): Ultralytics' `conf` is one number for all classes, so it predicts at the lowest
    and `Prediction.above` holds each class to its own. A class the run chose none for keeps `conf`; a name
    the model does not have (an edited operating_point.json, other weights) is refused, not ignored."""
    args = dict(args)
    per_class = args.pop(CLASS_CONF, None)
    if not per_class:
        return args, None
    unknown = sorted(set(per_class) - set(names.values()))
    if unknown:
        raise UserError(
            f"the run's per-class confidences (class_conf in its operating_point*.json) name {', '.join(map(repr, unknown))}, "
            f"which the model does not have (its classes: {', '.join(names.values())}). Remove that file and run "
            "yolo_tools evaluate on the run to choose them again, or give conf= on the command line"
        )
    floor = float(args.get("conf", DEFAULT_CONF))
    return args, np.array([max(floor, float(per_class.get(names[i], floor))) for i in range(len(names))])


def predict_arrays(
    weights: Path, images: Iterable[tuple[Path, np.ndarray]], args: dict[str, Any], draw: bool = False
) -> Iterator[Prediction]:
    """Like `predict`, for images the workbench mapped itself (DICOM, intensity rules): BGR uint8 arrays.

    Each prediction keeps its file's path, so the outputs are named after the inputs as with `predict`.
    """
    yolo = load_model(weights)
    args, thresholds = class_thresholds({**PREDICT_DEFAULTS, **args, "verbose": False}, yolo.names)
    mirroring = args.pop(MIRROR, None)
    args["device"] = pick_device(args.get("device"))
    pending = iter(images)

    def results() -> Iterator[Any]:
        while chunk := list(itertools.islice(pending, args["batch"])):
            paths, arrays = zip(*chunk)
            for path, result in zip(paths, yolo.predict(source=list(arrays), **args)):
                result.path = str(path)
                yield result

    # each chunk is predicted whole before its results are handed on, so the one model predicts the mirrors too
    yield from _predictions(results(), args, thresholds, mirroring, yolo, draw and thresholds is not None, draw)


@dataclass(frozen=True)
class Prediction:
    """One image's findings as plain arrays, the only form predictions leave this module in.

    Boxes in pixels (x1 y1 x2 y2, float32 as the model gives them), masks (N, H, W) bool at the image's own
    size, `outlines` each mask's outline in pixels as Ultralytics traces it (what predictions.json stores),
    `probabilities` (classes,) for a classifier. `image` (BGR) and `drawing` are there only when asked for.
    """

    path: Path
    names: dict[int, str]
    shape: tuple[int, int]
    boxes: np.ndarray
    classes: np.ndarray
    confidences: np.ndarray
    masks: np.ndarray | None
    probabilities: np.ndarray | None
    outlines: list[np.ndarray] | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    drawing: np.ndarray | None = field(default=None, repr=False)

    def class_masks(self, n_classes: int) -> np.ndarray:
        """Instance masks merged per class, (classes, H, W) bool: what segmentation metrics and outputs use."""
        merged = np.zeros((n_classes, *self.shape), bool)
        if self.masks is not None:
            for mask, class_id in zip(self.masks, self.classes):
                merged[class_id] |= mask
        return merged

    def above(self, conf: float | np.ndarray | None) -> Prediction:
        """Only the findings with at least confidence `conf`, one number or one per class id (a fused result is
        thresholded again; `class_thresholds`); itself when nothing is dropped (None: no threshold)."""
        if conf is None or not len(self.confidences):
            return self
        limit = conf[self.classes.astype(int)] if isinstance(conf, np.ndarray) else conf
        keep = self.confidences >= limit
        if keep.all():
            return self
        return replace(
            self,
            boxes=self.boxes[keep],
            classes=self.classes[keep],
            confidences=self.confidences[keep],
            masks=None if self.masks is None else self.masks[keep],
            outlines=None if self.outlines is None else [o for o, k in zip(self.outlines, keep) if k],
            drawing=None,
        )

    def keep_pixels(self, kept: np.ndarray) -> Prediction:
        """Only the pixels of each instance that `kept` ((classes, H, W) bool) keeps for its class: an instance
        left empty is dropped, a cut one gets the box and outline of what is left (post-processing)."""
        if self.masks is None or not len(self.masks):
            return self
        masks = self.masks & kept[self.classes]
        cut = (masks != self.masks).any((1, 2))
        if not cut.any():
            return self
        alive = masks.any((1, 2))
        boxes, found = self.boxes.astype(np.float64), mask_boxes(masks)[0]
        boxes[cut & alive] = found[cut & alive]
        result = _results(np.zeros((*self.shape, 3), np.uint8), self.path, self.names, boxes[alive],
                          self.confidences[alive], self.classes[alive], masks[alive], None)
        return replace(_prediction(result), image=self.image)

    def mirrored(self, flip: str) -> Prediction:
        """The findings of this image's mirror image (`flip`: 'horizontal' or 'vertical') mapped back onto the image."""
        height, width = self.shape
        boxes, outlines = self.boxes.copy(), None if self.outlines is None else [o.copy() for o in self.outlines]
        if flip == "horizontal":
            boxes[:, [0, 2]] = width - self.boxes[:, [2, 0]]
            masks = None if self.masks is None else self.masks[:, :, ::-1]
            column = 0
        else:
            boxes[:, [1, 3]] = height - self.boxes[:, [3, 1]]
            masks = None if self.masks is None else self.masks[:, ::-1, :]
            column = 1
        for outline in outlines or []:
            if len(outline):
                outline[:, column] = (width if column == 0 else height) - outline[:, column]
        return replace(self, boxes=boxes, masks=masks, outlines=outlines, image=None, drawing=None)

    def draw(self) -> np.ndarray:
        """The image with the findings drawn by Ultralytics' plotting (BGR), as `yolo predict` draws them.

        The drawing made at prediction time (`draw=True`) when there is one; otherwise (a fused or thresholded
        prediction) plotted now from these arrays on the kept image.
        """
        if self.drawing is not None:
            return self.drawing
        if self.image is None:
            raise ValueError(f"{self.path}: predicted without its image; predict with draw=True or keep_image=True")
        classify = self.probabilities is not None
        return _results(
            self.image,
            self.path,
            self.names,
            None if classify else self.boxes,
            None if classify else self.confidences,
            None if classify else self.classes,
            self.masks,
            self.probabilities,
        ).plot()


def _prediction(result: Any, keep_image: bool = False, draw: bool = False) -> Prediction:
    """An Ultralytics result as a `Prediction`; masks are scaled to the original image when predicted smaller."""
    shape = tuple(int(v) for v in result.orig_shape)
    boxes, masks, probabilities = result.boxes, result.masks, result.probs
    outlines = None
    if masks is not None:
        outlines = masks.xy
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
        outlines=outlines,
        image=result.orig_img if keep_image else None,
        drawing=result.plot() if draw else None,
    )


def predict_array(model: Any, image: np.ndarray, args: dict[str, Any], draw: bool = False) -> Prediction:
    """One in-memory image (uint8 BGR, as OpenCV reads it) through an already loaded model.

    For callers that keep a model between requests (the dashboard) rather than reloading it per file.
    The prediction keeps the image; `draw` also plots the findings on it.
    """
    args, thresholds = class_thresholds({"conf": DEFAULT_CONF, **args}, model.names)
    mirroring = args.pop(MIRROR, None)
    results = model.predict(source=image, verbose=False, **args)
    return next(_predictions(results, args, thresholds, mirroring, model, True, draw))


def from_arrays(
    image: np.ndarray,
    path: str | Path,
    names: dict[int, str],
    boxes: np.ndarray | None = None,
    confidences: np.ndarray | None = None,
    classes: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
) -> Prediction:
    """A prediction made from plain arrays (e.g. fused from several models' predictions), keeping the image.

    It goes through an Ultralytics result and back, so that it is stored, outlined, scored and drawn exactly
    as a single model's: boxes in pixels (x1 y1 x2 y2), masks (N, H, W) at the image's own size, probabilities (C,).
    """
    return _prediction(_results(image, path, names, boxes, confidences, classes, masks, probabilities), keep_image=True)


def _results(
    image: np.ndarray,
    path: str | Path,
    names: dict[int, str],
    boxes: np.ndarray | None,
    confidences: np.ndarray | None,
    classes: np.ndarray | None,
    masks: np.ndarray | None,
    probabilities: np.ndarray | None,
) -> Any:
    """An Ultralytics result made from plain arrays, for its rounding, outlines and plotting."""
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
    """Ultralytics' exporter; the ValueErrors it raises are about the arguments (an unknown format, an option
    the format does not support), so they are shown as messages."""
    yolo = load_model(weights)
    try:
        return Path(yolo.export(**args))
    except ValueError as exc:
        raise UserError(f"export {weights}: {exc}") from None


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
