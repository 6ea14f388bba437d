"""`Prediction`, one image's findings as plain NumPy arrays: the form every prediction takes outside the engine.

Metrics, tasks, fusion, the outputs and the dashboard read these fields only, so they name the type from here
without importing the Ultralytics side (`yolo_tools.engine`, which makes Predictions from its results and
draws them). Also here: the confidence a finding needs when a run has chosen none (`DEFAULT_CONF`), the keys
a run's per-class confidences and test-time mirroring travel under among the predict arguments, and how
those per-class confidences become one threshold per class id (`class_thresholds`, applied by `Prediction.above`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from yolo_tools.errors import UserError

DEFAULT_CONF = 0.25  # the confidence a finding needs, everywhere a run has none of its own: Ultralytics' predict default
# A run's confidence per class name (its operating_point.json), beside `conf` in the predict arguments: Ultralytics
# predicts at `conf`, the lowest of them, and each class's findings are then held to their own (`class_thresholds`).
CLASS_CONF = "class_conf"


# Test-time mirroring (a recipe's predict.flips), beside them: a `Mirroring` saying which mirror images are predicted
# too and how an image's predictions become one (`predict`).
MIRROR = "mirror"


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
        return self if keep.all() else self._only(np.flatnonzero(keep))

    def best(self, count: int) -> Prediction:
        """Only the `count` most confident findings (the recipe's `max_det` after a fusion, where a mirror image's
        finding apart from the plain one's stays a second finding); itself when there are no more."""
        if len(self.confidences) <= count:
            return self
        return self._only(np.sort(np.argsort(-self.confidences, kind="stable")[:count]))

    def _only(self, keep: np.ndarray) -> Prediction:
        """The findings at indices `keep`, in that order."""
        return replace(
            self,
            boxes=self.boxes[keep],
            classes=self.classes[keep],
            confidences=self.confidences[keep],
            masks=None if self.masks is None else self.masks[keep],
            outlines=None if self.outlines is None else [self.outlines[i] for i in keep],
            drawing=None,
        )

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


@dataclass(frozen=True)
class Mirroring:
    """Test-time mirroring, nnU-Net's (Isensee et al. 2021): each image is predicted as it is and mirrored by each
    of `flips` ('horizontal': columns reversed, 'vertical': rows reversed), the mirror images' findings are
    mapped back onto the image, and `fuse` (the task's: voted masks, fused boxes; yolo_tools/fusion.py) makes
    the image's predictions one. Which flips are anatomy is the recipe's to say (`predict.flips`)."""

    flips: tuple[str, ...]
    fuse: Callable[[Sequence[Prediction], Sequence[float] | None, Any], Prediction]


def mask_boxes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bounding box (x1 y1 x2 y2, pixel edges) of each class's mask in (C, H, W), and whether it has any pixel."""
    rows, cols = masks.any(2), masks.any(1)
    height, width = rows.shape[1], cols.shape[1]
    boxes = np.stack(
        [cols.argmax(1), rows.argmax(1), width - cols[:, ::-1].argmax(1), height - rows[:, ::-1].argmax(1)], axis=1
    )
    return boxes.astype(np.float64), rows.any(1)
