"""The one writer every converter ends in: YOLO layout, patient-wise split, dataset card, atomic rename.

Format modules only parse their published format into `Sample`s; splitting, copying, counting and the
card are done here once, so every dataset gets the same guarantees: sources are only read, the output
appears complete or not at all, and every skipped file is named with its reason.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from yolo_tools.convert import mask_png
from yolo_tools.convert import metadata as patient_metadata
from yolo_tools.convert.splits import group_keys, grouped_split, held_out
from yolo_tools.errors import UserError
from yolo_tools.imaging.model_input import needs_mapping, read_upload
from yolo_tools.intensity import Intensity, MinMax, Percentile
from yolo_tools.recipe import Preprocess, Recipe

if TYPE_CHECKING:
    import pandas as pd

LOG = logging.getLogger(__name__)
SPLITS = ("train", "val")
TEST = "test"  # held out: converted with the rest, never trained on, early-stopped on or used to choose weights
EIGHT_BIT_SUFFIXES = {".jpg", ".jpeg", ".bmp", ".webp"}


class SkipSample(Exception):
    """Raised by a sample's loader when its file is unusable: the writer skips it and records why."""


@dataclass(frozen=True)
class Sample:
    """One image as a converter found it; loading is deferred so a large set streams through memory.

    `image` is a file copied as it is, or a function returning pixels (uint8, HxW or HxWx3) to encode
    as PNG. `labels` returns YOLO label lines (detect, segment); `category` names the class (classify).
    `split` is the source's own split, used when the recipe keeps it; `group` the patient or study,
    when the converter knows it better than a file-name rule. `slice_of` is (volume, slice index) for a
    2D slice cut from a 3D volume: the writer lists those in `slices.csv` (image, split, patient, volume,
    slice) so per-patient 3D metrics can stack slice predictions back into volumes. `masks` returns the
    published masks ((classes, H, W) bool, at the image's own size) for segmentation: kept in
    `masks/<split>/` so evaluation scores against them, not against the polygons traced from them;
    `spacing` is (row, column) mm per pixel where the source says so (`spacing.csv`).
    """

    name: str
    image: Path | Callable[[], np.ndarray]
    labels: Callable[[], list[str]] | None = None
    category: str | None = None
    split: str | None = None
    group: str | None = None
    source: str = ""
    slice_of: tuple[str, int] | None = None
    masks: Callable[[], np.ndarray] | None = None
    spacing: tuple[float, float] | None = None


class SampleList(list):
    """A converter's samples plus what it left out before making samples, counted by reason.

    For inputs that are absent in bulk rather than broken one by one (e.g. 38,494 label rows whose scans
    are not in this copy of a set): one line and a count on the card instead of one skip per file.
    """

    def __init__(self, samples=(), left_out: dict[str, int] | None = None):
        super().__init__(samples)
        self.left_out = {reason: count for reason, count in (left_out or {}).items() if count}


SLICES_CSV = "slices.csv"
SLICES_COLUMNS = ("image", "split", "patient", "volume", "slice")
PATIENTS_CSV = "patients.csv"  # image, split, patient of every written image: what bootstrap intervals resample
MASKS_DIR = "masks"  # published ground-truth masks of segmentation sets, one mask_png per image
SPACING_CSV = "spacing.csv"  # image, row_mm, col_mm where the source gives the pixel spacing


def splits_of(recipe: Recipe) -> tuple[str, ...]:
    """The splits a recipe's dataset holds: train and val, and test when the recipe keeps one apart."""
    return (*SPLITS, TEST) if recipe.data.split.test is not None else SPLITS


def assign_splits(samples: Sequence[Sample], recipe: Recipe) -> tuple[list[str], list[str]]:
    """Train, val or test for each sample, and its patient or study, keeping every patient on one side.

    A test fraction is carved first, then val from the rest (`held_out`), so `val` and `test` are both
    fractions of all patients; `test: source` keeps the samples the converter found in the published test split.
    """
    rule = recipe.data.split
    names = [s.name for s in samples]
    if all(s.group for s in samples):
        groups = [s.group for s in samples]
    else:
        groups = names if rule.by == "source" else group_keys(names, rule.by)
    if rule.test == "source" and not any(s.split == TEST for s in samples):
        raise UserError(
            f"{recipe.path}: data.split.test is 'source' but the source has no published test split "
            f"(converter '{recipe.data.converter}'); give a fraction instead, e.g. test: 0.15"
        )
    if rule.by == "source":
        allowed = splits_of(recipe)
        missing = [s.name for s in samples if s.split not in allowed]
        if missing:
            raise UserError(
                f"{recipe.path}: data.split.by is 'source' but the source gives no train/val split for "
                f"{len(missing)} files (first: {missing[0]}); set data.split.by to a patient rule"
            )
        return [s.split for s in samples], groups
    return held_out(groups, [s.split == TEST for s in samples], rule.val, rule.test, rule.seed), groups


