"""`imgsz=auto`: the input size chosen from the data and the model's strides, as nnU-Net chooses its patch size
and network depth from a dataset's fingerprint (Isensee et al., Nat Methods 2021).

A YOLO model sees a finding through the cells of its heads (strides 8, 16 and 32 for YOLOv8's P3 to P5) and
draws a segment's mask on prototypes at a quarter of its input. A hippocampus slice is about 36 x 51 pixels and
the structure in it about 10 pixels across: at `imgsz=64` the finest head sees it as 1.6 cells and the mask
prototypes as 3 pixels, so outlines are drawn at three times the voxel size. Upsampling the slices fixes that,
at a cost that grows with the square of the size, so the size is taken from the data instead of guessed:

- the median finding's short side (the bounding box of each labelled instance, in pixels of its own image, over
  the training split) is brought to `CELLS` cells of the model's finest stride, which with YOLOv8 puts it on
  `CELLS * 2` prototype pixels;
- an image is never shrunk below its own size (the median long side), only enlarged, at most `MAX_UPSCALE`
  times, and never beyond `MAX_IMGSZ`;
- rounded up to a multiple of the model's largest stride, which Ultralytics requires.

Large findings on large images (a heart on a 512-pixel film) keep the image's own size; small structures on
small images (hippocampus) are enlarged. Written here because neither Ultralytics nor nnU-Net chooses a 2D
detector's input size from label statistics.

Examples:
    >>> choose(Statistics(long_side=51, short_finding=10, findings=4576), strides=(8, 16, 32))
    192
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from yolo_tools.codecs.label_lines import read_labels
from yolo_tools.dataset import Dataset
from yolo_tools.errors import UserError
from yolo_tools.imaging.pillow import pillow_open

AUTO = "auto"
CELLS = 4  # cells of the finest head the median finding's short side spans (8 prototype pixels in YOLOv8-seg)
MAX_UPSCALE = 8
MAX_IMGSZ = 1280


@dataclass(frozen=True)
class Statistics:
    """What the choice reads from a dataset's training split: medians in pixels, and how many findings."""

    long_side: float  # the median image's longer side
    short_finding: float  # the median finding's bounding-box short side
    findings: int

    def describe(self) -> str:
        return (f"median image {self.long_side:.0f} px on its long side, median finding {self.short_finding:.1f} px on "
                f"its short side ({self.findings} findings in the training split)")


def statistics(dataset: Dataset, split: str = "train") -> Statistics:
    """Median image size and median finding size of `split`, from its label files and image headers."""
    listing = dataset.listing([split])
    if listing is None:
        raise UserError(f"{dataset.root}: imgsz=auto reads the training split's images and labels; this conversion lists "
                        "none (patients.csv): convert it again with --force")
    sides, shorts = [], []
    for image, path in zip(listing["image"], listing["path"]):
        with pillow_open(path) as opened:
            width, height = opened.size
        sides.append(max(width, height))
        for _, coords in read_labels(dataset.label_file(split, path.stem)):
            xy = coords.reshape(-1, 2) if len(coords) > 4 else None
            if xy is None:  # a box: x y w h
                extent = (coords[2] * width, coords[3] * height)
            else:
                extent = ((xy[:, 0].max() - xy[:, 0].min()) * width, (xy[:, 1].max() - xy[:, 1].min()) * height)
            shorts.append(min(extent))
    if not shorts:
        raise UserError(f"{dataset.root}: imgsz=auto sizes the input by the labelled findings; the {split} split has none. "
                        "Give imgsz a number")
    return Statistics(float(np.median(sides)), float(np.median(shorts)), len(shorts))


def choose(found: Statistics, strides: tuple[int, ...]) -> int:
    """The input size for `found` and a model of `strides` (see the module docstring)."""
    finest, coarsest = min(strides), max(strides)
    scale = min(max(1.0, CELLS * finest / max(found.short_finding, 1.0)), MAX_UPSCALE)
    size = min(found.long_side * scale, MAX_IMGSZ)
    return int(max(coarsest, math.ceil(size / coarsest) * coarsest))


def resolve(args: dict[str, Any], dataset: Dataset, strides: tuple[int, ...]) -> dict[str, Any]:
    """`args` with `imgsz=auto` replaced by the chosen size (said in one line); other args as they are."""
    if args.get("imgsz") != AUTO:
        return args
    if dataset.class_folders:
        raise UserError("imgsz=auto sizes the input by the labelled findings; a classifier has none. Give imgsz a number")
    found = statistics(dataset)
    size = choose(found, strides)
    print(f"imgsz=auto: {size} ({found.describe()}; the median finding spans {CELLS} cells of the model's stride "
          f"{min(strides)} at {size}, up to {MAX_UPSCALE}x the image)")
    return {**args, "imgsz": size}
