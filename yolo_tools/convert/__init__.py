"""Turn a recipe's raw data into a YOLO dataset under `datasets/<recipe>/`, once, and reuse it after.

One module per published format parses it into Samples; `writer.write_dataset` does the rest. The
converted copy is what Ultralytics trains on, so its `labels.cache` never lands in a source folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from yolo_tools.convert import (
    box_csv,
    class_folders,
    coco,
    dicom_volumes,
    hdf5_volumes,
    mask_images,
    metadata,
    nifti_volumes,
    rle_csv,
    synthetic,
    yolo_export,
)
from yolo_tools import cascade
from yolo_tools.convert.writer import Sample, write_dataset
from yolo_tools.locations import datasets_dir
from yolo_tools.recipe import Recipe
from yolo_tools.sources import locate

LOG = logging.getLogger(__name__)

CONVERTERS: dict[str, Callable[[Path | None, Recipe], list[Sample]]] = {
    "yolo_export": yolo_export.samples,
    "synthetic": synthetic.samples,
    "box_csv": box_csv.samples,
    "mask_images": mask_images.samples,
    "class_folders": class_folders.samples,
    "coco": coco.samples,
    "rle_csv": rle_csv.samples,
    "hdf5_volumes": hdf5_volumes.samples,
    "nifti": nifti_volumes.samples,  # Decathlon / nnU-Net v2 / plain folders of NIfTI volumes
    "dicom": dicom_volumes.samples,  # DICOM series with DICOM SEG or aligned NIfTI labels
    "region_crops": cascade.samples,  # a cascade's crops: regions found by one run, judged by a classifier
}


def dataset_dir(recipe: Recipe) -> Path:
    return datasets_dir() / recipe.name


def train_data(recipe: Recipe) -> Path:
    """What Ultralytics' `data=` takes for this task: the data YAML, or the folder for classification."""
    folder = dataset_dir(recipe)
    return folder if recipe.task == "classify" else folder / "data.yaml"


def is_current(recipe: Recipe) -> bool:
    card = dataset_dir(recipe) / "card.json"
    return card.is_file() and json.loads(card.read_text()).get("fingerprint") == recipe.fingerprint()


def prepare(recipe: Recipe, root: str | Path | None = None, force: bool = False) -> Path:
    """Convert the recipe's data unless an identical conversion is already there; return Ultralytics' `data=`."""
    if not force and is_current(recipe):
        LOG.info("using converted dataset %s", dataset_dir(recipe))
        return train_data(recipe)
    src = locate(recipe, root)
    patients = metadata.read(recipe, src)  # before converting: a wrong CSV fails before any work
    samples = CONVERTERS[recipe.data.converter](src, recipe)
    dst = dataset_dir(recipe)
    dst.parent.mkdir(parents=True, exist_ok=True)
    card = write_dataset(samples, dst, recipe, str(src) if src else recipe.data.source.kind, patients)
    LOG.info("converted %s into %s (%d skipped)", src or recipe.data.source.kind, dst, len(card["skipped"]))
    return train_data(recipe)


# `yolo_tools convert FORMAT SRC DST`: published formats converted without a recipe. Each entry: the
# converter, the task it makes, and where the class names come from.
FORMATS: dict[str, tuple[str, str, Callable[[Path, dict], list[str]]]] = {
    "coco": ("coco", "detect", coco.classes),
    "masks": ("mask_images", "segment", mask_images.classes),
    "box-csv": ("box_csv", "detect", box_csv.classes),
    "class-folders": ("class_folders", "classify", class_folders.classes),
    "nifti": ("nifti", "segment", nifti_volumes.classes),
    "dicom": ("dicom", "segment", dicom_volumes.classes),
}


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

    Examples:
        >>> convert_folder("coco", "my-coco-set", "datasets/my-coco", task="segment")
        >>> convert_folder("masks", "../shared/data/heart-cxr-jsrt", "datasets/heart-masks")
    """
    from yolo_tools.errors import UserError
    from yolo_tools.recipe import Data, Source, Split

    if fmt not in FORMATS:
        raise UserError(f"convert: format '{fmt}' is unknown; allowed: {', '.join(FORMATS)} (or give a recipe YAML)")
    converter, default_task, find_classes = FORMATS[fmt]
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if not src.is_dir():
        raise UserError(f"{src}: no such folder")
    options = dict(options or {})
    if fmt == "masks" and "layout" not in options:
        mask_dir = src / options.get("masks", "masks")
        has_folders = mask_dir.is_dir() and any(p.is_dir() for p in mask_dir.iterdir())
        options["layout"] = "per_class" if has_folders else "label_map"
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in dst.name) or "dataset"
    recipe_task = task or default_task
    try:
        recipe = Recipe(
            name=name,
            task=recipe_task,
            data=Data(
                source=Source(kind="local", path=str(src)),
                converter=converter,
                options=options,
                split=Split(by=split_by, val=val, seed=seed),
            ),
            classes=find_classes(src, options),
            model={"segment": "yolov8n-seg.yaml", "classify": "yolov8n-cls.yaml"}.get(recipe_task, "yolov8n.yaml"),
            path=src,
        )
    except ValueError as exc:
        raise UserError(f"convert {fmt}: {exc}") from None
    samples = CONVERTERS[converter](src, recipe)
    dst.parent.mkdir(parents=True, exist_ok=True)
    card = write_dataset(samples, dst, recipe, str(src))
    LOG.info("converted %s into %s (%d skipped)", src, dst, len(card["skipped"]))
    return card
