"""Ultralytics' result objects and `Prediction`s, both ways, and what needs a result to be done: drawing the
findings as `yolo predict` draws them, and cutting instances' pixels (their boxes and outlines traced again).

A result never leaves the engine: it becomes a `Prediction` here (`_prediction`), and plain arrays become a
result here (`_results`) only to be rounded, outlined and plotted exactly as a single model's.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from yolo_tools.prediction import Prediction, mask_boxes


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


def draw(prediction: Prediction) -> np.ndarray:
    """The image with the findings drawn by Ultralytics' plotting (BGR), as `yolo predict` draws them.

    The drawing made at prediction time (`draw=True`) when there is one; otherwise (a fused or thresholded
    prediction) plotted now from its arrays on the kept image.
    """
    if prediction.drawing is not None:
        return prediction.drawing
    if prediction.image is None:
        raise ValueError(f"{prediction.path}: predicted without its image; predict with draw=True or keep_image=True")
    classify = prediction.probabilities is not None
    return _results(
        prediction.image,
        prediction.path,
        prediction.names,
        None if classify else prediction.boxes,
        None if classify else prediction.confidences,
        None if classify else prediction.classes,
        prediction.masks,
        prediction.probabilities,
    ).plot()


def keep_pixels(prediction: Prediction, kept: np.ndarray) -> Prediction:
    """Only the pixels of each instance that `kept` ((classes, H, W) bool) keeps for its class: an instance left
    empty is dropped, a cut one gets the box and outline of what is left (post-processing)."""
    if prediction.masks is None or not len(prediction.masks):
        return prediction
    masks = prediction.masks & kept[prediction.classes]
    cut = (masks != prediction.masks).any((1, 2))
    if not cut.any():
        return prediction
    alive = masks.any((1, 2))
    boxes, found = prediction.boxes.astype(np.float64), mask_boxes(masks)[0]
    boxes[cut & alive] = found[cut & alive]
    result = _results(np.zeros((*prediction.shape, 3), np.uint8), prediction.path, prediction.names, boxes[alive],
                      prediction.confidences[alive], prediction.classes[alive], masks[alive], None)
    return replace(_prediction(result), image=prediction.image)
