"""Read a classification set published as one folder of images per class (`<folder>/<CLASS>/*.jpeg`).

Folder names match the recipe's classes ignoring case (`NORMAL` -> `normal`); images of a folder that is
no recipe class are skipped with the reason. The patient of each image comes from the recipe's
`split.by` rule applied to its file stem; byte-identical files are then tied to one group as well, so a
duplicate can never sit on both sides of the split even where the names disagree. With
`duplicates: drop` (the default) every copy after the first (in sorted path order) is skipped, named
with the file it repeats, so each picture counts once in training and validation; `keep` keeps them.
The copy that is kept is the first that lies in a folder of a recipe class, so a picture is never lost
because a copy of it also sits in a folder that is skipped. A picture filed under two recipe classes
(`NORMAL/a.jpeg` and `PNEUMONIA/b.jpeg`, byte-identical) is no duplicate but a conflicting label: which
class it shows is unknown, and training on either copy would teach a label that may be wrong, so every
copy is left out, each named on the dataset card with the class it conflicts with (a reader who knows
the right class can file the picture once and convert again). The whole set is not refused: the other
pictures' labels are not in question. With `keep` (a test set scored as published, `evaluate --data`) every
copy stays, as published, and the conflict is reported by whoever asked to keep them (outside_data). Files that are no usable images are skipped
by the writer, which verifies every image.

Options: `folder` (the folder holding the class folders, relative to the source; default: the source itself),
`duplicates` (`drop` or `keep`), `test_folder` (the published test split's folder of class folders, read
only with `split: {test: source}`; default: `test`). Duplicates and patients are matched across both, so a
picture or patient of the test split that also sits in train is tied to one group.

Examples:
    >>> from yolo_tools.recipe import load_recipe
    >>> samples(Path("../shared/data/pneumonia-cxr-kermany"), load_recipe("recipes/pneumonia.yaml"))
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field
from tqdm import tqdm

from yolo_tools.convert.options import ConverterOptions, parse
from yolo_tools.convert.splits import group_keys
from yolo_tools.convert.writer import Sample, SkipSample
from yolo_tools.imaging import IMAGE_SUFFIXES
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe


class Options(ConverterOptions):
    folder: str = Field(".", description="the folder holding the class folders, relative to the source")
    duplicates: Literal["drop", "keep"] = Field("drop", description="byte-identical copies: counted once, or kept")
    test_folder: str = Field("test", description="the published test split's folder of class folders (split.test: source)")


def _root(src: Path, options: dict) -> Path:
    root = src / str(options.get("folder", "."))
    if not root.is_dir():
        raise UserError(f"{root}: folder of class folders not found (set data.options.folder)")
    return root


def _class_dirs(root: Path) -> list[Path]:
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise UserError(f"{root}: no class folders inside")
    return dirs


def _union_groups(keys: list[str], digests: list[str]) -> list[str]:
    """Merge patient groups that share a byte-identical file; each merged group is named by its first key."""
    parent = {key: key for key in keys}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    first_key_of: dict[str, str] = {}
    for key, digest in zip(keys, digests):
        other = first_key_of.setdefault(digest, key)
        a, b = find(key), find(other)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [find(key) for key in keys]


def _skipped(reason: str):
    def load() -> np.ndarray:
        raise SkipSample(reason)

    return load


def samples(src: Path, recipe: Recipe) -> list[Sample]:
    options = parse(Options, recipe)
    root = _root(src, options.model_dump())
    by_lower = {name.lower(): name for name in recipe.classes}
    roots = [(root, None)]
    if recipe.data.split.test == "source":
        roots.append((_root(src, {"folder": options.test_folder}), "test"))
    files, split_of = [], []
    for folder_root, split in roots:
        for folder in _class_dirs(folder_root):
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    files.append((folder, path))
                    split_of.append(split)
    if not files:
        raise UserError(f"{root}: no images in the class folders")
    stems = [path.stem for _, path in files]
    clash = len(set(stems)) != len(stems)
    names = [f"{folder.name}_{path.stem}" if clash else path.stem for folder, path in files]
    if len(set(names)) != len(names):  # the same class/name in train and test: the test copy gets a prefix
        names = [f"test_{name}" if split else name for name, split in zip(names, split_of)]

    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for _, path in tqdm(files, desc=f"hash {root.name}", unit="img")]
    rule = recipe.data.split.by
    keys = group_keys(stems, "file" if rule == "source" else rule)  # the published names, before any prefix
    groups = _union_groups(keys, digests)
    categories = [by_lower.get(folder.name.lower(), folder.name) for folder, _ in files]

    # The copy kept is the first in a recipe class's folder; a copy in a skipped folder never displaces it.
    first_with: dict[str, Path] = {}
    filed_under: dict[str, dict[str, Path]] = {}  # digest -> recipe class -> the first copy filed under it
    for (_, path), digest, category in zip(files, digests, categories):
        if category in recipe.classes:
            first_with.setdefault(digest, path)
            filed_under.setdefault(digest, {}).setdefault(category, path)
    found = []
    for (_, path), name, digest, category, group, split in zip(files, names, digests, categories, groups, split_of):
        original = first_with.get(digest, path)
        image: Path | object = path
        others = {c: p for c, p in filed_under.get(digest, {}).items() if c != category}
        if category in recipe.classes and others and options.duplicates == "drop":
            listed = ", ".join(f"'{c}' ({p})" for c, p in others.items())
            image = _skipped(f"conflicting labels: the same picture (byte-identical) is also filed as {listed}; "
                             "left out, every copy, since neither label can be trusted")
        elif options.duplicates == "drop" and original != path and category in recipe.classes:
            image = _skipped(f"byte-identical duplicate of {original}; dropped (kept once)")
        found.append(Sample(name=name, image=image, category=category, group=group, split=split, source=str(path)))
    return found


def classes(src: Path, options: dict) -> list[str]:
    """The class folder names (for `yolo_tools convert class-folders SRC DST`)."""
    return [p.name for p in _class_dirs(_root(src, options))]
