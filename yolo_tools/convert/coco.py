"""Read a COCO JSON annotation file (boxes, or polygons/RLE for segmentation) and its images.

The parsing is Ultralytics' own `convert_coco` (through `yolo_tools.engine`), run into a temporary folder
and read back at once; this module only maps COCO categories to the recipe's classes by name and checks
what came out. Before Ultralytics sees the file, every entry is checked: an image entry without id,
file_name, width and height, or an annotation naming an image id that is not listed, refuses the file
(with the entry named); an annotation whose box is not four finite numbers with a positive width and
height skips its image with the reason (Ultralytics would drop the box and leave a "background").
Images listed without annotations are backgrounds; an image with a category that is no recipe class, a
box outside the image, a missing or unusable image file is skipped with the reason. Crowd annotations
are left out by Ultralytics.

Options: `annotations` (the JSON file, default: the one `*.json` in the source folder), `images` (folder
the JSON's `file_name`s are relative to, default `images`).

Examples:
    >>> from yolo_tools.recipe import load_recipe
    >>> samples(Path("my-coco-set"), load_recipe("recipes/my-coco.yaml"))
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

from pydantic import Field

from yolo_tools import tasks
from yolo_tools.convert import images as image_files
from yolo_tools.convert.options import ConverterOptions, parse
from yolo_tools.convert.writer import Sample, SkipSample
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe

TOLERANCE = 1e-3  # normalised: a box may touch the border within rounding


class Options(ConverterOptions):
    annotations: str | None = Field(None, description="the COCO JSON file (default: the one *.json in the source)")
    images: str = Field("images", description="the folder the JSON's file_names are relative to")


def json_path_of(src: Path, options: dict) -> Path:
    if options.get("annotations"):
        path = src / str(options["annotations"])
        if not path.is_file():
            raise UserError(f"{path}: COCO annotation file not found")
        return path
    found = sorted(src.glob("*.json"))
    if len(found) != 1:
        raise UserError(f"{src}: {len(found)} JSON files here; name the COCO file with data.options.annotations")
    return found[0]


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the JSON as UTF-8") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not readable as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a COCO annotation file (a JSON object with images, annotations, categories)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise UserError(f"{path}: no '{key}' list; is this a COCO annotation file?")
    _check_entries(path, data)
    return data


def _check_entries(path: Path, data: dict) -> None:
    """Refuse entries Ultralytics' converter would crash on, naming the first and what to do."""
    required = {"images": ("id", "file_name", "width", "height"), "annotations": ("image_id", "category_id", "bbox"),
                "categories": ("id", "name")}
    for key, fields in required.items():
        for number, entry in enumerate(data[key]):
            missing = [f for f in fields if not isinstance(entry, dict) or f not in entry]
            if missing:
                raise UserError(f"{path}: {key}[{number}] lacks {missing}; every entry of '{key}' needs {list(fields)}")
    for key, fields in (("images", ("id", "width", "height")), ("annotations", ("category_id",)), ("categories", ("id",))):
        for number, entry in enumerate(data[key]):
            wrong = [f for f in fields if not (type(entry[f]) is int and (f.endswith("id") or entry[f] > 0))]
            if wrong:
                shown = {f: entry[f] for f in wrong}
                raise UserError(f"{path}: {key}[{number}] has {shown}; COCO ids are integers, width and height positive integers")
    image_ids = {entry["id"] for entry in data["images"]}
    stray = [a for a in data["annotations"] if a["image_id"] not in image_ids]
    if stray:
        first = stray[0]
        raise UserError(
            f"{path}: annotation {first.get('id', '?')} names image_id {first['image_id']!r}, which is not in "
            f"'images' ({len(stray)} such annotations); add the image entries or remove those annotations"
        )


