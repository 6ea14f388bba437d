"""Read and validate recipes: the single description of a clinical task.

A recipe names its data source, the converter that turns the published format into a YOLO dataset, the
model, the class names and the Ultralytics train arguments. Everything that varies between tasks lives
here, so the CLI, tests and benchmarks all go through the same file and nothing is hard-coded elsewhere.
A wrong recipe must fail before any work starts, with one message naming the file, the key and what is
allowed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from yolo_tools import tasks
from yolo_tools.engine.args import check_train_args, default_args
from yolo_tools.errors import UserError
from yolo_tools.intensity import Intensity

# Ultralytics' official weights by name (yolov8n.pt, yolo11s-seg.pt, yolo26n-cls.pt): downloaded on first use.
OFFICIAL_WEIGHTS = re.compile(r"^yolo(v8|11|12|26)[nsmlx](-[a-z0-9]+)*\.pt$")



class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DicomwebQuery(_Strict):
    """Which studies of a PACS a `dicomweb` source takes, as QIDO-RS matches them (yolo_tools/sources/dicomweb.py).

    Study-level keys go to the studies search; `body_part` and `series_description` pick series within them.
    """

    modality: str | None = Field(None, description="CT, MR, ...: studies holding it (ModalitiesInStudy), then its series")
    body_part: str | None = Field(None, description="BodyPartExamined of the series, e.g. LIVER, HEAD")
    study_date: str | None = Field(
        None, pattern=r"^(\d{8})?-?(\d{8})?$", description="YYYYMMDD or a range YYYYMMDD-YYYYMMDD (either end open)"
    )
    series_description: str | None = Field(None, description="SeriesDescription; * and ? are wildcards")
    accession_number: str | None = Field(None, description="AccessionNumber of the study")
    patient_id: str | None = Field(None, description="PatientID of the study")


class Source(_Strict):
    """Where the raw data comes from, and where a user who lacks it can get it."""

    kind: Literal["local", "roboflow", "synthetic", "dicomweb"] = Field(
        "local",
        description="local: a folder under the data root; roboflow: pulled from Roboflow Universe on first use; "
        "synthetic: made on the fly (the demo); dicomweb: pulled from a PACS over DICOMweb",
    )
    path: str | None = Field(None, description="folder under the data root (or absolute) holding the set as published")
    url: str | None = Field(None, description="where a user downloads the set by hand")
    workspace: str | None = Field(None, description="roboflow: the workspace, as in the dataset's Universe URL")
    project: str | None = Field(None, description="roboflow: the project, as in the dataset's Universe URL")
    version: int | None = Field(None, description="roboflow: the dataset version")
    format: str | None = Field(None, description="Roboflow export format, e.g. yolov8")
    server: str | None = Field(None, description="dicomweb: the server's DICOMweb root, e.g. https://pacs.example.org/dicom-web")
    studies: list[str] | None = Field(None, description="dicomweb: StudyInstanceUIDs to pull")
    query: DicomwebQuery | None = Field(None, description="dicomweb: which studies, as a QIDO-RS search")
    verify_tls: bool = Field(True, description="dicomweb: check the server's TLS certificate (false only for a test server)")

    @model_validator(mode="after")
    def _needs_location(self) -> Source:
        if self.kind == "local" and not self.path:
            raise ValueError("a local source needs 'path' (a folder under the data root)")
        if self.kind == "roboflow" and not (self.workspace and self.project and self.version):
            raise ValueError("a roboflow source needs 'workspace', 'project' and 'version'")
        if self.kind == "dicomweb" and not (self.server and (self.studies or self.query)):
            raise ValueError("a dicomweb source needs 'server' (the DICOMweb root) and 'studies' (StudyInstanceUIDs) or 'query'")
        if self.kind != "dicomweb" and (self.server or self.studies or self.query):
            raise ValueError("'server', 'studies' and 'query' belong to a dicomweb source (kind: dicomweb)")
        return self


class Split(_Strict):
    """How images are divided into train, val and (optionally) test: by patient or study, never by file, unless told so.

    `test` keeps a set apart that no training, early stopping or choice of weights ever sees: a fraction
    of the patients (carved before val), or 'source' for the test split the set was published with.
    """

    by: str = Field("source", description="'source' keeps the published split; 'file', a regex, or a named rule groups")
    val: float = Field(0.2, gt=0, lt=1, description="fraction drawn into val (of the patients or studies the rule groups by)")
    test: float | Literal["source"] | None = Field(
        None, description="fraction of patients held out as a test set, or 'source' for the published test split"
    )
    seed: int = Field(0, description="the seed of the draw: the same seed gives the same split")

    @field_validator("by")
    @classmethod
    def _rule_reads(cls, value: str) -> str:
        """A rule that cannot group anything is refused with the recipe, before any file is read (every named
        rule, 'source' and 'file' included, is also a valid regex, so compiling is the whole check)."""
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is neither 'source', 'file', a named rule nor a valid regex ({exc})") from None
        return value

    @model_validator(mode="after")
    def _fractions_fit(self) -> Split:
        if isinstance(self.test, float):
            if not 0 < self.test < 1 or self.val + self.test >= 1:
                raise ValueError(f"test ({self.test}) and val ({self.val}) are fractions of the patients with val + test < 1")
            if self.by == "source":
                raise ValueError("a test fraction needs a patient rule in 'by' (file, a regex, ...); use test: source to keep a published one")
        return self


class Metadata(_Strict):
    """Per-patient fields joined to every image (see yolo_tools/convert/metadata.py) to break metrics down by."""

    path: str = Field(description="CSV with one row per patient, relative to the source folder (or absolute)")
    key: str = Field("patient", description="the column holding the patient/study ids the split groups by")
    columns: list[str] | None = Field(None, description="fields to copy (default: every column but the key)")


class CorrectionFile(_Strict):
    """One file of label corrections (yolo_tools/convert/corrections.py), named with the digest of its bytes so
    that the dataset version it makes is exactly that one, and a changed file is noticed."""

    file: str = Field(description="file name under corrections/<recipe>/, e.g. ls-20260105-101500.jsonl")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the file's bytes")


class Data(_Strict):
    """What the model learns from: where the set is, the reader of the format it is published in, how it is split."""

    source: Source = Field(description="where the raw data is, or how to get it")
    converter: str = Field(description="the reader of the published format (yolo_tools/convert/)")
    options: dict[str, Any] = Field(default_factory=dict, description="the converter's options, checked against its schema")
    split: Split = Field(Split(), description="train/val(/test), by patient")
    metadata: Metadata | None = Field(None, description="per-patient fields to break results down by")
    corrections: list[CorrectionFile] | None = Field(
        None,
        description="label corrections applied over the published labels; left out: every file in "
        "corrections/<recipe>/ when the recipe is converted or trained, [] for the published labels only",
    )


class Preprocess(_Strict):
    """How raw intensities become the 8-bit channels YOLO reads (see yolo_tools/intensity.py)."""

    intensity: Intensity | None = Field(None, description="how values become grey levels, chosen by its mode; none: 8-bit data as stored, other data min-max")
    context: int = Field(0, ge=0, le=1, description="2.5D: neighbouring slices on each side stacked as channels")
    context_stride: int = Field(1, ge=1, description="slices between the centre and each neighbour")

    @model_validator(mode="after")
    def _channels_fit(self) -> Preprocess:
        if self.context and self.intensity is not None and self.intensity.mode == "windows":
            raise ValueError("2.5D context and multi-window channels both fill the 3 channels; choose one")
        return self


# Test-time mirroring, in image terms: `horizontal` mirrors the columns (left and right swap), `vertical` the
# rows; each pairs with the Ultralytics training augmentation that shows the model such images.
FLIP_AUGMENTATION = {"horizontal": "fliplr", "vertical": "flipud"}


class Predict(_Strict):
    """How a run's predictions are made and cleaned beyond Ultralytics' arguments: two of nnU-Net's lessons
    (Isensee et al., Nat Methods 2021), for every verb that predicts (predict, evaluate, app, inspect).

    Which mirror images are anatomy is the recipe's to say: a chest film mirrored left-right shows a heart
    on the wrong side, a hippocampus crop mirrored left-right is the other side's hippocampus.
    """

    flips: list[Literal["horizontal", "vertical"]] = Field(
        default_factory=list,
        description="test-time mirroring: each image is also predicted mirrored this way, the findings mapped back "
        "and fused with the plain ones (masks voted, boxes fused); needs the matching train augmentation (fliplr, flipud)",
    )
    largest_component: Literal["off", "auto"] = Field(
        "off",
        description="segment only: 'auto' keeps only the largest connected component of each class (3D over a "
        "volume's slices, else per image) for the classes where that raised Dice on val (a cv: on its out-of-fold "
        "predictions), decided once and stored in the run (postprocessing.json)",
    )

    @field_validator("flips")
    @classmethod
    def _each_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"{value}: name each flip once (horizontal, vertical)")
        return value


# The flags of `yolo_tools convert FORMAT SRC DST` and the recipe settings they make (conversion.convert_folder).
CONVERT_FLAGS = {"data.split.by": "--split-by", "data.split.val": "--val", "data.split.seed": "--seed", "task": "--task"}


class Recipe(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="names the folders: datasets/<name>/, runs/<name>/")
    task: str = Field(
        description=" or ".join(", ".join(f"{t.name} ({t.summary})" for t in tasks.TASKS.values()).rsplit(", ", 1)),
        json_schema_extra={"enum": list(tasks.TASKS)},
    )  # one of the registered tasks (yolo_tools/tasks/), checked by `_known_task`
    description: str = Field("", description="one line saying what the model does")
    data: Data = Field(description="the data and how it is read and split")
    classes: list[str] = Field(min_length=1, description="one name per source class, in the source's order")
    model: str = Field(
        "yolov8n.pt",
        description="Ultralytics model YAML (from scratch), weights of a run, or official weights; when left out, "
        "the task's official YOLOv8n weights (yolov8n.pt, yolov8n-seg.pt, yolov8n-cls.pt)",
    )
    model_fallback: bool = Field(
        True,
        description="official weights named in model (yolov8n.pt, yolo11n-seg.pt) that cannot be downloaded: "
        "train from scratch from the same model's YAML (true, one line says so) or stop with a message (false)",
    )
    preprocess: Preprocess = Field(Preprocess(), description="intensities and 2.5D context")
    train: dict[str, Any] = Field(default_factory=dict, description="any Ultralytics train argument, checked by Ultralytics' own check_cfg")
    predict: Predict = Field(Predict(), description="detect, segment: test-time mirroring and post-processing (nnU-Net's)")
    class_balance: Literal["none", "oversample"] = Field(
        "none",
        description="classify only: 'oversample' repeats the training images of smaller classes until every class "
        "has as many as the largest (validation is left as it is); detection weights its classes with "
        "Ultralytics' own train.cls_pw",
    )
    track: Literal["mlflow", "tensorboard"] | None = Field(
        None, description="log each training to MLflow or TensorBoard (yolo_tools/training/tracking.py); none by default"
    )

    path: Path | None = Field(None, exclude=True, description="the file this recipe was read from")
    _from_flags: bool = PrivateAttr(False)  # made on the spot from `convert FORMAT SRC DST`'s flags (`from_flags`)

    def from_flags(self) -> Recipe:
        """This recipe, marked as made from `convert FORMAT SRC DST`'s flags: messages name those (`setting`)."""
        self._from_flags = True
        return self

    def setting(self, key: str) -> str:
        """How a message names a setting: its recipe key (`data.split.by`), or, for a recipe made from the
        command line's flags, the flag that sets it (`--split-by`), so a message never cites a file the user
        does not have."""
        return CONVERT_FLAGS.get(key, key) if self._from_flags else key

    @model_validator(mode="before")
    @classmethod
    def _task_default_model(cls, data: Any) -> Any:
        """A recipe without `model` starts from the official weights of its task (downloaded where there is a
        network, the same YAML offline): a segment recipe must not inherit the detection default."""
        if isinstance(data, dict) and "model" not in data and data.get("task") in tasks.TASKS:
            return {**data, "model": tasks.TASKS[data["task"]].default_model}
        return data

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        """One of the registered tasks (yolo_tools/tasks/), in the words pydantic uses for a choice."""
        if value not in tasks.TASKS:
            *first, last = (f"'{name}'" for name in tasks.TASKS)
            raise ValueError(f"Input should be {', '.join(first)} or {last}" if first else f"Input should be {last}")
        return value

    @field_validator("model")
    @classmethod
    def _yolo_model(cls, value: str) -> str:
        if not value.endswith((".yaml", ".yml", ".pt")):
            raise ValueError("must be an Ultralytics model YAML (yolov8n.yaml) or weights (.pt)")
        return value

    @field_validator("classes")
    @classmethod
    def _each_class_once(cls, value: list[str]) -> list[str]:
        """A class named twice would become two class ids for one finding (labels split between them at
        random by whichever the converter finds first) or, with class folders, two classes for one folder;
        two names that differ only in case are one folder, as class folders are matched ignoring case."""
        seen: dict[str, str] = {}
        for name in value:
            first = seen.get(name.lower())
            seen.setdefault(name.lower(), name)
            if first is not None:
                twice = f"'{name}' is named twice" if first == name else f"'{first}' and '{name}' differ only in case"
                raise ValueError(f"{twice}; name each class once (class folders are matched to classes ignoring case)")
        return value

    @field_validator("train")
    @classmethod
    def _known_train_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_train_args(value)
        return value

    @model_validator(mode="after")
    def _balance_is_for_classifiers(self) -> Recipe:
        if self.class_balance != "none" and not tasks.get(self.task).balances_classes:
            which = " and ".join(t.name for t in tasks.TASKS.values() if t.balances_classes)
            raise ValueError(f"class_balance: {self.class_balance!r} is for {which} recipes; a {self.task} recipe "
                             "weights its classes with train.cls_pw (0..1, Ultralytics' inverse-frequency power)")
        return self

    @model_validator(mode="after")
    def _predict_fits(self) -> Recipe:
        """Mirroring a model never saw in training only adds errors; post-processing masks needs masks."""
        if self.predict.flips and not tasks.get(self.task).mirrors:
            which = " and ".join(t.name for t in tasks.TASKS.values() if t.mirrors)
            raise ValueError(f"predict.flips: test-time mirroring is for {which} recipes (a {self.task} model's mirror "
                             "images are not fused)")
        for flip in self.predict.flips:
            augmentation = FLIP_AUGMENTATION[flip]
            if not float(self.train.get(augmentation, default_args()[augmentation]) or 0) > 0:
                raise ValueError(
                    f"predict.flips: {flip} needs train.{augmentation} > 0 (e.g. 0.5): a model never shown {flip}ly "
                    f"mirrored images in training predicts them worse, and the fused result with them; set train.{augmentation} "
                    f"where such mirror images are anatomy, or leave {flip} out"
                )
        if self.predict.largest_component != "off" and tasks.get(self.task).choose_postprocessing is None:
            raise ValueError(f"predict.largest_component: keeps a class's largest connected mask; a {self.task} recipe has no masks")
        return self

    @model_validator(mode="after")
    def _model_matches_task(self) -> Recipe:
        stem = Path(self.model).stem
        suffix = tasks.get(self.task).model_suffix
        if stem.startswith("yolo") and (self.model.endswith((".yaml", ".yml")) or OFFICIAL_WEIGHTS.match(self.model)):
            has_task_suffix = stem.endswith(("-seg", "-cls", "-pose", "-obb"))
            if (suffix and not stem.endswith(suffix)) or (not suffix and has_task_suffix):
                wanted = f"a model ending in '{suffix}'" if suffix else "a plain detection model such as yolov8n.yaml"
                raise ValueError(f"model '{self.model}' does not fit task '{self.task}': use {wanted}")
        return self

    def fingerprint(self) -> str:
        """Identifies the converted dataset: it changes exactly when the data section or classes change."""
        # Without metadata or a test split the dump is as before those fields existed, so older conversions stay current.
        unset: dict[str, Any] = {"metadata": True} if self.data.metadata is None else {}
        # A DICOMweb source's fields are unset elsewhere; verify_tls never changes the data.
        unset["source"] = {"verify_tls"} | ({"server", "studies", "query"} if self.data.source.kind != "dicomweb" else set())
        if not self.data.corrections:  # none applied: the version of the published labels, as before corrections existed
            unset["corrections"] = True
        if self.data.split.test is None:
            unset["split"] = {"test"}
        payload = json.dumps(
            {
                "data": self.data.model_dump(exclude=unset or None),
                "classes": self.classes,
                "preprocess": self.preprocess.model_dump(),
                "task": self.task,
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _format_errors(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid recipe"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            parent = item["loc"][:-1]
            model = _model_at(parent)
            allowed = ", ".join(n for n in model.model_fields if not (model is Recipe and n == "path")) if model else ""
            message = f"unknown key; allowed here: {allowed}"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Recipe
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def read_text(path: Path, what: str) -> str:
    """A text file the user wrote (recipe, CSV), as UTF-8; anything else is one message naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: {what} must be UTF-8 text; byte {exc.start} is not ({exc.reason}). "
            "Save it as UTF-8 (most editors: 'Save with encoding')"
        ) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None


# The recipes shipped with the package (`yolo_tools/recipes` links to the checkout's `recipes/`, whose files
# setuptools copies into the wheel), so `yolo_tools demo` and `train kidney` work after a plain pip install.
BUNDLED = Path(__file__).resolve().parent / "recipes"


def bundled_recipe(name: str) -> Path:
    """The path of a recipe shipped with the package, by name (`kidney` → .../recipes/kidney.yaml)."""
    return BUNDLED / f"{name}.yaml"


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe file; any problem becomes one UserError naming the file and the key.

    The converter's name and its `data.options` are checked against the converter's own schema by
    `yolo_tools.convert.checks.check`, where a recipe is loaded for use (this module imports no converter).
    """
    path = Path(path)
    if not path.is_file():
        bundled = bundled_recipe(path.stem)
        if path.suffix == "" and bundled.is_file():
            path = bundled
        else:
            raise UserError(f"{path}: no such recipe file")
    try:
        raw = yaml.safe_load(read_text(path, "a recipe"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe must be a YAML mapping of keys (name, task, data, classes, ...)")
    try:
        recipe = Recipe(**raw, path=path.resolve())
    except ValidationError as exc:
        raise UserError(_format_errors(path, exc)) from None
    return recipe
