"""The one writer every converter ends in: checked labels, skips first, then the patient-wise split, card, swap.

Format modules only parse their published format into `Sample`s; checking, splitting, copying, counting
and the card are done here once, so every dataset gets the same guarantees:

- sources are only read, and the output appears complete or not at all (`convert.destination`);
- every image is checked before it is counted (`convert.images`, the steps of Ultralytics' own dataset
  check) and every label line too (class known, coordinates finite, inside the image,
  boxes and polygons with a size); a sample with any bad line is skipped whole, never written with a
  line silently dropped, and every skip is named with its reason on the card and as a warning;
- the train/val split is drawn over the samples that survived, so a skipped file never empties a split
  behind the card's back; a conversion where every sample was skipped, or that leaves a split empty,
  fails and writes nothing. Each image is written once, straight into the split it gets when no sample
  is skipped (the usual case: drawn before any file is read, so the draw is the same); an image whose
  split changes because a sample was skipped is moved into its own split after the draw over the kept samples;
- two samples of one name are not both written: the second is skipped, named with the first;
- samples whose images are encoded (volumes, 16-bit files, masks) are staged on a few threads (the cores
  the process may use, at most 4); what is written is the same, byte for byte and in the card's order, as
  on one thread. Sets that are only copied stay on one thread, which is faster for them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from tqdm import tqdm

from yolo_tools import tasks
from yolo_tools.codecs import mask_png
from yolo_tools.codecs.polygons import TracedLines
from yolo_tools.convert import destination, images
from yolo_tools.convert import metadata as patient_metadata
from yolo_tools.convert.samples import Sample, SampleList, SkipSample
from yolo_tools.convert.splits import group_keys, held_out, patients_in_several_splits
from yolo_tools.dataset import (
    CARD, CARD_MD, MARKER, PATIENTS_CSV, SLICES_CSV, SPACING_CSV, SPLITS, TEST, VOLUMES_JSON, WRITER, Dataset,
)
from yolo_tools.errors import UserError
from yolo_tools.imaging.model_input import map_pixels
from yolo_tools.intensity import MinMax, Percentile
from yolo_tools.recipe import Preprocess, Recipe

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SLICES_CSV", "SPLITS", "TEST", "Sample", "SampleList", "SkipSample", "splits_of", "write_dataset"]

LOG = logging.getLogger(__name__)
EIGHT_BIT_SUFFIXES = {".jpg", ".jpeg", ".bmp", ".webp"}
TOLERANCE = 1e-3  # normalised coordinates may pass the border by rounding
SLICES_COLUMNS = ("image", "split", "patient", "volume", "slice")
# Threads a conversion reads, checks and writes files on: the cores this process may use, at most 4 (each
# may hold a volume in memory).
THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def splits_of(recipe: Recipe) -> tuple[str, ...]:
    """The splits a recipe's dataset holds: train and val, and test when the recipe keeps one apart."""
    return (*SPLITS, TEST) if recipe.data.split.test is not None else SPLITS


@dataclass(frozen=True)
class _Kept:
    """A sample that passed every check: its image (and published masks) already written into the split
    `split` it was expected to get, its label lines checked."""

    sample: Sample
    image: Path
    lines: list[str]
    split: str
    masks: Path | None = None


