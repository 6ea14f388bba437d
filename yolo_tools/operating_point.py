"""Operating points: the threshold a run decides at, chosen once on val and used everywhere after.

A classifier's ranking (ROC AUC) often survives new patients while its default 0.5 threshold does not,
and a detector's default confidence (0.25) is Ultralytics' guess, not the run's. So the threshold is a
property of the run: chosen on the val split (never on test), stored in `<run>/operating_point.json`,
and read by `predict`, `evaluate` and `app`.

- Classifier (two classes): scikit-learn's `roc_curve` on val; the positive class is the second in the
  model's order (as for ROC AUC). Rules: `youden` (max sensitivity + specificity - 1, the default) or a
  target `sensitivity=0.95` / `specificity=0.9` (the highest threshold reaching the target, so the other
  rate is as good as it can be).
- Detector: per class, the confidence where that class's F1 at IoU 0.5 peaks on val, from the run's own
  predictions at confidence 0.001 through Ultralytics' `ap_per_class` curves, so it fits the confidences
  `predict` gives; segmentation: where the class's Dice (pooled over val images) peaks, from the same kind of
  predictions (`tasks/segment.py`). On a plateau (`max_det: 1`) the highest confidence of it. The
  validator's own F1 curves are not used: it letterboxes differently, so its confidences are not those
  `predict` gives. One confidence for all classes holds the harder
  class to the easier ones' level: a heart-seg model finds both lungs with confidence to spare and the
  heart with less, and at the mean-F1 peak (0.17) it missed the heart in 25 of 40 val films (heart Dice
  0.33); at the heart's own Dice peak (0.04) heart Dice is 0.82, the lungs' unchanged. `class_conf`
  stores them by class name (a class absent from val gets the peak over all classes), `conf` the lowest,
  which Ultralytics predicts at (`prediction.class_thresholds`). A `conf=` given on the command line replaces
  all of them.
- Sliced inference (`slice=`, yolo_tools/inference/sliced.py) ranks findings differently from whole images: a stone
  seen at native size on a slice gets another confidence than in the whole image shrunk to `imgsz`. So a
  detector evaluated with `slice=` chooses its own point from sliced predictions on val, stored beside the
  whole-image one (`operating_point-slice<size>-overlap<overlap>.json`); `predict ... slice=` uses it, or
  the whole-image point, saying so, until one was chosen.
- Nothing to choose: when the run's val predictions find nothing at any confidence (F1 or Dice 0 throughout),
  the flat curve's "peak" would be the top of the range, a confidence that hides every finding; then no
  point is stored, evaluate says so and Ultralytics' default applies (a point such an earlier version
  stored, `conf` 1.0, is ignored with a warning). A class never found takes the overall point.
- Any task: `max_det` from the recipe's train arguments (`max_det: 1` for one heart per film) goes to
  predict and evaluate as well, not only to training's validation.

Examples:
    >>> choose_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.55, 0.9]), "youden")["threshold"]
    0.9
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from yolo_tools.errors import UserError
from yolo_tools.prediction import CLASS_CONF

LOG = logging.getLogger(__name__)
_HIDING_WARNED: set[Path] = set()

FILE = "operating_point.json"
Slicing = tuple[int, float] | None  # (slice size, overlap) of sliced inference, or None for whole images
DEFAULT_RULE = "youden"
_TARGET = re.compile(r"^(sensitivity|specificity)=(0?\.\d+|1(\.0*)?)$")


def check_rule(rule: str) -> str:
    if rule != DEFAULT_RULE and not _TARGET.match(rule):
        raise UserError(f"operating point '{rule}': use youden, sensitivity=0.95 or specificity=0.9 (a rate in 0..1)")
    return rule


def choose_threshold(positive: np.ndarray, scores: np.ndarray, rule: str = DEFAULT_RULE) -> dict[str, Any]:
    """The threshold on `scores` (predict positive when score >= threshold) by `rule`, with its rates on these data."""
    check_rule(rule)
    positive = np.asarray(positive, bool)
    if positive.all() or not positive.any():
        raise UserError("an operating point needs both classes in the val split")
    from sklearn.metrics import roc_curve  # on first use: scikit-learn costs seconds to import, and tasks/ import this module

    fpr, tpr, thresholds = roc_curve(positive, scores)
    finite = np.isfinite(thresholds)  # the first threshold is +inf (nothing positive)
    fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
    if rule == DEFAULT_RULE:
        best = int(np.argmax(tpr - fpr))
    else:
        rate, target = rule.split("=")
        reached = tpr >= float(target) if rate == "sensitivity" else (1 - fpr) >= float(target)
        candidates = np.flatnonzero(reached)
        if not len(candidates):
            raise UserError(f"operating point '{rule}': no threshold reaches it on the val split")
        best = int(candidates[0] if rate == "sensitivity" else candidates[-1])  # thresholds fall as the index grows
    return {
        "rule": rule,
        "threshold": float(thresholds[best]),
        "sensitivity": float(tpr[best]),
        "specificity": float(1 - fpr[best]),
    }


def per_class(rule: str, overall: float, chosen: dict[str, float], classes: list[str]) -> dict[str, Any]:
    """A detector's or segmenter's point: each class's own confidence (`overall`, the peak over all classes,
    for a class val has no example of) and, as `conf`, the lowest of them."""
    class_conf = {name: float(chosen.get(name, overall)) for name in classes}
    return {"rule": rule, "conf": min(class_conf.values()), CLASS_CONF: class_conf}


def path_of(run_dir: Path, slicing: Slicing = None) -> Path:
    """Where a run keeps its point for whole images, or for sliced inference at that size and overlap."""
    if slicing is None:
        return run_dir / FILE
    size, overlap = slicing
    return run_dir / f"operating_point-slice{size}-overlap{overlap:g}.json"


def save(run_dir: Path, point: dict[str, Any], slicing: Slicing = None) -> Path:
    path = path_of(run_dir, slicing)
    partial = path.with_name(f".{path.name}.partial")
    made = {"predictions": "whole images" if slicing is None else f"slices of {slicing[0]} px overlapping by {slicing[1]:g}"}
    partial.write_text(json.dumps({**point, "chosen_on": "val", **made}, indent=2))
    partial.replace(path)
    return path


def load(run_dir: Path | None, slicing: Slicing = None) -> dict[str, Any] | None:
    """The run's stored point (for whole images, or for this slicing); None when there is none or the weights
    are newer (a resumed training chose nothing yet).

    Per-class confidences without an overall `conf` (an edited or hand-written file) get the lowest of them
    as `conf`, as `per_class` writes it: Ultralytics predicts at that one and each class is held to its own.
    A file with none of `conf`, `class_conf` and `threshold` decides nothing and is refused."""
    path = path_of(run_dir, slicing) if run_dir else None
    if not (path and path.is_file()):
        return None
    weights = run_dir / "weights" / "best.pt"
    if weights.is_file() and weights.stat().st_mtime > path.stat().st_mtime:
        return None
    try:
        point = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        point = None
    numbers = [point.get(key) for key in ("conf", "threshold") if key in point] if isinstance(point, dict) else [None]
    classes = point.get(CLASS_CONF, {}) if isinstance(point, dict) else {}
    numbers += list(classes.values()) if isinstance(classes, dict) else [None]
    if not numbers or not all(isinstance(n, (int, float)) and not isinstance(n, bool) and 0 <= n <= 1 for n in numbers):
        raise UserError(
            f"{path}: not an operating point yolo_tools evaluate wrote (damaged, or edited: it holds conf, class_conf "
            f"or threshold; conf, threshold and each class's conf are numbers from 0 to 1). Remove it and run "
            f"yolo_tools evaluate {run_dir} to choose one on val again, or give conf= on the command line"
        )
    if classes and "conf" not in point:
        point["conf"] = min(classes.values())
    if "threshold" not in point and point["conf"] >= 1:
        if path not in _HIDING_WARNED:  # said once per file and process, though several steps read it
            _HIDING_WARNED.add(path)
            LOG.warning(
                "%s: conf %g hides every finding (an earlier version stored it when the val predictions found nothing), "
                "so it is not used: Ultralytics' default conf applies. Remove the file and run yolo_tools evaluate %s to "
                "choose one again, or give conf= on the command line", path, point["conf"], run_dir,
            )
        return None
    return point


def predict_args(
    recipe: Any, run_dir: Path | None, given: dict[str, Any] | None = None, slicing: Slicing = None
) -> dict[str, Any]:
    """The predict arguments a run implies under those `given` (the command line's win): the recipe's (a `Recipe`,
    or None; not imported here, so tasks/ stay below recipes) `max_det`
    and the val-chosen `conf` with its per-class confidences (detect, segment), those chosen for `slicing`
    when there are. A given `conf` is one threshold for every class, so it replaces the per-class ones too."""
    implied: dict[str, Any] = {}
    if recipe is not None and "max_det" in recipe.train:
        implied["max_det"] = recipe.train["max_det"]
    given = given or {}
    point = load(run_dir, slicing) if slicing else None
    if point is None:
        point = load(run_dir)
        if slicing and point and "conf" not in given:
            size, overlap = slicing
            print(f"{run_dir}: no confidence chosen for slice={size} slice_overlap={overlap:g} yet, so the one chosen on "
                  f"whole val images is used; yolo_tools evaluate {run_dir} slice={size} chooses one from sliced predictions")
    if point and "conf" in point:
        implied["conf"] = point["conf"]
        if point.get(CLASS_CONF):
            implied[CLASS_CONF] = point[CLASS_CONF]
    if "conf" in given:
        implied.pop(CLASS_CONF, None)
    return {**implied, **given}


def decide(probabilities: np.ndarray, point: dict[str, Any] | None) -> int:
    """The class an image is given: positive (index 1) when its probability reaches the stored threshold, else argmax."""
    if point is None or "threshold" not in point or len(probabilities) != 2:
        return int(np.argmax(probabilities))
    return int(probabilities[1] >= point["threshold"])
