"""Sliced inference: a detector run on overlapping slices of each image at native resolution, merged by NMS.

The counterpart of training on tiles (`yolo_tools/convert/tiles.py`): a model that learnt stones at
their native size must see them at that size, not in the whole slice shrunk to `imgsz`. SAHI (Akyon et
al., ICIP 2022) does exactly this with Ultralytics models: it cuts each image into `size` x `size`
slices overlapping by `overlap`, predicts each, shifts the boxes back into the image's coordinates and
merges duplicates from overlapping slices (here with NMS at Ultralytics' `iou`, per class). Only the
slices are predicted (no extra pass over the whole image), so every finding is seen at native scale.

The only module that touches sahi. The results come back as Ultralytics results
(`engine.from_arrays`), so `predict` writes and `evaluate` scores them like any other prediction:
`yolo_tools predict RUN IMAGES slice=320` and `yolo_tools evaluate RUN slice=320 [slice_overlap=0.2]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolo_tools import engine, tasks
from yolo_tools.errors import UserError
from yolo_tools.imaging.pillow import pillow_open
from yolo_tools.prediction import DEFAULT_CONF, Prediction, class_thresholds

# The arguments sliced inference adds to predict and evaluate (not Ultralytics arguments).
ARGS = frozenset({"slice", "slice_overlap"})


def options(args: dict[str, Any]) -> tuple[int, float] | None:
    """(slice size, overlap) popped from predict/evaluate arguments, or None when slicing is not asked for.

    Their types and ranges were checked with every other key=value (`yolo_args.check_command_line`);
    an overlap without a slice would be ignored, so it is refused.
    """
    size, overlap = args.pop("slice", None), args.pop("slice_overlap", None)
    if size is None:
        if overlap is not None:
            raise UserError(f"command line: slice_overlap={overlap}: only sliced inference uses it; add slice=SIZE (e.g. slice=320) or leave it out")
        return None
    return int(size), float(0.2 if overlap is None else overlap)


def check_fits(size: int, files: Iterable[Path]) -> None:
    """Refuse a slice larger than an image before anything is predicted.

    SAHI cuts such an image into one slice, the whole image, and the model gets it enlarged to `size`
    (`image_size`): the findings are no longer seen at native scale, which is what slicing is for, and
    `slice=100000` asks Ultralytics for a 100000 x 100000 x 3 canvas (30 GB). Only each file's header is read (Pillow).
    """
    sides = []
    for path in files:
        try:
            with pillow_open(path) as image:
                sides.append((max(image.size), path, image.size))
        except (OSError, ValueError):
            continue  # a file that cannot be read is named when it is predicted
    too_small = [found for found in sides if found[0] < size]
    if too_small:
        _, path, (width, height) = too_small[0]
        largest = min(side for side, _, _ in sides)
        raise UserError(
            f"command line: slice={size} is larger than {path} ({width} x {height} px)"
            f"{f' and {len(too_small) - 1} other image(s)' if len(too_small) > 1 else ''}: each would be predicted "
            f"whole, enlarged to {size} px. Give slice= at most {largest} (the smallest image's longer side), "
            "or predict without slice="
        )


@contextmanager
def _pillow_limit_kept() -> Iterator[None]:
    """SAHI's image reader sets Pillow's `Image.MAX_IMAGE_PIXELS` to None for the whole process, which
    switches off the decompression-bomb check every later image read relies on (convert/images.py);
    the limit is put back after each call."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _sahi_device(device: str) -> str:
    return "cpu" if device in ("cpu", "mps") else f"cuda:{device.split(',')[0]}"


def predict(weights: Path, files: Iterable[Path], args: dict[str, Any], size: int, overlap: float) -> Iterator[Prediction]:
    """One prediction per image, its boxes in the image's own pixel coordinates (the image kept, for drawing)."""
    from sahi import AutoDetectionModel
    from sahi.predict import get_sliced_prediction

    files = list(files)
    check_fits(size, files)
    task, _ = engine.task_and_names(weights)
    spec = tasks.TASKS.get(task)  # None: a model of a task the workbench does not evaluate
    if not (spec and spec.slices):  # SAHI merges boxes found on tiles
        raise UserError(f"{weights}: sliced inference (slice=) is for detection models; this one is a {task} model")
    model = AutoDetectionModel.from_pretrained(
        model_type="ultralytics", model_path=str(weights), confidence_threshold=float(args.get("conf", DEFAULT_CONF)),
        device=_sahi_device(engine.pick_device(args.get("device"), announce=False)), image_size=int(args.get("imgsz", size)),
    )
    names = {int(k): v for k, v in model.category_mapping.items()}
    _, thresholds = class_thresholds(args, names)  # the run's per-class confidences, above sahi's one
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"{path}: cannot be read as an image")
        with _pillow_limit_kept():
            found = get_sliced_prediction(
                np.ascontiguousarray(image[..., ::-1]), model, slice_height=size, slice_width=size,
                overlap_height_ratio=overlap, overlap_width_ratio=overlap, perform_standard_pred=False,
                postprocess_type="NMS", postprocess_match_metric="IOU",
                postprocess_match_threshold=float(args.get("iou", 0.7)), verbose=0,
            ).object_prediction_list
        boxes = np.array([p.bbox.to_xyxy() for p in found], np.float32).reshape(-1, 4)
        yield engine.from_arrays(
            image, path, names, boxes=boxes, confidences=np.array([p.score.value for p in found], np.float32),
            classes=np.array([p.category.id for p in found], np.float32),
        ).above(thresholds)