def _stored_as_trained(path: Path, intensity: Intensity | None) -> bool:
    """True when the file's own bytes are what the model should see, so it can be copied unread."""
    if isinstance(intensity, (Percentile, MinMax)):
        return False
    if path.suffix.lower() in EIGHT_BIT_SUFFIXES:
        return True
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return pixels is not None and not needs_mapping(pixels, intensity)


def _write_image(sample: Sample, folder: Path, preprocess: Preprocess) -> Path:
    if isinstance(sample.image, Path):
        if not sample.image.is_file():
            raise SkipSample("image file is missing")
        if _stored_as_trained(sample.image, preprocess.intensity):
            target = folder / f"{sample.name}{sample.image.suffix.lower()}"
            shutil.copyfile(sample.image, target)
            return target
        try:
            bgr = read_upload(sample.image, preprocess).image
        except UserError as error:
            raise SkipSample(str(error)) from None
        if (bgr[..., 0] == bgr[..., 1]).all() and (bgr[..., 1] == bgr[..., 2]).all():
            bgr = bgr[..., 0]  # grey stays one channel on disk: Ultralytics expands it on reading
        target = folder / f"{sample.name}.png"
        if not cv2.imwrite(str(target), bgr):
            raise SkipSample("could not encode the image as PNG")
        return target
    pixels = sample.image()
    if pixels.dtype != np.uint8:
        raise SkipSample(f"converter produced {pixels.dtype} pixels; map intensities to uint8 first")
    target = folder / f"{sample.name}.png"
    if not cv2.imwrite(str(target), pixels if pixels.ndim == 2 else pixels[..., ::-1]):
        raise SkipSample("could not encode the image as PNG")
    return target


def _write_one(sample: Sample, split: str, root: Path, recipe: Recipe, counts: Counter) -> Path:
    if recipe.task == "classify":
        if sample.category not in recipe.classes:
            raise SkipSample(f"class '{sample.category}' is not in the recipe's classes {recipe.classes}")
        target = _write_image(sample, root / split / sample.category, recipe.preprocess)
        counts[(split, sample.category)] += 1
        return target
    lines = sample.labels() if sample.labels else []
    keep_masks = sample.masks is not None and len(recipe.classes) <= mask_png.MAX_CLASSES
    truth = sample.masks() if keep_masks else None  # read before anything is written: a SkipSample leaves nothing
    class_ids = [int(line.split()[0]) for line in lines]
    target = _write_image(sample, root / "images" / split, recipe.preprocess)
    (root / "labels" / split / f"{sample.name}.txt").write_text("".join(f"{line}\n" for line in lines))
    if truth is not None:
        (root / MASKS_DIR / split).mkdir(parents=True, exist_ok=True)
        mask_png.save(truth, root / MASKS_DIR / split / f"{target.stem}.png")
    counts[(split, "images")] += 1
    counts[(split, "backgrounds")] += not lines
    for class_id in class_ids:
        counts[(split, recipe.classes[class_id])] += 1
    return target


def _make_folders(root: Path, recipe: Recipe) -> None:
    for split in splits_of(recipe):
        if recipe.task == "classify":
            for name in recipe.classes:
                (root / split / name).mkdir(parents=True)
        else:
            (root / "images" / split).mkdir(parents=True)
            (root / "labels" / split).mkdir(parents=True)


def _card(
    recipe: Recipe,
    source: str,
    counts: Counter,
    groups: dict[str, int],
    skipped: list[str],
    left_out: dict[str, int] | None = None,
) -> dict:
    per_split = {split: {k: v for (s, k), v in sorted(counts.items()) if s == split} for split in splits_of(recipe)}
    return {
        "recipe": recipe.name,
        "task": recipe.task,
        "fingerprint": recipe.fingerprint(),
        "source": source,
        "url": recipe.data.source.url,
        "converter": recipe.data.converter,
        "split": recipe.data.split.model_dump(),
        "groups": groups,
        "classes": recipe.classes,
        "counts": per_split,
        "skipped": skipped,
        "left_out": dict(left_out or {}),
    }


