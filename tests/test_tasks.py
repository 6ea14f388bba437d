"""The task modules (yolo_tools/tasks/) are the one place a task's metrics are defined.

Every registered task fills in the whole protocol; what its `summarise` writes as intervals is exactly its
declared headline metrics; every number it writes has a meaning for the report; and a metric added to
one task module reaches the report without touching the report. Predictions here are the workbench's own
`prediction.Prediction` objects made by hand, scored against a tiny dataset folder, so no model is needed.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from yolo_tools import report, tasks
from yolo_tools.dataset import Dataset
from yolo_tools.metrics import bootstrap
from yolo_tools.prediction import Prediction

NAMES = ["a", "b"]


def _prediction(path: Path, boxes=(), classes=(), masks=None, probabilities=None) -> Prediction:
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    return Prediction(
        path=path,
        names=dict(enumerate(NAMES)),
        shape=(32, 32),
        boxes=boxes,
        classes=np.array(classes, int),
        confidences=np.linspace(0.9, 0.5, len(boxes)).astype(np.float32),
        masks=masks,
        probabilities=probabilities,
    )


def _images(root: Path, task: str) -> list[Prediction]:
    """Six images: true boxes / polygons in the label files (classify: class folders) and predictions that
    find some, miss some and add some, so every metric is defined."""
    labels = root / "labels" / "val"
    labels.mkdir(parents=True)
    made = []
    for i in range(6):
        cls = i % 2
        if task == "classify":
            path = root / "val" / NAMES[cls] / f"im{i}.png"
            p = np.array([0.3, 0.7]) if i % 3 else np.array([0.8, 0.2])
            made.append(_prediction(path, probabilities=p))
            continue
        path = root / "images" / "val" / f"im{i}.png"
        if task == "detect":
            (labels / f"im{i}.txt").write_text(f"{cls} 0.25 0.25 0.25 0.25\n")
            boxes = [[4, 4, 12, 12], [20, 20, 28, 28]] if i % 3 else [[20, 20, 28, 28]]
            made.append(_prediction(path, boxes, [cls, 1 - cls][: len(boxes)]))
        else:
            (labels / f"im{i}.txt").write_text(f"{cls} 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n")
            mask = np.zeros((1, 32, 32), bool)
            mask[0, 4 : 16 + i, 4:16] = True
            made.append(_prediction(path, [[4, 4, 16, 16 + i]], [cls], masks=mask))
    return made


def _summarise(task: tasks.Task, tmp_path: Path) -> tuple[tasks.Scores, pd.DataFrame]:
    dataset = Dataset(tmp_path / "data", task.name)
    state = tasks.Scoring(dataset, list(NAMES), "val")
    for prediction in _images(dataset.root, task.name):
        row, kept = task.score(state, prediction)
        state.rows.append(row)
        state.kept.append(kept)
    per_image = pd.DataFrame(state.rows)
    boot = bootstrap.Bootstrap([f"p{i // 2}" for i in range(len(per_image))])  # two images per patient
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    evaluation = tasks.Evaluation(per_image, boot, None, run_dir, "val", None, False, None)
    return task.summarise(state, evaluation), per_image


def test_every_registered_task_fills_the_whole_protocol() -> None:
    assert set(tasks.TASKS) == {"detect", "segment", "classify"}
    for name, task in tasks.TASKS.items():
        assert task.name == name
        assert all(callable(f) for f in (task.score, task.summarise, task.conventions, task.caption, task.group_numbers, task.fuse))
        assert set(task.per_image_metric) == {"column", "higher_is_better"}
        assert task.decides_by in ("confidence", "threshold")
        assert (task.choose_conf is not None) == (task.decides_by == "confidence"), f"{name}: who chooses its confidences?"
        assert task.headline and set(task.headline) <= set(task.meaning), f"{name}: a headline metric without a meaning"
        assert isinstance(task.conventions("0.25"), str) and task.conventions("0.25")
        for pattern in task.count_columns:
            re.compile(pattern)
    with pytest.raises(Exception, match="pose"):
        tasks.get("pose")


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_the_headline_metrics_are_the_intervals_summarise_writes(name: str, tmp_path: Path) -> None:
    task = tasks.get(name)
    scores, per_image = _summarise(task, tmp_path)
    assert list(scores.intervals) == list(task.headline), "intervals follow the task's headline, in its order"
    for metric, bounds in scores.intervals.items():
        assert metric in scores.metrics
        if bounds is not None and scores.metrics[metric] is not None and np.isfinite(scores.metrics[metric]):
            assert bounds[0] <= bounds[1]
    numbers = [k for k, v in scores.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    unexplained = [k for k in numbers if k not in task.meaning and k not in ("nsd_tolerance",)]
    assert not unexplained, f"{name}: metrics the report cannot explain: {unexplained}"
    assert task.per_image_metric["column"] in per_image, "the column that orders images is one its scorer writes"


def test_a_metric_added_to_one_task_module_reaches_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report reads meanings and count columns from the task: adding a metric edits the task module only."""
    detect = tasks.get("detect")
    extended = dataclasses.replace(
        detect,
        meaning={**detect.meaning, "boxes_per_image": "findings reported per image"},
        count_columns=(*detect.count_columns, "boxes_per_image"),
    )
    monkeypatch.setitem(tasks.TASKS, "detect", extended)
    summary = {"task": "detect", "validator": {}, "metrics": {"boxes_per_image": 3.0}, "intervals": {}}
    row = report._headline(summary).rows[0]
    assert row == ["boxes_per_image", "3", "—", "findings reported per image"]
    assert re.match(tasks.count_columns(), "boxes_per_image")


