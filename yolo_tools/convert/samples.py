"""What a converter hands the writer: one `Sample` per image, loaded lazily, or a reason to skip it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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
    `spacing` is (row, column) mm per pixel where the source says so (`spacing.csv`). `drawn` is the split
    a converter already drew because what it made depends on it (tiles are cut for training images only):
    the writer keeps it, even when skipped samples would change a fresh draw.
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
    drawn: str | None = None


class SampleList(list):
    """A converter's samples plus what it left out before making samples, counted by reason.

    For inputs that are absent in bulk rather than broken one by one (e.g. 38,494 label rows whose scans
    are not in this copy of a set): one line and a count on the card instead of one skip per file.
    """

    def __init__(self, samples=(), left_out: dict[str, int] | None = None):
        super().__init__(samples)
        self.left_out = {reason: count for reason, count in (left_out or {}).items() if count}
        # Volume converters: {volume: geometry JSON} written as volumes.json (see imaging/geometry.py).
        self.volumes: dict[str, dict] = {}
