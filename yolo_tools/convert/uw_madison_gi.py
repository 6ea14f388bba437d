"""Read (and write) the UW-Madison GI tract competition layout: run-length masks in a CSV beside 16-bit scans.

The published layout (Kaggle, "UW-Madison GI Tract Image Segmentation"):

    train.csv                                   id,class,segmentation (one row per slice and organ)
    train/case123/case123_day20/scans/slice_0001_266_266_1.50_1.50.png

`id` is `case123_day20_slice_0001`; `segmentation` is run-length `start length` pairs, 1-based and
row-major over the H x W slice (empty = the organ is absent); the slice's width and height (in that
order) and pixel spacing are only in the scan's file name. Scans are 16-bit greyscale PNG.

What this reader does with it:
- every organ is traced on its own mask (`polygons.mask_to_polygons`), one YOLO-seg instance per region,
  so organs that overlap (stomach over bowel) keep their full outlines;
- 16-bit scans become 8-bit through the recipe's `preprocess.intensity` (percentiles suit MRI) instead of
  Ultralytics' truncation; with `preprocess.context: 1` the slices `context_stride` below and above in
  the same case-day are the other two channels (2.5D);
- rows whose scan is not in this copy (the set is large; a partial copy is normal) are left out with one
  count on the dataset card, not one error per slice; a scan with no rows is left out the same way;
- a class not in the recipe is an error naming the CSV line; a malformed run-length string or an
  unreadable scan skips that slice, named with the reason.

Options: `csv` (default `train.csv`), `scans` (default `train`), `min_area` (pixels; smaller regions are
dropped as specks, default 8), `empty` (`keep` slices where no organ is present, as the competition
scores them, or `drop` them; default `keep`).

Patients: a case has several days (scans on different dates); split by case, e.g.
`split: {by: '^(case\\d+)_'}`.

Examples:
    >>> from yolo_tools.recipe import load_recipe
    >>> found = samples(Path("../shared/data/gi-tract-mri-uwmadison"), load_recipe("recipes/gi.yaml"))
    >>> found.left_out            # {'rows in train.csv whose scan is not under train/ ...': 38494}
    >>> write(Path("fixture"), [GISlice("case1_day2_slice_0001", scan, {"stomach": mask})])
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd
from pydantic import Field

from yolo_tools.codecs.polygons import traced_lines
from yolo_tools.codecs.rle import RLEError, RunTable, encode
from yolo_tools.convert import images as image_files
from yolo_tools.convert.context import channel_indices, to_channels
from yolo_tools.convert.options import ConverterOptions, parse
from yolo_tools.convert.writer import Sample, SampleList, SkipSample
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe

LOG = logging.getLogger(__name__)

COLUMNS = ["id", "class", "segmentation"]
SCAN_NAME = re.compile(r"^slice_(\d+)_(\d+)_(\d+)_(\d+(?:\.\d+)?)_(\d+(?:\.\d+)?)\.png$")
DAY_FOLDER = re.compile(r"^(case\d+)_(day\d+)$")


class Options(ConverterOptions):
    csv: str = Field("train.csv", description="the run-length table, relative to the source")
    scans: str = Field("train", description="the folder of caseN/caseN_dayD/scans/ folders")
    min_area: int = Field(8, ge=0, description="regions under this many pixels are dropped as specks")
    empty: Literal["keep", "drop"] = Field("keep", description="slices where no organ is present")


@dataclass(frozen=True)
class Scan:
    """A scan file and what its path says: `case123_day20`, slice number, width, height."""

    path: Path
    day: str
    number: int
    width: int
    height: int
    spacing: tuple[float, float] | None = None  # mm per pixel (rows, columns), from the file name

    @property
    def id(self) -> str:
        return f"{self.day}_slice_{self.number:04d}"


def find_scans(folder: Path) -> dict[str, Scan]:
    """Every `caseN/caseN_dayD/scans/slice_NNNN_W_H_pw_ph.png` under `folder`, by competition id."""
    scans = {}
    for path in sorted(folder.glob("case*/case*_day*/scans/slice_*.png")):
        match = SCAN_NAME.match(path.name)
        day = path.parent.parent.name
        if not match or not DAY_FOLDER.match(day) or path.parent.parent.parent.name != day.split("_")[0]:
            LOG.warning("ignored %s: not named caseN/caseN_dayD/scans/slice_NNNN_W_H_pw_ph.png", path)
            continue
        # The name's spacing pair is (horizontal, vertical) as the competition writes it; stored as (row, column).
        spacing = (float(match.group(5)), float(match.group(4)))
        scan = Scan(path, day, int(match.group(1)), int(match.group(2)), int(match.group(3)), spacing)
        scans[scan.id] = scan
    return scans


def read_table(csv_path: Path, classes: list[str]) -> pd.DataFrame:
    """train.csv with its columns checked and every class known; `line` is each row's line in the file."""
    if not csv_path.is_file():
        raise UserError(f"{csv_path}: no such file; the competition layout has train.csv beside train/")
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{csv_path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the CSV as UTF-8") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{csv_path}: not a readable CSV: {exc}") from None
    if list(table.columns) != COLUMNS:
        raise UserError(f"{csv_path}: columns are {list(table.columns)}; the competition layout has {COLUMNS}")
    table["line"] = np.arange(len(table)) + 2
    unknown = ~table["class"].isin(classes)
    if unknown.any():
        row = table[unknown].iloc[0]
        raise UserError(
            f"{csv_path} line {row.line} ({row.id}): class '{row['class']}' is not in the recipe's classes "
            f"{classes} ({int(unknown.sum())} rows with unknown classes)"
        )
    duplicated = table.duplicated(["id", "class"])
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise UserError(f"{csv_path} line {row.line}: a second row for {row.id} / {row['class']}")
    return table