def test_each_task_says_how_its_test_scores_are_calibrated(tmp_path: Path) -> None:
    """A study's calibration.json comes from the task (`Task.calibration`): a detector's boxes matched to the truth
    at IoU 0.5 (the second box misses), a two-class classifier's p(positive), and a note where it is not computed."""
    from yolo_tools.metrics.classification import reliability

    label = tmp_path / "a.txt"
    label.write_text("0 0.25 0.25 0.25 0.25\n")  # a 32-pixel box from (16, 16) on a 128-pixel image
    findings = [
        {"image": "a.png", "class_id": 0, "confidence": 0.9, "x1": 16.0, "y1": 16.0, "x2": 48.0, "y2": 48.0},
        {"image": "a.png", "class_id": 0, "confidence": 0.8, "x1": 80.0, "y1": 80.0, "x2": 100.0, "y2": 100.0},
        {"image": "a.png", "class_id": 0, "confidence": 0.3, "x1": 17.0, "y1": 17.0, "x2": 47.0, "y2": 47.0},
    ]
    given = tasks.Calibrating(pd.DataFrame(), ["stone"], lambda image: label, lambda image: (128, 128), lambda: findings)
    found = tasks.get("detect").calibration(given)
    assert found["what"].startswith("the confidence of each reported test box")
    assert found["ece"] == reliability(np.array([True, False, False]), np.array([0.9, 0.8, 0.3]))["ece"]

    per_image = pd.DataFrame({"truth": ["ill", "well", "ill", "well"], "p_truth": [0.9, 0.8, 0.4, 0.3]})
    two = tasks.Calibrating(per_image, ["well", "ill"], lambda image: label, lambda image: (1, 1), lambda: [])
    found = tasks.get("classify").calibration(two)
    assert found["what"] == "p(ill) of each test image against its truth"
    assert found["ece"] == reliability(np.array([True, False, True, False]), np.array([0.9, 0.2, 0.4, 0.7]))["ece"]
    three = dataclasses.replace(two, classes=["a", "b", "c"])
    assert "3 classes" in tasks.get("classify").calibration(three)["note"]
    assert "mask" in tasks.get("segment").calibration(two)["note"]
