"""Read boxes published as one CSV row per box, in pixels (RSNA style), next to a folder of images.

Columns: `label, x0, y0, w, h, name` and optionally `img_shape_x, img_shape_y` (the width and height the
boxes are measured in; the decoded image's own size otherwise); any further column (`nodule`, ...) is
ignored. `name` is the image's file stem under `options.images`. Several rows of one name are several
boxes on that image.

Every problem skips the image and names the file and the reason in the dataset card: a box outside the
image or with no area, a label that is not one of the recipe's classes, an image without a row, a row
without an image, an image that cannot be decoded.

Options (recipe `data.options`): `csv` (default: the one `*.csv` in the source folder), `images` (folder,
default `images`).

Examples:
    >>> from yolo_tools.recipe import load_recipe
    >>> samples(Path("../shared/data/heart-cxr-jsrt"), load_recipe("recipes/heart.yaml"))
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

from pydantic import Field

from yolo_tools.convert import images as image_files
from yolo_tools.convert.options import ConverterOptions, parse
from yolo_tools.convert.writer import Sample, SkipSample
from yolo_tools.imaging import IMAGE_SUFFIXES
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe

REQUIRED = ("label", "x0", "y0", "w", "h", "name")
Row = tuple[int, dict[str, str]]  # (line number in the CSV, the row)


class Options(ConverterOptions):
    csv: str | None = Field(None, description="the CSV of boxes (default: the one *.csv in the source folder)")
    images: str = Field("images", description="the folder of images, relative to the source")


def csv_path_of(src: Path, options: dict) -> Path:
    if options.get("csv"):
        return src / str(options["csv"])
    tables = sorted(src.glob("*.csv"))
    if len(tables) != 1:
        raise UserError(f"{src}: {len(tables)} CSV files here; say which holds the boxes with data.options.csv")
    return tables[0]


def read_rows(csv_path: Path) -> dict[str, list[Row]]:
    """The CSV's rows grouped by image name, each with its line number for messages."""
    if not csv_path.is_file():
        raise UserError(f"{csv_path}: box table not found (set data.options.csv)")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                expected = ", ".join(REQUIRED) + "[, img_shape_x, img_shape_y]"
                raise UserError(f"{csv_path}: missing columns {missing}; expected {expected}")
            rows: dict[str, list[Row]] = defaultdict(list)
            for line, row in enumerate(reader, start=2):
                if None in row or None in row.values():
                    raise UserError(f"{csv_path} line {line}: {len(reader.fieldnames)} columns expected; fix the row")
                rows[row["name"].strip()].append((line, row))
    except UnicodeDecodeError as exc:
        raise UserError(f"{csv_path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the CSV as UTF-8") from None
    except csv.Error as exc:
        raise UserError(f"{csv_path}: not a readable CSV: {exc}") from None
    return rows


def _box_line(row: dict[str, str], line: int, size: tuple[int, int], classes: list[str], table: str) -> str:
    label = row["label"].strip()
    if label not in classes:
        raise SkipSample(f"{table} line {line}: class '{label}' is not in the recipe's classes {classes}")
    try:
        x0, y0, w, h = (float(row[c]) for c in ("x0", "y0", "w", "h"))
    except (TypeError, ValueError):
        values = [row[c] for c in ("x0", "y0", "w", "h")]
        raise SkipSample(f"{table} line {line}: box is not numbers: {values}") from None
    if not all(math.isfinite(v) for v in (x0, y0, w, h)):
        raise SkipSample(f"{table} line {line}: box is not finite numbers: x0={x0} y0={y0} w={w} h={h}")
    width, height = size
    if w <= 0 or h <= 0 or x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
        raise SkipSample(
            f"{table} line {line}: box x0={x0:g} y0={y0:g} w={w:g} h={h:g} lies outside the {width}x{height} image"
        )
    cx, cy = (x0 + w / 2) / width, (y0 + h / 2) / height
    return f"{classes.index(label)} {cx:.6f} {cy:.6f} {w / width:.6f} {h / height:.6f}"


def _frame(rows: list[Row], image: Path, table: str) -> tuple[int, int]:
    """The width and height the boxes are measured in, after checking the image's header fits them."""
    found = image_files.load(image)
    actual = (found.width, found.height)
    line, first = rows[0]
    if not first.get("img_shape_x") or not first.get("img_shape_y"):
        return actual
    try:
        stated = (int(float(first["img_shape_x"])), int(float(first["img_shape_y"])))
    except (ValueError, OverflowError):
        raise SkipSample(f"{table} line {line}: img_shape_x/img_shape_y are not numbers") from None
    if min(stated) <= 0:
        raise SkipSample(f"{table} line {line}: img_shape_x/img_shape_y {stated} are not a size")
    if abs(stated[0] * actual[1] - stated[1] * actual[0]) > 0.01 * stated[0] * actual[1]:
        raise SkipSample(
            f"{table} line {line}: boxes are for a {stated[0]}x{stated[1]} image but it is {actual[0]}x{actual[1]}"
        )
    return stated


def _labels(name: str, rows: list[Row], image: Path, classes: list[str], table: str):
    def read() -> list[str]:
        if not rows:
            raise SkipSample(f"no row for '{name}' in {table}")
        if not image.is_file():
            raise SkipSample(f"{table} line {rows[0][0]}: image {image} not found")
        size = _frame(rows, image, table)
        return [_box_line(row, line, size, classes, table) for line, row in rows]

    return read


def samples(src: Path, recipe: Recipe) -> list[Sample]:
    """One Sample per image and per orphan row; the checks run when the writer asks for the labels."""
    options = parse(Options, recipe)
    csv_path = csv_path_of(src, options.model_dump())
    image_dir = src / options.images
    if not image_dir.is_dir():
        raise UserError(f"{image_dir}: image folder not found (set data.options.images)")
    rows = read_rows(csv_path)
    images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    found = []
    for name in sorted(set(images) | set(rows)):
        image = images.get(name, image_dir / f"{name}.png")
        source = str(image) if name in images else f"{csv_path} (name '{name}')"
        reader = _labels(name, rows.get(name, []), image, recipe.classes, csv_path.name)
        found.append(Sample(name=name, image=image, labels=reader, source=source))
    return found


def classes(src: Path, options: dict) -> list[str]:
    """The labels the CSV uses, in order of first appearance (for `yolo_tools convert box-csv SRC DST`)."""
    rows = read_rows(csv_path_of(src, options))
    seen: dict[str, None] = {}
    for entries in rows.values():
        for _, row in entries:
            seen.setdefault(row["label"].strip(), None)
    return list(seen)
