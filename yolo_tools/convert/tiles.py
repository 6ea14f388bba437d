"""Overlapping tiles at native resolution for detection training: small findings stay many pixels wide.

Kidney stones are about 20 px in a 640 px slice; trained at 320 px they shrink to 10. Cutting each
training image into overlapping tiles of `size` pixels and training at `imgsz=size` keeps every stone at
its native size. A box cut by a tile edge is kept, clipped to the tile, when at least `min_visible` of
its area is inside; a tile that holds a smaller fragment of any box is left out, since labelling that
fragment as background would teach the model that part of a stone is none (with overlapping tiles, the
box is whole in a neighbour). Tiles without any box are kept at the
rate `background` (chosen by a seeded draw per image and tile, so a conversion is reproducible); every
image keeps at least one tile, so every patient stays in the split. Only training images are tiled: the
val and test images stay whole, so that validation and `evaluate` (with sliced inference:
`yolo_tools/inference/sliced.py`) score what a user will predict on. The tiles of an image carry its patient, so
the split drawn here is handed to the writer with each sample (`drawn`), which keeps it: a patient whose
images are all skipped must not make a new draw that moves another patient's training tiles into val.

Ultralytics' own tiling (`ultralytics.data.split.split_trainval` for DOTA) handles oriented boxes of
aerial images and writes to disk itself; SAHI's `slice_coco` works on COCO files. Neither fits a
workbench Sample stream, so the geometry is written here, vectorised over tiles and boxes.

Recipe: `data.options.tiles: {size: 320, overlap: 0.2, min_visible: 0.5, background: 0.1}` (yolo_export). A size
larger than a training image is refused before anything is written (its one tile would be the whole image,
enlarged in training), as `slice=` larger than an image is for sliced inference.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import Field

from yolo_tools.convert import images as image_files
from yolo_tools.convert.options import ConverterOptions
from yolo_tools.convert.splits import group_keys
from yolo_tools.convert.writer import Sample, SkipSample, assign_splits, check_lines
from yolo_tools.errors import UserError
from yolo_tools.recipe import Recipe


class Tiles(ConverterOptions):
    """Training images cut into overlapping tiles at native resolution; val stays whole (predict with slice=)."""

    size: int = Field(320, ge=32, description="tile width and height in pixels (train with imgsz= the same)")
    overlap: float = Field(0.2, ge=0, lt=1, description="fraction of a tile shared with its neighbour")
    min_visible: float = Field(0.5, gt=0, le=1, description="a box cut by a tile edge is kept when this much of its area is inside")
    background: float = Field(0.1, ge=0, le=1, description="fraction of tiles without boxes that are kept")
    seed: int = Field(0, description="the seed of the draw of background tiles")


def starts(length: int, size: int, overlap: float) -> np.ndarray:
    """Tile origins along one axis: a step of size * (1 - overlap), the last tile flush with the edge."""
    if length <= size:
        return np.zeros(1, int)
    step = max(1, int(round(size * (1 - overlap))))
    return np.append(np.arange(0, length - size, step), length - size)


def grid(height: int, width: int, size: int, overlap: float) -> np.ndarray:
    """(N, 4) tiles as pixel x0, y0, x1, y1 covering an image, row by row."""
    ys, xs = np.meshgrid(starts(height, size, overlap), starts(width, size, overlap), indexing="ij")
    x0, y0 = xs.ravel(), ys.ravel()
    return np.stack([x0, y0, np.minimum(x0 + size, width), np.minimum(y0 + size, height)], axis=1)


def clip_boxes(boxes: np.ndarray, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every box (M, 4 xyxy) clipped to every tile (N, 4 xyxy): (N, M, 4) clipped boxes and the (N, M)
    fraction of each box's area inside each tile (0 for a box outside)."""
    boxes, tiles = np.asarray(boxes, float).reshape(-1, 4), np.asarray(tiles, float).reshape(-1, 4)
    low = np.maximum(boxes[None, :, :2], tiles[:, None, :2])
    high = np.minimum(boxes[None, :, 2:], tiles[:, None, 2:])
    clipped = np.concatenate([low, np.maximum(high, low)], axis=-1)
    inside = np.prod(clipped[..., 2:] - clipped[..., :2], axis=-1)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)
    return clipped, inside / np.maximum(area, 1e-12)[None, :]


