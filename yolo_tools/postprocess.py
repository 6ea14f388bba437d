"""Post-processing of predicted masks: keep each class's largest connected component, where val says it helps.

nnU-Net's last step (Isensee et al., Nat Methods 2021): a structure that is one piece in every patient (a
hippocampus, a heart) is predicted with stray specks beside it now and then; keeping only the largest connected
component of the class removes them. It also removes a true second piece, so nnU-Net applies it only to the
classes where it raised the mean Dice of the cross-validation's out-of-fold predictions. The same here:

- decided once per run, on its own val split (predictions made as `evaluate` makes them: the run's operating
  point, its mirroring), by `evaluate` when the recipe asks for it (`predict.largest_component: auto`); a cv
  (`yolo_tools cv`) pools every fold's held-out patients, each predicted by the fold model that never saw them,
  and decides for the fold ensemble;
- per class: applied when the class's mean Dice over val cases is higher with it than without (`decide`);
- stored beside the operating point as `postprocessing.json` (in the run, or the cv folder), with the Dice both
  ways, and applied by `evaluate` and `predict` from then on;
- over a whole volume in 3D when the images are a volume's slices (scipy.ndimage.label with face connectivity
  on the stacked slices), else per image in 2D. A decision made on volumes is applied to volumes only (`predict
  --format nifti`, evaluating a volume dataset), never to single slice images, where one structure may cross the
  plane twice.

Examples:
    >>> largest_component(np.array([[1, 1, 0, 1]], bool))
    array([[ True,  True, False, False]])
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from yolo_tools import engine
from yolo_tools.errors import UserError
from yolo_tools.prediction import Prediction

FILE = "postprocessing.json"
RULE = "keep each class's largest connected component where that raised the class's mean Dice over the cases"


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected component of a boolean image or volume (the first of equals); empty stays empty."""
    from scipy import ndimage  # here: the segment task imports this module, and reading a recipe imports the tasks

    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def keep_largest(masks: np.ndarray, class_ids: Iterable[int]) -> np.ndarray:
    """(classes, ...) bool masks with each class of `class_ids` reduced to its largest component."""
    out = masks.copy()
    for class_id in class_ids:
        out[class_id] = largest_component(masks[class_id])
    return out


def apply(predictions: Sequence[tuple[int, Prediction]], class_ids: Sequence[int]) -> list[Prediction]:
    """One volume's slice predictions ((slice index, prediction) pairs; a single pair for an image), each with the
    pixels of `class_ids` outside the class's largest component (3D over the slices) removed. Slices missing
    between the given ones count as empty, so no component is joined across a gap."""
    if not class_ids:
        return [p for _, p in predictions]
    first = predictions[0][1]
    indices = [index for index, _ in predictions]
    low = min(indices)
    stack = np.zeros((len(first.names), max(indices) - low + 1, *first.shape), bool)
    for index, prediction in predictions:
        stack[:, index - low] = prediction.class_masks(len(first.names))
    kept = keep_largest(stack, class_ids)
    return [engine.keep_pixels(prediction, kept[:, index - low]) for index, prediction in predictions]


def in_volumes(
    predictions: Iterable[Prediction], slice_of: dict[str, tuple[str, int]], counts: dict[str, int], class_ids: Sequence[int]
) -> Iterator[Prediction]:
    """`apply` to a stream: a volume's slices (`slice_of`: image stem → (volume, slice index); `counts`: slices per
    volume) are held until all have come, then handed on processed in 3D; other images are processed alone."""
    waiting: dict[str, list[tuple[int, Prediction]]] = {}
    for prediction in predictions:
        where = slice_of.get(prediction.path.stem)
        if where is None:
            yield from apply([(0, prediction)], class_ids)
            continue
        volume, index = where
        group = waiting.setdefault(volume, [])
        group.append((index, prediction))
        if len(group) >= counts[volume]:
            yield from apply(sorted(waiting.pop(volume), key=lambda pair: pair[0]), class_ids)
    for group in waiting.values():  # volumes only partly in the source: what is there, gaps left empty
        yield from apply(sorted(group, key=lambda pair: pair[0]), class_ids)