def check_lines(lines: Sequence[str], task: str, classes: Sequence[str]) -> list[str]:
    """The label lines, stripped, if every one is a usable YOLO label; SkipSample naming the first that is not.

    Plain floats, not NumPy: a line holds a handful of numbers, and an array per line cost more than the
    check itself (a sixth of a Roboflow export's conversion on a RAM disk; now a twelfth)."""
    rule = tasks.get(task).label_lines  # what a line of this task may hold (its module in yolo_tools/tasks/)
    if isinstance(lines, TracedLines) and rule.polygons:  # traced by the workbench: only a class id can be wrong
        for line in lines:
            if not 0 <= int(line.split(" ", 1)[0]) < len(classes):
                raise SkipSample(f"traced label line ({line[:40]!r}...): class is not one of the {len(classes)} classes")
        return list(lines)
    checked = []
    for number, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            class_id, coords = int(tokens[0]), [float(token) for token in tokens[1:]]
        except ValueError:
            raise SkipSample(f"{_where(number, line)}: not a class number and coordinates") from None
        if not 0 <= class_id < len(classes):
            raise SkipSample(f"{_where(number, line)}: class {class_id} is not one of the {len(classes)} classes")
        is_box = len(coords) == 4
        if not rule.fits(len(coords)):
            raise SkipSample(f"{_where(number, line)}: {len(coords)} coordinates; a {task} label has {rule.wanted}")
        if not all(map(math.isfinite, coords)):
            raise SkipSample(f"{_where(number, line)}: coordinates are not finite numbers (NaN or inf)")
        if min(coords) < -TOLERANCE or max(coords) > 1 + TOLERANCE:
            raise SkipSample(f"{_where(number, line)}: coordinates outside the image (normalised 0..1)")
        if is_box:
            width, height = coords[2], coords[3]
        else:
            xs, ys = coords[0::2], coords[1::2]
            width, height = max(xs) - min(xs), max(ys) - min(ys)
        if width <= 0 or height <= 0:
            raise SkipSample(f"{_where(number, line)}: zero-size {'box' if is_box else 'polygon'} (width {width:g}, height {height:g})")
        checked.append(line.strip())
    return checked


def _where(number: int, line: str) -> str:
    """How a skip names the line: built only for a bad line (built for every line, it was an eighth of the check)."""
    return f"label line {number} ({line.strip()[:60]!r})"


def _copied_as_stored(path: Path, found: images.Checked, preprocess: Preprocess) -> bool:
    """True when the file's own bytes are what the model should see, so it is copied rather than re-encoded."""
    if isinstance(preprocess.intensity, (Percentile, MinMax)):
        return False
    return path.suffix.lower() in EIGHT_BIT_SUFFIXES or found.eight_bit


def _write_image(sample: Sample, place: Callable[[str], Path], preprocess: Preprocess) -> Path:
    """The sample's image at `place(suffix)`: a copy of its checked file, or its pixels encoded as PNG.

    Nothing is written when the sample is skipped (SkipSample), so no file of a skipped sample is left behind.
    """
    if isinstance(sample.image, Path):
        found = images.load(sample.image)
        if _copied_as_stored(sample.image, found, preprocess):
            target = place(sample.image.suffix.lower())
            target.write_bytes(found.data)  # the bytes that were checked, read once
            return target
        pixels = map_pixels(images.decode(sample.image), preprocess.intensity)
    else:
        pixels = sample.image()
        if pixels.dtype != np.uint8:
            raise SkipSample(f"converter produced {pixels.dtype} pixels; map intensities to uint8 first")
        pixels = pixels if pixels.ndim == 2 else np.ascontiguousarray(pixels[..., ::-1])  # RGB in, BGR to OpenCV
    target = place(".png")
    if not cv2.imwrite(str(target), pixels):
        target.unlink(missing_ok=True)
        raise SkipSample("could not encode the image as PNG")
    return target


def _stage(sample: Sample, split: str, layout: Dataset, recipe: Recipe) -> _Kept:
    """Check the sample's labels and write its image (and published masks) into the folders of `split`;
    SkipSample on any problem, before anything of the sample is written."""
    if tasks.get(recipe.task).label_lines is None:  # no label lines: the class is the image's folder (classify)
        if sample.category not in recipe.classes:
            raise SkipSample(f"class '{sample.category}' is not in the recipe's classes {recipe.classes}")
        lines: list[str] = []
    else:
        lines = check_lines(sample.labels() if sample.labels else [], recipe.task, recipe.classes)
    truth = None
    if sample.masks is not None and len(recipe.classes) <= mask_png.MAX_CLASSES:
        truth = sample.masks()  # read now: a mask that cannot be read skips the sample whole
    place = lambda suffix: layout.image_path(split, f"{sample.name}{suffix}", sample.category)
    image = _write_image(sample, place, recipe.preprocess)
    masks = None
    if truth is not None:
        layout.masks(split).mkdir(parents=True, exist_ok=True)
        masks = layout.mask_file(split, image.stem)
        mask_png.save(truth, masks)
    return _Kept(sample, image, lines, split, masks)