def _parse_runs(rows: pd.DataFrame, csv_name: str) -> tuple[RunTable | None, dict[str, str]]:
    """All rows' runs checked at once; if any is malformed, find every bad id (slow path, errors only)."""
    labels = csv_name + " line " + rows["line"].astype(str) + " (" + rows["id"] + ", " + rows["class"] + ")"
    sizes = rows["size"].to_numpy()
    try:
        return RunTable.parse(rows["segmentation"].tolist(), sizes=sizes, labels=labels.tolist()), {}
    except RLEError:
        bad: dict[str, str] = {}
        for text, size, label, slice_id in zip(rows["segmentation"], sizes, labels, rows["id"]):
            try:
                RunTable.parse([text], sizes=size, labels=[label])
            except RLEError as exc:
                bad.setdefault(slice_id, str(exc))
        return None, bad


def samples(src: Path, recipe: Recipe) -> SampleList:
    """One Sample per scan that has rows in the CSV; labels are per-organ polygons decoded from the runs."""
    options = parse(Options, recipe)
    csv_path = src / options.csv
    scan_dir = src / options.scans
    min_area = options.min_area
    keep_empty = options.empty == "keep"

    table = read_table(csv_path, recipe.classes)
    scans = find_scans(scan_dir)
    has_scan = table["id"].isin(scans.keys())
    ids_without_scan = table.loc[~has_scan, "id"].nunique()
    scans_without_rows = sorted(set(scans) - set(table["id"]))
    rows = table[has_scan].copy()
    rows["size"] = [scans[i].width * scans[i].height for i in rows["id"]]
    runs, bad = _parse_runs(rows, csv_path.name)
    if bad:
        rows = rows[~rows["id"].isin(bad)]
        runs, _ = _parse_runs(rows, csv_path.name)
    if runs is None:  # the rows failed together but each passed alone: cannot happen, but never decode blind
        raise UserError(f"{csv_path}: run-length strings could not be checked; please report this file")
    areas = runs.areas()
    by_id: dict[str, list[tuple[int, int]]] = {}
    for position, (slice_id, name) in enumerate(zip(rows["id"], rows["class"])):
        by_id.setdefault(slice_id, []).append((position, recipe.classes.index(name)))
    empty_ids = {i for i, entries in by_id.items() if not any(areas[p] for p, _ in entries)}

    preprocess = recipe.preprocess
    stride = preprocess.context_stride

    @lru_cache(maxsize=8)
    def read(slice_id: str) -> np.ndarray:
        scan = scans[slice_id]
        try:
            pixels = image_files.decode(scan.path)
        except SkipSample as reason:
            raise SkipSample(f"scan {scan.path.name}: {reason}") from None
        if pixels.ndim == 3:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
        if pixels.shape != (scan.height, scan.width):
            raise SkipSample(
                f"scan {scan.path.name} is {pixels.shape[1]}x{pixels.shape[0]} pixels but its name says "
                f"{scan.width}x{scan.height}"
            )
        return pixels

    def image(slice_id: str) -> np.ndarray:
        scan = scans[slice_id]

        def available(number: int) -> bool:
            other = scans.get(f"{scan.day}_slice_{number:04d}")
            return other is not None and (other.width, other.height) == (scan.width, scan.height)

        numbers = channel_indices(scan.number, available, preprocess.context, stride)
        centre = read(slice_id)
        stack = []
        for number in numbers:
            neighbour = f"{scan.day}_slice_{number:04d}"
            try:
                stack.append(centre if neighbour == slice_id else read(neighbour))
            except SkipSample:
                stack.append(centre)  # an unreadable neighbour: the slice stands in for it
        return to_channels(stack, preprocess)

    def truth(slice_id: str) -> np.ndarray:
        scan = scans[slice_id]
        masks = np.zeros((len(recipe.classes), scan.height, scan.width), bool)
        for position, class_id in by_id[slice_id]:
            masks[class_id] |= runs.mask(position, (scan.height, scan.width)) > 0
        return masks

    def labels(slice_id: str) -> list[str]:
        scan = scans[slice_id]
        organs = sorted(by_id[slice_id], key=lambda entry: entry[1])
        return traced_lines(((class_id, runs.mask(position, (scan.height, scan.width))) for position, class_id in organs), min_area)

    found = SampleList(
        left_out={
            f"ids in {csv_path.name} whose scan is not under {scan_dir.name}/ (this copy of the set lacks them)": (
                ids_without_scan
            ),
            f"scans under {scan_dir.name}/ with no rows in {csv_path.name}": len(scans_without_rows),
            "slices with no organ (options.empty: drop)": 0 if keep_empty else len(empty_ids),
        }
    )
    for slice_id, scan in sorted(scans.items(), key=lambda item: (item[1].day, item[1].number)):
        if slice_id in bad:
            found.append(_broken(slice_id, scan, bad[slice_id]))
            continue
        if slice_id not in by_id or (not keep_empty and slice_id in empty_ids):
            continue
        found.append(
            Sample(
                name=slice_id,
                image=lambda i=slice_id: image(i),
                labels=lambda i=slice_id: labels(i),
                source=str(scan.path),
                slice_of=(scan.day, scan.number),
                masks=lambda i=slice_id: truth(i),
                spacing=scan.spacing,
            )
        )
    if not found and not has_scan.any():
        raise UserError(
            f"{src}: none of the {table['id'].nunique()} ids in {csv_path.name} has a scan under {scan_dir}/ "
            "(caseN/caseN_dayD/scans/slice_NNNN_W_H_pw_ph.png); download the competition's scans"
        )
    return found


