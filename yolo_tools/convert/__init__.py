"""Turn a recipe's raw data into a YOLO dataset under `datasets/<recipe>/`, once, and reuse it after.

One module per published format parses it into Samples; `writer.write_dataset` does the rest. The
converted copy is what Ultralytics trains on, so its `labels.cache` never lands in a source folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from yolo_tools.convert import synthetic, yolo_export
from yolo_tools.convert.writer import Sample, write_dataset
from yolo_tools.locations import datasets_dir
from yolo_tools.recipe import Recipe
from yolo_tools.sources import locate

LOG = logging.getLogger(__name__)

CONVERTERS: dict[str, Callable[[Path | None, Recipe], list[Sample]]] = {
    "yolo_export": yolo_export.samples,
    "synthetic": synthetic.samples,
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
    samples = CONVERTERS[recipe.data.converter](src, recipe)
    dst = dataset_dir(recipe)
    dst.parent.mkdir(parents=True, exist_ok=True)
    card = write_dataset(samples, dst, recipe, str(src) if src else recipe.data.source.kind)
    LOG.info("converted %s into %s (%d skipped)", src or recipe.data.source.kind, dst, len(card["skipped"]))
    return train_data(recipe)
