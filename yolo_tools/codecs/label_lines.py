"""YOLO label files: one line per finding, a class number then normalised coordinates (a box x y w h, or a
polygon's x y pairs). The one reader of them after conversion, and the rule of what a task's lines may hold
(each task declares its own: `Task.label_lines`, in yolo_tools/tasks/).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LabelLines:
    """What one line of a task's label files may hold after its class number, and how a message words it."""

    polygons: bool  # besides a box (4 coordinates: x y w h), a polygon (an even number >= 6: x y pairs)
    wanted: str  # the coordinates a line may have, as a skipped sample's reason says it

    def fits(self, coordinates: int) -> bool:
        return coordinates == 4 or (self.polygons and coordinates >= 6 and coordinates % 2 == 0)


def read_labels(path: Path) -> list[tuple[int, np.ndarray]]:
    """A YOLO label file as (class, normalised coordinates) pairs; a missing file is an image without findings.

    The one reader of label files after conversion (the writer checks lines as it writes them,
    `writer.check_lines`, against its task's `Task.label_lines`); boxes have 4 coordinates, polygons an even number >= 6.
    """
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        tokens = line.split()
        if tokens:
            rows.append((int(tokens[0]), np.asarray(tokens[1:], dtype=np.float64)))
    return rows
