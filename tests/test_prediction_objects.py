"""`prediction.Prediction`, the form predictions leave the engine in: thresholding, drawing, and FiftyOne labels
made from it exactly as FiftyOne's own Ultralytics converter makes them from an Ultralytics result."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from ultralytics.engine.results import Results

from conftest import RECIPES, isolate_fiftyone
from yolo_tools import engine

NAMES = {0: "heart", 1: "lung"}


def _result(masks_size: tuple[int, int] | None = None) -> Results:
    """A segmentation result as a model gives it without retina_masks: masks smaller than the 90x120 image."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (90, 120, 3), np.uint8)
    boxes = torch.tensor([[10.3, 5.7, 60.2, 50.9, 0.91, 0], [70.1, 20.4, 118.8, 88.6, 0.42, 1], [5, 5, 20, 30, 0.2, 1]])
    masks = None
    if masks_size:
        grid = np.zeros((3, *masks_size), np.float32)
        grid[0, 4:30, 8:40], grid[1, 15:60, 50:79], grid[2, 3:18, 2:12] = 1, 1, 1
        masks = torch.from_numpy(grid)
    return Results(image, "scan.png", NAMES, boxes=boxes, masks=masks)


def test_thresholding_keeps_boxes_masks_and_outlines_together() -> None:
    prediction = engine.results._prediction(_result((64, 80)))
    kept = prediction.above(0.4)
    assert kept.confidences.tolist() == pytest.approx([0.91, 0.42])
    assert kept.classes.tolist() == [0, 1] and kept.boxes.shape == (2, 4) and kept.masks.shape == (2, 90, 120)
    assert [o.tolist() for o in kept.outlines] == [o.tolist() for o in prediction.outlines[:2]]
    assert prediction.masks.shape == (3, 90, 120)  # scaled to the image, as the ground truth is


def test_drawings_come_from_ultralytics_and_need_the_image() -> None:
    result = _result((64, 80))
    drawn = engine.results._prediction(result, draw=True)
    np.testing.assert_array_equal(engine.draw(drawn), result.plot())
    with pytest.raises(ValueError, match="scan.png: predicted without its image"):
        engine.draw(engine.results._prediction(result))
    fused = engine.from_arrays(result.orig_img, "scan.png", NAMES, np.array([[10, 5, 60, 50]]), np.array([0.9]), np.array([1]))
    assert fused.drawing is None and fused.image is result.orig_img
    changed = np.any(engine.draw(fused) != result.orig_img, axis=2)
    assert changed[5:51, 10:61].any() and not changed[70:, :].any()  # the box is drawn, the rest left as it was
    assert fused.above(0.95).boxes.shape == (0, 4) and not np.any(engine.draw(fused.above(0.95)) != result.orig_img)


def _fields(label) -> dict:
    """A label's stored fields, without its random id."""
    if label is None:
        return {}
    fields = {k: v for k, v in label.to_dict().items() if k not in ("_id", "id")}
    if "detections" in fields:
        fields["detections"] = [_fields(d) for d in label.detections]
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in fields.items()}


@pytest.mark.parametrize("task", ["detect", "segment", "classify"])
def test_fiftyone_labels_are_those_of_fiftyones_ultralytics_converter(task: str, tmp_path: Path, monkeypatch) -> None:
    isolate_fiftyone(monkeypatch, tmp_path)
    import fiftyone.utils.ultralytics as fou

    from yolo_tools.review.fiftyone_inspect import INSPECTIONS, labels_of

    if task == "classify":
        result = Results(np.zeros((90, 120, 3), np.uint8), "scan.png", NAMES, probs=torch.tensor([0.3, 0.7]))
        theirs = fou.to_classifications(result)
        theirs.logits = np.log(result.probs.data.numpy().astype(float))  # the Brain's logits, as inspect stored them
    else:
        result = _result((64, 80) if task == "segment" else None)
        theirs = fou.to_instances(result) if task == "segment" else fou.to_detections(result)
    ours = INSPECTIONS[labels_of(task)].label(engine.results._prediction(result))
    assert _fields(ours) == _fields(theirs)
    assert task == "classify" or len(ours.detections) == 3


def test_the_dashboard_draws_a_fused_run_as_it_draws_one_model(tmp_path: Path) -> None:
    """Two copies of one classifier fused: the same probabilities, so the same overlay, pixel for pixel,
    though one is Ultralytics' drawing made at prediction time and the other drawn later from the arrays."""
    from yolo_tools.recipe import load_recipe
    from yolo_tools.review import app

    recipe = load_recipe(RECIPES / "pneumonia.yaml")
    model = engine.load_model("yolov8n-cls.yaml")  # untrained: any probabilities will do
    image = tmp_path / "xray.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (80, 96), np.uint8))
    one = app.analyse(app.LoadedRun(recipe, model, "cpu", 0.0), image)
    fused = app.analyse(app.LoadedRun(recipe, [model, model], "cpu", 0.0), image)
    assert one.overlay.shape == (80, 96, 3)
    np.testing.assert_array_equal(fused.overlay, one.overlay)
    assert fused.findings.equals(one.findings) and fused.diagnosis == one.diagnosis
