"""The protocol a task module fills in (`Task`) and the state evaluate hands it (`Scoring`, `Evaluation`).

Kept apart from the registry in `__init__` so each task module imports only this, never its siblings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from yolo_tools.codecs.label_lines import LabelLines

if TYPE_CHECKING:  # types only: reading a recipe asks tasks for their names and models, not for pandas
    import pandas as pd

    from yolo_tools.metrics import bootstrap


# What Ultralytics' validator's box and mask numbers mean, for every task whose validator reports them (detect, segment).
VALIDATOR_MEANING = {
    "precision": "of the findings the model reported, the share that are real",
    "recall": "of the real findings, the share the model reported (sensitivity)",
    "mAP50": "precision averaged over all confidence thresholds; a finding counts when it overlaps the truth by IoU >= 0.5",
    "mAP50-95": "the same, averaged over overlap thresholds 0.5 to 0.95: rewards exact outlines",
}

@dataclass
class Scoring:
    """The state of one evaluation while predictions stream past: what was scored and what to aggregate.

    `kept` holds one item per image, of the task's own kind (overlap counts, error counts, probabilities);
    only the task's own `summarise` reads it.
    """

    dataset: Any  # the converted dataset scored against (yolo_tools.dataset.Dataset; not imported here: the dataset
    # asks the tasks which of them keep label files, `Task.label_lines`)
    names: list[str]
    split: str = "val"
    masks_dir: Path | None = None  # where predicted masks are saved, for tasks that save them
    rows: list[dict[str, Any]] = field(default_factory=list)
    kept: list[Any] = field(default_factory=list)
    pending: dict[str, Any] = field(default_factory=dict)  # what a task holds across images (a volume's slices)

    @cached_property
    def spacing(self) -> dict[str, tuple[float, float]]:
        """Pixel spacing per image stem (mm), read once from the dataset."""
        return self.dataset.spacing()

    @cached_property
    def volume_slices(self) -> VolumeSlices | None:
        """Which of this split's images are slices of which volume (the dataset's slices.csv); None without one."""
        table = self.dataset.slices()
        if table is None:
            return None
        table = table[table["split"] == self.split]
        if not len(table):
            return None
        stems = table["image"].map(lambda name: Path(str(name)).stem)
        geometry = self.dataset.volumes()
        return VolumeSlices(
            slice_of=dict(zip(stems, zip(table["volume"], table["slice"].astype(int)))),
            counts=table.groupby("volume").size().to_dict(),
            patient=dict(zip(table["volume"], table["patient"])),
            spacing={name: _stacked_spacing(volume) for name, volume in geometry.items()},
        )


@dataclass(frozen=True)
class VolumeSlices:
    """A split's volumes as slices: image stem → (volume, slice index), slices per volume, each volume's patient,
    and its voxel spacing in the order of its stacked slices (slice, row, column; mm), where known."""

    slice_of: dict[str, tuple[str, int]]
    counts: dict[str, int]
    patient: dict[str, str]
    spacing: dict[str, tuple[float, float, float]]


def _stacked_spacing(volume: dict[str, Any]) -> tuple[float, float, float]:
    """(slice, row, column) mm of a volumes.json entry: the sliced axis first, the others in array order."""
    spacing, axis = list(volume["spacing_mm"]), int(volume["slice_axis"])
    return (float(spacing[axis]), *(float(s) for i, s in enumerate(spacing) if i != axis))


@dataclass
class Evaluation:
    """What `summarise` may need beyond the scores: the validator's numbers, the run, how it was scored."""

    per_image: pd.DataFrame
    boot: bootstrap.Bootstrap
    validation: Any  # engine.Validation | None (None for an ensemble, which the validator cannot run)
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
class Calibrating:
    """What a study's test evaluation hands `Task.calibration`: the per-image table and classes, where an image's
    label file is and how large the image is (width, height), and the reported findings (predictions.json's
    records, read when asked)."""

    per_image: pd.DataFrame
    classes: list[str]
    label_file: Callable[[str], Path]  # image file name -> its label file
    image_size: Callable[[str], tuple[int, int]]
    findings: Callable[[], list[dict[str, Any]]]


def calibrated(what: str, found: dict[str, Any] | None) -> dict[str, Any]:
    """calibration.json from what was compared and `metrics.classification.reliability`'s numbers (None: too few)."""
    if found is None:
        return {"what": what, "note": "not computed: the scores are all of one outcome, or there are none"}
    return {"what": what, **found}


# A metric `compare` pairs over images: per image of per_image.csv, (numerator, denominator); the metric is
# sum(numerator) / sum(denominator), so a paired bootstrap over patients resamples both.
Ratio = Callable[["pd.DataFrame"], tuple[Any, Any]]


