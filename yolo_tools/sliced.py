"""Sliced inference: a detector run on overlapping slices of each image at native resolution, merged by NMS.

The counterpart of training on tiles (`yolo_tools/convert/tiles.py`): a model that learnt stones at
their native size must see them at that size, not in the whole slice shrunk to `imgsz`. SAHI (Akyon et
al., ICIP 2022) does exactly this with Ultralytics models: it cuts each image into `size` x `size`
slices overlapping by `overlap`, predicts each, shifts the boxes back into the image's coordinates and
merges duplicates from overlapping slices (here with NMS at Ultralytics' `iou`, per class). Only the
slices are predicted (no extra pass over the whole image), so every finding is seen at native scale.

The only module that touches sahi. The results come back as Ultralytics results
(`yolo.from_arrays`), so `predict` writes and `evaluate` scores them like any other prediction:
`yolo_tools predict RUN IMAGES slice=320` and `yolo_tools evaluate RUN slice=320 [slice_overlap=0.2]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolo_tools import yolo
from yolo_tools.errors import UserError

# The arguments sliced inference adds to predict and evaluate (not Ultralytics arguments).
ARGS = frozenset({"slice", "slice_overlap"})


def options(args: dict[str, Any]) -> tuple[int, float] | None:
    """(slice size, overlap) popped from predict/evaluate arguments, or None when slicing is not asked for."""
    size, overlap = args.pop("slice", None), args.pop("slice_overlap", 0.2)
    if size is None:
        return None
    try:
        size, overlap = int(size), float(overlap)
    except (TypeError, ValueError):
        raise UserError(f"command line: slice={size} slice_overlap={overlap}: slice is a size in pixels (320), slice_overlap a fraction (0.2)") from None
    if size < 32 or not 0 <= overlap < 1:
        raise UserError(f"command line: slice={size} slice_overlap={overlap}: slice is at least 32 pixels, slice_overlap in [0, 1)")
    return size, overlap


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


def predict(weights: Path, files: Iterable[Path], args: dict[str, Any], size: int, overlap: float) -> Iterator[yolo.Prediction]:
    """One prediction per image, its boxes in the image's own pixel coordinates (the image kept, for drawing)."""
    from sahi import AutoDetectionModel
    from sahi.predict import get_sliced_prediction

    task, _ = yolo.task_and_names(weights)
    if task != "detect":
        raise UserError(f"{weights}: sliced inference (slice=) is for detection models; this one is a {task} model")
    model = AutoDetectionModel.from_pretrained(
        model_type="ultralytics", model_path=str(weights), confidence_threshold=float(args.get("conf", yolo.DEFAULT_CONF)),
        device=_sahi_device(yolo.pick_device(args.get("device"), announce=False)), image_size=int(args.get("imgsz", size)),
    )
    names = {int(k): v for k, v in model.category_mapping.items()}
    _, thresholds = yolo.class_thresholds(args, names)  # the run's per-class confidences, above sahi's one
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
        yield yolo.from_arrays(
            image, path, names, boxes=boxes, confidences=np.array([p.score.value for p in found], np.float32),
            classes=np.array([p.category.id for p in found], np.float32),
        ).above(thresholds)
