"""Turn a recipe's raw data into a YOLO dataset under `datasets/<recipe>/`, once, and reuse it after: the
orchestrator above the readers (yolo_tools/convert/): which dataset version, where the raw data is
(`sources.locate`), which reader, then the writer.

Which folder a version goes to, and whether it is current, is `yolo_tools.dataset`'s decision; this
module converts.

The converter named by the recipe parses the published format into Samples; `writer.write_dataset` does
the rest. The converted copy is what Ultralytics trains on, so its `labels.cache` never lands in a source
folder, and the copy is only ever written where `convert.destination` allows.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError

from yolo_tools import dataset, tasks
from yolo_tools.convert import corrections, destination
from yolo_tools.convert import metadata as patient_metadata
from yolo_tools.convert.checks import check
from yolo_tools.convert.options import checked_options
from yolo_tools.convert.registry import CONVERTERS, converter
from yolo_tools.convert.registry import FORMATS as READERS
from yolo_tools.convert.writer import write_dataset
from yolo_tools.dataset import Dataset
from yolo_tools.errors import UserError
from yolo_tools.locations import data_root
from yolo_tools.recipe import Data, Recipe, Source, Split
from yolo_tools.runs import run_fingerprint, trained_versions
from yolo_tools.sources import locate

LOG = logging.getLogger(__name__)


def dataset_dir(recipe: Recipe) -> Path:
    """The folder of the recipe's dataset as the recipe is now (`dataset.place`)."""
    return dataset.place(recipe.name, recipe.fingerprint(), latest=True)


def train_data(recipe: Recipe) -> Path:
    """What Ultralytics' `data=` takes for this task: the data YAML, or the folder for classification."""
    return Dataset(dataset_dir(recipe), recipe.task).data_arg


def is_current(recipe: Recipe) -> bool:
    return dataset.is_current(dataset_dir(recipe), recipe.fingerprint())


def run_version(recipe: Recipe, run_dir: Path) -> str:
    """The dataset version a run needs: the one it records, else (older runs) the one its recipe.yaml describes."""
    recorded = run_fingerprint(run_dir)
    if recorded is None:
        LOG.warning(
            "%s records no dataset version (trained before versions were recorded): using the version its "
            "recipe.yaml describes (%s)", run_dir, recipe.fingerprint()
        )
        return recipe.fingerprint()
    if recorded != recipe.fingerprint():
        if dataset.is_current(dataset.place(recipe.name, recorded, latest=False), recorded):
            return recorded  # the very files it was trained on are still there
        LOG.warning(
            "%s was trained on dataset version %s but its recipe.yaml now makes %s (edited, or a fingerprint "
            "of another yolo-tools version); it is scored on what its recipe.yaml makes", run_dir, recorded,
            recipe.fingerprint(),
        )
        return recipe.fingerprint()
    return recorded


def prepare_dataset(
    recipe: Recipe, root: str | Path | None = None, force: bool = False, run_dir: Path | None = None
) -> Dataset:
    """The recipe's converted dataset, converted unless an identical conversion is already there.

    Without `run_dir` it is the recipe as it is now (train, convert, cv), in `datasets/<name>/`; a version
    there that runs were trained on is first set aside (`dataset.set_aside`). With `run_dir` it is the
    version that run was trained on, converted into its own `datasets/<name>@<fingerprint>/` when
    `datasets/<name>/` holds another, never over it.
    """
    check(recipe)
    fingerprint = recipe.fingerprint() if run_dir is None else run_version(recipe, run_dir)
    dst = dataset.place(recipe.name, fingerprint, latest=run_dir is None)
    if not force and dataset.is_current(dst, fingerprint):
        LOG.info("using converted dataset %s", dst)
        return Dataset(dst, recipe.task)
    raw_root = data_root(root) if recipe.data.source.kind != "synthetic" else None
    destination.check(dst, data_root=raw_root)  # before locating or pulling anything
    src = locate(recipe, root)
    protect = [src] if src else []
    destination.check(dst, protect, raw_root)
    patients = patient_metadata.read(recipe, src)  # before converting: a wrong CSV fails before any work
    module = converter(recipe.data.converter)
    if CONVERTERS[recipe.data.converter].upstream:  # it reads another recipe's dataset: that one is converted first
        samples = module.samples(src, recipe, prepare_dataset(module.upstream(recipe)).root)
    else:
        samples = module.samples(src, recipe)
    samples = corrections.apply(samples, recipe)  # the recipe's label corrections, if it lists any
    dst.parent.mkdir(parents=True, exist_ok=True)
    dataset.set_aside(recipe.name, trained_versions(recipe.name) - {fingerprint}, dst)
    card = write_dataset(
        samples, dst, recipe, str(src) if src else recipe.data.source.kind, patients, protect, raw_root
    )
    LOG.info("converted %s into %s (%d skipped)", src or recipe.data.source.kind, dst, len(card["skipped"]))
    return Dataset(dst, recipe.task)


