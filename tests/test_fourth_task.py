"""Adding a task is one module: a toy fourth task (tests/toy_task.py), registered with one entry in `tasks.TASKS`,
is what the recipe checks, conversion, evaluation, the report, inspect/review, a study's pages, the hospital
output formats and sliced inference consult, with nothing else edited. Each check looks at something only the
toy task's module says (its label-line wording, its validator name, its meaning, its Roboflow format, what its
model is called, what its findings are), so it fails if that part of the workbench kept a table of its own.

What is not run here: a training or a validation, which need a model of the task (Ultralytics has no 'spot'
model); evaluate's scoring loop, the report's table and the inspect/review conversions are run on their own.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import toy_task
import yaml

from yolo_tools import evaluation, report, tasks
from yolo_tools.conversion import convert_folder
from yolo_tools.convert.writer import SkipSample, check_lines
from yolo_tools.dataset import Dataset
from yolo_tools.errors import UserError
from yolo_tools.inference import predictors
from yolo_tools.metrics import bootstrap
from yolo_tools.prediction import Prediction
from yolo_tools.recipe import load_recipe
from yolo_tools.sources import roboflow_pull


@pytest.fixture(autouse=True)
def spot(monkeypatch: pytest.MonkeyPatch) -> tasks.Task:
    monkeypatch.setitem(tasks.TASKS, toy_task.NAME, toy_task.TASK)
    return toy_task.TASK


def _recipe(tmp_path: Path, **fields) -> Path:
    body = {"name": "spots", "task": "spot", "data": {"source": {"kind": "synthetic"}, "converter": "synthetic"},
            "classes": ["spot"], **fields}
    path = tmp_path / "spots.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_recipe_checks_know_the_task(tmp_path: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path))
    assert recipe.task == "spot" and recipe.model == "yolov8n.pt", "a recipe without model starts from the task's default"
    with pytest.raises(UserError, match=r"does not fit task 'spot'"):
        load_recipe(_recipe(tmp_path, model="yolov8n-seg.yaml"))
    with pytest.raises(UserError, match=r"class_balance: 'oversample' is for classify recipes; a spot recipe"):
        load_recipe(_recipe(tmp_path, class_balance="oversample"))
    with pytest.raises(UserError, match=r"task: Input should be 'detect', 'segment', 'classify' or 'spot'"):
        load_recipe(_recipe(tmp_path, task="track"))


def test_conversion_writes_the_tasks_layout_by_its_rules(tmp_path: Path) -> None:
    src = tmp_path / "boxes"
    (src / "images").mkdir(parents=True)
    rows = ["label,x0,y0,w,h,name"]
    for i in range(8):
        cv2.imwrite(str(src / "images" / f"im{i}.png"), np.full((32, 32, 3), 40 * (i % 4), np.uint8))
        rows.append(f"spot,{4 + i},{4 + i},6,6,im{i}")
    (src / "boxes.csv").write_text("\n".join(rows) + "\n")
    card = convert_folder("box-csv", src, tmp_path / "out", task="spot")
    assert card["task"] == "spot"
    dataset = Dataset(tmp_path / "out", "spot")
    assert not dataset.class_folders and list((tmp_path / "out" / "labels").rglob("*.txt")), "label files, as its rule says"
    with pytest.raises(SkipSample, match=r"4 \(x y w h of a spot\)"):  # the toy module's own wording
        check_lines(["0 0.1 0.1 0.5 0.1 0.5 0.5"], "spot", ["spot"])
    assert roboflow_pull.export_format("spot") == "yolov8-spots"


def _prediction(path: Path, boxes: list[list[float]]) -> Prediction:
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    return Prediction(path=path, names={0: "spot"}, shape=(32, 32), boxes=boxes, classes=np.zeros(len(boxes), int),
                      confidences=np.full(len(boxes), 0.9, np.float32), masks=None, probabilities=None)


def test_evaluation_scores_and_names_by_the_task(tmp_path: Path) -> None:
    spec = tasks.get("spot")
    root = tmp_path / "data"
    (root / "labels" / "val").mkdir(parents=True)
    found = []
    for i in range(4):
        (root / "labels" / "val" / f"im{i}.txt").write_text("0 0.25 0.25 0.25 0.25\n")
        found.append(_prediction(root / "images" / "val" / f"im{i}.png", [[4, 4, 12, 12]] if i % 2 else []))
    state = tasks.Scoring(Dataset(root, "spot"), ["spot"], "val")
    assert len(list(evaluation._tee(iter(found), spec, state))) == 4  # evaluate's scoring loop, with the task's scorer
    per_image = pd.DataFrame(state.rows)
    scores = spec.summarise(state, tasks.Evaluation(per_image, bootstrap.Bootstrap(list(per_image["image"])), None,
                                                     tmp_path, "val", None, False, None))
    assert scores.metrics["boxes_true"] == 4 and scores.metrics["found"] == 2
    assert predictors.prediction_args("spot", None, None, {})["max_det"] == 5, "what its predictions need"
    assert spec.short_metrics({"metrics/recall(B)": 0.5, "metrics/mAP50(B)": 0.1}) == {"spot_recall": 0.5}


def test_the_report_explains_its_numbers() -> None:
    summary = {"task": "spot", "validator": {}, "metrics": {"boxes_true": 4}, "intervals": {}}
    row = report._headline(summary).rows[0]
    assert row[0] == "boxes_true" and row[-1] == toy_task.MEANING
    assert re.match(tasks.count_columns(), "boxes_true")


def test_inspect_and_review_show_its_findings_as_its_kind_of_label() -> None:
    from yolo_tools.review import fiftyone_inspect

    assert fiftyone_inspect.labels_of("spot") == "boxes"
    assert fiftyone_inspect.INSPECTIONS[fiftyone_inspect.labels_of("spot")].label is not None
    regions = fiftyone_inspect.truth_regions("spot", ["0 0.5 0.5 0.2 0.2"], ["spot"], 100, 100)
    assert [r["type"] for r in regions] == ["rectanglelabels"]
    assert fiftyone_inspect.labels_from_results("spot", regions, ["spot"]) == {"t0": "0 0.500000 0.500000 0.200000 0.200000"}


def test_study_pages_hospital_formats_and_sliced_inference_ask_the_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a study's methods call the model, which output formats hold its findings and whether `slice=` applies
    come from the task's own fields (`kind`, `labels`, `slices`), not from a comparison with a task's name."""
    from yolo_tools.outputs import prediction_formats
    from yolo_tools.report import claim

    assert toy_task.KIND in claim._model({"recipe": {"start": None, "model": "yolov8n.pt", "task": "spot"}})
    weights = tmp_path / "spot.pt"
    prediction_formats.check_task("coco", "spot", weights)  # its findings are boxes: COCO holds them
    with pytest.raises(UserError, match=r"--format nifti writes masks; .* is a spot model \(.*spot: dicom-sr, coco\)"):
        prediction_formats.check_task("nifti", "spot", weights)
    assert prediction_formats.default_dicom_format("spot") == "dicom-sr"
    recipe = load_recipe(_recipe(tmp_path))
    assert predictors.choose(weights, [weights], recipe, (320, 0.2), "evaluate").kind == "sliced"
    monkeypatch.setitem(tasks.TASKS, "spot", dataclasses.replace(toy_task.TASK, slices=False))
    with pytest.raises(UserError, match=r"slice=320: sliced inference is for detection runs"):
        predictors.choose(weights, [weights], recipe, (320, 0.2), "evaluate")