@dataclass(frozen=True)
class Task:
    """Everything evaluate and report need to know about one task; see the module docstring."""

    name: str
    score: Callable[[Scoring, Any], tuple[dict[str, Any], Any]]  # (state, prediction.Prediction) -> (per-image row, kept)
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
    # (a prediction.Prediction per model, the models' weights or None, the confidence threshold) -> prediction.Prediction (fusion.py)
    choose_conf: Callable[[Scoring], dict[str, Any] | None] | None = None  # per-class confidences from val predictions
    # (a task that decides by confidence must have it; classify decides by a threshold instead)
    choose_score: Callable[[Scoring, Any], tuple[dict[str, Any], Any]] | None = None  # what choose_conf keeps of
    # each val prediction (made at a floor confidence); None: `score`
    choose_postprocessing: Callable[[Scoring, str], dict[str, Any]] | None = None  # from predictions on val scored
    # by `score`, and where they were made ('val', ...): what to keep of each class's masks (yolo_tools/postprocess.py)
    predict_args: dict[str, Any] = field(default_factory=dict)  # Ultralytics arguments its predictions need
    saves_masks: bool = False  # scored on masks: predicted masks kept per image and drawn in the report's gallery
    findings_columns: str | None = None  # regex of per-image columns counting what there is to find; None: the
    # task locates nothing (classify), so its gallery shows the image alone
    validator_plots: tuple[tuple[str, str], ...] = ()  # Ultralytics' plot files shown, with their captions
    gallery_note: str = ""  # how to read the gallery (Markdown)
    gallery_note_html: str = ""  # the same for the HTML page (may hold markup)
    # What the rest of the workbench asks of a task beyond evaluate and report, so that a task is this one module:
    summary: str = ""  # what its model predicts, in a few words (the recipe reference, help texts)
    model_suffix: str = ""  # Ultralytics' model-name suffix of the task ('-seg', '-cls'; none for detect): what a
    # recipe's model must end in, and what a recipe without one starts from (`default_model`)
    balances_classes: bool = False  # `class_balance: oversample` applies (Ultralytics' classification trainer)
    mirrors: bool = True  # test-time mirroring applies (`predict.flips`): the mirror images' findings are fused
    validator_metrics: dict[str, str] = field(default_factory=dict)  # Ultralytics' validator keys → the short names
    # the workbench prints and stores (metrics.json, summary.json's `validator`)
    validator_per_class: Literal["box", "seg"] | None = None  # which of the validator's per-class rows are the task's
    # (boxes for detect, masks for segment); None: it reports none (classify)
    labels: Literal["boxes", "masks", "classes"] = "boxes"  # what a finding is: a box, an outline with its mask, or the
    # image's class (FiftyOne and Label Studio, review/; the output formats that can hold it, outputs/prediction_formats.py;
    # whether a cascade can crop its regions, convert/region_crops.py; whether a reader keeps boxes or outlines)
    kind: str = ""  # what its model does, in the field's words ('object detection'): a study's methods and CLAIM items
    fused_as: str = ""  # how an ensemble makes its models' predictions of one image one (`fuse`), in words
    curve_metric: str = ""  # the column of Ultralytics' results.csv a study draws the folds' learning curves of
    score_name: str = "confidence"  # what a finding's score is called (a classifier's: its probability)
    conf_criterion: str = ""  # what `choose_conf` maximises per class ('F1'), named when nothing scores on val
    paired: dict[str, Ratio] = field(default_factory=dict)  # the metrics `compare` pairs between two runs
    validates_outside: bool = True  # Ultralytics' validator can check it on an outside set (a classifier's check
    # wants training images, which an outside set does not have)
    slices: bool = False  # sliced inference (SAHI, `slice=`) applies: boxes found on tiles and merged
    calibration: Callable[[Calibrating], dict[str, Any]] | None = None  # a study's test calibration.json: how far
    # its scores read as chances (`calibrated`, or a 'note' saying why not); None: not computed for the task
    roboflow_format: str = "yolov8"  # the Roboflow export a recipe of this task pulls unless it names one
    label_lines: LabelLines | None = None  # what a line of its label files (labels/<split>/<stem>.txt) may hold; None:
    # no label files, an image's class is the folder it lies in (classify; `Dataset.class_folders`)

    @property
    def default_model(self) -> str:
        """What a recipe without `model` starts from: the task's official YOLOv8n weights (pretrained where there is a
        network, the same YAML offline: engine.training_start)."""
        return f"yolov8n{self.model_suffix}.pt"

    def short_metrics(self, results: dict[str, float]) -> dict[str, float]:
        """The validator's results (Ultralytics' keys) that the task reports, under the workbench's short names."""
        return {short: float(results[key]) for key, short in self.validator_metrics.items() if key in results}


def intervals_of(found: dict[str, Any], metrics: dict[str, Any]) -> dict[str, list[float] | None]:
    """Bootstrap intervals as summary.json holds them: [low, high] floats, only for metrics that were written."""
    return {k: (None if v is None else [float(v[0]), float(v[1])]) for k, v in found.items() if k in metrics}
