"""Per-class masks as one 16-bit PNG: bit c of each pixel is class c (classes may overlap), up to 16 classes.

One format for the published ground truth a converter keeps (`<dataset>/masks/<split>/`) and the
predicted masks evaluate saves (`<run>/eval/masks/`), so both are read back by the same function.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# OpenCV is imported in the functions that read and write, on first use: the segment task imports this module,
# and reading a recipe imports the tasks, which must stay quick.

MAX_CLASSES = 16


def save(masks: np.ndarray, path: Path) -> None:
    """(classes, H, W) bool masks into one 16-bit PNG."""
    import cv2

    bits = (masks.astype(np.uint16) << np.arange(len(masks), dtype=np.uint16)[:, None, None]).sum(0, dtype=np.uint16)
    if not cv2.imwrite(str(path), bits):
        raise OSError(f"{path}: could not write the mask PNG")


def load(path: Path, n_classes: int) -> np.ndarray:
    """What `save` wrote, back as (classes, H, W) bool."""
    import cv2

    bits = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.uint16)
    return (bits[None] >> np.arange(n_classes, dtype=np.uint16)[:, None, None]) & 1 > 0