def yolo_to_xyxy(lines: Sequence[str], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and pixel xyxy boxes of YOLO detection lines (class cx cy w h, normalised)."""
    values = np.array([line.split() for line in lines], float).reshape(-1, 5)
    centre, size = values[:, 1:3] * (width, height), values[:, 3:5] * (width, height)
    return values[:, 0].astype(int), np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def xyxy_to_yolo(classes: np.ndarray, boxes: np.ndarray, height: int, width: int) -> list[str]:
    scale = np.array([width, height, width, height], float)
    centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    values = np.concatenate([centre, size], axis=1) / scale
    return [f"{c} " + " ".join(f"{v:.6f}" for v in row) for c, row in zip(classes, values)]


def plan(lines: Sequence[str], height: int, width: int, tiles: Tiles, name: str) -> list[tuple[np.ndarray, list[str]]]:
    """The tiles kept for one image, each as (x0 y0 x1 y1, its label lines relative to the tile)."""
    cells = grid(height, width, tiles.size, tiles.overlap)
    classes, boxes = yolo_to_xyxy(lines, height, width)
    clipped, visible = clip_boxes(boxes, cells)
    kept = visible >= tiles.min_visible - 1e-9
    fragment = ((visible > 0) & ~kept).any(axis=1)
    has_box = kept.any(axis=1)
    rng = np.random.default_rng([tiles.seed, zlib.crc32(name.encode())])
    chosen = ~fragment & (has_box | (rng.random(len(cells)) < tiles.background))
    if not chosen.any():
        chosen[int(np.argmin(fragment))] = True  # every image keeps a tile, so its patient keeps its split
    out = []
    for index in np.flatnonzero(chosen):
        x0, y0, x1, y1 = cells[index]
        inside = clipped[index, kept[index]] - np.array([x0, y0, x0, y0], float)
        out.append((cells[index], xyxy_to_yolo(classes[kept[index]], inside, y1 - y0, x1 - x0)))
    return out


@lru_cache(maxsize=4)
def _decoded(path: Path) -> np.ndarray:
    """An image's pixels, kept while its tiles (consecutive samples) are written: decoded once, not per tile."""
    return image_files.decode(path)


def _tile_image(path: Path, cell: np.ndarray):
    def read() -> np.ndarray:
        x0, y0, x1, y1 = (int(v) for v in cell)
        pixels = _decoded(path)[y0:y1, x0:x1]
        return np.ascontiguousarray(pixels[..., ::-1] if pixels.ndim == 3 else pixels)  # Samples hand over RGB

    return read


def _fixed(lines: list[str]):
    return lambda: lines


def _failing(reason: SkipSample):
    def read() -> list[str]:
        raise reason

    return read


def _checked(sample: Sample, recipe: Recipe) -> tuple[list[str], image_files.Checked | None] | SkipSample:
    """The sample's label lines, checked as the writer checks them, and its image header; or why it is unusable."""
    try:
        lines = check_lines(sample.labels() if sample.labels else [], recipe.task, recipe.classes)
        return lines, image_files.load(sample.image) if isinstance(sample.image, Path) else None
    except SkipSample as reason:
        return reason


def _check_fits(tiles: Tiles, recipe: Recipe, training: Sequence[tuple[Sample, image_files.Checked | None]]) -> None:
    """A tile larger than a training image is refused before anything is written: that image's one tile would
    be the whole image, which training at `imgsz=size` enlarges, so its findings would not be learnt at native
    size (what tiles are for)."""
    sides = [(max(header.height, header.width), sample, header) for sample, header in training if header is not None]
    too_small = [found for found in sides if found[0] < tiles.size]
    if too_small:
        _, sample, header = too_small[0]
        others = f" and {len(too_small) - 1} other training image(s)" if len(too_small) > 1 else ""
        raise UserError(
            f"{recipe.path}: data.options.tiles.size {tiles.size} is larger than the training image {sample.source or sample.name} "
            f"({header.width} x {header.height} px){others}. Give a size of at most {min(side for side, _, _ in sides)} "
            "(the smallest training image's longer side), e.g. half of it, or remove data.options.tiles"
        )


def tile(samples: Sequence[Sample], recipe: Recipe, tiles: Tiles) -> list[Sample]:
    """The training samples cut into tiles (`<name>_x<x0>_y<y0>`), the val and test samples whole.

    Every label file and image header is read and checked now: the tiles depend on them, and the split is
    drawn over the usable samples only, as the writer would draw it. Each sample carries that split
    (`drawn`), so the writer never draws again and no training tile can land in val. An unusable image
    stays one sample that the writer skips with the reason.
    """
    rule = recipe.data.split.by
    groups = [s.group for s in samples] if all(s.group for s in samples) else (
        [s.name for s in samples] if rule == "source" else group_keys([s.name for s in samples], rule)
    )
    checked = [_checked(sample, recipe) for sample in samples]
    usable = [i for i, found in enumerate(checked) if not isinstance(found, SkipSample)]
    drawn = dict(zip(usable, assign_splits([Sample(**{**samples[i].__dict__, "group": groups[i]}) for i in usable],
                                           recipe)[0])) if usable else {}
    _check_fits(tiles, recipe, [(samples[i], checked[i][1]) for i in usable if drawn[i] == "train"])
    out: list[Sample] = []
    for index, (sample, group, found) in enumerate(zip(samples, groups, checked)):
        split = drawn.get(index, "train")  # an unusable sample is skipped by the writer, wherever it was drawn
        whole = Sample(**{**sample.__dict__, "group": group, "drawn": split})
        if isinstance(found, SkipSample):
            out.append(Sample(**{**whole.__dict__, "labels": _failing(found)}))
            continue
        lines, header = found
        if split != "train" or header is None or not isinstance(sample.image, Path):
            out.append(whole)
            continue
        for cell, tile_lines in plan(lines, header.height, header.width, tiles, sample.name):
            out.append(Sample(
                name=f"{sample.name}_x{cell[0]}_y{cell[1]}", image=_tile_image(sample.image, cell),
                labels=_fixed(tile_lines), split=sample.split, group=group, drawn=split,
                source=f"{sample.source} [{cell[0]}:{cell[2]}, {cell[1]}:{cell[3]}]",
            ))
    return out