def _broken(slice_id: str, scan: Scan, reason: str) -> Sample:
    def fail():
        raise SkipSample(reason)

    return Sample(name=slice_id, image=fail, labels=fail, source=str(scan.path), slice_of=(scan.day, scan.number))


# --- writing the same layout (fixtures, round trips, exporting predictions in the competition's format) ---


@dataclass
class GISlice:
    """One slice to write: competition id, 16-bit (or 8-bit) scan, a 0/1 mask per organ present."""

    id: str
    scan: np.ndarray
    masks: Mapping[str, np.ndarray] = field(default_factory=dict)
    spacing: tuple[float, float] = (1.5, 1.5)


def scan_path(root: Path, slice_id: str, width: int, height: int, spacing: tuple[float, float] = (1.5, 1.5)) -> Path:
    """Where the competition keeps the scan of `caseN_dayD_slice_NNNN`."""
    match = re.match(r"^(case\d+)_(day\d+)_slice_(\d+)$", slice_id)
    if not match:
        raise ValueError(f"{slice_id}: not a competition id (caseN_dayD_slice_NNNN)")
    case, day, number = match.groups()
    name = f"slice_{int(number):04d}_{width}_{height}_{spacing[0]:.2f}_{spacing[1]:.2f}.png"
    return root / "train" / case / f"{case}_{day}" / "scans" / name


def write(
    root: Path, slices: Iterable[GISlice], classes: Iterable[str] = ("large_bowel", "small_bowel", "stomach")
) -> Path:
    """Write slices in the competition layout under `root`: train.csv and train/.../scans/*.png.

    Every slice gets one row per class (empty segmentation where the organ is absent), in class order,
    as the competition's train.csv has them. Returns the CSV's path.
    """
    classes = list(classes)
    rows = []
    for item in slices:
        height, width = item.scan.shape[:2]
        unknown = set(item.masks) - set(classes)
        if unknown:
            raise ValueError(f"{item.id}: masks for unknown classes {sorted(unknown)}; classes are {classes}")
        path = scan_path(root, item.id, width, height, item.spacing)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), item.scan):
            raise OSError(f"{path}: could not write the scan")
        for name in classes:
            mask = item.masks.get(name)
            if mask is not None and mask.shape[:2] != (height, width):
                raise ValueError(f"{item.id}: {name} mask is {mask.shape[:2]}, the scan {(height, width)}")
            rows.append((item.id, name, "" if mask is None else encode(mask)))
    csv_path = root / "train.csv"
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(csv_path, index=False)
    return csv_path