def decide(names: Sequence[str], dice: np.ndarray, dice_largest: np.ndarray, decided_on: str, dimensions: int) -> dict[str, Any]:
    """The decision from per-case Dice without and with the largest component ((cases, classes) arrays; NaN where
    a case does not count for a class): applied to a class when its mean Dice rises."""
    classes = {}
    for index, name in enumerate(names):
        raw, largest = dice[:, index], dice_largest[:, index]
        counted = np.isfinite(raw) & np.isfinite(largest)
        mean_raw = float(raw[counted].mean()) if counted.any() else None
        mean_largest = float(largest[counted].mean()) if counted.any() else None
        apply_it = bool(counted.any() and mean_largest > mean_raw)
        classes[name] = {"apply": apply_it, "dice": mean_raw, "dice_largest": mean_largest, "cases": int(counted.sum()),
                         "dice_sum": float(raw[counted].sum()), "dice_largest_sum": float(largest[counted].sum())}
    return {"rule": RULE, "decided_on": decided_on, "dimensions": dimensions, "classes": classes,
            "largest_component": [name for name, c in classes.items() if c["apply"]]}


def pooled(decisions: Sequence[dict[str, Any]], decided_on: str) -> dict[str, Any]:
    """One decision from several folds' (each made on its own held-out patients): the cases of all pooled."""
    names = list(decisions[0]["classes"])
    classes = {}
    for name in names:
        cases = sum(d["classes"][name]["cases"] for d in decisions)
        raw = sum(d["classes"][name]["dice_sum"] for d in decisions)
        largest = sum(d["classes"][name]["dice_largest_sum"] for d in decisions)
        mean_raw, mean_largest = (raw / cases, largest / cases) if cases else (None, None)
        classes[name] = {"apply": bool(cases and mean_largest > mean_raw), "dice": mean_raw, "dice_largest": mean_largest,
                         "cases": cases, "dice_sum": raw, "dice_largest_sum": largest}
    return {"rule": RULE, "decided_on": decided_on, "dimensions": decisions[0]["dimensions"], "classes": classes,
            "largest_component": [name for name, c in classes.items() if c["apply"]]}


def save(folder: Path, decision: dict[str, Any]) -> Path:
    path = folder / FILE
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(decision, indent=2))
    partial.replace(path)
    return path


def load(folder: Path | None, weights: Sequence[Path] = ()) -> dict[str, Any] | None:
    """The decision stored in `folder` (a run, or a cv folder); None when there is none, or any of `weights` is
    newer (a resumed training decided nothing yet). A file that is not a decision is refused, naming it."""
    path = folder / FILE if folder else None
    if not (path and path.is_file()):
        return None
    if any(w.is_file() and w.stat().st_mtime > path.stat().st_mtime for w in weights):
        return None
    try:
        decision = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        decision = None
    chosen = decision.get("largest_component") if isinstance(decision, dict) else None
    if not (isinstance(chosen, list) and all(isinstance(n, str) for n in chosen) and decision.get("dimensions") in (2, 3)):
        raise UserError(
            f"{path}: not a post-processing decision yolo_tools evaluate wrote (damaged, or edited: largest_component is a "
            f"list of class names, dimensions 2 or 3). Remove it and run yolo_tools evaluate on {folder} to decide again"
        )
    return decision


def class_ids(decision: dict[str, Any] | None, names: Sequence[str], where: Path | None = None) -> list[int]:
    """The class indices a decision applies to; a class name the model does not have is refused."""
    if not decision:
        return []
    unknown = [n for n in decision["largest_component"] if n not in names]
    if unknown:
        raise UserError(f"{where or 'postprocessing.json'}: names classes {unknown} the model does not have ({', '.join(names)}); "
                        "remove the file and evaluate the run again to decide anew")
    return [names.index(n) for n in decision["largest_component"]]