def _card_markdown(card: dict) -> str:
    columns = sorted({k for split in card["counts"].values() for k in split})
    lines = [
        f"# Dataset card: {card['recipe']} ({card['task']})",
        "",
        f"- source: `{card['source']}`" + (f" ({card['url']})" if card["url"] else ""),
        f"- converter: `{card['converter']}`, split: {card['split']}",
        f"- patients/studies per split: {card['groups']}",
        "",
        "| split | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for split, row in card["counts"].items():
        lines.append(f"| {split} | " + " | ".join(str(row.get(c, 0)) for c in columns) + " |")
    lines += ["", f"Skipped: {len(card['skipped'])}"] + [f"- {line}" for line in card["skipped"]]
    if card.get("left_out"):
        lines += ["", f"Left out before conversion: {sum(card['left_out'].values())}"]
        lines += [f"- {count}: {reason}" for reason, count in card["left_out"].items()]
    if card.get("metadata"):
        meta = card["metadata"]
        lines += [
            "",
            f"Patient metadata in {patient_metadata.METADATA_CSV} (from `{meta['file']}`): "
            f"{', '.join(meta['columns'])}; "
            f"{meta['patients_matched']} of {meta['patients']} patients matched, "
            f"{meta['images_without_metadata']} images without, {meta['rows_unused']} CSV rows unused",
        ]
    return "\n".join(lines) + "\n"


def write_dataset(
    samples: Sequence[Sample], dst: Path, recipe: Recipe, source: str, metadata: pd.DataFrame | None = None
) -> dict:
    """Write samples as a YOLO dataset at `dst`, replacing any older version only once the new one is whole.

    `metadata`, the recipe's per-patient table (`convert.metadata.read`), is joined into `metadata.csv`.
    """
    if not samples:
        raise UserError(f"{source}: the converter found no images")
    splits, keys = assign_splits(samples, recipe)
    groups = {split: len({k for k, sp in zip(keys, splits) if sp == split}) for split in splits_of(recipe)}

    partial = dst.parent / f".{dst.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    _make_folders(partial, recipe)
    counts: Counter = Counter()
    skipped: list[str] = []
    slices: list[tuple] = []
    spacings: list[tuple] = []
    written: list[tuple[str, str, str]] = []
    left_out = getattr(samples, "left_out", {})
    try:
        for sample, split, key in tqdm(list(zip(samples, splits, keys)), desc=f"convert {recipe.name}", unit="img"):
            try:
                target = _write_one(sample, split, partial, recipe, counts)
            except SkipSample as reason:
                skipped.append(f"{sample.source or sample.name}: {reason}")
                continue
            written.append((target.name, split, str(key)))
            if sample.spacing is not None:
                spacings.append((target.name, *sample.spacing))
            if sample.slice_of is not None:
                slices.append((target.name, split, key, sample.slice_of[0], int(sample.slice_of[1])))
        for line in skipped:
            LOG.warning("skipped %s", line)
        for reason, count in left_out.items():
            LOG.warning("left out %d: %s", count, reason)
        if slices:
            with (partial / SLICES_CSV).open("w", newline="") as handle:
                csv.writer(handle).writerows([SLICES_COLUMNS, *slices])
        if spacings:
            with (partial / SPACING_CSV).open("w", newline="") as handle:
                csv.writer(handle).writerows([("image", "row_mm", "col_mm"), *spacings])
        with (partial / PATIENTS_CSV).open("w", newline="") as handle:
            csv.writer(handle).writerows([("image", "split", "patient"), *written])
        card = _card(recipe, source, counts, groups, skipped, left_out)
        if metadata is not None:
            card["metadata"] = patient_metadata.write(metadata, written, partial / patient_metadata.METADATA_CSV)
        if recipe.task != "classify":
            data_yaml = {"train": "images/train", "val": "images/val"}
            if TEST in splits_of(recipe):  # for `yolo val split=test`; training reads train and val only
                data_yaml[TEST] = "images/test"
            data_yaml["names"] = dict(enumerate(recipe.classes))
            (partial / "data.yaml").write_text(yaml.safe_dump(data_yaml, sort_keys=False))
        (partial / "card.json").write_text(json.dumps(card, indent=2))
        (partial / "card.md").write_text(_card_markdown(card))
        _replace(partial, dst)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return card


def _replace(new: Path, dst: Path) -> None:
    """Swap the finished folder into place; an older version is removed only after the swap."""
    old = dst.parent / f".{dst.name}.old-{os.getpid()}"
    if dst.exists():
        dst.rename(old)
    new.rename(dst)
    shutil.rmtree(old, ignore_errors=True)
