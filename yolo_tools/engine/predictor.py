"""Prediction through Ultralytics' predictor, batched on the chosen device: files, folders and lists
(`predict`), images the workbench decoded itself (`predict_arrays`), one image through a loaded model
(`predict_array`). Each result leaves as a `Prediction` held to its class's confidence, fused with its
mirror images' findings when the recipe mirrors.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from yolo_tools.engine.devices import pick_device
from yolo_tools.engine.results import _prediction
from yolo_tools.engine.results import draw as draw_findings
from yolo_tools.engine.weights import load_model
from yolo_tools.prediction import (
    CLASS_CONF,
    DEFAULT_CONF,
    MIRROR,
    Mirroring,
    Prediction,
    class_thresholds,
)

__all__ = ["CLASS_CONF", "PREDICT_DEFAULTS", "predict", "predict_array", "predict_arrays"]


PREDICT_DEFAULTS = {"batch": 16, "conf": DEFAULT_CONF}  # what every prediction here starts from; the caller's args win


def predict(
    weights: Path, source: str | list[Path], args: dict[str, Any], keep_image: bool = False, draw: bool = False
) -> Iterator[Prediction]:
    """Stream predictions for `source` (an image, a folder, a glob, or a list of image files), batched on the
    chosen device. A list goes to Ultralytics' own loader as a `.txt` listing (one path a line), so it decodes
    the files exactly as it would a folder. `keep_image` keeps each decoded input on its prediction (to crop
    it, or to draw a fused result later); `draw` plots the findings on it as they come (`results.draw`).
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


def predict_array(model: Any, image: np.ndarray, args: dict[str, Any], draw: bool = False) -> Prediction:
    """One in-memory image (uint8 BGR, as OpenCV reads it) through an already loaded model.

    For callers that keep a model between requests (the dashboard) rather than reloading it per file.
    The prediction keeps the image; `draw` also plots the findings on it.
    """
    args, thresholds = class_thresholds({"conf": DEFAULT_CONF, **args}, model.names)
    mirroring = args.pop(MIRROR, None)
    results = model.predict(source=image, verbose=False, **args)
    return next(_predictions(results, args, thresholds, mirroring, model, True, draw))


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
            fused = fused.best(int(args.get("max_det", len(fused.confidences))))
            fused = fused if keep_image or draw else replace(fused, image=None)
            yield replace(fused, drawing=draw_findings(fused)) if draw else fused
