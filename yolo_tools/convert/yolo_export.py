"""Read a YOLO-format export as Roboflow or Ultralytics publish it (`data.yaml`, `<split>/images`, `<split>/labels`).

Roboflow writes split paths such as `../train/images`, relative to a folder one level below the export;
both that and plain relative paths are accepted. The `test` split is read only when the recipe keeps it
(`split: {test: source}`), and then only into the dataset's own test split, never trained on; an export
without one is then named by the writer (an outside set, `evaluate --data`, reads one where there is one).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import Field

from yolo_tools import tasks
from yolo_tools.convert.options import ConverterOptions, parse
from yolo_tools.convert.tiles import Tiles, tile
from yolo_tools.convert.writer import TEST, Sample, SkipSample
from yolo_tools.errors import UserError
from yolo_tools.imaging import IMAGE_SUFFIXES
from yolo_tools.recipe import Recipe


class Options(ConverterOptions):
    """A YOLO export is read as published; `tiles` cuts detection training images into tiles (convert/tiles.py)."""

    tiles: Tiles | None = Field(None, description="detect: cut the training images into tiles (small findings)")


def _split_dir(root: Path, entry: str, yaml_path: Path) -> Path:
    for candidate in (root / entry, root / entry.removeprefix("../")):
        if candidate.is_dir():
            return candidate.resolve()
    raise UserError(f"{yaml_path}: split folder '{entry}' not found under {root}")


def label_folder(images: Path) -> Path:
    """Where an image folder's label files are, by Ultralytics' own rule: its last `images` part made `labels`
    (Roboflow's `train/images` -> `train/labels`, Ultralytics' `images/train` -> `labels/train`); a folder
    with no `images` part keeps them in `labels/<folder>` beside it."""
    parts = images.parts
    if "images" in parts:
        at = len(parts) - 1 - parts[::-1].index("images")
        return Path(*parts[:at], "labels", *parts[at + 1:])
    return images.parent / "labels" / images.name


def _label_reader(path: Path):
    """The label file's lines, as text; the writer checks every line (and names the file, the sample's source)."""

    def read() -> list[str]:
        try:
            return path.read_text(encoding="utf-8").splitlines()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise SkipSample("image has no label file") from None
        except UnicodeDecodeError:
            raise SkipSample(f"{path.name} is not UTF-8 text; a YOLO label file is plain text") from None

    return read


def samples(src: Path, recipe: Recipe) -> list[Sample]:
    """One Sample per image of the export's train and val splits; orphan label files are reported as skips."""
    yaml_path = src / "data.yaml"
    if not yaml_path.is_file():
        raise UserError(f"{src}: no data.yaml; is this a YOLO export?")
    try:
        spec = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{yaml_path}: not readable as YAML text: {exc}; fix or re-export the file") from None
    if not isinstance(spec, dict):
        raise UserError(f"{yaml_path}: not a YOLO data.yaml (a mapping with train, val and names)")
    names = spec.get("names") or []
    names = list(names.values()) if isinstance(names, dict) else list(names)
    if len(names) != len(recipe.classes):
        raise UserError(
            f"{yaml_path}: {len(names)} classes {names}, but recipe {recipe.path} lists {len(recipe.classes)} "
            f"{recipe.classes}; give one recipe class name per source class, in order"
        )
    found = []
    keys = ("train", "val", "test") if recipe.data.split.test == "source" else ("train", "val")
    for key in keys:
        if key not in spec:
            if key == TEST:
                continue  # the writer says what a recipe's `test: source` lacks; an outside set is read without one
            raise UserError(f"{yaml_path}: no '{key}' split")
        images = _split_dir(src, str(spec[key]), yaml_path)
        labels = label_folder(images)
        stems = set()
        # names, not Paths, are listed and sorted: an export holds thousands of files, and Path objects
        # cost more to sort and split than the label check costs
        for name in sorted(os.listdir(images)):
            stem, suffix = os.path.splitext(name)
            if suffix.lower() not in IMAGE_SUFFIXES or not stem:
                continue
            stems.add(stem)
            image = images / name
            source = f"{image} (labels {labels.name}/{stem}.txt)"
            found.append(Sample(name=stem, image=image, labels=_label_reader(labels / f"{stem}.txt"), split=key, source=source))
        for name in sorted(os.listdir(labels)) if labels.is_dir() else []:
            stem, suffix = os.path.splitext(name)
            if suffix == ".txt" and stem and stem not in stems:
                found.append(Sample(name=stem, image=images / stem, split=key, source=str(labels / name)))
    tiles = parse(Options, recipe).tiles
    if tiles is None:
        return found
    if tasks.get(recipe.task).labels != "boxes":
        raise UserError(f"{recipe.path}: data.options.tiles cuts detection boxes; remove it for task '{recipe.task}'")
    return tile(found, recipe, tiles)
