"""The protocol a task module fills in (`Task`) and the state evaluate hands it (`Scoring`, `Evaluation`).

Kept apart from the registry in `__init__` so each task module imports only this, never its siblings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from yolo_tools.dataset import Dataset
from yolo_tools.metrics import bootstrap


@dataclass
class Scoring:
    """The state of one evaluation while predictions stream past: what was scored and what to aggregate.

    `kept` holds one item per image, of the task's own kind (overlap counts, error counts, probabilities);
    only the task's own `summarise` reads it.
    """

    dataset: Dataset
    names: list[str]
    split: str = "val"
    masks_dir: Path | None = None  # where predicted masks are saved, for tasks that save them
    rows: list[dict[str, Any]] = field(default_factory=list)
    kept: list[Any] = field(default_factory=list)

    @cached_property
    def spacing(self) -> dict[str, tuple[float, float]]:
        """Pixel spacing per image stem (mm), read once from the dataset."""
        return self.dataset.spacing()


@dataclass
class Evaluation:
    """What `summarise` may need beyond the scores: the validator's numbers, the run, how it was scored."""

    per_image: pd.DataFrame
    boot: bootstrap.Bootstrap
    validation: Any  # yolo.Validation | None (None for an ensemble, which the validator cannot run)
    run_dir: Path
    split: str  # the split scored, or 'outside' for an outside set
    rule: str | None  # the operating-point rule asked for (a classifier's threshold), if any
    ensemble: bool
    operating_point: dict[str, Any] | None  # the confidence chosen on val, when one was; or the point given to
    # evaluate (a study's, chosen on pooled out-of-fold predictions), a classifier's threshold included


@dataclass
class Scores:
    """A task's aggregate: the tables evaluate writes and the numbers summary.json holds."""

    per_class: pd.DataFrame
    metrics: dict[str, Any]
    intervals: dict[str, list[float] | None]
    operating_point: dict[str, Any] | None
    per_patient: pd.DataFrame | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more summary.json keys (a classifier's ROC curve)


@dataclass(frozen=True)
class Task:
    """Everything evaluate and report need to know about one task; see the module docstring."""

    name: str
    score: Callable[[Scoring, Any], tuple[dict[str, Any], Any]]  # (state, yolo.Prediction) -> (per-image row, kept)
    summarise: Callable[[Scoring, Evaluation], Scores]
    headline: tuple[str, ...]  # the metrics given a 95% bootstrap interval over patients
    per_image_metric: dict[str, Any]  # the per_image.csv column that orders images best to worst
    conventions: Callable[[str], str]  # how the numbers are defined, given the confidence threshold (as text)
    meaning: dict[str, str]  # what each metric (the validator's and ours) means, for the report
    group_numbers: Callable[[pd.DataFrame], dict[str, float]]  # per_group.csv's numbers for a group of per-image rows
    count_columns: tuple[str, ...]  # columns of its tables that are counts (regexes, printed whole)
    decides_by: Literal["confidence", "threshold"]  # a confidence chosen on val drops findings below it; or a classifier's threshold
    caption: Callable[[pd.Series, list[str], Callable[..., str]], str]  # a gallery image's caption: (row, classes, fmt) -> text
    fuse: Callable[[Sequence[Any], Sequence[float] | None, float], Any]  # an ensemble's predictions of one image made one:
    # (a yolo.Prediction per model, the models' weights or None, the confidence threshold) -> yolo.Prediction (fusion.py)
    choose_conf: Callable[[Scoring], dict[str, Any] | None] | None = None  # per-class confidences from val predictions
    # (a task that decides by confidence must have it; classify decides by a threshold instead)
    choose_score: Callable[[Scoring, Any], tuple[dict[str, Any], Any]] | None = None  # what choose_conf keeps of
    # each val prediction (made at a floor confidence); None: `score`
    predict_args: dict[str, Any] = field(default_factory=dict)  # Ultralytics arguments its predictions need
    saves_masks: bool = False  # scored on masks: predicted masks kept per image and drawn in the report's gallery
    findings_columns: str | None = None  # regex of per-image columns counting what there is to find; None: the
    # task locates nothing (classify), so its gallery shows the image alone
    validator_plots: tuple[tuple[str, str], ...] = ()  # Ultralytics' plot files shown, with their captions
    gallery_note: str = ""  # how to read the gallery (Markdown)
    gallery_note_html: str = ""  # the same for the HTML page (may hold markup)


def intervals_of(found: dict[str, Any], metrics: dict[str, Any]) -> dict[str, list[float] | None]:
    """Bootstrap intervals as summary.json holds them: [low, high] floats, only for metrics that were written."""
    return {k: (None if v is None else [float(v[0]), float(v[1])]) for k, v in found.items() if k in metrics}
