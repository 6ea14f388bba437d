"""An outside set scored by a run: converted with the run's recipe into the workbench's own folder.

A published test set, another hospital's films, a colleague's export: to be comparable with the run's
own numbers it must reach the model exactly as training data did, so it goes through the recipe's
converter (or the reader named by `--format`), the recipe's classes and intensity mapping, and the same
writer. All of it becomes the `test` split of `datasets/<recipe>--<folder>/` (nothing is trained on it);
the source folder is only read. Patients come from the recipe's split rule where it fits the names,
else each image is its own patient (stated in the card).

Examples:
    >>> converted, name = convert(load_recipe("recipes/pneumonia.yaml"), Path("chest_xray/test"), "class-folders")
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from yolo_tools import dataset
from yolo_tools.convert import converter
from yolo_tools.convert.conversion import FORMATS
from yolo_tools.convert.splits import group_keys
from yolo_tools.convert.writer import TEST, write_dataset
from yolo_tools.dataset import Dataset
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe, Source, Split

LOG = logging.getLogger(__name__)
SPLIT = TEST
READERS = {**{fmt: name for fmt, (name, _) in FORMATS.items()}, "yolo": "yolo_export"}
# Options that say where the recipe's own copy keeps its images; an outside folder is read as it is.
LOCATION_OPTIONS = ("folder", "test_folder")


def _recipe_for(recipe: Recipe, src: Path, fmt: str | None) -> Recipe:
    if fmt is not None and fmt not in READERS:
        raise UserError(f"--format '{fmt}' is unknown; allowed: {', '.join(READERS)} (default: the recipe's converter)")
    reader = READERS[fmt] if fmt else recipe.data.converter
    options = {k: v for k, v in recipe.data.options.items() if k not in LOCATION_OPTIONS} if not fmt else {}
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in src.name) or "outside"
    data = recipe.data.model_copy(
        update={
            "source": Source(kind="local", path=str(src)),
            "converter": reader,
            "options": options,
            "split": Split(by="source", test="source"),
            "metadata": None,
            "corrections": None,  # corrections are of the recipe's own images, never of an outside set
        }
    )
    return recipe.model_copy(update={"name": f"{recipe.name}--{name}", "data": data})


def _patients(samples: list, rule: str) -> list[str]:
    names = [sample.name for sample in samples]
    if rule == "source":
        return names
    try:
        return group_keys(names, rule)
    except UserError as error:
        LOG.warning("outside set: the recipe's patient rule does not fit (%s); each image counts as its own patient", error)
        return names


def convert(recipe: Recipe, src: Path, fmt: str | None = None) -> tuple[Dataset, str]:
    """Convert `src` (once; reused while unchanged) and return the converted set and its name.

    No run trains on an outside set, so a change of the recipe converts it again in its one folder."""
    src = src.expanduser().resolve()
    if not src.is_dir():
        raise UserError(f"{src}: no such folder (--data takes a folder in a format the recipe's converter reads)")
    outside = _recipe_for(recipe, src, fmt)
    dst = dataset.home(outside.name)
    if src == dst or dst in src.parents or src in dst.parents:
        raise UserError(f"{src}: the outside set may not overlap the workbench's dataset folder {dst}")
    name = outside.name.removeprefix(f"{recipe.name}--")
    if dataset.is_current(dst, outside.fingerprint()):
        return Dataset(dst, outside.task), name
    # Read as a plain set (no published test split to look for), then written whole as the test split.
    reading = outside.model_copy(update={"data": outside.data.model_copy(update={"split": Split(by="file")})})
    found = converter(outside.data.converter).samples(src, reading)
    patients = [sample.group for sample in found] if all(s.group for s in found) else _patients(list(found), recipe.data.split.by)
    held = [dataclasses.replace(sample, split=SPLIT, group=patient) for sample, patient in zip(found, patients)]
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_dataset(held, dst, outside, str(src), protect=[src])
    return Dataset(dst, outside.task), name