def _box_problem(annotation: dict, image: dict, boxes_are_labels: bool) -> str | None:
    """Why an annotation's box is unusable (not numbers, no size, beyond its image when it is the label), or None."""
    box = annotation["bbox"]
    if not (isinstance(box, list) and len(box) == 4):
        return f"annotation {annotation.get('id', '?')}: bbox {box!r} is not [x, y, width, height]"
    try:
        x, y, width, height = (float(v) for v in box)
    except (TypeError, ValueError):
        return f"annotation {annotation.get('id', '?')}: bbox {box!r} is not numbers"
    if not all(math.isfinite(v) for v in (x, y, width, height)):
        return f"annotation {annotation.get('id', '?')}: bbox {box!r} is not finite numbers"
    if width <= 0 or height <= 0:
        return f"annotation {annotation.get('id', '?')}: bbox {box!r} has no positive width and height"
    size = (image["width"], image["height"])
    beyond = x < -1 or y < -1 or x + width > size[0] + 1 or y + height > size[1] + 1  # a pixel of rounding
    if boxes_are_labels and beyond:
        return f"annotation {annotation.get('id', '?')}: bbox {box!r} lies outside the {size[0]}x{size[1]} image"
    return None


def _reader(lines: list[str], image: Path, problem: str | None):
    def read() -> list[str]:
        if problem:
            raise SkipSample(problem)
        image_files.load(image)  # a missing or unusable file is skipped here; the writer verifies the rest
        return lines

    return read


def samples(src: Path, recipe: Recipe) -> list[Sample]:
    from yolo_tools import engine

    options = parse(Options, recipe)
    json_path = json_path_of(src, options.model_dump())
    image_dir = src / options.images
    data = _load(json_path)
    box_problems: dict = {}
    image_of = {entry["id"]: entry for entry in data["images"]}
    finds = tasks.get(recipe.task).labels  # boxes, or outlines with their masks
    for annotation in data["annotations"]:
        problem = _box_problem(annotation, image_of[annotation["image_id"]], finds == "boxes")
        if problem and not annotation.get("iscrowd"):
            box_problems.setdefault(annotation["image_id"], problem)
    names = {c["id"]: c["name"] for c in data["categories"]}
    # Ultralytics writes category_id - 1 as the class; map that to the recipe's index by category name.
    to_recipe = {cid - 1: recipe.classes.index(n) for cid, n in names.items() if n in recipe.classes}

    work = Path(tempfile.mkdtemp(prefix="yolo_tools_coco_"))
    try:
        usable = json_path
        if box_problems:  # Ultralytics gets only the images whose boxes it can read; the others are skipped below
            usable = work / json_path.name
            kept = [a for a in data["annotations"] if a["image_id"] not in box_problems]
            usable.write_text(json.dumps({**data, "annotations": kept}), encoding="utf-8")
        labels_dir = engine.convert_coco(usable, work / "out", use_segments=finds == "masks")
        raw = {
            p.relative_to(labels_dir).with_suffix("").as_posix(): p.read_text().splitlines()
            for p in labels_dir.rglob("*.txt")
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    found, seen = [], set()
    for entry in data["images"]:
        file_name = str(entry["file_name"])
        key = Path(file_name).with_suffix("").as_posix()
        lines, problem = [], box_problems.get(entry["id"])
        for line in [] if problem else raw.get(key, []):
            tokens = line.split()
            source_class = int(float(tokens[0]))
            if source_class not in to_recipe:
                category = names.get(source_class + 1, source_class + 1)
                problem = f"category '{category}' is not in the recipe's classes {recipe.classes}"
                break
            coords = [float(t) for t in tokens[1:]]
            if min(coords) < -TOLERANCE or max(coords) > 1 + TOLERANCE:
                problem = f"an annotation lies outside the {entry['width']}x{entry['height']} image"
                break
            lines.append(" ".join([str(to_recipe[source_class]), *tokens[1:]]))
        name = key.replace("/", "__")
        if name in seen:
            raise UserError(f"{json_path}: image '{file_name}' is listed twice")
        seen.add(name)
        image = image_dir / file_name
        found.append(Sample(name=name, image=image, labels=_reader(lines, image, problem), source=str(image)))
    return found


def classes(src: Path, options: dict) -> list[str]:
    """Category names ordered by id (for `yolo_tools convert coco SRC DST`), each once: categories are mapped
    to classes by name, so two categories of one name are one class (a second one would stay empty)."""
    data = _load(json_path_of(src, options))
    return list(dict.fromkeys(c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])))