def prepare(recipe: Recipe, root: str | Path | None = None, force: bool = False, run_dir: Path | None = None) -> Path:
    """`prepare_dataset`, returning Ultralytics' `data=` for it."""
    return prepare_dataset(recipe, root, force, run_dir).data_arg


# The command-line options of `convert FORMAT` by the Split field each sets, for messages that name what was typed.
SPLIT_OPTIONS = {"by": "--split-by", "val": "--val", "seed": "--seed"}


def _option_errors(fmt: str, error: ValidationError) -> str:
    """Pydantic's errors about the split options as one line per option, named as typed (`--val 1.5`)."""
    lines = [f"convert {fmt}: invalid options"]
    for item in error.errors():
        option = SPLIT_OPTIONS.get(str(item["loc"][0]) if item["loc"] else "", "options")
        lines.append(f"  {option} {item['input']}: {item['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


# `yolo_tools convert FORMAT SRC DST`: published formats converted without a recipe (the registry's standalone
# readers, yolo_tools/convert/__init__.py). Each entry: the converter (whose `classes(src, options)` names the
# classes) and the task it makes.
FORMATS: dict[str, tuple[str, str]] = {fmt: (c.name, c.tasks[0]) for fmt, c in READERS.items() if c.standalone}


def format_options(fmt: str, src: Path, options: dict) -> dict:
    """`options` with what a FORMAT without a recipe finds out from the folder itself: masks in class
    sub-folders (per_class) or one label map per image."""
    options = dict(options)
    if fmt == "masks" and "layout" not in options:
        mask_dir = src / str(options.get("masks", "masks"))
        has_folders = mask_dir.is_dir() and any(p.is_dir() for p in mask_dir.iterdir())
        options["layout"] = "per_class" if has_folders else "label_map"
    return options


def convert_folder(
    fmt: str,
    src: str | Path,
    dst: str | Path,
    task: str | None = None,
    split_by: str = "file",
    val: float = 0.2,
    seed: int = 0,
    options: dict | None = None,
) -> dict:
    """Convert a folder in a published format into a YOLO dataset at `dst` (split, card, atomic rename).

    The same converters and writer as a recipe's, with a recipe made on the spot: classes from the source
    (COCO categories, mask or class folders, CSV labels), `split_by` 'file' unless a patient rule is given.
    `dst` must be new, empty or a dataset the workbench wrote, and apart from `src`.

    Examples:
        >>> convert_folder("coco", "my-coco-set", "datasets/my-coco", task="segment")
        >>> convert_folder("masks", "../shared/data/heart-cxr-jsrt", "datasets/heart-masks")
    """
    if fmt not in FORMATS:
        raise UserError(f"convert: format '{fmt}' is unknown; allowed: {', '.join(FORMATS)} (or give a recipe YAML)")
    name, default_task = FORMATS[fmt]
    module = converter(name)
    src = Path(src).resolve()
    if not src.is_dir():
        raise UserError(f"{src}: no such folder")
    destination.check(Path(dst), [src])
    dst = Path(dst).resolve()
    given = dict(options or {})
    options = checked_options(module.Options, format_options(fmt, src, given), name, given)
    dataset_name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in dst.name) or "dataset"
    recipe_task = task or default_task
    try:
        split = Split(by=split_by, val=val, seed=seed)
    except ValidationError as exc:
        raise UserError(_option_errors(fmt, exc)) from None
    classes = module.classes(src, options)
    try:
        recipe = Recipe(
            name=dataset_name,
            task=recipe_task,
            data=Data(source=Source(kind="local", path=str(src)), converter=name, options=options, split=split),
            classes=classes,
            model=f"yolov8n{tasks.get(recipe_task).model_suffix}.yaml",  # the task's model; no weights are loaded
            path=src,
        ).from_flags()
    except ValidationError as exc:
        problems = "; ".join(item["msg"].removeprefix("Value error, ") for item in exc.errors())
        if all(item["loc"][:1] == ("classes",) for item in exc.errors()):
            raise UserError(
                f"convert {fmt}: {src}: the classes it names ({', '.join(map(str, classes))}): {problems}; rename or merge "
                "its folders or categories so that each class is named once"
            ) from None
        raise UserError(f"convert {fmt}: {problems}") from None
    check(recipe)
    samples = module.samples(src, recipe)
    dst.parent.mkdir(parents=True, exist_ok=True)
    card = write_dataset(samples, dst, recipe, str(src), protect=[src])
    LOG.info("converted %s into %s (%d skipped)", src, dst, len(card["skipped"]))
    return card
