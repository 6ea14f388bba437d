"""The `region_crops` converter: a cascade's training images, the regions a detect or segment run finds in another
classify recipe's converted images, cropped (yolo_tools/inference/cascade.py predicts with the same chain).

It takes the classify recipe named by `data.options.recipe` (same classes, its patient-wise train/val split),
whose dataset the orchestrator converts first (`upstream`; yolo_tools/conversion.py), runs the region model of
`data.options.regions` on each image, joins the boxes of the chosen region classes, adds a margin and keeps that
crop. An image where no region is found keeps its whole frame, so no image drops out of training or evaluation.

Examples:
    >>> crop_box(np.array([[10, 20, 50, 80]]), np.array([1]), [1], (100, 100), 0.1)
    (6, 14, 54, 86)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import Field
from tqdm import tqdm

from yolo_tools import engine, tasks
from yolo_tools.convert.options import ConverterOptions, parse
from yolo_tools.convert.splits import group_keys
from yolo_tools.convert.writer import Sample
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe, load_recipe
from yolo_tools.runs import weights_of

LOG = logging.getLogger(__name__)


class Options(ConverterOptions):
    """`data.options` of a `region_crops` recipe."""

    recipe: str = Field(description="the classify recipe whose images, classes and split are cropped")
    regions: str = Field(description="run folder or weights of the detect or segment model that finds the regions")
    classes: list[str] | None = Field(None, min_length=1, description="region classes joined into the crop")
    margin: float = Field(0.1, ge=0, le=1, description="added on each side, as a fraction of the box's size")


def options_of(recipe: Recipe) -> Options:
    """The recipe's crop options, validated; errors name the file and the key."""
    return parse(Options, recipe)


def base_recipe(recipe: Recipe, options: Options) -> Recipe:
    """The classify recipe being cropped, found next to the cascade recipe (or among the bundled ones)."""
    here = Path(recipe.path).parent if recipe.path else Path(".")
    path = here / options.recipe if (here / options.recipe).is_file() else Path(options.recipe)
    base = load_recipe(path)
    if base.task != recipe.task or base.classes != recipe.classes:
        raise UserError(
            f"{recipe.path}: data.options.recipe '{options.recipe}' must be a classify recipe with the same classes "
            f"{recipe.classes} (it is a {base.task} recipe with {base.classes})"
        )
    return base


def region_model(options: Options, origin: Any) -> tuple[Path, list[int] | None]:
    """The region model's weights and the class indices to join (None = all), checked against its names."""
    if not Path(options.regions).exists():
        raise UserError(f"{origin}: data.options.regions '{options.regions}': no such run folder or weights")
    weights, _ = weights_of(options.regions)
    task, names = engine.task_and_names(weights)
    spec = tasks.TASKS.get(task)  # None: a model of a task the workbench does not evaluate
    if spec is None or spec.labels not in ("boxes", "masks"):  # regions to crop: boxes, or masks' boxes
        raise UserError(f"{origin}: data.options.regions: {weights} is a {task} model; a detect or segment model is needed")
    if options.classes is None:
        return weights, None
    index = {name: i for i, name in names.items()}
    unknown = [name for name in options.classes if name not in index]
    if unknown:
        raise UserError(f"{origin}: data.options.classes: {unknown} not among the region model's classes {list(index)}")
    return weights, [index[name] for name in options.classes]


def crop_box(
    boxes: np.ndarray, classes: np.ndarray, keep: Sequence[int] | None, shape: tuple[int, int], margin: float
) -> tuple[int, int, int, int] | None:
    """The box joining every region of the kept classes, widened by `margin`, inside the image; None if none."""
    chosen = boxes if keep is None else boxes[np.isin(classes, keep)]
    if not len(chosen):
        return None
    x1, y1 = chosen[:, :2].min(0)
    x2, y2 = chosen[:, 2:].max(0)
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    height, width = shape
    box = (max(0, int(x1 - dx)), max(0, int(y1 - dy)), min(width, int(np.ceil(x2 + dx))), min(height, int(np.ceil(y2 + dy))))
    return box if box[2] > box[0] and box[3] > box[1] else None


def region_boxes(
    weights: Path, source: str | list[Path], keep: list[int] | None, margin: float, args: dict[str, Any], keep_image: bool = False
):
    """For each image of `source`: the region model's prediction (with the image when `keep_image`), the crop box
    (None = none found) and the regions' best confidence."""
    for found in engine.predict(weights, source, args, keep_image=keep_image):
        box = crop_box(found.boxes, found.classes, keep, found.shape, margin)
        chosen = found.confidences if keep is None else found.confidences[np.isin(found.classes, keep)]
        yield found, box, float(chosen.max(initial=0.0))


def upstream(recipe: Recipe) -> Recipe:
    """The classify recipe whose converted images are cropped, once the crop options, the task and split rule and
    the region model are checked (before that recipe is converted, so a typo fails before any work)."""
    options = options_of(recipe)
    if tasks.get(recipe.task).labels != "classes" or recipe.data.split.by != "source":  # crops are classified
        raise UserError(f"{recipe.path}: a region_crops recipe is a classify task with data.split.by 'source'")
    base = base_recipe(recipe, options)
    region_model(options, recipe.path)
    return base


def samples(src: Path | None, recipe: Recipe, upstream_root: Path) -> list:
    """The `upstream` recipe's converted images (in `upstream_root`, converted by the orchestrator), cropped to the
    regions, same split and class. `src` is the cascade recipe's own source, which the crops do not read."""
    options = options_of(recipe)
    base = upstream(recipe)
    weights, keep = region_model(options, recipe.path)
    root = upstream_root
    boxes, whole = {}, 0
    found = region_boxes(weights, str(root / "*" / "*" / "*"), keep, options.margin, {})
    for region, box, _ in tqdm(found, desc=f"regions ({weights.parent.parent.name})", unit="img"):
        boxes[region.path] = box
        whole += box is None
    LOG.info("%d of %d images without a region keep their whole frame", whole, len(boxes))
    paths = sorted(boxes)
    rule = base.data.split.by
    groups = group_keys([p.stem for p in paths], rule) if rule not in ("source", "file") else [p.stem for p in paths]

    def loader(path: Path, box: tuple[int, int, int, int] | None):
        def load() -> np.ndarray:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if box is not None:
                image = image[box[1] : box[3], box[0] : box[2]]
            return np.ascontiguousarray(image[..., ::-1])  # the writer takes RGB

        return load

    return [
        Sample(
            name=path.stem,
            image=loader(path, boxes[path]),
            category=path.parent.name,
            split=path.parent.parent.name,
            group=group,
            source=str(path),
        )
        for path, group in zip(paths, groups)
    ]
