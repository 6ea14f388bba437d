"""A fourth task in one module, as a new task (Ultralytics' pose, obb, ...) would be added: `TASK` fills in the
whole protocol (tasks/protocol.py) and registering it is one entry in `tasks.TASKS`.

"spot": small findings located by boxes. Its scoring is detection's, its facts are its own (label-line rule,
validator names, summary, Roboflow format, meanings, what its model is called), so tests/test_fourth_task.py can tell that each part of
the workbench read them from this task rather than from detect's.
"""

from __future__ import annotations

import dataclasses

from yolo_tools.codecs.label_lines import LabelLines
from yolo_tools.tasks import detect

NAME = "spot"
MEANING = "spots marked in the ground truth (the toy task's own word for it)"
KIND = "spot finding"

TASK = dataclasses.replace(
    detect.TASK,
    name=NAME,
    summary="spots as small boxes",
    label_lines=LabelLines(polygons=False, wanted="4 (x y w h of a spot)"),
    validator_metrics={"metrics/recall(B)": "spot_recall"},
    roboflow_format="yolov8-spots",
    meaning={**detect.TASK.meaning, "boxes_true": MEANING},
    predict_args={"max_det": 5},  # spots are few per image
    kind=KIND,
)
