"""Read a COCO JSON annotation file (boxes, or polygons/RLE for segmentation) and its images.

The parsing is Ultralytics' own `convert_coco` (through `yolo_tools.yolo`), run into a temporary folder
and read back at once; this module only maps COCO categories to the recipe's classes by name and checks
what came out. Images listed without annotations are backgrounds; an image with a category that is no
recipe class, a box outside the image, a missing or undecodable image file is skipped with the reason.
Crowd annotations and boxes without area are left out by Ultralytics.

Options: `annotations` (the JSON file, default: the one `*.json` in the source folder), `images` (folder
the JSON's `file_name`s are relative to, default `images`).

Examples:
    >>> from yolo_tools.recipe import load_recipe
    >>> samples(Path("my-coco-set"), load_recipe("recipes/my-coco.yaml"))
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import cv2

from yolo_tools.convert.writer import Sample, SkipSample
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe

TOLERANCE = 1e-3  # normalised: a box may touch the border within rounding


def json_path_of(src: Path, options: dict) -> Path:
    if options.get("annotations"):
        path = src / options["annotations"]
        if not path.is_file():
            raise UserError(f"{path}: COCO annotation file not found")
        return path
    found = sorted(src.glob("*.json"))
    if len(found) != 1:
        raise UserError(f"{src}: {len(found)} JSON files here; name the COCO file with data.options.annotations")
    return found[0]


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not readable as JSON: {exc}") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise UserError(f"{path}: no '{key}' list; is this a COCO annotation file?")
    return data


def _reader(lines: list[str], image: Path, problem: str | None):
    def read() -> list[str]:
        if problem:
            raise SkipSample(problem)
        if not image.is_file():
            raise SkipSample(f"image {image} not found")
        if cv2.imread(str(image), cv2.IMREAD_UNCHANGED) is None:
            raise SkipSample("image cannot be decoded")
        return lines

    return read


def samples(src: Path, recipe: Recipe) -> list[Sample]:
    from yolo_tools import yolo

    options = recipe.data.options
    json_path = json_path_of(src, options)
    image_dir = src / options.get("images", "images")
    data = _load(json_path)
    names = {c["id"]: c["name"] for c in data["categories"]}
    # Ultralytics writes category_id - 1 as the class; map that to the recipe's index by category name.
    to_recipe = {cid - 1: recipe.classes.index(n) for cid, n in names.items() if n in recipe.classes}

    work = Path(tempfile.mkdtemp(prefix="yolo_tools_coco_"))
    try:
        labels_dir = yolo.convert_coco(json_path, work / "out", use_segments=recipe.task == "segment")
        raw = {
            p.relative_to(labels_dir).with_suffix("").as_posix(): p.read_text().splitlines()
            for p in labels_dir.rglob("*.txt")
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    found, seen = [], set()
    for entry in data["images"]:
        file_name = entry["file_name"]
        key = Path(file_name).with_suffix("").as_posix()
        lines, problem = [], None
        for line in raw.get(key, []):
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
    """Category names ordered by id (for `yolo_tools convert coco SRC DST`)."""
    data = _load(json_path_of(src, options))
    return [c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])]
