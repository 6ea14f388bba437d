"""Read segmentations published as mask images beside a folder of images, into YOLO-seg polygons.

Two layouts, chosen with `options.layout`:

- `per_class` (default): `masks/<class>/<name>.png`, one binary mask per class and image (any value above
  `threshold` is foreground). Each class is traced on its own (`yolo_tools.codecs.polygons`), so classes
  that overlap keep their full outlines, holes are kept, and specks under `min_area` pixels are dropped.
  A missing mask file is an error for that image, not an empty mask: an empty mask must be published.
- `label_map`: `masks/<name>.png` with pixel value = class index + 1 (0 background), one class per pixel,
  traced by Ultralytics' own `convert_segment_masks_to_yolo_seg` (outer outlines only).
- `colours`: `masks/<name>.png` colour-coded, one colour per class (`colours: {class: [R, G, B]}`), as
  sets published for viewing are (UW-Madison GI mini: yellow large bowel, green small bowel, red stomach).
  Each pixel is read as a blend of two of the colours or black (background), and goes to the nearer
  of the two, so edges blended by resizing split halfway; `tolerance` (RGB distance) sends pixels that
  are no such blend (text, other markings) to the background. Each class is then traced on its
  own as in `per_class`.

Images and masks pair by file stem. An image without its masks, masks without an image, an image or mask
that cannot be decoded, and a mask of another size than its image are skipped with the file and reason.

Options: `images` (default `images`), `masks` (default `masks`), `layout`, `min_area` (pixels, default
10), `holes` (default true), `threshold` (default 0), `epsilon` (outline simplification in pixels, default 0),
`folders` (class -> mask folder name, when they differ), `colours` and `tolerance` (layout `colours`).

Examples:
    >>> from yolo_tools.recipe import load_recipe
    >>> samples(Path("../shared/data/heart-cxr-jsrt"), load_recipe("recipes/heart-seg.yaml"))
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import cv2
import numpy as np
from pydantic import Field

from yolo_tools import tasks
from yolo_tools.codecs.polygons import traced_lines
from yolo_tools.convert import images as image_files
from yolo_tools.convert.options import ConverterOptions, parse
from yolo_tools.convert.writer import Sample, SkipSample
from yolo_tools.errors import UserError
from yolo_tools.imaging import IMAGE_SUFFIXES
from yolo_tools.recipe import Recipe


Channel = Annotated[int, Field(ge=0, le=255)]


class Options(ConverterOptions):
    images: str = Field("images", description="folder of images, relative to the source")
    masks: str = Field("masks", description="folder of masks (per_class: one sub-folder per class)")
    layout: Literal["per_class", "label_map", "colours"] = Field(
        "per_class",
        description="per_class: masks/<class>/<name>.png, one binary mask per class; label_map: masks/<name>.png, "
        "value = class index + 1; colours: masks/<name>.png, one colour per class",
    )
    min_area: int = Field(10, ge=0, description="regions (and holes) under this many pixels are dropped as specks")
    holes: bool = Field(True, description="keep holes (a ring stays a ring); false fills them, outer outlines only")
    threshold: float = Field(0, description="mask values above this are foreground")
    epsilon: float = Field(0, ge=0, description="outline simplification in pixels (0 keeps every corner)")
    folders: dict[str, str] = Field(default_factory=dict, description="class -> mask folder name, where they differ")
    colours: dict[str, tuple[Channel, Channel, Channel]] = Field(
        default_factory=dict, description="layout colours: class -> [R, G, B] of its pixels in the mask images"
    )
    tolerance: float | None = Field(
        None, gt=0, description="layout colours: pixels farther than this (RGB distance) from every colour are background"
    )


def _images_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def _size_of(image: Path) -> tuple[int, int]:
    """(height, width) from the image's header: the image itself is verified by the writer, never decoded here."""
    found = image_files.load(image)
    return found.height, found.width


