"""An outside set scored by a run: converted with the run's recipe into the workbench's own folder.

A published test set, another hospital's films, a colleague's export: to be comparable with the run's
own numbers it must reach the model exactly as training data did, so it goes through the recipe's
converter (or the reader named by `--format`), the recipe's classes and intensity mapping, and the same
writer. All of it becomes the `test` split of `datasets/<recipe>--<name>/` (nothing is trained on it);
the source folder is only read. Patients come from the recipe's split rule where it fits the names,
else each image is its own patient (stated in the card).

A test set arrives in whatever layout its publisher chose, so the options that say where the recipe's own
copy keeps its files or how it is laid out (`REREAD`) are read afresh (each converter's default finds
them), and `--option KEY=VALUE` sets any of the reader's `data.options`. A test set is scored whole, as
published, so that its number compares with published ones: the options that leave images out of a
training set (byte-identical copies, empty slices, tiles of training images) are set to keep every image
(`WHOLE`), and byte-identical copies are reported (card, console, summary) rather than removed.

Examples:
    >>> planned = plan(load_recipe("recipes/pneumonia.yaml"), Path("chest_xray/test"), "class-folders")
    >>> converted = convert(planned)
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from yolo_tools import dataset
from yolo_tools.conversion import FORMATS, format_options
from yolo_tools.convert import registry
from yolo_tools.convert.options import checked_options
from yolo_tools.convert.registry import converter
from yolo_tools.convert.splits import RuleDoesNotFit, group_keys
from yolo_tools.convert.writer import TEST, write_dataset
from yolo_tools.dataset import Dataset
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe, Source, Split

LOG = logging.getLogger(__name__)
SPLIT = TEST
# What each --format reads and how, from the one registry of readers (yolo_tools/convert/__init__.py):
# --format F → its reader, `convert FORMAT`'s first.
READERS = {**{fmt: name for fmt, (name, _) in FORMATS.items()}, **{fmt: c.name for fmt, c in registry.FORMATS.items()}}
# The tasks whose labels each --format reads: class folders give a detector no boxes, so every image
# would be scored as background; such a pairing is refused. (No --format: the recipe's converter, which
# the recipe's own check fits to its task.)
READER_TASKS = {fmt: c.tasks for fmt, c in registry.FORMATS.items()}
# Per converter, the options that say where the recipe's own copy keeps its files and how its publisher laid
# them out, or that only shape a training set (tiles cut training images only): an outside folder is read
# with the converter's defaults for these (which find the files themselves), unless `--option` sets them.
REREAD = {c.name: c.reread for c in registry.CONVERTERS.values() if c.reread}
# Readers that know a slice's neighbours, which a 2.5D run (`preprocess.context`) sees as red and blue.
SLICE_READERS = tuple(c.name for c in registry.CONVERTERS.values() if c.slices)
# Options that leave images out of a training set; a test set is scored whole (an explicit --option wins).
WHOLE = {"duplicates": "keep", "empty": "keep"}
NAME_OF_HASH = 6  # hex digits of the source path that tell two outside folders of one name apart


@dataclass(frozen=True)
class Plan:
    """An outside set, checked and named before anything is converted or written."""

    recipe: Recipe  # the run's recipe turned to read `src` (converter, options, one test split)
    src: Path
    name: str  # `datasets/<recipe>--<name>/`, `<run>/eval-outside-<name>/`
    run_recipe: Recipe


def _folder_name(src: Path) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in src.name) or "outside"


def _options(recipe: Recipe, reader: str, fmt: str | None, src: Path, given: dict) -> dict:
    """The reader's options: the recipe's (same converter) less REREAD, every image kept, then --option."""
    own = recipe.data.options if reader == recipe.data.converter else {}
    options = {k: v for k, v in own.items() if k not in REREAD.get(reader, ())}
    model = converter(reader).Options
    options.update({k: v for k, v in WHOLE.items() if k in model.model_fields})
    options.update(given)
    if fmt:
        options = format_options(fmt, src, options)
    return checked_options(model, options, reader, given)


def plan(
    recipe: Recipe,
    src: Path,
    fmt: str | None = None,
    options: dict | None = None,
    scored_as: Callable[[str], str | None] = lambda name: None,
) -> Plan:
    """Check an outside set before anything is written: the folder, `fmt` against the run's task, the options.

    `options` are `--option` pairs already read (`convert.options.read_pairs`). `scored_as(name)` says which
    source an existing evaluation of that name scored: a folder of the same name that is another folder
    (`chest_xray/test` and `other/test`) gets its own name, so neither result replaces the other."""
    given = dict(options or {})
    if fmt is not None and fmt not in READERS:
        raise UserError(f"--format '{fmt}' is unknown; allowed: {', '.join(READERS)} (default: the recipe's converter)")
    if fmt is not None and recipe.task not in READER_TASKS[fmt]:
        fits = [name for name, tasks in READER_TASKS.items() if recipe.task in tasks]
        raise UserError(
            f"--format {fmt} reads {' or '.join(READER_TASKS[fmt])} labels, but this run is a {recipe.task} model "
            f"(recipe '{recipe.name}'): its images would be scored without their {recipe.task} truth. Give a set "
            f"with that truth and its --format ({', '.join(fits)})"
        )
    src = src.expanduser().resolve()
    if not src.is_dir():
        raise UserError(f"{src}: no such folder (--data takes a folder in a format the recipe's converter reads)")
    reader = READERS[fmt] if fmt else recipe.data.converter
    if recipe.preprocess.context and reader not in SLICE_READERS:
        raise UserError(
            f"--format {fmt or reader}: a set of single images, but this run was trained on 2.5D inputs (recipe "
            f"'{recipe.name}', preprocess.context: {recipe.preprocess.context}: each slice with its neighbours as red "
            "and blue); its images would reach the model unlike its training data. Give volumes (--format nifti or dicom)"
        )
    data = recipe.data.model_copy(
        update={
            "source": Source(kind="local", path=str(src)),
            "converter": reader,
            "options": _options(recipe, reader, fmt, src, given),
            "split": Split(by="source", test="source"),  # every image the test split, as the source gives it
            "metadata": None,
            "corrections": None,  # corrections are of the recipe's own images, never of an outside set
        }
    )
    base = _folder_name(src)
    name = base
    held_by = {(dataset.read_card(dataset.home(f"{recipe.name}--{base}")) or {}).get("source"), scored_as(base)}
    if held_by - {None, str(src)}:
        name = f"{base}-{hashlib.sha256(str(src).encode()).hexdigest()[:NAME_OF_HASH]}"
    outside = recipe.model_copy(update={"name": f"{recipe.name}--{name}", "data": data})
    dst = dataset.home(outside.name)
    if src == dst or dst in src.parents or src in dst.parents:
        raise UserError(f"{src}: the outside set may not overlap the workbench's dataset folder {dst}")
    return Plan(outside, src, name, recipe)


def _patients(samples: list, rule: str) -> list[str]:
    names = [sample.name for sample in samples]
    if rule == "source":
        return names
    try:
        return group_keys(names, rule)
    except RuleDoesNotFit as error:
        LOG.warning("outside set: the recipe's patient rule does not fit (%s); each image counts as its own patient", error)
        return names


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def duplicates(samples: Sequence) -> list[dict]:
    """Groups of samples whose image files are byte-identical: each group's sources and classes (classify).

    A published test set is scored as published, copies included, so that its number compares with
    published ones; the copies are named so a reader knows (and a copy under two classes is a conflict)."""
    by_digest: dict[str, list] = defaultdict(list)
    for sample in samples:
        if isinstance(sample.image, Path) and sample.image.is_file():
            by_digest[_digest(sample.image)].append(sample)
    groups = []
    for same in by_digest.values():
        if len(same) > 1:
            classes = sorted({s.category for s in same if s.category is not None})
            groups.append({"files": [s.source or str(s.image) for s in same], "classes": classes, "conflict": len(classes) > 1})
    return groups


def _read(outside: Recipe, src: Path, rule: str) -> list:
    """The set's samples, read as a plain set (then written whole as the test split), patients by `rule` where
    the reader groups them itself (class folders). A YOLO export's own test split is part of the set; class
    folders are read in the folder given (a `test: source` would look for one inside it)."""
    split = Split(by=rule, test="source" if outside.data.converter == "yolo_export" else None)
    reading = outside.model_copy(update={"data": outside.data.model_copy(update={"split": split})})
    try:
        return converter(outside.data.converter).samples(src, reading)
    except RuleDoesNotFit:
        raise
    except UserError as error:
        raise UserError(f"{error}\n  (--data: the reader's data.options are set with --option KEY=VALUE, e.g. --option layout=folders)") from None


def convert(planned: Plan) -> Dataset:
    """Convert the planned set (once; reused while unchanged) and return it.

    No run trains on an outside set, so a change of the recipe converts it again in its one folder."""
    outside, src = planned.recipe, planned.src
    dst = dataset.home(outside.name)
    if not dataset.is_current(dst, outside.fingerprint()):
        rule = planned.run_recipe.data.split.by
        try:
            found = _read(outside, src, "file" if rule == "source" else rule)
        except RuleDoesNotFit as error:
            LOG.warning("outside set: the recipe's patient rule does not fit (%s); each image counts as its own patient", error)
            found = _read(outside, src, "file")
        patients = [sample.group for sample in found] if all(s.group for s in found) else _patients(list(found), rule)
        held = [dataclasses.replace(sample, split=SPLIT, group=patient) for sample, patient in zip(found, patients)]
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_dataset(held, dst, outside, str(src), protect=[src], notes={"duplicates": duplicates(held)})
    converted = Dataset(dst, outside.task)
    _say_what_was_found(converted)
    return converted


def _say_what_was_found(converted: Dataset) -> None:
    """Copies kept, and a detection or segmentation set without a single finding, are said every time it is scored."""
    card = converted.card
    groups = card.get("duplicates") or []
    if groups:
        copies = sum(len(group["files"]) - 1 for group in groups)
        shown = "; ".join(" = ".join(group["files"][:3]) + (f" (classes {group['classes']})" if group["conflict"] else "") for group in groups[:3])
        LOG.warning(
            "outside set: %d image(s) are byte-identical copies of others (%d groups), kept and scored as published: %s%s",
            copies, len(groups), shown, " ..." if len(groups) > 3 else "",
        )
        conflicts = [group for group in groups if group["conflict"]]
        if conflicts:
            LOG.warning("outside set: %d group(s) of copies lie under two or more classes (conflicting labels); each copy is "
                        "scored against its own folder's class", len(conflicts))
    counts = (card.get("counts") or {}).get(SPLIT, {})
    if not converted.class_folders and counts.get("images") and counts.get("backgrounds") == counts.get("images"):
        LOG.warning(
            "outside set %s: not one of its %d images has a %s label, so every image is scored as background; if the set "
            "has findings, its --format or --option does not match how it is published", converted.root, counts["images"], converted.task,
        )


def _files(folder: Path) -> Iterable[Path]:
    return (path for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else ()


def seen_in_training(own: Dataset, outside: Dataset, splits: Sequence[str]) -> dict[str, list[str]]:
    """Outside images byte-identical to an image of the run's own `splits` (train, val): per split, their names.

    The converted files are compared (same source and intensity mapping give the same bytes), so the
    run's own source passed as an "outside" set is found, and so is a copy of a part of it. Only files of
    equal size are hashed."""
    scored = {path: path.stat().st_size for path in _files(outside.images(SPLIT))}
    sizes = set(scored.values())
    digest_of: dict[Path, str] = {}
    found: dict[str, list[str]] = {}
    for split in splits:
        candidates = [path for path in _files(own.images(split)) if path.stat().st_size in sizes]
        digests = {_digest(path) for path in candidates}
        own_sizes = {path.stat().st_size for path in candidates}
        same = []
        for path, size in scored.items():
            if size in own_sizes:
                digest_of.setdefault(path, _digest(path))
                if digest_of[path] in digests:
                    same.append(path.name)
        if same:
            found[split] = sorted(same)
    return found
