"""What each task (detect, segment, classify) contributes to evaluate and report, one module per task.

`yolo_tools evaluate` and the report are the same loop for every task: predict, score each image as its
prediction streams past, aggregate into summary/per-class (and per-volume) tables with bootstrap
intervals, write the files, then show them with what each number means. What differs per task lives in
its module here, as one `Task` (tasks/protocol.py): how an image is scored, which tables and headline
metrics come out of the scores (and which get an interval), what each metric means and the conventions
behind it, what the report draws, and how an ensemble's predictions of one image are fused (`fuse`, with
the arithmetic in `yolo_tools/fusion.py`). Adding a metric touches its task's module only (its scorer or
`summarise`, and its `meaning`); adding a task (Ultralytics' pose, obb, ...) adds one module and one
entry in `TASKS`.

This package sits below `evaluation`, `report` and `ensemble` and imports none of them: it reads ground
truth through `yolo_tools.dataset`, scores with `yolo_tools.metrics` and fuses with `yolo_tools.fusion`.

Examples:
    >>> from yolo_tools import tasks
    >>> tasks.get("detect").per_image_metric
    {'column': 'errors', 'higher_is_better': False}
    >>> sorted(tasks.TASKS)
    ['classify', 'detect', 'segment']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yolo_tools import operating_point
from yolo_tools.errors import UserError
from yolo_tools.prediction import MIRROR, Mirroring
from yolo_tools.recipe import Recipe
from yolo_tools.tasks import classify, detect, segment
from yolo_tools.tasks.protocol import Evaluation, Scores, Scoring, Task

__all__ = ["TASKS", "Evaluation", "Scores", "Scoring", "Task", "count_columns", "get", "mirroring", "prediction_args"]

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


def prediction_args(
    task: str, recipe: Recipe | None, run_dir: Path | None, given: dict[str, Any], slicing: operating_point.Slicing = None
) -> dict[str, Any]:
    """The arguments every prediction of a run is made with, in `predict`, `predict --format`, `evaluate`,
    `inspect` and `app` alike, so a file handed on holds what the evaluation scored: the run's operating point
    and `max_det` (`operating_point.predict_args`; `given`, the command line's, win), what the task's
    predictions need (segment: masks at the image's own size, not low-resolution ones upsampled) and the
    recipe's test-time mirroring (`mirroring`)."""
    needed = TASKS[task].predict_args if task in TASKS else {}
    return {**operating_point.predict_args(recipe, run_dir, given, slicing), **needed, **mirroring(recipe, slicing is not None)}


def mirroring(recipe: Recipe | None, sliced: bool = False) -> dict[str, Any]:
    """The prediction argument for the recipe's test-time mirroring (`predict.flips`), fused by its task's `fuse`;
    none without flips, and none for sliced inference (sahi predicts the tiles itself)."""
    if recipe is None or not recipe.predict.flips or sliced:
        return {}
    return {MIRROR: Mirroring(tuple(recipe.predict.flips), get(recipe.task).fuse)}