def read_mask(path: Path, shape: tuple[int, int], threshold: float = 0) -> np.ndarray:
    """A binary mask from a mask image (grey, or colour with any channel above `threshold`)."""
    try:
        mask = image_files.decode(path)
    except SkipSample as reason:
        raise SkipSample(f"mask {path}: {reason}") from None
    if mask.shape[:2] != tuple(shape):
        raise SkipSample(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image is {shape[1]}x{shape[0]}")
    return (mask > threshold).any(axis=-1) if mask.ndim == 3 else mask > threshold


class _LastMasks:
    """The masks of the sample read last, so `labels()` and `masks()` of one sample decode its files once.

    The writer asks a sample for its label lines and then for its published masks; both start from the
    same decoded files. One slot per converter call, keyed by the sample's name, holds a single sample's masks.
    """

    def __init__(self) -> None:
        self.key: str | None = None
        self.value: np.ndarray | None = None

    def get(self, key: str, read: Callable[[], np.ndarray]) -> np.ndarray:
        if self.key != key:
            self.key = None  # a read that fails leaves the slot empty
            self.value = read()
            self.key = key
        return self.value


def _per_class_binaries(image: Path, masks: list[Path | None], folders: list[str], threshold: float):
    """The sample's masks, (classes, H, W) bool, once its image and every class's mask file are there."""

    def read() -> np.ndarray:
        if not image.is_file():
            present = next(m for m in masks if m is not None)
            raise SkipSample(f"mask {present} has no image {image.parent / image.stem}.*")
        for path, folder in zip(masks, folders):
            if path is None:
                raise SkipSample(f"no mask {folder}/{image.stem}.* for this image")
        shape = _size_of(image)
        return np.stack([read_mask(path, shape, threshold) for path in masks])

    return read


def _per_class_reader(name: str, image: Path, masks: list[Path | None], folders: list[str], options: Options, last: _LastMasks):
    """The sample's `labels` (polygons traced per class) and `masks` (the published ones), sharing one read."""
    min_area, holes, epsilon = options.min_area, options.holes, options.epsilon
    binaries = _per_class_binaries(image, masks, folders, options.threshold)

    def labels() -> list[str]:
        return traced_lines(enumerate(last.get(name, binaries)), min_area, holes, epsilon)

    def truth() -> np.ndarray:  # at the image's own size: what evaluation scores against
        return last.get(name, binaries)

    return labels, truth


def _per_class(recipe: Recipe, image_dir: Path, mask_dir: Path) -> list[Sample]:
    options = parse(Options, recipe)
    folders = [options.folders.get(name, name) for name in recipe.classes]
    missing = [f for f in folders if not (mask_dir / f).is_dir()]
    if missing:
        raise UserError(
            f"{mask_dir}: no mask folder for {missing}; per-class masks live in {mask_dir}/<class>/ "
            "(map class names to folders with data.options.folders)"
        )
    images = _images_in(image_dir)
    masks = [_images_in(mask_dir / f) for f in folders]
    names = sorted(set(images).union(*masks))
    found = []
    last = _LastMasks()
    for name in names:
        image = images.get(name, image_dir / name)
        per_class = [m.get(name) for m in masks]
        source = str(image) if name in images else str(next(m for m in per_class if m is not None))
        labels, truth = _per_class_reader(name, image, per_class, folders, options, last)
        found.append(Sample(name=name, image=image, labels=labels, source=source, masks=truth))
    return found


def _label_map(recipe: Recipe, image_dir: Path, mask_dir: Path) -> list[Sample]:
    """Label maps through Ultralytics' converter, into a temporary folder read back at once."""
    from yolo_tools import engine

    images, masks = _images_in(image_dir), _images_in(mask_dir)
    work = Path(tempfile.mkdtemp(prefix="yolo_tools_masks_"))
    try:
        # Ultralytics reads every mask in the folder: give it only decodable masks the size of their image.
        checked, problems = work / "masks", {}
        checked.mkdir()
        for name, mask in masks.items():
            try:
                if name not in images:
                    raise SkipSample(f"mask {mask} has no image")
                read_mask(mask, _size_of(images[name]))
                (checked / f"{name}{mask.suffix}").symlink_to(mask.resolve())
            except SkipSample as reason:
                problems[name] = str(reason)
        out = engine.convert_label_masks(checked, work / "labels", len(recipe.classes))
        lines = {p.stem: p.read_text().splitlines() for p in out.glob("*.txt")}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def reader(name: str):
        def read() -> list[str]:
            if name in problems:
                raise SkipSample(problems[name])
            if name not in lines:
                raise SkipSample(f"no mask {mask_dir / name}.* for this image")
            return lines[name]

        return read

    def truth(name: str):
        def read() -> np.ndarray:  # label map: pixel value c + 1 is class c
            values = cv2.imread(str(masks[name]), cv2.IMREAD_UNCHANGED)
            values = values[..., 0] if values.ndim == 3 else values
            return values[None] == np.arange(1, len(recipe.classes) + 1)[:, None, None]

        return read

    return [
        Sample(name=name, image=images.get(name, image_dir / name), labels=reader(name),
               source=str(images.get(name) or masks[name]), masks=truth(name) if name in masks else None)
        for name in sorted(set(images) | set(masks))
    ]


def colour_classes(pixels: np.ndarray, palette: np.ndarray, tolerance: float | None = None) -> np.ndarray:
    """(classes, H, W) bool from a colour-coded mask (H, W, 3 RGB); black is background.

    Resizing blends a region's edge into its neighbour: yellow next to black gives dark yellows (120, 120,
    0), which are nearer to green than to yellow as points. So each pixel is read as a blend of two of the
    colours (black included): the nearest point on the line between any two, and the pixel goes to the
    colour of that pair it is closer to, i.e. the edge splits halfway, where a nearest-neighbour resize
    would have put it. `tolerance` sends pixels farther than that from every such line to the background.
    Written here because no library decodes a colour-coded label image.
    """
    colours = np.vstack([np.zeros((1, 3)), np.asarray(palette, float).reshape(-1, 3)])
    first, second = np.triu_indices(len(colours), k=1)
    start, step = colours[first], colours[second] - colours[first]  # (pairs, 3)
    rgb = pixels[..., :3].astype(np.float32)[..., None, :]  # (H, W, 1, 3)
    t = np.clip(((rgb - start) * step).sum(-1) / (step**2).sum(-1), 0.0, 1.0)  # (H, W, pairs)
    distance = ((rgb - (start + t[..., None] * step)) ** 2).sum(-1)
    pair = distance.argmin(-1)
    along = np.take_along_axis(t, pair[..., None], -1)[..., 0]
    nearest = np.where(along < 0.5, first[pair], second[pair])
    if tolerance is not None:
        nearest[np.take_along_axis(distance, pair[..., None], -1)[..., 0] > tolerance**2] = 0
    return nearest[None] == np.arange(1, len(colours))[:, None, None]


def _read_colour_mask(path: Path, image: Path, palette: np.ndarray, tolerance: float | None) -> np.ndarray:
    try:
        pixels = image_files.decode(path)
    except SkipSample as reason:
        raise SkipSample(f"mask {path}: {reason}") from None
    shape = _size_of(image)
    if pixels.shape[:2] != shape:
        raise SkipSample(f"mask {path} is {pixels.shape[1]}x{pixels.shape[0]} but its image is {shape[1]}x{shape[0]}")
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        raise SkipSample(f"mask {path} is not a colour image; layout colours reads RGB masks")
    return colour_classes(pixels[..., 2::-1], palette, tolerance)  # OpenCV decodes BGR


def _colour_coded(recipe: Recipe, image_dir: Path, mask_dir: Path) -> list[Sample]:
    options = parse(Options, recipe)
    missing = [name for name in recipe.classes if name not in options.colours]
    extra = sorted(set(options.colours) - set(recipe.classes))
    if missing or extra:
        raise UserError(
            f"{recipe.path or 'recipe'}: invalid recipe\n  data.options.colours: layout colours needs one [R, G, B] "
            f"per class; {f'missing {missing}' if missing else ''}{'; ' if missing and extra else ''}"
            f"{f'not classes {extra}' if extra else ''} (classes: {recipe.classes})"
        )
    palette = np.array([options.colours[name] for name in recipe.classes])
    images, masks = _images_in(image_dir), _images_in(mask_dir)
    last = _LastMasks()

    def decoded(name: str) -> np.ndarray:
        if name not in images:
            raise SkipSample(f"mask {masks[name]} has no image {image_dir / name}.*")
        if name not in masks:
            raise SkipSample(f"no mask {mask_dir / name}.* for this image")
        return _read_colour_mask(masks[name], images[name], palette, options.tolerance)

    def truth(name: str):
        def read() -> np.ndarray:
            return last.get(name, lambda: decoded(name))

        return read

    def labels(name: str):
        def read() -> list[str]:
            return traced_lines(enumerate(truth(name)()), options.min_area, options.holes, options.epsilon)

        return read

    return [
        Sample(name=name, image=images.get(name, image_dir / name), labels=labels(name),
               source=str(images.get(name) or masks[name]), masks=truth(name) if name in masks and name in images else None)
        for name in sorted(set(images) | set(masks))
    ]


def samples(src: Path, recipe: Recipe) -> list[Sample]:
    if tasks.get(recipe.task).labels != "masks":
        raise UserError(f"{recipe.path}: the mask_images converter makes segmentation labels; set task: segment")
    options = parse(Options, recipe)
    image_dir, mask_dir = src / options.images, src / options.masks
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise UserError(f"{folder}: folder not found (set data.options.images / data.options.masks)")
    if options.layout == "per_class":
        return _per_class(recipe, image_dir, mask_dir)
    if options.layout == "colours":
        return _colour_coded(recipe, image_dir, mask_dir)
    return _label_map(recipe, image_dir, mask_dir)


def classes(src: Path, options: dict) -> list[str]:
    """Class names for `yolo_tools convert masks SRC DST`: the mask sub-folders, or numbered label values."""
    mask_dir = src / str(options.get("masks", "masks"))
    folders = sorted(p.name for p in mask_dir.iterdir() if p.is_dir()) if mask_dir.is_dir() else []
    if folders:
        return folders
    values: set[int] = set()
    for mask in _images_in(mask_dir).values():
        try:
            pixels = image_files.decode(mask)
        except SkipSample:
            continue  # named with its reason when the samples are made
        if pixels.ndim == 2:
            values |= {int(v) for v in np.unique(pixels)}
    if not values - {0}:
        raise UserError(f"{mask_dir}: neither class folders nor label-map masks with class values found")
    return [f"class{v}" for v in range(1, max(values) + 1)]
