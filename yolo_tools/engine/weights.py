"""Models and their weights: loading one (a YAML, local or official weights), what a training starts from
when official weights cannot be downloaded, the checks that find a bad model before any work, and what a
checkpoint says about itself (task, class names, strides, epochs, the metrics it was saved with).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
from pathlib import Path

from yolo_tools.engine.devices import usage_events_off, use_every_core
from yolo_tools.errors import UserError

LOG = logging.getLogger(__name__)


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
    again). A study retrains on all data for the folds' mean of it (yolo_tools/training/study.py)."""
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
