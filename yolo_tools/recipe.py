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
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from yolo_tools.errors import UserError
from yolo_tools.intensity import Intensity

Task = Literal["detect", "segment", "classify"]

# Train arguments the workbench sets itself from the recipe and the run layout; a recipe that sets them
# would silently be overridden, so it is refused instead.
RESERVED_TRAIN_ARGS = frozenset({"data", "model", "task", "mode", "project", "name"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where the raw data comes from, and where a user who lacks it can get it."""

    kind: Literal["local", "roboflow", "synthetic"] = "local"
    path: str | None = Field(None, description="folder under the data root (or absolute) holding the set as published")
    url: str | None = Field(None, description="where a user downloads the set by hand")
    workspace: str | None = None
    project: str | None = None
    version: int | None = None
    format: str | None = Field(None, description="Roboflow export format, e.g. yolov8")

    @model_validator(mode="after")
    def _needs_location(self) -> Source:
        if self.kind == "local" and not self.path:
            raise ValueError("a local source needs 'path' (a folder under the data root)")
        if self.kind == "roboflow" and not (self.workspace and self.project and self.version):
            raise ValueError("a roboflow source needs 'workspace', 'project' and 'version'")
        return self


class Split(_Strict):
    """How images are divided into train and val: by patient or study, never by file, unless told so."""

    by: str = Field("source", description="'source' keeps the published split; 'file', a regex, or a named rule groups")
    val: float = Field(0.2, gt=0, lt=1)
    seed: int = 0


class Metadata(_Strict):
    """Per-patient fields joined to every image (see yolo_tools/convert/metadata.py) to break metrics down by."""

    path: str = Field(description="CSV with one row per patient, relative to the source folder (or absolute)")
    key: str = Field("patient", description="the column holding the patient/study ids the split groups by")
    columns: list[str] | None = Field(None, description="fields to copy (default: every column but the key)")


class Data(_Strict):
    source: Source
    converter: str
    options: dict[str, Any] = Field(default_factory=dict)
    split: Split = Split()
    metadata: Metadata | None = None


class Preprocess(_Strict):
    """How raw intensities become the 8-bit channels YOLO reads (see yolo_tools/intensity.py)."""

    intensity: Intensity | None = None
    context: int = Field(0, ge=0, le=1, description="2.5D: neighbouring slices on each side stacked as channels")
    context_stride: int = Field(1, ge=1, description="slices between the centre and each neighbour")

    @model_validator(mode="after")
    def _channels_fit(self) -> Preprocess:
        if self.context and self.intensity is not None and self.intensity.mode == "windows":
            raise ValueError("2.5D context and multi-window channels both fill the 3 channels; choose one")
        return self


class Recipe(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    task: Task
    description: str = ""
    data: Data
    classes: list[str] = Field(min_length=1)
    model: str = "yolov8n.yaml"
    preprocess: Preprocess = Preprocess()
    train: dict[str, Any] = Field(default_factory=dict)

    path: Path | None = Field(None, exclude=True, description="the file this recipe was read from")

    @field_validator("model")
    @classmethod
    def _yolo_model(cls, value: str) -> str:
        if not value.endswith((".yaml", ".yml", ".pt")):
            raise ValueError("must be an Ultralytics model YAML (yolov8n.yaml) or weights (.pt)")
        return value

    @field_validator("train")
    @classmethod
    def _known_train_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_train_args(value)
        return value

    @model_validator(mode="after")
    def _model_matches_task(self) -> Recipe:
        stem = Path(self.model).stem
        suffix = {"segment": "-seg", "classify": "-cls"}.get(self.task)
        if stem.startswith("yolo") and self.model.endswith((".yaml", ".yml")):
            has_task_suffix = stem.endswith(("-seg", "-cls", "-pose", "-obb"))
            if (suffix and not stem.endswith(suffix)) or (not suffix and has_task_suffix):
                wanted = f"a model ending in '{suffix}'" if suffix else "a plain detection model such as yolov8n.yaml"
                raise ValueError(f"model '{self.model}' does not fit task '{self.task}': use {wanted}")
        return self

    def fingerprint(self) -> str:
        """Identifies the converted dataset: it changes exactly when the data section or classes change."""
        payload = json.dumps(
            {
                # Without metadata the dump is as before the field existed, so older conversions stay current.
                "data": self.data.model_dump(exclude={"metadata"} if self.data.metadata is None else None),
                "classes": self.classes,
                "preprocess": self.preprocess.model_dump(),
                "task": self.task,
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def check_train_args(args: dict[str, Any], origin: str = "train") -> None:
    """Refuse unknown or reserved Ultralytics arguments before a long run starts, not after."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    for key in args:
        if key in RESERVED_TRAIN_ARGS:
            raise ValueError(f"'{key}' is set by yolo-tools from the recipe; remove it from {origin}")
        if key not in DEFAULT_CFG_DICT:
            close = sorted(k for k in DEFAULT_CFG_DICT if k.startswith(key[:3]))[:5]
            hint = f" (did you mean: {', '.join(close)}?)" if close else ""
            raise ValueError(f"'{key}' is not an Ultralytics train argument{hint}")
    pretrained = args.get("pretrained")
    if not (pretrained is None or isinstance(pretrained, bool) or str(pretrained).endswith(".pt")):
        raise ValueError(
            "'pretrained' is true, false or weights whose matching layers start the model "
            "(a .pt file, e.g. runs/pneumonia/<run>/weights/best.pt or yolov8n.pt)"
        )


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


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe file; any problem becomes one UserError naming the file and the key.

    The converter's name and its `data.options` are checked against the converter's own schema by
    `yolo_tools.convert.check`, where a recipe is loaded for use (this module imports no converter).
    """
    path = Path(path)
    if not path.is_file():
        bundled = Path(__file__).resolve().parent.parent / "recipes" / f"{path.stem}.yaml"
        if path.suffix == "" and bundled.is_file():
            path = bundled
        else:
            raise UserError(f"{path}: no such recipe file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe must be a YAML mapping of keys (name, task, data, classes, ...)")
    try:
        recipe = Recipe(**raw, path=path.resolve())
    except ValidationError as exc:
        raise UserError(_format_errors(path, exc)) from None
    return recipe
