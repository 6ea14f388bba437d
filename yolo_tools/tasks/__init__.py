"""What each task (detect, segment, classify) is, for every part of the workbench: one module per task.

`yolo_tools evaluate` and the report are the same loop for every task: predict, score each image as its
prediction streams past, aggregate into summary/per-class (and per-volume) tables with bootstrap
intervals, write the files, then show them with what each number means. What differs per task lives in
its module here, as one `Task` (tasks/protocol.py): how an image is scored, which tables and headline
metrics come out of the scores (and which get an interval), what each metric means and the conventions
behind it, what the report draws, and how an ensemble's predictions of one image are fused (`fuse`, with
the arithmetic in `yolo_tools/fusion.py`); and what the rest of the workbench asks of a task: its default
model and model-name suffix and the recipe rules that depend on it (recipe.py), what its label lines may hold
(the dataset layout, the writer), the validator's metric names and per-class rows (the engine reports
Ultralytics' own keys), its Roboflow export format, what a finding is (the label inspect and review show,
the output formats that hold it, the regions a cascade crops), the metrics `compare` pairs, what a study
calls its model, its fusion, its learning curve and its calibration, and whether sliced inference applies.
Adding a metric touches its task's module only (its scorer or `summarise`, and its `meaning`); adding a task
(Ultralytics' pose, obb, ...) adds one module and one entry in `TASKS` (tests/test_fourth_task.py registers a
toy one and follows it through recipe checks, conversion, evaluation, report and inspect).

This package sits below recipes, datasets, `evaluation`, `report` and `ensemble` and imports none of them (a
task module imports no sibling either): it reads ground truth through `yolo_tools.codecs`, scores with
`yolo_tools.metrics` and fuses with `yolo_tools.fusion`.

Examples:
    >>> from yolo_tools import tasks
    >>> tasks.get("detect").per_image_metric
    {'column': 'errors', 'higher_is_better': False}
    >>> sorted(tasks.TASKS)
    ['classify', 'detect', 'segment']
"""

from __future__ import annotations


from yolo_tools.errors import UserError
from yolo_tools.tasks import classify, detect, segment
from yolo_tools.tasks.protocol import Calibrating, Evaluation, Scores, Scoring, Task

__all__ = ["TASKS", "Calibrating", "Evaluation", "Scores", "Scoring", "Task", "count_columns", "get"]

TASKS: dict[str, Task] = {task.name: task for task in (detect.TASK, segment.TASK, classify.TASK)}

# Columns any task's tables may hold that are counts (printed as whole numbers).
SHARED_COUNT_COLUMNS = ("images", "instances")


def get(name: str) -> Task:
    """The task called `name`; a clear message for one the workbench does not evaluate."""
    if name not in TASKS:
        raise UserError(f"task '{name}' is not one the workbench evaluates; known: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def count_columns() -> str:
    """One regex matching every count column of every task, for the report's number format."""
    names = [*SHARED_COUNT_COLUMNS, *(column for task in TASKS.values() for column in task.count_columns)]
    return r"^(" + "|".join(dict.fromkeys(names)) + r")$"