def _move(item: _Kept, layout: Dataset, split: str) -> _Kept:
    """An image (and its masks) written into the split it was expected to get, moved into `split`."""
    image = layout.image_path(split, f"{item.sample.name}{item.image.suffix}", item.sample.category)
    item.image.rename(image)
    masks = None
    if item.masks is not None:
        layout.masks(split).mkdir(parents=True, exist_ok=True)
        masks = layout.mask_file(split, image.stem)
        item.masks.rename(masks)
    return _Kept(item.sample, image, item.lines, split, masks)


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
            by = recipe.setting("data.split.by")
            raise UserError(
                f"{recipe.path}: {by} is 'source' but the source gives no train/val split for "
                f"{len(missing)} files (first: {missing[0]}); set {by} to a patient rule"
            )
        return [s.split for s in samples], groups
    if all(s.drawn for s in samples):  # drawn by the converter (tiles): a new draw could move training tiles to val
        return [str(s.drawn) for s in samples], groups
    if len(set(groups)) < 2:
        # A reader may name the patients itself (a DICOM series' PatientID, a volume), with or without the rule.
        by = recipe.setting("data.split.by")
        how = f"as the {recipe.data.converter} reader found them; {by} is" if all(s.group for s in samples) else by
        raise UserError(
            f"{recipe.path}: the {len(samples)} usable samples belong to one patient or study ({how} {rule.by!r}); "
            "a train/val split needs at least two. Add data, fix the skipped files, or change the rule"
        )
    return held_out(groups, [s.split == TEST for s in samples], rule.val, rule.test, rule.seed), groups


def _patient_wise(samples: Sequence[Sample], keys: Sequence[str], splits: Sequence[str], recipe: Recipe, source: str) -> bool | None:
    """Whether no patient has images on two sides (the card's `patient_wise`); None when nothing says which
    patient an image is of. A published split kept as it is (`by: source`) is warned about unless the
    converter knows every image's patient and none crosses: numbers on its val split may not hold on unseen
    patients. A patient of a published test split kept beside a patient-wise train/val draw is warned about too."""
    if set(splits) == {TEST}:
        return None  # a held-out set only (`evaluate --data`): nothing is trained on it
    published = recipe.data.split.by == "source"
    by = recipe.setting("data.split.by") if published else ""  # for the warnings about a published split only
    fix = (f"so val numbers may not hold on unseen patients; for a patient-wise split give {by} a "
           "patient rule (a regex over file names whose first group is the patient, or a named rule such as acquisition_session)")
    if published and not all(s.group for s in samples):
        LOG.warning("%s: the published split is kept (%s: source) and nothing says which patient each "
                    "image is of: one patient's images may be in train and in val, %s", source, by, fix)
        return None
    crossing = patients_in_several_splits(keys, splits)
    on_test = sorted(set(crossing) & {key for key, split in zip(keys, splits) if split == TEST})
    if on_test:
        LOG.warning("%d patients have images in the published test split and in train/val: %s", len(on_test), on_test[:5])
    if published and crossing:
        LOG.warning("%s: %d patients have images in more than one split of the published split (%s: "
                    "source), e.g. %s; %s", source, len(crossing), by, crossing[:3], fix)
    return not crossing


