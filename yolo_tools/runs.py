"""The layout of a run folder, `runs/<recipe>/<name>/`, and how to find its weights, recipe and data again.

A run keeps a copy of the recipe it was trained from (`recipe.yaml`, with the command-line overrides
folded in) so that val, predict, inspect and report need nothing but the run folder.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from yolo_tools.dataset import fingerprint_at
from yolo_tools.errors import UserError
from yolo_tools.locations import check_runs_folder, runs_dir
from yolo_tools.recipe import Recipe, load_recipe

LOG = logging.getLogger(__name__)

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.json"
DATASET_FILE = "dataset.json"  # the dataset version a run was trained on, and its folder for a cv fold
CV_FILE = "cv.json"  # in a cv folder's root (yolo_tools/training/crossval.py): what was cross-validated, so a resume cannot mix set-ups


def next_free(folder: Path) -> Path:
    """`folder`, or `folder2`, `folder3`, ... whichever is free first: Ultralytics' own numbering of runs."""
    candidate, number = folder, 1
    while candidate.exists():
        number += 1
        candidate = folder.with_name(f"{folder.name}{number}")
    return candidate


def new_run_dir(recipe: Recipe, name: str | None) -> Path:
    """`runs/<recipe>/<name>`; without a name the next free `train`, `train2`, ... like Ultralytics."""
    parent = check_runs_folder(runs_dir() / recipe.name)
    if name:
        if (parent / name).exists():
            raise UserError(
                f"{parent / name}: a run of that name is already there; choose another --name, "
                f"or continue it with: yolo_tools train --resume {parent / name}"
            )
        return check_runs_folder(parent / name)
    return next_free(parent / "train")


def save_recipe(recipe: Recipe, run_dir: Path, train_args: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = recipe.model_dump(mode="json", exclude={"path"})
    payload["train"] = train_args
    (run_dir / RECIPE_FILE).write_text(yaml.safe_dump(payload, sort_keys=False))


def first_new_folder(path: Path) -> Path | None:
    """The outermost folder of `path` that does not exist yet: what creating it makes, and removing it undoes."""
    new = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        new = folder
    return new


def run_recipe(run_dir: Path) -> Recipe | None:
    """The recipe a run was trained from; a damaged or foreign one is one message saying what to do."""
    path = run_dir / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        return load_recipe(path)
    except UserError as error:
        raise UserError(
            f"{error}\n  This run's {RECIPE_FILE} is damaged, was edited, or was written by another yolo-tools "
            f"version: restore it from the recipe the run was trained from (plus its train arguments), or train again"
        ) from None


def weights_of(run_or_weights: str | Path) -> tuple[Path, Path | None]:
    """Weights to use and the run folder they belong to (None for loose weights), as absolute paths:
    Ultralytics puts a relative `project=` under its own settings' runs folder, not the working one."""
    path = Path(run_or_weights).expanduser().resolve()
    if path.is_dir():
        for candidate in (path / "weights" / "best.pt", path / "weights" / "last.pt"):
            if candidate.is_file():
                return candidate, path
        raise UserError(
            f"{run_or_weights}: a run folder without weights/best.pt or weights/last.pt (a training that stopped "
            "before its first epoch, or weights removed); train again, or give a weights file"
        )
    if path.suffix in (".pt", ".onnx") and path.is_file():
        run = path.parent.parent if path.parent.name == "weights" else None
        return path, run if run and (run / RECIPE_FILE).is_file() else None
    raise UserError(f"{run_or_weights}: neither a run folder (runs/<recipe>/<name>) nor a weights file (.pt, .onnx)")


def save_metrics(run_dir: Path, metrics: dict[str, float], kind: str = "val") -> Path:
    """Merge `metrics` under `kind` into the run's metrics.json, so val and train results sit together."""
    path = run_dir / METRICS_FILE
    stored = read_metrics(run_dir)
    stored[kind] = metrics
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")  # whole or not at all
    partial.write_text(json.dumps(stored, indent=2))
    partial.replace(path)
    return path


def save_run_dataset(run_dir: Path, fingerprint: str | None, dataset: Path | None = None) -> None:
    """Record the version of the dataset this run trains on (its card's fingerprint) and, for a cv fold,
    the folder it trains and validates on when that is not the recipe's converted set."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, str] = {"fingerprint": fingerprint} if fingerprint else {}
    if dataset is not None:
        record["dataset"] = str(dataset)
    (run_dir / DATASET_FILE).write_text(json.dumps(record))


def _dataset_record(run_dir: Path | None) -> dict[str, str]:
    path = run_dir / DATASET_FILE if run_dir else None
    if not path or not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        LOG.warning("%s is damaged (%s); the run's dataset version is taken from its recipe", path, exc)
        return {}
    return record if isinstance(record, dict) else {}


def run_dataset(run_dir: Path | None) -> Path | None:
    """The dataset a run's val split lives in when it is not the recipe's own (see `save_run_dataset`).

    A cv fold is a folder of links made again when `cv` runs again; one that is gone, or now belongs to
    another version of the dataset, is refused rather than scored against other patients or labels."""
    record = _dataset_record(run_dir)
    if not record.get("dataset"):
        return None
    folder, version = Path(record["dataset"]), record.get("fingerprint")
    held = fingerprint_at(folder)
    if held is None or (version and held != version):
        state = "is gone" if held is None else f"now holds another version of the dataset ({held}, the run used {version})"
        raise UserError(
            f"{run_dir}: trained on the cross-validation fold {folder}, which {state}: the recipe's data changed "
            "since. Run `yolo_tools cv` again to train and evaluate folds of the dataset as it is now"
        )
    return folder


def run_fingerprint(run_dir: Path | None) -> str | None:
    """The version of the dataset the run was trained on; None for runs trained before versions were recorded."""
    return _dataset_record(run_dir).get("fingerprint")


def trained_versions(recipe_name: str) -> set[str]:
    """Every dataset version some run of this recipe (cv folds included) records having been trained on."""
    folder = runs_dir() / recipe_name
    records = folder.glob(f"**/{DATASET_FILE}") if folder.is_dir() else []
    return {fp for record in records if (fp := run_fingerprint(record.parent))}


def chose_best_epoch(run_dir: Path | None) -> bool:
    """Whether the run validated after each epoch and kept its best (Ultralytics' `val`, in the args.yaml it
    writes); `val=False` keeps the last epoch's weights, so val chose no epoch. Unknown (no or a damaged
    args.yaml) reads as True, Ultralytics' default."""
    try:
        args = yaml.safe_load((run_dir / "args.yaml").read_text(encoding="utf-8")) if run_dir else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return True
    return not (isinstance(args, dict) and args.get("val") is False)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's stored metrics; a damaged metrics.json (the workbench's own file) is reported and read as empty."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return {}
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        LOG.warning("%s is damaged (%s); it is written again from the next val or evaluation", path, exc)
        return {}
    return stored if isinstance(stored, dict) else {}