def _check_splits(splits: Sequence[str], kept: int, skipped: int, source: str, recipe: Recipe) -> None:
    if set(splits) == {TEST}:
        return  # a held-out set only (`evaluate --data`): nothing is trained on it
    empty = [split for split in splits_of(recipe) if split not in splits]
    if empty:
        raise UserError(
            f"{source}: after skipping {skipped} unusable samples, the {' and '.join(empty)} split would be empty "
            f"({kept} samples kept). Nothing was written. Fix or replace the skipped files (listed above), add "
            f"data, or change {recipe.setting('data.split.by')} ({recipe.data.split.by!r}) or "
            f"{recipe.setting('data.split.val')} ({recipe.data.split.val})"
        )


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
        MARKER: WRITER,
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


PATIENT_WISE_WORDS = {True: "yes, no patient has images in two splits", False: "no, some patients have images in two splits",
                      None: "not known (the published split, and nothing says which patient an image is of)"}


def _card_markdown(card: dict) -> str:
    columns = sorted({k for split in card["counts"].values() for k in split})
    lines = [
        f"# Dataset card: {card['recipe']} ({card['task']})",
        "",
        f"- source: `{card['source']}`" + (f" ({card['url']})" if card["url"] else ""),
        f"- converter: `{card['converter']}`, split: {card['split']}",
        f"- patients/studies per split: {card['groups']}",
        f"- patient-wise: {PATIENT_WISE_WORDS[card.get('patient_wise')]}",
        "",
        "| split | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for split, row in card["counts"].items():
        lines.append(f"| {split} | " + " | ".join(str(row.get(c, 0)) for c in columns) + " |")
    if card.get("corrections"):
        fixed = card["corrections"]
        lines += [
            "",
            f"Label corrections applied ({len(fixed['files'])} file(s) in corrections/{card['recipe']}/: "
            f"{', '.join(entry['file'] for entry in fixed['files'])}): {fixed['changed']} labels changed, "
            f"{fixed['added']} added, {fixed['removed']} removed, on {fixed['images']} images; the published labels are unchanged",
        ]
    lines += ["", f"Skipped: {len(card['skipped'])}"] + [f"- {line}" for line in card["skipped"]]
    if card.get("duplicates"):
        lines += ["", f"Byte-identical copies, kept (scored as published): {len(card['duplicates'])} groups"]
        lines += [f"- {' = '.join(group['files'])}" + (f" (classes {', '.join(group['classes'])})" if group["conflict"] else "")
                  for group in card["duplicates"]]
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


def _expected_splits(samples: Sequence[Sample], recipe: Recipe) -> tuple[list[str], list[str]] | UserError:
    """`assign_splits` over every sample: the split each gets when none is skipped, drawn before any file is
    read so that each image is written once, into its split. When the draw fails (it may not once the
    unusable samples are left out), the error, raised only if no sample is skipped."""
    try:
        return assign_splits(samples, recipe)
    except UserError as error:
        return error


def _stage_all(
    samples: Sequence[Sample], expected: Sequence[str], layout: Dataset, recipe: Recipe
) -> tuple[list[_Kept], list[str]]:
    """Every sample checked and its image written into its expected split; the skipped ones as 'source: reason'
    lines, both in the samples' order.

    Staged on a few threads where images are encoded: PNG encoding, HDF5 reads and OpenCV's tracing let go
    of Python's lock, so such a conversion uses the cores it has (`_batches`: a volume's slices stay on one
    thread, which keeps that volume loaded); sets only copied stay on one (`_mostly_copies`). Samples that
    share a name are staged after the rest, one at a time in order: the first usable one is written, the
    others skipped naming it.
    """
    outcomes: list[_Kept | str | None] = [None] * len(samples)
    names = Counter(sample.name for sample in samples)

    def stage(indices: list[int]) -> list[_Kept | str]:
        done: list[_Kept | str] = []
        for index in indices:
            sample = samples[index]
            try:
                done.append(_stage(sample, expected[index], layout, recipe))
            except SkipSample as reason:
                done.append(f"{sample.source or sample.name}: {reason}")
        return done

    batches = _batches(samples, [i for i, sample in enumerate(samples) if names[sample.name] == 1])
    progress = tqdm(total=len(samples), desc=f"convert {recipe.name}", unit="img")
    # One thread is this one: a pool of one would hand every batch to another thread and back for nothing
    # (about 3 % of kidney's copy-only conversion, measured in-process).
    pool = None if _mostly_copies(samples, recipe) or THREADS == 1 else ThreadPoolExecutor(max_workers=THREADS)
    try:
        for indices, done in zip(batches, pool.map(stage, batches) if pool else map(stage, batches)):
            for index, outcome in zip(indices, done):
                outcomes[index] = outcome
            progress.update(len(indices))
        first_of: dict[str, str] = {}
        for index in (i for i, sample in enumerate(samples) if names[sample.name] > 1):
            sample = samples[index]
            if sample.name in first_of:
                outcomes[index] = f"{sample.source or sample.name}: a second image named '{sample.name}' (the first: {first_of[sample.name]})"
            else:
                outcomes[index] = stage([index])[0]
                if isinstance(outcomes[index], _Kept):
                    first_of[sample.name] = sample.source or sample.name
            progress.update(1)
    finally:  # on an error, no thread is left writing into the folder the caller removes
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
        progress.close()
    return [o for o in outcomes if isinstance(o, _Kept)], [o for o in outcomes if isinstance(o, str)]


def _mostly_copies(samples: Sequence[Sample], recipe: Recipe) -> bool:
    """True when most images are files copied as stored (nothing encoded): such a conversion is many small
    reads and writes with Python between them, which threads only slow down (kidney 0.34 s on one thread,
    0.42 s on two; pneumonia 2.2 s and 3.1 s), while encoding and tracing gain (heart-seg 2.6 s and 1.75 s,
    cardiac 1.85 s and 1.39 s; `benchmarks/convert.py`, the first two at commit 6437530, which threaded every set). Most, not all: a converter may hand over a few
    placeholders that only skip (pneumonia's dropped duplicates)."""
    if isinstance(recipe.preprocess.intensity, (Percentile, MinMax)):
        return False
    copies = sum(isinstance(s.image, Path) and s.image.suffix.lower() in EIGHT_BIT_SUFFIXES and s.masks is None for s in samples)
    return copies * 2 > len(samples)


def _batches(samples: Sequence[Sample], indices: list[int], size: int = 16) -> list[list[int]]:
    """`indices` cut into runs for one thread each: a volume's slices together, other samples `size` at a time."""
    batches: list[list[int]] = []
    previous: object = None
    for index in indices:
        slice_of = samples[index].slice_of
        key = slice_of[0] if slice_of is not None else None
        if not batches or key != previous or (key is None and len(batches[-1]) >= size):
            batches.append([])
        batches[-1].append(index)
        previous = key
    return batches


def write_dataset(
    samples: Sequence[Sample],
    dst: Path,
    recipe: Recipe,
    source: str,
    metadata: pd.DataFrame | None = None,
    protect: Sequence[Path] = (),
    data_root: Path | None = None,
    notes: dict | None = None,
) -> dict:
    """Write samples as a YOLO dataset at `dst`, replacing an older dataset only once the new one is whole.

    `protect` are the source folders, which `dst` must not be, contain or lie in; `data_root`, where raw
    sets live, must not hold `dst` either (`convert.destination.check`). `metadata`, the recipe's
    per-patient table (`convert.metadata.read`), is joined into `metadata.csv`. `notes` go onto the card
    as they are (an outside set's byte-identical copies, kept: `duplicates`).
    """
    destination.check(dst, protect, data_root)
    if not samples:
        raise UserError(f"{source}: the converter found no images")
    for stale in destination.clean_stale(dst.parent):
        LOG.info("removed %s, left by a conversion that was stopped", stale)
    left_out = getattr(samples, "left_out", {})
    partial = destination.partial_folder(dst)
    try:
        layout = Dataset(partial, recipe.task)  # the names of every file below (yolo_tools/dataset.py)
        layout.make_folders(splits_of(recipe), recipe.classes)
        expected = _expected_splits(samples, recipe)
        guess = [SPLITS[0]] * len(samples) if isinstance(expected, UserError) else expected[0]  # moved after the draw
        kept, skipped = _stage_all(samples, guess, layout, recipe)
        for line in skipped:
            LOG.warning("skipped %s", line)
        for reason, count in left_out.items():
            LOG.warning("left out %d: %s", count, reason)
        if not kept:
            raise UserError(
                f"{source}: every one of the {len(samples)} samples was skipped (reasons above); nothing was "
                "written. Check that the recipe's converter and options match how this set is published"
            )
        if skipped:  # drawn again over the samples kept, so that a skipped file never empties a split
            splits, keys = assign_splits([k.sample for k in kept], recipe)
        elif isinstance(expected, UserError):
            raise expected
        else:
            splits, keys = expected
        _check_splits(splits, len(kept), len(skipped), source, recipe)

        counts: Counter = Counter()
        written: list[tuple[str, str, str]] = []
        class_folders = layout.class_folders  # asked once, not once per image
        slices: list[tuple] = []
        spacings: list[tuple] = []
        for item, split, key in zip(kept, splits, keys):
            if item.split != split:
                item = _move(item, layout, split)
            target = item.image
            if class_folders:
                counts[(split, item.sample.category)] += 1
            else:
                label_file = layout.label_file(split, item.sample.name)
                label_file.write_text("".join(f"{line}\n" for line in item.lines))
                counts[(split, "images")] += 1
                counts[(split, "backgrounds")] += not item.lines
                for line in item.lines:
                    counts[(split, recipe.classes[int(line.split(None, 1)[0])])] += 1  # the class only: polygon lines are long
            written.append((target.name, split, str(key)))
            if item.sample.spacing is not None:
                spacings.append((target.name, *item.sample.spacing))
            if item.sample.slice_of is not None:
                volume, index = item.sample.slice_of
                slices.append((target.name, split, key, volume, int(index)))

        groups = {split: len({k for k, s in zip(keys, splits) if s == split}) for split in splits_of(recipe)}
        card = _card(recipe, source, counts, groups, skipped, left_out)
        card["patient_wise"] = _patient_wise([k.sample for k in kept], keys, splits, recipe, source)
        card.update(notes or {})
        if getattr(samples, "corrections", None):  # label corrections applied (convert/corrections.py)
            card["corrections"] = samples.corrections
        if slices:
            with (partial / SLICES_CSV).open("w", newline="") as handle:
                csv.writer(handle).writerows([SLICES_COLUMNS, *slices])
        if spacings:
            with (partial / SPACING_CSV).open("w", newline="") as handle:
                csv.writer(handle).writerows([("image", "row_mm", "col_mm"), *spacings])
        with (partial / PATIENTS_CSV).open("w", newline="") as handle:
            csv.writer(handle).writerows([("image", "split", "patient"), *written])
        if getattr(samples, "volumes", None):
            (partial / VOLUMES_JSON).write_text(json.dumps(samples.volumes, indent=1))
        if metadata is not None:
            card["metadata"] = patient_metadata.write(metadata, written, partial / patient_metadata.METADATA_CSV)
        layout.write_data_yaml(splits_of(recipe), recipe.classes)  # `test` for `yolo val split=test`; training reads train, val
        (partial / CARD).write_text(json.dumps(card, indent=2))
        (partial / CARD_MD).write_text(_card_markdown(card))
        destination.swap_in(partial, dst)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return card
